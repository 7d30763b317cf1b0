"""One pacing clock for every RTP stream of a process (RFC 3550 senders on a shared tick).

Theory of operation:

- A :class:`Pacer` keeps, for each client (a stream with something to send,
  or a playout or RTCP deadline), the one absolute deadline at which it
  wants to be called, in a heap.  A single ``IDelayedCall`` is armed at the
  earliest deadline of all clients; a process with 500 streams has one
  timer, not 500.
- When that call fires, every client whose deadline falls within ``slack``
  seconds of ``now`` is called (``client.pace(now)``), in deadline order;
  each returns its next deadline (absolute seconds) or ``None`` when it has
  nothing more to do.  Serving deadlines up to ``slack`` early coalesces
  streams whose grids are close into one wake-up: a packet leaves at most
  ``slack`` early, never later than the reactor allows.
- A client's deadline is replaced by :meth:`Pacer.schedule` and removed by
  :meth:`Pacer.cancel`; stale heap entries are skipped when popped (lazy
  deletion), so both are O(log n).
- :func:`pacer_for` gives the pacer shared by every stream of one reactor
  (a ``task.Clock`` in tests gets its own).

The reactor is injected (``callLater`` and ``seconds``); nothing here reads
the global one.
"""

from __future__ import annotations

import heapq
import itertools
import weakref
from typing import Any, Protocol

from twisted.logger import Logger

__all__ = ["DEFAULT_SLACK", "PaceClient", "Pacer", "pacer_for"]

#: Seconds a deadline may be served early to share a wake-up with an earlier one.
DEFAULT_SLACK = 0.002


class PaceClient(Protocol):
    """What a :class:`Pacer` calls: a stream's sending, playout or report clock."""

    def pace(self, now: float) -> float | None:
        """Do what is due at ``now`` (seconds); return the next deadline (absolute seconds) or None."""


class Pacer:
    """One timer for many paced clients.

    A client whose ``pace`` raises is logged and dropped; the others go on.

    Args:
        reactor: provides ``callLater`` and ``seconds`` (``IReactorTime``).
        slack: seconds early a deadline may be served to share a wake-up.

    Attributes:
        ticks: wake-ups so far.
        calls: client calls so far.
    """

    log = Logger()

    def __init__(self, reactor: Any, slack: float = DEFAULT_SLACK) -> None:
        if not 0 <= slack < 0.01:
            raise ValueError(f"slack must be 0 to 10 ms, not {slack!r}")
        self._reactor = reactor
        self.slack = slack
        self._heap: list[tuple[float, int, PaceClient]] = []
        self._deadlines: dict[PaceClient, tuple[float, int]] = {}
        self._counter = itertools.count()
        self._timer: Any = None
        self._armed_at: float | None = None
        self._running = False
        self.ticks = 0
        self.calls = 0

    def __len__(self) -> int:
        """The number of clients waiting for a deadline."""
        return len(self._deadlines)

    def deadline(self, client: PaceClient) -> float | None:
        """The deadline ``client`` waits for (absolute seconds), or None."""
        entry = self._deadlines.get(client)
        return None if entry is None else entry[0]

    def schedule(self, client: PaceClient, deadline: float) -> None:
        """Call ``client.pace(now)`` at ``deadline`` (absolute seconds), replacing its previous deadline."""
        key = (deadline, next(self._counter))
        self._deadlines[client] = key
        heapq.heappush(self._heap, (key[0], key[1], client))
        if not self._running:
            self._arm()

    def cancel(self, client: PaceClient) -> None:
        """Forget ``client``'s deadline (no-op when it has none)."""
        if self._deadlines.pop(client, None) is not None and not self._running:
            if not self._deadlines:
                self._heap.clear()
            self._arm()

    def _earliest(self) -> float | None:
        heap = self._heap
        while heap:
            deadline, order, client = heap[0]
            if self._deadlines.get(client) == (deadline, order):
                return deadline
            heapq.heappop(heap)  # stale: rescheduled or cancelled
        return None

    def _arm(self) -> None:
        earliest = self._earliest()
        if earliest is None:
            if self._timer is not None and self._timer.active():
                self._timer.cancel()
            self._timer = self._armed_at = None
            return
        if self._timer is not None and self._timer.active():
            if self._armed_at is not None and self._armed_at <= earliest:
                return  # it fires early enough; the tick re-arms
            self._timer.cancel()
        delay = max(0.0, earliest - self._reactor.seconds())
        self._armed_at = earliest
        self._timer = self._reactor.callLater(delay, self._tick)

    def _tick(self) -> None:
        self._timer = self._armed_at = None
        self.ticks += 1
        now = self._reactor.seconds()
        horizon = now + self.slack
        heap = self._heap
        self._running = True
        try:
            while heap and heap[0][0] <= horizon:
                deadline, order, client = heapq.heappop(heap)
                if self._deadlines.get(client) != (deadline, order):
                    continue
                del self._deadlines[client]
                self.calls += 1
                try:
                    following = client.pace(now)
                except Exception:
                    self.log.failure("paced client {client!r} failed", client=client)
                    continue
                if following is not None and client not in self._deadlines:
                    key = (max(following, deadline + 1e-9), next(self._counter))
                    self._deadlines[client] = key
                    heapq.heappush(heap, (key[0], key[1], client))
        finally:
            self._running = False
        self._arm()


_PACERS: weakref.WeakKeyDictionary[Any, Pacer] = weakref.WeakKeyDictionary()


def pacer_for(reactor: Any) -> Pacer:
    """The :class:`Pacer` shared by every stream of ``reactor`` (made on first use)."""
    try:
        pacer = _PACERS.get(reactor)
    except TypeError:  # not weak-referenceable: a pacer of its own each time
        return Pacer(reactor)
    if pacer is None:
        pacer = _PACERS[reactor] = Pacer(reactor)
    return pacer
