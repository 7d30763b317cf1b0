"""Generated audio sources: a sine tone and silence, in the frames of :mod:`txsipua.media.audio`.

Both are :class:`~txsipua.media.audio.IAudioSource` providers (16-bit mono PCM,
little-endian, 20 ms frames) that need no file: test tones, comfort silence, the
idle stream a listening bot sends.  ``txsipua.media.audio.ToneSource`` and
``SilenceSource`` still name them.
"""

from __future__ import annotations

import math
import sys
from array import array
from fractions import Fraction

from zope.interface import implementer

from txsipua.errors import AudioError
from txsipua.media.audio import IAudioSource, frame_octets

__all__ = ["MAX_TONE_PERIOD", "SilenceSource", "ToneSource"]


#: The longest period, in samples, a :class:`ToneSource` holds (128 KiB of PCM).
MAX_TONE_PERIOD = 1 << 16


@implementer(IAudioSource)
class ToneSource:
    """A sine tone, continuous in phase from frame to frame.

    The samples of one period (``rate / gcd(frequency, rate)`` samples for a
    whole number of Hz) are worked out once; a frame is a slice of that
    table.  A frequency whose period is longer than :data:`MAX_TONE_PERIOD`
    samples is played at the nearest one whose period is not (off by less
    than ``rate / MAX_TONE_PERIOD ** 2`` Hz).

    Args:
        frequency: Hz, above 0 and below ``rate / 2`` (the Nyquist frequency).
        seconds: length (rounded up to whole frames); ``None`` plays until closed.
        rate: Hz.
        amplitude: peak, 0-32767.

    Raises:
        AudioError: ``frequency`` is not above 0 and below ``rate / 2``
            (it would alias to another tone), or ``rate`` is not a positive
            multiple of 50 Hz.
    """

    def __init__(self, frequency: float = 1000.0, seconds: float | None = None, rate: int = 8000,
                 amplitude: int = 8000) -> None:
        self._n = frame_octets(rate) // 2
        if not 0 < frequency < rate / 2:
            raise AudioError(f"a tone's frequency must be above 0 and below half the rate ({rate} Hz), "
                             f"not {frequency!r} Hz")
        self.rate = rate
        self.frequency = frequency
        self.amplitude = amplitude
        self._left = None if seconds is None else math.ceil(seconds * rate / self._n - 1e-9)
        cycles = Fraction(frequency) / rate  # cycles per sample
        if cycles.denominator > MAX_TONE_PERIOD:  # 1000.3 is not 10003/10 in binary: its decimal is meant
            cycles = Fraction(repr(float(frequency))) / rate
        if cycles.denominator <= MAX_TONE_PERIOD:
            step = 2 * math.pi * frequency / rate  # as the samples were always worked out
        else:  # a period too long to hold: the nearest tone with one short enough
            cycles = cycles.limit_denominator(MAX_TONE_PERIOD)
            step = 2 * math.pi * cycles.numerator / cycles.denominator
        self._period = cycles.denominator  # samples
        # one period, then one frame more, so that every frame is one slice
        table = array("h", (round(amplitude * math.sin(step * i)) for i in range(self._period + self._n)))
        if sys.byteorder != "little":
            table.byteswap()
        self._table = table.tobytes()  # 16-bit little-endian
        self._index = 0

    def read(self) -> bytes:
        """The next frame of tone; ``b""`` once ``seconds`` have been read."""
        if self._left is not None:
            if self._left <= 0:
                return b""
            self._left -= 1
        start = self._index
        self._index = (start + self._n) % self._period
        return self._table[2 * start:2 * (start + self._n)]

    def close(self) -> None:
        """End the tone."""
        self._left = 0


@implementer(IAudioSource)
class SilenceSource:
    """Silence (zero samples).

    Args:
        seconds: length (rounded up to whole frames); ``None`` until closed.
        rate: Hz.
    """

    def __init__(self, seconds: float | None = None, rate: int = 8000) -> None:
        self._frame = bytes(frame_octets(rate))
        self.rate = rate
        self._left = None if seconds is None else math.ceil(seconds * rate / (len(self._frame) // 2) - 1e-9)

    def read(self) -> bytes:
        """A silent frame; ``b""`` once ``seconds`` have been read."""
        if self._left is not None:
            if self._left <= 0:
                return b""
            self._left -= 1
        return self._frame

    def close(self) -> None:
        """End the silence."""
        self._left = 0
