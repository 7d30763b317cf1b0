"""Tests for txsipua.media.audio: the frame seams, sources, sinks, resampling and mixing."""

from __future__ import annotations

import math
import struct
import tracemalloc
import wave
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from zope.interface.verify import verifyObject

from txsipua.errors import WavError
from txsipua.media.audio import (
    AudioError,
    IAudioSink,
    IAudioSource,
    MemorySink,
    PCMSource,
    Rechunker,
    Resampler,
    SilenceSource,
    ToneSource,
    WavSink,
    WavSource,
    frame_octets,
    mix,
    resampled_sink,
    resampled_source,
    rms,
)
from txsipua.media.wav import read_wav, write_wav


def goertzel(pcm: bytes, rate: int, freq: float) -> float:
    """Relative power of ``freq`` in ``pcm`` (Goertzel), normalised by the signal's energy."""
    samples = struct.unpack(f"<{len(pcm) // 2}h", pcm)
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2
    energy = sum(x * x for x in samples) or 1
    return power / (energy * len(samples) / 2)


def drain(source) -> list[bytes]:
    frames = []
    while frame := source.read():
        frames.append(frame)
        assert len(frames) < 100_000
    return frames


def test_every_source_and_sink_provides_its_interface(tmp_path: Path) -> None:
    """verifyObject on each implementation; rates are multiples of 50 Hz."""
    write_wav(tmp_path / "a.wav", bytes(320))
    for source in (PCMSource(b"\0\0"), WavSource(tmp_path / "a.wav"), ToneSource(), SilenceSource(1.0)):
        assert verifyObject(IAudioSource, source)
    for sink in (MemorySink(), WavSink(tmp_path / "b.wav")):
        assert verifyObject(IAudioSink, sink)
    assert frame_octets(8000) == 320 and frame_octets(16000) == 640 and frame_octets(48000) == 1920
    with pytest.raises(AudioError):
        frame_octets(8001)


def test_pcm_source_gives_whole_frames_padding_the_last() -> None:
    """450 samples at 8 kHz: two frames of 160, the third padded; then b"" for ever."""
    pcm = bytes(range(256)) * 3 + bytes(132)  # 900 octets
    source = PCMSource(pcm)
    frames = drain(source)
    assert [len(f) for f in frames] == [320, 320, 320]
    assert b"".join(frames)[:900] == pcm and frames[2][260:] == bytes(60)
    assert source.read() == b"" and source.pcm() == pcm
    with pytest.raises(AudioError):
        PCMSource(b"\0")


def test_tone_and_silence_lengths_and_frequency() -> None:
    """A 1 kHz tone of 0.1 s is 5 frames with its energy at 1 kHz; silence is zeros; close() ends both."""
    frames = drain(ToneSource(1000.0, 0.1, rate=8000))
    assert len(frames) == 5
    pcm = b"".join(frames)
    assert goertzel(pcm, 8000, 1000.0) > 0.9 and goertzel(pcm, 8000, 1500.0) < 0.01
    assert drain(SilenceSource(0.06, rate=16000)) == [bytes(640)] * 3
    endless = ToneSource()
    assert endless.read() and endless.read()
    endless.close()
    assert endless.read() == b""


def test_wav_source_reads_a_file_frame_by_frame(tmp_path: Path) -> None:
    """A stereo 8 kHz file is averaged to mono and read in 20 ms frames; a bad file raises WavError on read."""
    path = tmp_path / "stereo.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(struct.pack("<800h", *([1000, 3000] * 400)))
    source = WavSource(path)
    frames = drain(source)
    assert len(frames) == 3 and frames[0] == struct.pack("<160h", *[2000] * 160)
    assert b"".join(frames)[: 400 * 2] == struct.pack("<400h", *[2000] * 400)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....junk")
    with pytest.raises(WavError):
        WavSource(bad).read()


def test_wav_sink_streams_and_is_valid_at_every_moment(tmp_path: Path) -> None:
    """Each write extends the file; it reads back whole before and after close(); writes after close are ignored."""
    path = tmp_path / "out.wav"
    sink = WavSink(path)
    sink.write(b"\1\0" * 160)
    assert read_wav(path, rate=None) == (b"\1\0" * 160, 8000)
    sink.write(b"\2\0" * 160)
    sink.close()
    sink.write(b"\3\0" * 160)
    sink.close()
    assert read_wav(path)[0] == b"\1\0" * 160 + b"\2\0" * 160
    empty = WavSink(tmp_path / "empty.wav", rate=16000)
    empty.close()
    assert read_wav(tmp_path / "empty.wav", rate=None) == (b"", 16000)


def test_memory_sink_bounded_keeps_the_last_seconds() -> None:
    """max_seconds keeps the newest audio and counts what it dropped."""
    sink = MemorySink(8000, max_seconds=0.04)
    for i in range(5):
        sink.write(bytes([i, 0]) * 160)
    assert sink.pcm() == bytes([3, 0]) * 160 + bytes([4, 0]) * 160 and sink.dropped == 3 * 320


def test_rechunker_and_mix_and_rms() -> None:
    """Pieces become frames; mixing adds with clipping; RMS of a full-scale square is 32767."""
    r = Rechunker(4)
    assert r.push(b"abc") == [] and r.push(b"defgh") == [b"abcd", b"efgh"] and r.flush() == b""
    r.push(b"xy")
    assert r.flush() == b"xy\0\0"
    a = struct.pack("<3h", 30000, -30000, 5)
    assert mix([a, a]) == struct.pack("<3h", 32767, -32768, 10) and mix([a]) == a and mix([]) == b""
    with pytest.raises(AudioError):
        mix([a, b"\0\0"])
    assert rms(struct.pack("<4h", 32767, -32767, 32767, -32767)) == pytest.approx(32767)
    assert rms(b"") == 0.0


@given(st.lists(st.binary(max_size=700), max_size=20))
def test_rechunker_keeps_every_octet_in_order(pieces: list[bytes]) -> None:
    """Whatever the pieces, the frames plus the flushed rest are the input (padded with zeros)."""
    r = Rechunker(320)
    out = b"".join(f for p in pieces for f in r.push(p))
    rest = r.flush()
    data = b"".join(pieces)
    assert (out + rest)[: len(data)] == data and len(out + rest) % 320 == 0


def test_resampling_keeps_a_tone_at_its_frequency(tmp_path: Path) -> None:
    """8 -> 16 kHz through soxr: frames of 640 octets, the 1 kHz tone still at 1 kHz; sinks likewise."""
    pytest.importorskip("soxr", reason="soxr (the [audio] extra) is not installed")
    up = resampled_source(ToneSource(1000.0, 0.5, rate=8000), 16000)
    assert up.rate == 16000
    frames = drain(up)
    assert {len(f) for f in frames} == {640} and 24 <= len(frames) <= 27
    assert goertzel(b"".join(frames[2:-2]), 16000, 1000.0) > 0.9
    memory = MemorySink(48000)
    sink = resampled_sink(memory, 8000)
    for frame in drain(ToneSource(1000.0, 0.2)):
        sink.write(frame)
    sink.close()
    assert memory.closed and goertzel(memory.pcm()[1920:-1920], 48000, 1000.0) > 0.9
    assert resampled_source(PCMSource(b""), 8000).rate == 8000  # same rate: itself
    # a WAV at 16 kHz read at 8 kHz
    path = tmp_path / "wide.wav"
    write_wav(path, b"".join(drain(ToneSource(1000.0, 0.3, rate=16000))), rate=16000)
    narrow = b"".join(drain(WavSource(path, rate=8000)))
    assert abs(len(narrow) - 4800) <= 640 and goertzel(narrow[640:-640], 8000, 1000.0) > 0.9


def test_resampler_without_soxr_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Equal rates need nothing; other rates without soxr raise AudioError naming txsipua[audio]."""
    import sys

    assert Resampler(8000, 8000).process(b"\1\0") == b"\1\0"
    monkeypatch.setitem(sys.modules, "soxr", None)
    with pytest.raises(AudioError, match=r"txsipua\[audio\]"):
        Resampler(8000, 16000)


def test_wav_sink_memory_stays_flat_over_ten_minutes(tmp_path: Path) -> None:
    """30,000 frames (10 minutes at 8 kHz) streamed to a file: the Python heap grows by less than 200 kB."""
    sink = WavSink(tmp_path / "long.wav")
    frame = b"".join(drain(ToneSource(1000.0, 0.02)))
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(30_000):
            sink.write(frame)
        grown = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    sink.close()
    assert grown < 200_000, grown
    assert (tmp_path / "long.wav").stat().st_size == 44 + 30_000 * 320


def test_frame_puller_recuts_frames_to_any_packet_size() -> None:
    """30 ms packets from 20 ms frames: the audio in order, the last packet padded, finished with it."""
    from txsipua.media.audio import FramePuller

    pcm = bytes(range(200)) * 4  # 800 octets: 2.5 frames
    puller = FramePuller(PCMSource(pcm))
    first, second = puller.take(480), puller.take(480)
    assert first + second[:320] == pcm and second[320:] == bytes(160)
    assert puller.finished and puller.take(480) == b""
