"""Received audio laid out by RTP timestamp, with bounded silence (RFC 3550 §5.1), sans-IO.

Each frame of 16-bit PCM (8000 Hz) goes where its RTP timestamp puts it relative to the first
frame of its SSRC, so reordering is undone and lost packets leave silence.  A forward jump is
filled with silence only up to a bound: at most ``max_gap`` seconds, and never more than the
time that really passed since the end of the last frame (plus :data:`SLACK` for jitter), as
told by ``now``.  A longer jump continues at the recording's end with the real silence (at most
``max_gap``): a peer whose timestamps leap cannot make the recording grow faster than the call
lasts (16 kB per second).  A new SSRC (the peer restarted its stream) continues at the end.
"""

from __future__ import annotations

__all__ = ["MAX_GAP", "SLACK", "Recording"]

#: Default most silence (seconds) that one timestamp jump adds.
MAX_GAP = 0.5
#: Slack (seconds) over the real time since the last frame that a gap may fill (jitter).
SLACK = 0.2
_RATE = 8000


class Recording:
    """16-bit little-endian mono PCM at 8000 Hz, placed by RTP timestamp.

    Args:
        max_gap: the most silence, in seconds, one forward timestamp jump adds.

    Attributes:
        gaps_cut: forward jumps not filled with silence in full.
    """

    def __init__(self, max_gap: float = MAX_GAP) -> None:
        self.max_gap = max_gap
        self.gaps_cut = 0
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
        length = len(self._pcm) // 2
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
        start = position * 2
        end = start + len(pcm)
        if end > len(self._pcm):
            self._pcm.extend(bytes(end - len(self._pcm)))
        self._pcm[start:end] = pcm

    def pcm(self) -> bytes:
        """The recording so far."""
        return bytes(self._pcm)

    def __len__(self) -> int:
        """Octets recorded."""
        return len(self._pcm)
