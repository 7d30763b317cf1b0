"""Received audio laid out by RTP timestamp, with bounded silence (RFC 3550 §5.1), sans-IO.

Each frame of 16-bit PCM (8000 Hz) goes where its RTP timestamp puts it relative to the first
frame of its SSRC, so reordering is undone and lost packets leave silence.  A forward jump is
filled with silence only up to a bound: at most ``max_gap`` seconds, and never more than the
time that really passed since the end of the last frame (plus :data:`SLACK` for jitter), as
told by ``now``.  A longer jump continues at the recording's end with the real silence (at most
``max_gap``): a peer whose timestamps leap cannot make the recording grow faster than the call
lasts (16 kB per second).  A new SSRC (the peer restarted its stream) continues at the end.

Streaming: given a ``writer`` (a callable taking PCM, e.g. a
:class:`~txsipua.media.audio.WavSink`'s ``write``), the recording keeps only its last ``window``
seconds in memory and hands everything older to the writer, in order, as frames come; a frame
arriving later than the window is dropped (counted in ``late``).  :meth:`Recording.flush` writes
the rest at the end.  Memory then stays flat however long the call.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["MAX_GAP", "SLACK", "WINDOW", "Recording"]

#: Default most silence (seconds) that one timestamp jump adds.
MAX_GAP = 0.5
#: Slack (seconds) over the real time since the last frame that a gap may fill (jitter).
SLACK = 0.2
#: Seconds a streaming recording keeps in memory to undo reordering before writing them out.
WINDOW = 1.0
_RATE = 8000


class Recording:
    """16-bit little-endian mono PCM at 8000 Hz, placed by RTP timestamp.

    Args:
        max_gap: the most silence, in seconds, one forward timestamp jump adds.
        writer: called with PCM older than ``window`` (in order, each octet
            once); None keeps the whole recording in memory.
        window: seconds kept in memory with a ``writer``.

    Attributes:
        gaps_cut: forward jumps not filled with silence in full.
        late: frames dropped for arriving after their place was written out.
    """

    def __init__(self, max_gap: float = MAX_GAP, writer: Callable[[bytes], object] | None = None,
                 window: float = WINDOW) -> None:
        self.max_gap = max_gap
        self.gaps_cut = 0
        self.late = 0
        self._writer = writer
        self._keep = 2 * round(_RATE * window)
        self._base = 0  # samples already written out (the position of _pcm[0])
        self._pcm = bytearray()
        self._ssrc: int | None = None
        self._ts0 = 0
        self._offset0 = 0
        self._last: tuple[float, int] | None = None  # (arrival, samples) of the last frame

    def add(self, ssrc: int, timestamp: int, pcm: bytes, now: float) -> None:
        """Place one decoded frame.

        Args:
            ssrc: the packet's SSRC.
            timestamp: its RTP timestamp (8000 Hz units, 32 bits).
            pcm: the decoded frame, 16-bit little-endian.
            now: arrival time, seconds.
        """
        length = self._base + len(self._pcm) // 2
        if ssrc != self._ssrc:
            self._ssrc = ssrc
            self._ts0 = timestamp
            self._offset0 = length
        delta = (timestamp - self._ts0) & 0xFFFFFFFF
        if delta >= 0x80000000:
            delta -= 0x100000000
        position = self._offset0 + delta
        if position < 0:
            return  # older than the start of the recording
        if position > length:
            silent = 0  # real time since the end of the last frame, in samples
            if self._last is not None:
                silent = max(0, round((now - self._last[0]) * _RATE) - self._last[1])
            limit = round(_RATE * self.max_gap)
            if position - length > min(limit, silent + round(_RATE * SLACK)):
                self.gaps_cut += 1
                self._ts0 = timestamp
                self._offset0 = position = length + min(limit, silent)
        self._last = (now, len(pcm) // 2)
        if position < self._base:  # its place was written out already
            skip = (self._base - position) * 2
            if skip >= len(pcm):
                self.late += 1
                return
            pcm, position = pcm[skip:], self._base
        start = (position - self._base) * 2
        end = start + len(pcm)
        if end > len(self._pcm):
            self._pcm.extend(bytes(end - len(self._pcm)))
        self._pcm[start:end] = pcm
        if self._writer is not None and len(self._pcm) > self._keep:
            self._write_out(len(self._pcm) - self._keep)

    def _write_out(self, octets: int) -> None:
        assert self._writer is not None
        octets &= ~1
        if octets <= 0:
            return
        self._writer(bytes(self._pcm[:octets]))
        del self._pcm[:octets]
        self._base += octets // 2

    def flush(self) -> None:
        """Give everything still held to the writer (the end of the call); nothing without one."""
        if self._writer is not None:
            self._write_out(len(self._pcm))

    def pcm(self) -> bytes:
        """The recording held in memory: all of it without a writer, else the part not yet written."""
        return bytes(self._pcm)

    def __len__(self) -> int:
        """Octets recorded (written out and held)."""
        return self._base * 2 + len(self._pcm)
