"""Audio frames: the source and sink seams, and the sources and sinks everyone needs (pure).

The one PCM format of txsipua::

    16-bit signed little-endian, mono, ``rate`` samples per second (Hz),
    in frames of 20 ms: ``rate // 50`` samples = ``rate // 25`` octets
    (8000 Hz: 160 samples, 320 octets; 16000 Hz: 320 samples, 640 octets).

- :class:`IAudioSource` is *pulled*: the sending side (the RTP stream's pacing
  tick, a device's output callback) calls :meth:`IAudioSource.read` once per
  20 ms frame and gets exactly one frame at the source's :attr:`rate`, or
  ``b""`` once the audio is over.
- :class:`IAudioSink` is *pushed*: the receiving side (the RTP stream once a
  frame is decoded, a device's input callback) calls :meth:`IAudioSink.write`
  with PCM at the sink's :attr:`rate`, normally one 20 ms frame.
- Whoever connects a source or sink to audio at another rate wraps it with
  :func:`resampled_source` / :func:`resampled_sink`: :class:`Resampler` goes
  through ``soxr`` (the optional ``audio`` extra; ``audioop`` is gone from
  Python 3.13) and is needed only when the rates differ.

Implementations here: :class:`PCMSource` (memory), :class:`WavSource` (a file,
read frame by frame), :class:`ToneSource`, :class:`SilenceSource`,
:class:`MemorySink` (memory, optionally bounded) and :class:`WavSink` (written
to its file as frames come: the memory it holds does not grow with the call).
This module reads files but no clock, no randomness and no socket.
"""

from __future__ import annotations

import math
import os
import struct
import sys
import wave
from array import array
from collections import deque
from typing import Any

from zope.interface import Attribute, Interface, implementer

from txsipua.errors import AudioError, WavError
from txsipua.media.wav import read_wav, to_16bit, to_mono

__all__ = [
    "FRAME_MS",
    "AudioError",
    "FramePuller",
    "IAudioSink",
    "IAudioSource",
    "MemorySink",
    "PCMSource",
    "Rechunker",
    "Resampler",
    "WavSink",
    "WavSource",
    "frame_octets",
    "mix",
    "resampled_sink",
    "resampled_source",
    "rms",
]

_GENERATED = ("MAX_TONE_PERIOD", "SilenceSource", "ToneSource")
"""Names of :mod:`txsipua.media.tones` this module still answers for (imported on first use)."""


def __getattr__(name: str) -> Any:
    """The generated sources, :class:`ToneSource` and :class:`SilenceSource`, live in :mod:`txsipua.media.tones`."""
    if name in _GENERATED:
        from txsipua.media import tones

        return getattr(tones, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: The frame length of every source and sink, milliseconds.
FRAME_MS = 20
_BIG_ENDIAN = sys.byteorder == "big"


def frame_octets(rate: int) -> int:
    """Octets in one 20 ms frame at ``rate`` Hz (``rate // 25``).

    Raises:
        AudioError: ``rate`` is not a positive multiple of 50 Hz.
    """
    if not isinstance(rate, int) or rate <= 0 or rate % 50:
        raise AudioError(f"a sample rate must be a positive multiple of 50 Hz, not {rate!r}")
    return rate // 25


# --------------------------------------------------------------------- seams


class IAudioSource(Interface):
    """Audio pulled one 20 ms frame at a time (16-bit signed little-endian mono PCM)."""

    rate = Attribute("Samples per second of the frames read() returns, Hz (a multiple of 50).")

    def read():  # type: ignore[misc]
        """The next frame: exactly ``rate // 25`` octets, or ``b""`` once the audio is over.

        The last frame of a finite source is padded with silence; after the
        first ``b""`` every call returns ``b""``.  Called from the reactor
        thread once per 20 ms: it must not block (a file read is fine).
        """

    def close():  # type: ignore[misc]
        """Release what the source holds (a file); ``read()`` returns ``b""`` from then on. Idempotent."""


class IAudioSink(Interface):
    """Audio pushed as it comes (16-bit signed little-endian mono PCM)."""

    rate = Attribute("Samples per second of the PCM write() takes, Hz (a multiple of 50).")

    def write(frame):
        """Take PCM at ``rate``: normally one 20 ms frame; any whole number of samples is accepted.

        Called from the reactor thread; it must not block.  Ignored after ``close()``.
        """

    def close():  # type: ignore[misc]
        """No more audio: finish (a file gets its final header and is closed). Idempotent."""


# ------------------------------------------------------------------ helpers


def _samples(pcm: bytes) -> array[int]:
    samples = array("h")
    samples.frombytes(pcm)
    if _BIG_ENDIAN:  # pragma: no cover - depends on the host
        samples.byteswap()
    return samples


def _to_bytes(samples: array[int]) -> bytes:
    if _BIG_ENDIAN:  # pragma: no cover - depends on the host
        samples = array("h", samples)
        samples.byteswap()
    return samples.tobytes()


def rms(frame: bytes) -> float:
    """Root mean square of 16-bit PCM (0 for silence, 32767 at full scale); ``b""`` gives 0."""
    samples = _samples(frame[: len(frame) & ~1])
    if not samples:
        return 0.0
    return math.sqrt(sum(s * s for s in samples) / len(samples))


def mix(frames: list[bytes]) -> bytes:
    """Sum frames of equal length sample by sample, clipped to 16 bits (one frame passes unchanged).

    Raises:
        AudioError: the frames differ in length.
    """
    if len(frames) == 1:
        return frames[0]
    if not frames:
        return b""
    if len({len(f) for f in frames}) != 1:
        raise AudioError("frames to mix must have the same length")
    columns = zip(*(_samples(f) for f in frames), strict=True)
    return _to_bytes(array("h", (max(-32768, min(32767, sum(c))) for c in columns)))


class Rechunker:
    """Cuts PCM arriving in pieces of any size into frames of ``size`` octets.

    Args:
        size: octets per frame (even).
    """

    def __init__(self, size: int) -> None:
        if size <= 0 or size % 2:
            raise AudioError(f"a frame is a positive even number of octets, not {size}")
        self.size = size
        self._buffer = bytearray()

    def push(self, pcm: bytes) -> list[bytes]:
        """Add ``pcm``; the whole frames now available, in order."""
        self._buffer += pcm
        out = []
        while len(self._buffer) >= self.size:
            out.append(bytes(self._buffer[: self.size]))
            del self._buffer[: self.size]
        return out

    def flush(self) -> bytes:
        """The rest, padded with silence to a whole frame (``b""`` when nothing is left)."""
        if not self._buffer:
            return b""
        rest = bytes(self._buffer) + bytes(self.size - len(self._buffer))
        self._buffer.clear()
        return rest

    def __len__(self) -> int:
        """Octets waiting for a whole frame."""
        return len(self._buffer)


class FramePuller:
    """Pulls an :class:`IAudioSource` in packets of any size (a ``ptime`` of 10-60 ms).

    One frame more is read ahead, so that :attr:`finished` is known with the
    last packet (the sender fires "played" with it, not 20 ms later).

    Args:
        source: the source (already at the sender's rate).
    """

    def __init__(self, source: Any) -> None:
        self.source = source
        self._buffer = bytearray()
        self._ended = False

    def take(self, size: int) -> bytes:
        """The next ``size`` octets (the last packet padded with silence); ``b""`` once over.

        Raises:
            Exception: whatever the source's ``read()`` raises (a file gone...).
        """
        while len(self._buffer) <= size and not self._ended:
            frame = self.source.read()
            if not frame:
                self.close()
                break
            self._buffer += frame
        packet = bytes(self._buffer[:size])
        del self._buffer[:size]
        if packet and len(packet) < size:
            packet += bytes(size - len(packet))
        return packet

    @property
    def finished(self) -> bool:
        """True once the source is over and everything read was taken."""
        return self._ended and not self._buffer

    def close(self) -> None:
        """Close the source; what was read ahead is still taken. Idempotent."""
        if not self._ended:
            self._ended = True
            self.source.close()


class Resampler:
    """Streaming sample-rate conversion of 16-bit mono PCM through ``soxr`` (its HQ recipe).

    Args:
        rate_in: the input rate, Hz.
        rate_out: the output rate, Hz.

    Raises:
        AudioError: a rate is not positive, or the rates differ and ``soxr``
            is not installed (``pip install txsipua[audio]``).
    """

    def __init__(self, rate_in: int, rate_out: int) -> None:
        if rate_in <= 0 or rate_out <= 0:
            raise AudioError(f"bad sample rates {rate_in} -> {rate_out}")
        self.rate_in, self.rate_out = rate_in, rate_out
        self._stream: Any = None
        if rate_in != rate_out:
            try:
                import numpy
                import soxr
            except ImportError as e:
                raise AudioError(f"resampling {rate_in} -> {rate_out} Hz needs soxr: "
                                 f"pip install 'txsipua[audio]' ({e})") from e
            self._numpy = numpy
            self._stream = soxr.ResampleStream(rate_in, rate_out, 1, dtype="int16")

    def process(self, pcm: bytes, last: bool = False) -> bytes:
        """Convert the next piece (an even number of octets); ``last=True`` flushes the filter's delay."""
        if self._stream is None:
            return pcm
        np = self._numpy
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.int16)
        out = self._stream.resample_chunk(samples, last=last)
        return bytes(np.asarray(out, dtype="<i2").tobytes())


# ------------------------------------------------------------------ sources


@implementer(IAudioSource)
class PCMSource:
    """Audio held in memory.

    Args:
        pcm: 16-bit little-endian mono PCM (an even number of octets).
        rate: its rate, Hz (8000 by default).

    Raises:
        AudioError: an odd number of octets or a bad rate.
    """

    def __init__(self, pcm: bytes, rate: int = 8000) -> None:
        if len(pcm) % 2:
            raise AudioError("16-bit PCM must have an even number of octets")
        self._size = frame_octets(rate)
        self.rate = rate
        self._pcm = bytes(pcm)
        self._offset = 0

    def pcm(self) -> bytes:
        """All the audio (whatever was read already)."""
        return self._pcm

    def read(self) -> bytes:
        """The next frame, the last padded with silence; ``b""`` at the end."""
        frame = self._pcm[self._offset : self._offset + self._size]
        self._offset += len(frame)
        if frame and len(frame) < self._size:
            frame += bytes(self._size - len(frame))
        return frame

    def close(self) -> None:
        """Skip to the end."""
        self._offset = len(self._pcm)


@implementer(IAudioSource)
class WavSource:
    """A PCM WAV file (any width, rate or channel count), read one frame at a time.

    The file is opened on the first :meth:`read` and closed at its end or on
    :meth:`close`; only a frame or two is held in memory, whatever the length.

    Args:
        path: the file.
        rate: the rate to deliver, Hz (8000 by default, as G.711 sends);
            ``None`` delivers the file's own rate (known once opened:
            :meth:`open`).  Another rate than the file's needs ``soxr``.
    """

    def __init__(self, path: str | os.PathLike[str], rate: int | None = 8000) -> None:
        self.path = os.fspath(path)
        self._wanted = rate
        self._rate = rate
        self._file: Any = None
        self._done = False
        self._resampler: Resampler | None = None
        self._chunks: Rechunker | None = None
        self._ready: deque[bytes] = deque()
        self._channels = self._width = self._file_rate = 1

    @property
    def rate(self) -> int:
        """The rate of the frames, Hz: the one asked for, else the file's (its header is read for it)."""
        if self._rate is None:
            self.open()
        assert self._rate is not None
        return self._rate

    def pcm(self) -> bytes:
        """The whole file as 16-bit mono PCM at :attr:`rate` (read at once).

        Raises:
            WavError: not a PCM WAV file.
        """
        pcm, _ = read_wav(self.path, rate=self._wanted)
        return pcm

    def open(self) -> None:
        """Open the file and read its header (done by the first :meth:`read`; idempotent).

        Raises:
            WavError: not a PCM WAV file, or its rate is not a multiple of 50 Hz
                (with ``rate=None``).
            OSError: the file cannot be read.
        """
        if self._file is not None or self._done:
            return
        try:
            f = wave.open(self.path, "rb")  # noqa: SIM115 - kept open across reads, closed by close()
        except (wave.Error, EOFError) as exc:
            raise WavError(f"{self.path}: not a PCM WAV file ({exc})") from exc
        channels, width, file_rate = f.getnchannels(), f.getsampwidth(), f.getframerate()
        if channels < 1 or file_rate < 1 or width not in (1, 2, 3, 4):
            f.close()
            raise WavError(f"{self.path}: bad header ({channels} channels, {width} octets, {file_rate} Hz)")
        rate = self._wanted if self._wanted is not None else file_rate
        try:
            size = frame_octets(rate)
            self._resampler = Resampler(file_rate, rate)
        except AudioError as e:
            f.close()
            raise WavError(f"{self.path}: {e}") from e
        self._rate = rate
        self._chunks = Rechunker(size)
        self._channels, self._width, self._file_rate = channels, width, file_rate
        self._file = f

    def read(self) -> bytes:
        """The next frame (the last padded with silence); ``b""`` at the end.

        Raises:
            WavError: not a PCM WAV file (on the first read).
            OSError: the file cannot be read.
        """
        self.open()
        while not self._ready and self._file is not None:
            assert self._chunks is not None and self._resampler is not None
            raw = self._file.readframes(max(1, self._file_rate // 50))
            if raw:
                pcm = to_mono(to_16bit(raw, self._width), self._channels)
                self._ready.extend(self._chunks.push(self._resampler.process(pcm)))
                continue
            self._ready.extend(self._chunks.push(self._resampler.process(b"", last=True)))
            rest = self._chunks.flush()
            if rest:
                self._ready.append(rest)
            self._close_file()
        return self._ready.popleft() if self._ready else b""

    def _close_file(self) -> None:
        f, self._file = self._file, None
        self._done = True
        if f is not None:
            f.close()

    def close(self) -> None:
        """Close the file; :meth:`read` returns ``b""`` from then on."""
        self._ready.clear()
        self._close_file()

    def __del__(self) -> None:  # a source dropped half-read must not keep its file open
        f = getattr(self, "_file", None)
        if f is not None:
            f.close()


@implementer(IAudioSource)
class _ResampledSource:
    """A source read at another rate (see :func:`resampled_source`)."""

    def __init__(self, source: Any, rate: int) -> None:
        self.source = source
        self.rate = rate
        self._resampler = Resampler(source.rate, rate)
        self._chunks = Rechunker(frame_octets(rate))
        self._ready: deque[bytes] = deque()
        self._ended = False

    def read(self) -> bytes:
        while not self._ready and not self._ended:
            frame = self.source.read()
            if not frame:
                self._ended = True
                self._ready.extend(self._chunks.push(self._resampler.process(b"", last=True)))
                rest = self._chunks.flush()
                if rest:
                    self._ready.append(rest)
                break
            self._ready.extend(self._chunks.push(self._resampler.process(frame)))
        return self._ready.popleft() if self._ready else b""

    def close(self) -> None:
        self._ended = True
        self._ready.clear()
        self.source.close()


@implementer(IAudioSink)
class _ResampledSink:
    """A sink written at another rate (see :func:`resampled_sink`)."""

    def __init__(self, sink: Any, rate: int) -> None:
        self.sink = sink
        self.rate = rate
        self._resampler = Resampler(rate, sink.rate)
        self._closed = False

    def write(self, frame: bytes) -> None:
        if self._closed:
            return
        out = self._resampler.process(frame)
        if out:
            self.sink.write(out)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        out = self._resampler.process(b"", last=True)
        if out:
            self.sink.write(out)
        self.sink.close()


def resampled_source(source: Any, rate: int) -> Any:
    """``source`` delivering frames at ``rate`` (itself when its rate is already ``rate``).

    Raises:
        AudioError: the rates differ and ``soxr`` is missing, or a bad rate.
    """
    source = IAudioSource(source)
    if source.rate == rate:
        return source
    return _ResampledSource(source, rate)


def resampled_sink(sink: Any, rate: int) -> Any:
    """A sink taking PCM at ``rate`` and giving it to ``sink`` at its own rate (``sink`` when equal).

    Raises:
        AudioError: the rates differ and ``soxr`` is missing, or a bad rate.
    """
    sink = IAudioSink(sink)
    if sink.rate == rate:
        return sink
    frame_octets(rate)
    return _ResampledSink(sink, rate)


# -------------------------------------------------------------------- sinks


@implementer(IAudioSink)
class MemorySink:
    """Keeps the PCM written, in memory.

    Args:
        rate: Hz.
        max_seconds: keep only the last ``max_seconds`` of audio (older audio
            is dropped as new comes); ``None`` keeps everything (about 16 kB
            per second at 8000 Hz).
    """

    def __init__(self, rate: int = 8000, max_seconds: float | None = None) -> None:
        frame_octets(rate)
        self.rate = rate
        self._limit = None if max_seconds is None else int(max_seconds * rate) * 2
        self._pcm = bytearray()
        self.closed = False
        self.dropped = 0  # octets dropped by max_seconds

    def write(self, frame: bytes) -> None:
        """Append ``frame`` (dropping the oldest audio past ``max_seconds``)."""
        if self.closed:
            return
        self._pcm += frame
        if self._limit is not None and len(self._pcm) > self._limit:
            cut = len(self._pcm) - self._limit
            del self._pcm[:cut]
            self.dropped += cut

    def pcm(self) -> bytes:
        """The audio kept."""
        return bytes(self._pcm)

    def close(self) -> None:
        """Take no more audio."""
        self.closed = True


@implementer(IAudioSink)
class WavSink:
    """Writes audio to a WAV file (16-bit mono) as it comes: memory stays flat however long the call.

    The file is created on the first :meth:`write` (or by :meth:`close` when
    nothing came); its header is kept right after every write, so the file
    is a valid WAV at any moment.

    Args:
        path: the file (overwritten).
        rate: the rate of the PCM written, Hz (8000 by default).

    Raises:
        OSError: on the write that cannot create or extend the file.
    """

    def __init__(self, path: str | os.PathLike[str], rate: int = 8000) -> None:
        frame_octets(rate)
        self.path = os.fspath(path)
        self.rate = rate
        self._file: Any = None
        self.closed = False
        self.octets = 0

    def _open(self) -> Any:
        if self._file is None:
            self._file = open(self.path, "wb")  # noqa: SIM115 - kept open across writes, closed by close()
            self._file.write(self._header())
        return self._file

    def _header(self) -> bytes:
        # RIFF/WAVE with one fmt chunk (PCM, mono, 16-bit) and the data chunk's size
        data = self.octets
        return (b"RIFF" + struct.pack("<I", 36 + data) + b"WAVE"
                + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, self.rate, self.rate * 2, 2, 16)
                + b"data" + struct.pack("<I", data))

    def write(self, frame: bytes) -> None:
        """Append ``frame`` to the file.

        Raises:
            WavError: an odd number of octets.
        """
        if self.closed:
            return
        if len(frame) % 2:
            raise WavError("16-bit PCM must have an even number of octets")
        f = self._open()
        f.write(frame)
        self.octets += len(frame)
        f.seek(0)
        f.write(self._header())  # the sizes, so that the file is a whole WAV at any moment
        f.seek(0, os.SEEK_END)
        f.flush()

    def __del__(self) -> None:  # a sink dropped unclosed: its file (whole at any moment) is closed
        f = getattr(self, "_file", None)
        if f is not None:
            f.close()

    def close(self) -> None:
        """Finish and close the file (an empty WAV if nothing was written)."""
        if self.closed:
            return
        self.closed = True
        self._open().close()
        self._file = None
