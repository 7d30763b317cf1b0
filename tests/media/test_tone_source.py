"""ToneSource: a table of one period sliced per frame, the same samples as a sine worked out per sample."""

from __future__ import annotations

import math
import struct

import pytest

from txsipua.errors import AudioError
from txsipua.media.audio import MAX_TONE_PERIOD, ToneSource, frame_octets


def reference(frequency: float, frames: int, rate: int = 8000, amplitude: int = 8000) -> list[int]:
    """The samples worked out one by one: round(a * sin(2 pi f n / rate))."""
    step = 2 * math.pi * frequency / rate
    return [round(amplitude * math.sin(step * n)) for n in range(frames * frame_octets(rate) // 2)]


def played(source: ToneSource, frames: int) -> list[int]:
    pcm = b"".join(source.read() for _ in range(frames))
    return list(struct.unpack(f"<{len(pcm) // 2}h", pcm))


@pytest.mark.parametrize(("frequency", "rate"), [(1000.0, 8000), (440.0, 8000), (997, 8000), (3999.0, 8000),
                                                 (440.0, 16000), (12345.6, 48000)])
def test_a_test_tone_is_the_same_samples_as_before_for_ten_seconds(frequency, rate):
    """Bit for bit (at most 1 LSB where a float rounding lands on .5), phase continuous across frames."""
    frames = 500
    got = played(ToneSource(frequency, rate=rate), frames)
    want = reference(frequency, frames, rate)
    assert len(got) == len(want)
    assert max(abs(a - b) for a, b in zip(got, want, strict=True)) <= 1


def test_a_frequency_without_a_short_period_is_played_at_the_nearest_that_has_one():
    """1000.3 Hz at 8 kHz repeats every 80000 samples: longer than MAX_TONE_PERIOD, so a close tone is played."""
    frames = 3000  # a minute
    got = played(ToneSource(1000.3), frames)
    want = reference(1000.3, frames)
    assert max(abs(a - b) for a, b in zip(got, want, strict=True)) <= 8  # a phase drift under 0.1 degree
    assert MAX_TONE_PERIOD < 80000


def test_length_amplitude_and_close_unchanged():
    source = ToneSource(1000.0, 0.05, rate=16000, amplitude=1000)
    frames = [source.read() for _ in range(4)]
    assert [len(f) for f in frames] == [640, 640, 640, 0]
    assert max(played(ToneSource(1000.0, rate=16000, amplitude=1000), 1)) == 1000
    endless = ToneSource()
    endless.close()
    assert endless.read() == b""


@pytest.mark.parametrize(("frequency", "rate"), [(5000, 8000), (4000, 8000), (8000.0, 16000), (0, 8000),
                                                 (-440.0, 8000), (float("nan"), 8000), (float("inf"), 8000)])
def test_a_frequency_that_would_alias_or_is_not_positive_is_refused(frequency, rate):
    with pytest.raises(AudioError) as info:
        ToneSource(frequency, rate=rate)
    assert str(rate) in str(info.value) and repr(frequency) in str(info.value)


def test_a_frame_is_a_slice_not_a_sine_per_sample(monkeypatch):
    """Reading frames computes no sine: every sample was worked out when the source was made."""
    source = ToneSource(440.0)
    calls = []
    monkeypatch.setattr(math, "sin", lambda x: calls.append(x) or 0.0)
    for _ in range(100):
        source.read()
    assert calls == []
