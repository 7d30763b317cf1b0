"""Audio codecs behind one API: G.711 built in, G.722 and Opus through optional libraries.

PCM in and out of every codec is 16-bit signed little-endian mono at the
codec's :attr:`AudioCodec.sample_rate` (Hz), the format of
:mod:`txsipua.media.g711` and of the audio sources and sinks.  One frame is
``sample_rate * ptime / 1000`` samples; its RTP timestamp advances by
``clock_rate * ptime / 1000``, which differs from the samples for G.722 (RTP
clock 8000 Hz, sampled at 16000 Hz, RFC 3551 §4.5.2) and is 48000 Hz for
Opus whatever the audio bandwidth (RFC 7587 §4.1).

=========  ===  ==========  ===========  ===============================
codec      PT   RTP clock   PCM rate     library (extra)
=========  ===  ==========  ===========  ===============================
PCMU       0    8000        8000         built in
PCMA       8    8000        8000         built in
G722       9    8000        16000        ``G722`` (``g722``: ``[g722]``)
opus       111  48000 (/2)  48000        ``opuslib_next`` + libopus0 (``[opus]``)
=========  ===  ==========  ===========  ===============================

Each stream makes its own :class:`Encoder` and :class:`Decoder` (the codecs
keep state between frames).  A lost frame is concealed by
:meth:`Decoder.conceal`: Opus with its decoder's own packet-loss concealment,
the others by repeating the last frame, fading by half each time, silent from
the fourth consecutive loss.

Optional libraries are imported lazily, when an encoder or decoder is first
made; :meth:`AudioCodec.available` says whether that can work.  Pure: no
Twisted, no clock.
"""

from __future__ import annotations

import functools
import importlib
import sys
from array import array
from collections.abc import Callable
from typing import Any, Protocol

import attrs

from txsipua.errors import CodecUnavailable
from txsipua.media import g711

__all__ = [
    "CODECS",
    "G722",
    "OPUS",
    "PCMA",
    "PCMU",
    "AudioCodec",
    "CodecUnavailable",
    "Decoder",
    "Encoder",
    "lookup",
    "resample",
]

_BIG_ENDIAN = sys.byteorder == "big"


class Encoder(Protocol):
    """Encodes one frame of PCM (16-bit LE mono at the codec's sample rate) into an RTP payload."""

    def encode(self, pcm: bytes) -> bytes:
        """One frame's payload; ``pcm`` holds exactly one frame."""


class Decoder(Protocol):
    """Decodes RTP payloads into PCM (16-bit LE mono at the codec's sample rate); conceals losses."""

    def decode(self, payload: bytes) -> bytes:
        """The PCM of one payload."""

    def conceal(self, samples: int) -> bytes:
        """``samples`` of PCM standing in for one lost frame."""


@attrs.frozen
class AudioCodec:
    """What txsipua knows of one codec: SDP names, rates and how to make its coder.

    Attributes:
        name: the SDP encoding name (RFC 3551 §6, RFC 7587).
        payload_type: the static payload type, or our dynamic one.
        clock_rate: the RTP clock rate (the rate SDP names), Hz.
        sample_rate: the PCM rate in and out, Hz.
        channels: the SDP channel count (Opus is always ``/2`` in SDP,
            RFC 7587 §7; the PCM stays mono).
        module: the Python module it needs, or ``None`` (built in).
        extra: the setup.cfg extra that installs it.
        fmtp: our ``a=fmtp`` for it, or ``None``.
    """

    name: str
    payload_type: int
    clock_rate: int
    sample_rate: int
    channels: int = 1
    module: str | None = None
    extra: str | None = None
    fmtp: str | None = None
    _make: Callable[[AudioCodec, int], tuple[Encoder, Decoder]] | None = attrs.field(
        default=None, eq=False, repr=False)

    def available(self) -> bool:
        """True when the codec's library can be imported."""
        if self.module is None:
            return True
        try:
            importlib.import_module(self.module)
        except Exception:  # ImportError, or OSError when the shared library is missing
            return False
        return True

    def frame_samples(self, ptime: int) -> int:
        """PCM samples in one frame of ``ptime`` ms."""
        return self.sample_rate * ptime // 1000

    def timestamp_step(self, ptime: int) -> int:
        """RTP timestamp units in one frame of ``ptime`` ms."""
        return self.clock_rate * ptime // 1000

    def coders(self, ptime: int = 20) -> tuple[Encoder, Decoder]:
        """A fresh encoder and decoder for one stream.

        Args:
            ptime: the packet time, ms (10-60).

        Raises:
            CodecUnavailable: the library is not installed (names the extra).
        """
        if not self.available():
            raise CodecUnavailable(
                f"{self.name} needs the {self.module!r} library: pip install 'txsipua[{self.extra}]'")
        assert self._make is not None
        return self._make(self, ptime)


def _pcm_samples(pcm: bytes) -> array[int]:
    samples = array("h")
    samples.frombytes(pcm)
    if _BIG_ENDIAN:  # pragma: no cover - depends on the host
        samples.byteswap()
    return samples


def _pcm_bytes(samples: array[int]) -> bytes:
    if _BIG_ENDIAN:  # pragma: no cover - depends on the host
        samples = array("h", samples)
        samples.byteswap()
    return samples.tobytes()


class _RepeatConcealer:
    """Loss concealment by repetition: the last frame again at half its level each time, then silence."""

    __slots__ = ("_last", "_losses")

    def __init__(self) -> None:
        self._last = b""
        self._losses = 0

    def heard(self, pcm: bytes) -> bytes:
        self._last = pcm
        self._losses = 0
        return pcm

    def conceal(self, samples: int) -> bytes:
        self._losses += 1
        if self._losses > 3 or not self._last:
            return bytes(2 * samples)
        shift = self._losses  # 1/2, 1/4, 1/8 of the last frame
        faded = array("h", (s >> shift for s in _pcm_samples(self._last)))
        out = _pcm_bytes(faded)
        if len(out) < 2 * samples:
            out += bytes(2 * samples - len(out))
        return out[: 2 * samples]


@functools.cache
def _g711_tables(law: str) -> tuple[bytes, bytes, Any]:
    """Decoding as two ``bytes.translate`` tables (low and high octet of each sample) and,
    when numpy is installed, the encoding table as a numpy array (else None)."""
    decode = g711.ulaw_decode_sample if law == "ulaw" else g711.alaw_decode_sample
    decoded = [decode(code) & 0xFFFF for code in range(256)]
    low = bytes(v & 0xFF for v in decoded)
    high = bytes(v >> 8 for v in decoded)
    try:
        import numpy
    except ImportError:
        return low, high, None
    table = numpy.frombuffer((g711.ulaw_encode if law == "ulaw" else g711.alaw_encode)(
        numpy.arange(65536, dtype="<u2").tobytes()), dtype=numpy.uint8)
    return low, high, (numpy, table)


class _G711:
    """G.711 with fast paths: decoding by ``bytes.translate``; encoding by a numpy table lookup
    when numpy is installed (ten times faster), else :mod:`txsipua.media.g711`."""

    __slots__ = ("_conceal", "_encode", "_high", "_low", "_np")

    def __init__(self, law: str) -> None:
        self._encode = g711.ulaw_encode if law == "ulaw" else g711.alaw_encode
        self._low, self._high, self._np = _g711_tables(law)
        self._conceal = _RepeatConcealer()

    def encode(self, pcm: bytes) -> bytes:
        if self._np is None or _BIG_ENDIAN or len(pcm) % 2:
            return self._encode(pcm)
        numpy, table = self._np
        return table[numpy.frombuffer(pcm, dtype="<u2")].tobytes()

    def decode(self, payload: bytes) -> bytes:
        payload = bytes(payload)
        out = bytearray(2 * len(payload))
        out[0::2] = payload.translate(self._low)
        out[1::2] = payload.translate(self._high)
        return self._conceal.heard(bytes(out))

    def conceal(self, samples: int) -> bytes:
        return self._conceal.conceal(samples)


def _make_g711(codec: AudioCodec, ptime: int) -> tuple[Encoder, Decoder]:
    law = "ulaw" if codec.name == "PCMU" else "alaw"
    return _G711(law), _G711(law)


class _G722Encoder:
    __slots__ = ("_state",)

    def __init__(self, module: Any) -> None:
        self._state = module.G722(16000, 64000)

    def encode(self, pcm: bytes) -> bytes:
        return bytes(self._state.encode(_pcm_samples(pcm)))


class _G722Decoder:
    __slots__ = ("_conceal", "_state")

    def __init__(self, module: Any) -> None:
        self._state = module.G722(16000, 64000)
        self._conceal = _RepeatConcealer()

    def decode(self, payload: bytes) -> bytes:
        return self._conceal.heard(_pcm_bytes(array("h", self._state.decode(payload))))

    def conceal(self, samples: int) -> bytes:
        return self._conceal.conceal(samples)


def _make_g722(codec: AudioCodec, ptime: int) -> tuple[Encoder, Decoder]:
    module = importlib.import_module("G722")
    return _G722Encoder(module), _G722Decoder(module)


class _OpusEncoder:
    __slots__ = ("_frame", "_state")

    def __init__(self, module: Any, frame: int) -> None:
        self._state = module.Encoder(48000, 1, module.APPLICATION_VOIP)
        self._frame = frame

    def encode(self, pcm: bytes) -> bytes:
        return bytes(self._state.encode(pcm, len(pcm) // 2))


class _OpusDecoder:
    __slots__ = ("_error", "_frame", "_state")

    def __init__(self, module: Any, frame: int) -> None:
        self._state = module.Decoder(48000, 1)
        self._frame = frame
        self._error = module.OpusError

    def decode(self, payload: bytes) -> bytes:
        try:
            return bytes(self._state.decode(payload, 5760))  # up to 120 ms (RFC 6716 §3.2.1)
        except self._error as e:
            raise ValueError(f"not an Opus packet: {e}") from None

    def conceal(self, samples: int) -> bytes:
        out = bytes(self._state.decode(b"", samples))  # an empty packet: the decoder's own PLC
        return out.ljust(2 * samples, b"\0")[: 2 * samples]


def _make_opus(codec: AudioCodec, ptime: int) -> tuple[Encoder, Decoder]:
    module = importlib.import_module("opuslib_next")
    frame = codec.frame_samples(ptime)
    return _OpusEncoder(module, frame), _OpusDecoder(module, frame)


PCMU = AudioCodec("PCMU", 0, 8000, 8000, make=_make_g711)
PCMA = AudioCodec("PCMA", 8, 8000, 8000, make=_make_g711)
G722 = AudioCodec("G722", 9, 8000, 16000, module="G722", extra="g722", make=_make_g722)
OPUS = AudioCodec("opus", 111, 48000, 48000, channels=2, module="opuslib_next", extra="opus",
                  fmtp="minptime=10;useinbandfec=1", make=_make_opus)

#: Every codec txsipua can code, by lower-case SDP name.
CODECS: dict[str, AudioCodec] = {c.name.lower(): c for c in (PCMU, PCMA, G722, OPUS)}


def lookup(name: str, clock_rate: int | None = None) -> AudioCodec | None:
    """The codec with SDP encoding ``name`` (any case) and, when given, RTP ``clock_rate``; else None."""
    codec = CODECS.get(name.lower())
    if codec is None or (clock_rate is not None and clock_rate != codec.clock_rate):
        return None
    return codec


def resample(pcm: bytes, from_rate: int, to_rate: int) -> bytes:
    """Convert 16-bit LE mono PCM between rates by linear interpolation (prompts, recordings).

    Good enough for speech prompts and 8 kHz recordings of wideband calls;
    applications wanting better quality convert with a resampling library
    before playing.  Going down averages the input over each output sample
    (a box filter) to limit aliasing.

    Raises:
        ValueError: an odd number of octets or a rate that is not positive.
    """
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError(f"rates must be positive, not {from_rate!r} -> {to_rate!r}")
    if len(pcm) % 2:
        raise ValueError("16-bit PCM must have an even number of octets")
    if from_rate == to_rate or not pcm:
        return bytes(pcm)
    src = _pcm_samples(pcm)
    n_in = len(src)
    n_out = n_in * to_rate // from_rate
    out = array("h", bytes(2 * n_out))
    if to_rate < from_rate and from_rate % to_rate == 0:
        k = from_rate // to_rate
        for i in range(n_out):
            out[i] = sum(src[i * k : i * k + k]) // k
        return _pcm_bytes(out)
    step = from_rate / to_rate
    last = n_in - 1
    for i in range(n_out):
        x = i * step
        j = int(x)
        frac = x - j
        a = src[j]
        b = src[j + 1] if j < last else a
        out[i] = int(a + (b - a) * frac)
    return _pcm_bytes(out)
