"""An adaptive jitter buffer for playout, with packet-loss concealment marks (sans-IO).

Theory of operation::

       push(packet, now)                       pop(now), once per frame
    ------------------------> [ buffer by timestamp ] ---------------------->
                                                        audio | concealed | silence

- Packets are pushed as they arrive (any order) with the time they arrived;
  the playout side pops one frame per packet time (``frame_ticks`` RTP units)
  and gets a :class:`PlayoutFrame`: ``"audio"`` with the payload to decode,
  ``"concealed"`` when that frame is missing (the caller asks its decoder to
  conceal, :meth:`txsipua.media.codecs.Decoder.conceal`), or ``"silence"``
  while nothing is playing.
- States (:class:`PlayoutState`)::

                 pop(now >= first arrival + target delay)
      WAITING ----------------------------------------------> PLAYING
         ^                                                       |
         +--- pop: nothing buffered for max_silence seconds -----+

  ``WAITING`` (nothing to play yet, or the talkspurt ended) and
  ``PLAYING``.  The first packet of a talkspurt is held for the target delay,
  then playout starts at its timestamp and advances one frame per pop.  After
  ``max_silence`` seconds of frames with no packet at all, playout goes back
  to ``WAITING`` and the next packet starts afresh (a new talkspurt, or the
  peer stopped sending).
- Adaptation: the target delay is ``frame + 4 * jitter``, kept between
  ``min_delay`` and ``max_delay``; the jitter is the RFC 3550 §6.4.1 estimate
  of the arrivals.  A packet arriving after its frame was played (counted
  ``late``) raises the floor of the target by one frame (the floor decays
  again by 1 % of a frame per frame played).  When the buffer holds more than
  the target plus two frames, one frame is dropped (``dropped``) to shrink
  the delay; when it runs dry while below the target, the concealed frame is
  inserted without advancing the timeline (``stretched``), growing the
  delay.  Playout never falls silent for a single missing frame.
- Bounded: at most ``2 * max_delay`` worth of frames are held; beyond that
  the oldest is dropped.

Pure: ``now`` is given in seconds by the caller; no clock, no Twisted.
"""

from __future__ import annotations

import enum

import attrs

__all__ = ["JitterBuffer", "JitterStats", "PlayoutFrame", "PlayoutState"]

_HALF = 0x80000000
_MASK = 0xFFFFFFFF


def _diff(a: int, b: int) -> int:
    """``a - b`` in 32-bit timestamp arithmetic (RFC 3550 §5.1), signed."""
    d = (a - b) & _MASK
    return d - 0x100000000 if d >= _HALF else d


class PlayoutState(enum.Enum):
    """Where the playout is."""

    WAITING = "waiting"
    PLAYING = "playing"


@attrs.frozen
class PlayoutFrame:
    """One frame of playout.

    Attributes:
        kind: ``"audio"`` (decode ``payload``), ``"concealed"`` (a lost or
            missing frame: conceal it) or ``"silence"`` (nothing playing).
        timestamp: the RTP timestamp of the frame's position (0 for silence).
        payload: the packet's payload for ``"audio"``, else ``None``.
    """

    kind: str
    timestamp: int = 0
    payload: bytes | None = None


@attrs.define
class JitterStats:
    """What the buffer did.

    Attributes:
        pushed: packets pushed.
        played: frames played from a packet.
        concealed: frames concealed (a packet missing at its playout time).
        late: packets that arrived after their frame was played (discarded).
        duplicates: packets pushed twice (discarded).
        dropped: packets discarded to shrink the delay or bound the buffer.
        skipped: missing frames skipped (not concealed) to shrink the delay.
        stretched: concealed frames inserted to grow the delay.
        restarts: talkspurts started (WAITING -> PLAYING).
    """

    pushed: int = 0
    played: int = 0
    concealed: int = 0
    late: int = 0
    duplicates: int = 0
    dropped: int = 0
    skipped: int = 0
    stretched: int = 0
    restarts: int = 0


class JitterBuffer:
    """Reorders packets by RTP timestamp and hands out one frame per packet time.

    Args:
        clock_rate: the RTP clock rate, Hz.
        frame_ticks: RTP timestamp units per frame (``clock_rate * ptime / 1000``).
        min_delay: the least target delay, seconds.
        max_delay: the most target delay, seconds.
        max_silence: seconds of missing frames after which playout stops
            (the talkspurt ended) and waits for the next packet.

    Raises:
        ValueError: rates or delays that are not positive, or ``min_delay > max_delay``.
    """

    def __init__(self, clock_rate: int, frame_ticks: int, *, min_delay: float = 0.02,
                 max_delay: float = 0.3, max_silence: float = 0.2) -> None:
        if clock_rate <= 0 or frame_ticks <= 0:
            raise ValueError("clock_rate and frame_ticks must be positive")
        if not 0 <= min_delay <= max_delay:
            raise ValueError("need 0 <= min_delay <= max_delay")
        self.clock_rate = clock_rate
        self.frame_ticks = frame_ticks
        self.frame = frame_ticks / clock_rate
        self.min_delay = min_delay
        self.max_delay = max_delay
        self.max_silence = max_silence
        self.state = PlayoutState.WAITING
        self.stats = JitterStats()
        self.jitter = 0.0  # seconds, RFC 3550 §6.4.1
        self._floor = min_delay
        self._packets: dict[int, bytes] = {}
        self._next = 0  # timestamp of the next frame to play
        self._start_at = 0.0
        self._transit: float | None = None
        self._missing = 0  # consecutive frames with nothing buffered
        self._capacity = max(4, int(2 * max_delay / self.frame) + 2)

    def __len__(self) -> int:
        """Packets held."""
        return len(self._packets)

    @property
    def target(self) -> float:
        """The delay aimed at now, seconds."""
        wanted = max(self.frame + 4 * self.jitter, self._floor)
        return min(max(wanted, self.min_delay), self.max_delay)

    @property
    def buffered(self) -> float:
        """Seconds of audio held ahead of the playout position (0 when waiting)."""
        if not self._packets:
            return 0.0
        base = self._next if self.state is PlayoutState.PLAYING else min(self._packets, key=self._order)
        newest = max(_diff(t, base) for t in self._packets)
        return max(0, newest + self.frame_ticks) / self.clock_rate

    def _order(self, timestamp: int) -> int:
        return _diff(timestamp, next(iter(self._packets)))

    def push(self, timestamp: int, payload: bytes, now: float) -> None:
        """Add a received packet.

        Args:
            timestamp: its RTP timestamp.
            payload: its payload (decoded only when played).
            now: when it arrived, seconds.
        """
        self.stats.pushed += 1
        transit = now - timestamp / self.clock_rate
        if self._transit is not None:
            d = abs(transit - self._transit)
            if d < 60:
                self.jitter += (d - self.jitter) / 16.0
        self._transit = transit
        if self.state is PlayoutState.PLAYING and _diff(timestamp, self._next) < 0:
            self.stats.late += 1
            self._floor = min(self.max_delay, self._floor + self.frame)
            return
        if timestamp in self._packets:
            self.stats.duplicates += 1
            return
        if not self._packets and self.state is PlayoutState.WAITING:
            self._start_at = now + self.target
        self._packets[timestamp] = payload
        if len(self._packets) > self._capacity:
            oldest = min(self._packets, key=self._order)
            del self._packets[oldest]
            self.stats.dropped += 1
            if self.state is PlayoutState.PLAYING and oldest == self._next:
                self._next = (self._next + self.frame_ticks) & _MASK

    def pop(self, now: float) -> PlayoutFrame:
        """The frame to play at ``now`` (call once per packet time).

        Returns:
            A :class:`PlayoutFrame`: ``"audio"``, ``"concealed"`` or ``"silence"``.
        """
        if self.state is PlayoutState.WAITING:
            if not self._packets or now + 1e-9 < self._start_at:
                return PlayoutFrame("silence")
            self.state = PlayoutState.PLAYING
            self.stats.restarts += 1
            self._next = min(self._packets, key=self._order)
            self._missing = 0
        self._floor = max(self.min_delay, self._floor - self.frame / 100)
        if self.buffered > self.target + 2 * self.frame and self._next not in self._packets:
            self._skip()  # shrink: skip a missing frame rather than conceal it
        elif self.buffered > self.target + 2 * self.frame:
            del self._packets[self._next]
            self.stats.dropped += 1
            self._advance()
        timestamp = self._next
        payload = self._packets.pop(timestamp, None)
        if payload is not None:
            self._missing = 0
            self.stats.played += 1
            self._advance()
            return PlayoutFrame("audio", timestamp, payload)
        if not self._packets:
            self._missing += 1
            if self._missing * self.frame > self.max_silence + 1e-9:
                self.state = PlayoutState.WAITING
                self._missing = 0
                return PlayoutFrame("silence")
            self.stats.concealed += 1
            if self.buffered < self.target:
                self.stats.stretched += 1  # grow the delay: the timeline waits
                return PlayoutFrame("concealed", timestamp)
            self._advance()
            return PlayoutFrame("concealed", timestamp)
        self._missing = 0
        self.stats.concealed += 1
        self._advance()
        return PlayoutFrame("concealed", timestamp)

    def _advance(self) -> None:
        self._next = (self._next + self.frame_ticks) & _MASK

    def _skip(self) -> None:
        self.stats.skipped += 1
        self._advance()
