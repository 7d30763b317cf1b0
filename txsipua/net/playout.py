"""Playout of one received RTP stream: jitter buffer, decoder and concealment on the shared pacer.

Theory of operation: a :class:`Playout` is fed each received audio packet
(:meth:`Playout.push`) and, while something is buffered or playing, asks the
process's :class:`~txsipua.net.pacer.Pacer` to call it once per packet time;
each call pops one :class:`~txsipua.media.jitter.PlayoutFrame` from its
:class:`~txsipua.media.jitter.JitterBuffer`, decodes it (or conceals a
missing frame with the codec's :meth:`~txsipua.media.codecs.Decoder.conceal`)
and hands the PCM (16-bit LE mono at the codec's sample rate, one frame) to
its sink.  When the buffer goes back to waiting (the talkspurt ended), the
playout stops asking for ticks until the next packet.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.logger import Logger

from txsipua.media.codecs import AudioCodec, Decoder
from txsipua.media.jitter import JitterBuffer, PlayoutState
from txsipua.net.pacer import Pacer

__all__ = ["Playout"]


class Playout:
    """Jitter-buffered, concealed playout of one stream to a frame callback.

    Args:
        pacer: the shared pacing clock.
        codec: the codec of the packets pushed.
        decoder: its decoder (owned by this playout from now on).
        ptime: the packet time, ms.
        sink: called with each frame of PCM (16-bit LE mono, ``codec.sample_rate``).

    Attributes:
        buffer: the :class:`~txsipua.media.jitter.JitterBuffer`.
        frames: frames handed to the sink.
    """

    log = Logger()

    def __init__(self, pacer: Pacer, codec: AudioCodec, decoder: Decoder, ptime: int,
                 sink: Callable[[bytes], object]) -> None:
        self._pacer = pacer
        self.codec = codec
        self._decoder = decoder
        self._samples = codec.frame_samples(ptime)
        self._interval = ptime / 1000.0
        self.buffer = JitterBuffer(codec.clock_rate, codec.timestamp_step(ptime))
        self._sink = sink
        self._next: float | None = None
        self.frames = 0

    def push(self, timestamp: int, payload: bytes, now: float) -> None:
        """Buffer one received packet's payload; start ticking if idle."""
        self.buffer.push(timestamp, payload, now)
        if self._next is None:
            self._next = now + self._interval
            self._pacer.schedule(self, self._next)

    def stop(self) -> None:
        """Stop ticking (the stream stopped or changed codec)."""
        if self._next is not None:
            self._next = None
            self._pacer.cancel(self)

    def pace(self, now: float) -> float | None:
        """Play one frame per packet time due at ``now``; the next deadline, or None when idle."""
        assert self._next is not None
        while self._next <= now + self._pacer.slack + 1e-9:
            frame = self.buffer.pop(now)
            if frame.kind == "audio":
                assert frame.payload is not None
                try:
                    pcm = self._decoder.decode(frame.payload)
                except ValueError:
                    pcm = self._decoder.conceal(self._samples)
            elif frame.kind == "concealed":
                pcm = self._decoder.conceal(self._samples)
            elif self.buffer.state is PlayoutState.WAITING and not len(self.buffer):
                self._next = None
                return None  # idle until the next packet
            else:
                pcm = bytes(2 * self._samples)
            self.frames += 1
            try:
                self._sink(pcm)
            except Exception:
                self.log.failure("playout sink failed")
            self._next += self._interval
            if now - self._next > 0.2:  # far behind: do not replay a backlog
                self._next = now + self._interval
        return self._next

    @property
    def sample_rate(self) -> int:
        """The PCM rate of the frames, Hz."""
        return self.codec.sample_rate

    def __repr__(self) -> str:
        return f"<Playout {self.codec.name} frames={self.frames}>"
