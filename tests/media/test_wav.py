"""Tests for txsipua.media.wav: round trips and conversions through real files."""

from __future__ import annotations

import math
import struct
import wave

import pytest

from txsipua.media.wav import WavError, read_wav, resample, to_mono, write_wav


def pcm(samples) -> bytes:
    """Pack samples as 16-bit little-endian PCM."""
    samples = list(samples)
    return struct.pack(f"<{len(samples)}h", *samples)


def unpack(data: bytes) -> list[int]:
    """Unpack 16-bit little-endian PCM."""
    return list(struct.unpack(f"<{len(data) // 2}h", data))


def write_raw(path, frames: bytes, *, channels: int, width: int, rate: int) -> None:
    """Write a WAV file with arbitrary parameters through the stdlib."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(frames)


def test_round_trip(tmp_path):
    """write_wav then read_wav gives the same samples at 8000 Hz."""
    audio = pcm(range(-1000, 1000, 3))
    path = tmp_path / "tone.wav"
    write_wav(path, audio)
    assert read_wav(path) == (audio, 8000)
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)


def test_stereo_16k_is_mixed_and_decimated(tmp_path):
    """Stereo 16 kHz: channels averaged, then pairs of samples averaged to 8 kHz."""
    frames = pcm([100, 300, 500, 700, -100, -300, -500, -700])  # L R L R ...
    path = tmp_path / "s.wav"
    write_raw(path, frames, channels=2, width=2, rate=16000)
    data, rate = read_wav(path)
    assert rate == 8000
    assert unpack(data) == [(200 + 600) // 2, (-200 - 600) // 2]
    assert read_wav(path, rate=None) == (pcm([200, 600, -200, -600]), 16000)


def test_8bit_and_24bit(tmp_path):
    """8-bit unsigned and 24-bit signed samples become 16-bit."""
    p8 = tmp_path / "8.wav"
    write_raw(p8, bytes([128, 255, 0]), channels=1, width=1, rate=8000)
    assert unpack(read_wav(p8)[0]) == [0, 127 << 8, -128 << 8]
    p24 = tmp_path / "24.wav"
    write_raw(p24, b"\x00\x34\x12" + b"\xff\xff\xff", channels=1, width=3, rate=8000)
    assert unpack(read_wav(p24)[0]) == [0x1234, -1]


def test_44100_interpolated(tmp_path):
    """A 44.1 kHz tone becomes the same tone at 8 kHz (linear interpolation)."""
    src = [round(10000 * math.sin(2 * math.pi * 400 * n / 44100)) for n in range(4410)]
    path = tmp_path / "cd.wav"
    write_raw(path, pcm(src), channels=1, width=2, rate=44100)
    data, rate = read_wav(path)
    out = unpack(data)
    assert rate == 8000
    assert len(out) == 800
    expected = [10000 * math.sin(2 * math.pi * 400 * n / 8000) for n in range(800)]
    assert max(abs(a - b) for a, b in zip(out, expected, strict=True)) < 150


def test_helpers():
    """to_mono and resample on their own."""
    assert to_mono(pcm([1, 3]), 2) == pcm([2])
    assert resample(pcm([1, 2, 3]), 8000, 8000) == pcm([1, 2, 3])
    assert resample(b"", 16000, 8000) == b""
    assert unpack(resample(pcm([0, 100]), 8000, 16000)) == [0, 50, 100, 100]
    with pytest.raises(WavError):
        resample(pcm([1]), 0, 8000)


def test_errors(tmp_path):
    """Not a WAV file, a compressed one, odd PCM: WavError with the reason; missing file: OSError."""
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not a riff file at all")
    with pytest.raises(WavError, match="not a PCM WAV file"):
        read_wav(bad)
    ulaw = tmp_path / "ulaw.wav"
    fmt = struct.pack("<HHIIHH", 7, 1, 8000, 8000, 1, 8)  # WAVE_FORMAT_MULAW
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", 2) + b"\xff\xff"
    ulaw.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    with pytest.raises(WavError, match="unknown format"):
        read_wav(ulaw)
    with pytest.raises(OSError):
        read_wav(tmp_path / "missing.wav")
    with pytest.raises(WavError):
        write_wav(tmp_path / "odd.wav", b"\x00")
    assert isinstance(WavError("x"), ValueError)
