"""G.711 mu-law (PCMU) and A-law (PCMA) codecs, table driven (ITU-T G.711; RFC 3551 §4.5.14).

Linear audio is 16-bit signed little-endian PCM ("pcm16le"), one octet per
sample on the G.711 side.  Each law compresses a sample into a sign bit, a
3-bit segment (exponent) and a 4-bit step within the segment:

- mu-law works on the magnitude plus a bias of 132 (0x84), so segment ``e``
  covers biased magnitudes ``[2**(e+7), 2**(e+8))`` in steps of ``2**(e+3)``;
  the code is the one's complement of ``sign|segment|step``.  Full scale is
  ±32124; 0xFF and 0x7F both decode to 0.
- A-law works on the 13-bit magnitude (``sample >> 3``); segment 0 is linear
  (steps of 16 in 16-bit units), segment ``e >= 1`` covers ``[2**(e+4), 2**(e+5))``
  in 13-bit units; even bits are inverted (XOR 0x55), sign bit set for
  positive values.  Full scale is ±32256; 0xD5 decodes to +8 and 0x55 to -8.

Encoding looks each sample up in a 65536-entry table built on first use;
decoding in a 256-entry table.  Neither uses the deprecated ``audioop``.
"""

from __future__ import annotations

import sys
from array import array
from functools import cache

__all__ = [
    "alaw_decode",
    "alaw_decode_sample",
    "alaw_encode",
    "alaw_encode_sample",
    "ulaw_decode",
    "ulaw_decode_sample",
    "ulaw_encode",
    "ulaw_encode_sample",
]

_BIAS = 0x84
_ULAW_CLIP = 32635
_BIG_ENDIAN = sys.byteorder == "big"


def ulaw_encode_sample(sample: int) -> int:
    """Encode one 16-bit signed sample (-32768..32767) to a mu-law octet."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(-sample if sample < 0 else sample, _ULAW_CLIP) + _BIAS
    exponent = magnitude.bit_length() - 8  # magnitude >= 132, so 0..7
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def ulaw_decode_sample(code: int) -> int:
    """Decode one mu-law octet to a 16-bit signed sample."""
    code = ~code & 0xFF
    exponent = (code >> 4) & 0x07
    magnitude = ((((code & 0x0F) << 3) + _BIAS) << exponent) - _BIAS
    return -magnitude if code & 0x80 else magnitude


def alaw_encode_sample(sample: int) -> int:
    """Encode one 16-bit signed sample (-32768..32767) to an A-law octet."""
    if sample >= 0:
        mask, magnitude = 0xD5, sample >> 3
    else:
        mask, magnitude = 0x55, (-sample - 1) >> 3
    if magnitude < 32:
        code = magnitude >> 1
    else:
        exponent = magnitude.bit_length() - 5  # 1..7
        code = (exponent << 4) | ((magnitude >> exponent) & 0x0F)
    return code ^ mask


def alaw_decode_sample(code: int) -> int:
    """Decode one A-law octet to a 16-bit signed sample."""
    code ^= 0x55
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    if exponent == 0:
        magnitude = (mantissa << 4) + 8
    else:
        magnitude = ((mantissa << 4) + 0x108) << (exponent - 1)
    return magnitude if code & 0x80 else -magnitude


@cache
def _encode_table(law: str) -> bytes:
    encode = ulaw_encode_sample if law == "ulaw" else alaw_encode_sample
    # indexed by the sample's bits read as unsigned 16-bit
    return bytes(encode(i if i < 0x8000 else i - 0x10000) for i in range(0x10000))


@cache
def _decode_table(law: str) -> tuple[int, ...]:
    decode = ulaw_decode_sample if law == "ulaw" else alaw_decode_sample
    return tuple(decode(i) for i in range(256))


def _encode(pcm16le: bytes, law: str) -> bytes:
    if len(pcm16le) % 2:
        raise ValueError(f"16-bit PCM must have an even number of octets, not {len(pcm16le)}")
    samples = array("H")
    samples.frombytes(pcm16le)
    if _BIG_ENDIAN:  # pragma: no cover - depends on the host
        samples.byteswap()
    return bytes(map(_encode_table(law).__getitem__, samples))


def _decode(data: bytes, law: str) -> bytes:
    samples = array("h", map(_decode_table(law).__getitem__, data))
    if _BIG_ENDIAN:  # pragma: no cover - depends on the host
        samples.byteswap()
    return samples.tobytes()


def ulaw_encode(pcm16le: bytes) -> bytes:
    """Encode 16-bit little-endian PCM to mu-law, one octet per sample.

    Raises:
        ValueError: an odd number of octets.
    """
    return _encode(pcm16le, "ulaw")


def ulaw_decode(data: bytes) -> bytes:
    """Decode mu-law octets to 16-bit little-endian PCM (two octets per input octet)."""
    return _decode(data, "ulaw")


def alaw_encode(pcm16le: bytes) -> bytes:
    """Encode 16-bit little-endian PCM to A-law, one octet per sample.

    Raises:
        ValueError: an odd number of octets.
    """
    return _encode(pcm16le, "alaw")


def alaw_decode(data: bytes) -> bytes:
    """Decode A-law octets to 16-bit little-endian PCM (two octets per input octet)."""
    return _decode(data, "alaw")
