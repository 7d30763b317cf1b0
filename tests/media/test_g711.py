"""Tests for txsipua.media.g711: known code values, exhaustive round trips, speed-independent shape."""

from __future__ import annotations

import math
import struct

import pytest

from txsipua.media import g711


def pcm(*samples: int) -> bytes:
    """Pack samples as 16-bit little-endian PCM."""
    return struct.pack(f"<{len(samples)}h", *samples)


def unpack(data: bytes) -> list[int]:
    """Unpack 16-bit little-endian PCM."""
    return list(struct.unpack(f"<{len(data) // 2}h", data))


def test_ulaw_known_decodes():
    """0xFF and 0x7F are the two zeros, 0x00 and 0x80 the extremes ±32124, 0xFE the smallest step (8)."""
    assert unpack(g711.ulaw_decode(bytes([0x00, 0xFF, 0x7F, 0x80, 0xFE, 0xEF, 0x6F]))) == [
        -32124, 0, 0, 32124, 8, 132, -132]


def test_alaw_known_decodes():
    """0xD5/0x55 are ±8 (the smallest steps), 0xAA/0x2A are ±32256."""
    assert unpack(g711.alaw_decode(bytes([0xD5, 0x55, 0xAA, 0x2A]))) == [8, -8, 32256, -32256]


def test_known_encodes():
    """Silence, full scale and clipping encode to the textbook octets."""
    assert g711.ulaw_encode(pcm(0, 32767, -32768, 32124, -32124)) == bytes([0xFF, 0x80, 0x00, 0x80, 0x00])
    assert g711.alaw_encode(pcm(0, -1, 32767, -32768)) == bytes([0xD5, 0x55, 0xAA, 0x2A])


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_every_code_is_a_fixed_point(law):
    """Decoding any octet and encoding it again gives the octet back (except mu-law's -0)."""
    encode = getattr(g711, f"{law}_encode")
    decode = getattr(g711, f"{law}_decode")
    codes = bytes(range(256))
    again = encode(decode(codes))
    differ = [c for c, a in zip(codes, again, strict=True) if c != a]
    assert differ == ([0x7F] if law == "ulaw" else [])  # -0 becomes +0 (0xFF)


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_round_trip_error_is_bounded_for_every_sample(law):
    """|decode(encode(x)) - x| is within half a quantisation step: <= |x|/32 + 8 up to full scale."""
    encode = getattr(g711, f"{law}_encode")
    decode = getattr(g711, f"{law}_decode")
    samples = list(range(-32768, 32768))
    out = unpack(decode(encode(pcm(*samples))))
    full_scale = 32124 if law == "ulaw" else 32256
    for x, y in zip(samples, out, strict=True):
        if abs(x) <= full_scale:
            assert abs(y - x) <= abs(x) / 32 + 8, (x, y)
        else:
            assert abs(y) == full_scale


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_tone_snr(law):
    """A 1 kHz tone survives with the ~38 dB signal-to-noise ratio G.711 is known for."""
    samples = [round(12000 * math.sin(2 * math.pi * 1000 * n / 8000)) for n in range(800)]
    out = unpack(getattr(g711, f"{law}_decode")(getattr(g711, f"{law}_encode")(pcm(*samples))))
    signal = sum(x * x for x in samples)
    noise = sum((x - y) ** 2 for x, y in zip(samples, out, strict=True))
    assert 10 * math.log10(signal / noise) > 35


def test_sizes_and_errors():
    """One octet per sample each way; odd PCM lengths are refused."""
    assert len(g711.ulaw_encode(bytes(320))) == 160
    assert len(g711.alaw_decode(bytes(160))) == 320
    assert g711.ulaw_encode(b"") == b""
    with pytest.raises(ValueError):
        g711.ulaw_encode(b"\x00")
    with pytest.raises(ValueError):
        g711.alaw_encode(b"\x00\x00\x00")
