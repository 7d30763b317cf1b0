"""WAV files for prompts and recordings, through the standard library's :mod:`wave`.

:func:`read_wav` turns any PCM WAV file (8, 16, 24 or 32-bit, any number of
channels, any rate) into 16-bit little-endian mono PCM at 8000 Hz, the form
:mod:`txsipua.media.g711` encodes: channels are averaged, and the rate is
changed by averaging whole blocks when the source rate is a multiple of the
target (16, 32, 48 kHz...) and by linear interpolation otherwise (e.g.
44.1 kHz; no low-pass filter, so loud high frequencies alias).  Compressed
WAV files (G.711, ADPCM, WAVE_FORMAT_EXTENSIBLE...) raise :class:`WavError`.
"""

from __future__ import annotations

import os
import sys
import wave
from array import array

from txsipua.errors import WavError

__all__ = ["WavError", "read_wav", "resample", "to_16bit", "to_mono", "write_wav"]

_BIG_ENDIAN = sys.byteorder == "big"
Path = str | os.PathLike[str]


def _samples(pcm16le: bytes) -> array[int]:
    samples = array("h")
    samples.frombytes(pcm16le)
    if _BIG_ENDIAN:  # pragma: no cover - depends on the host
        samples.byteswap()
    return samples


def _to_bytes(samples: array[int]) -> bytes:
    if _BIG_ENDIAN:  # pragma: no cover - depends on the host
        samples = array("h", samples)
        samples.byteswap()
    return samples.tobytes()


def to_16bit(frames: bytes, width: int) -> bytes:
    """Convert PCM samples of ``width`` octets (1: unsigned, 2-4: signed little-endian) to 16-bit."""
    if width == 2:
        return frames
    if width == 1:  # unsigned 8-bit
        return _to_bytes(array("h", ((b - 128) << 8 for b in frames)))
    if width in (3, 4):  # signed little-endian; keep the two most significant octets
        out = bytearray(len(frames) // width * 2)
        out[0::2] = frames[width - 2 :: width]
        out[1::2] = frames[width - 1 :: width]
        return bytes(out)
    raise WavError(f"unsupported sample width: {width} octets")


def to_mono(pcm16le: bytes, channels: int) -> bytes:
    """Average interleaved channels of 16-bit PCM into one."""
    if channels == 1:
        return pcm16le
    samples = _samples(pcm16le)
    frames = len(samples) // channels
    mixed = array("h", (sum(samples[i * channels : (i + 1) * channels]) // channels for i in range(frames)))
    return _to_bytes(mixed)


def resample(pcm16le: bytes, rate: int, target: int) -> bytes:
    """Change the sample rate of mono 16-bit PCM.

    Args:
        pcm16le: the samples.
        rate: their rate in Hz.
        target: the wanted rate in Hz.

    Returns:
        The resampled PCM: block averages when ``rate`` is a multiple of
        ``target``, linear interpolation otherwise.
    """
    if rate <= 0 or target <= 0:
        raise WavError(f"bad sample rates {rate} -> {target}")
    if rate == target:
        return pcm16le
    samples = _samples(pcm16le)
    if not samples:
        return b""
    if rate % target == 0:
        n = rate // target
        out = array("h", (sum(samples[i : i + n]) // n for i in range(0, len(samples) - n + 1, n)))
        return _to_bytes(out)
    count = len(samples) * target // rate
    last = len(samples) - 1
    result = array("h")
    for i in range(count):
        pos = i * rate / target
        j = int(pos)
        frac = pos - j
        a = samples[j]
        b = samples[j + 1] if j < last else a
        result.append(round(a + (b - a) * frac))
    return _to_bytes(result)


def read_wav(path: Path, *, rate: int | None = 8000) -> tuple[bytes, int]:
    """Read a PCM WAV file as 16-bit little-endian mono PCM.

    Args:
        path: the file.
        rate: the rate to convert to, in Hz (None keeps the file's rate).

    Returns:
        (pcm16le, rate in Hz).

    Raises:
        WavError: not a PCM WAV file (the message says why).
        OSError: the file cannot be read.
    """
    try:
        with wave.open(os.fspath(path), "rb") as w:
            channels = w.getnchannels()
            width = w.getsampwidth()
            file_rate = w.getframerate()
            frames = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise WavError(f"{os.fspath(path)}: not a PCM WAV file ({exc})") from exc
    if channels < 1 or file_rate < 1:
        raise WavError(f"{os.fspath(path)}: bad header ({channels} channels, {file_rate} Hz)")
    pcm = to_mono(to_16bit(frames, width), channels)
    if rate is None:
        return pcm, file_rate
    return resample(pcm, file_rate, rate), rate


def write_wav(path: Path, pcm16le: bytes, rate: int = 8000) -> None:
    """Write 16-bit little-endian mono PCM as a WAV file.

    Args:
        path: the file (overwritten).
        pcm16le: the samples.
        rate: their rate in Hz.

    Raises:
        WavError: an odd number of octets.
        OSError: the file cannot be written.
    """
    if len(pcm16le) % 2:
        raise WavError("16-bit PCM must have an even number of octets")
    with wave.open(os.fspath(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm16le)
