"""Choosing among located servers: SRV weights, failover, unavailable servers, TTL (RFC 3263, RFC 2782).

Theory of operation.  :class:`~txsipua.net.resolve.SIPResolver` turns a URI
into an ordered list of targets; this module holds the decisions made on
such lists, all sans-IO (time comes in as ``now``, chance from an injected
``random``), so they are tested without DNS or a reactor:

* :func:`srv_order` orders SRV records as RFC 2782 asks: by priority, and
  within one priority by a weighted random draw (a record of weight 60 comes
  first six times as often as one of weight 10; weight 0 only rarely first).
* :class:`Unavailable` remembers the servers that answered 503 with
  ``Retry-After`` (RFC 3261 §21.5.4): they are skipped until then.  It
  also remembers, for :data:`DEAD_TARGET_HOLD` seconds, the servers a
  request failed at without a Retry-After (timeout, transport error, 503):
  those are not skipped but tried last (:meth:`Unavailable.order`), so a
  dead first SRV target does not cost every new request (each refresh) a
  full Timer F before the next one is tried.
* :class:`Failover` is one request's walk down its targets (RFC 3263 §4.3):
  when the current target times out (Timer B/F), fails at the transport, or
  answers 503, :meth:`Failover.next_target` gives the next one still
  available; the request is then sent again in a *new* client transaction
  (new branch) by :class:`~txsipua.core.uac.ClientOperation`.
* :class:`TTLCache` keeps location results for the smallest TTL of the
  records they came from.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Generic, TypeVar

from txsipua.core.transport import Address

T = TypeVar("T")
K = TypeVar("K")

MAX_UNAVAILABLE = 256
"""Servers remembered as unavailable at most (the oldest mark is forgotten first)."""

DEAD_TARGET_HOLD = 300.0
"""Seconds a server that timed out or failed at the transport is tried last (a bound of our choosing:
RFC 3263 leaves it open; long enough to span several registration refreshes, short enough that a
server back from a restart is preferred again soon)."""


def srv_order(records: Iterable[tuple[int, int, T]], random: Callable[[], float]) -> list[T]:
    """Order SRV records ``(priority, weight, item)`` as RFC 2782 describes.

    Lower priorities first.  Within a priority, records of weight 0 are put
    first, then one is drawn at a time: a number ``r`` in ``[0, total]``
    (``random() * total``) picks the first record whose running sum of
    weights reaches ``r``.

    Args:
        records: ``(priority, weight, item)`` triples; weights are >= 0.
        random: returns a float in ``[0, 1)`` (``random.random``; inject one in tests).

    Returns:
        The items in the order to try them.
    """
    by_priority: dict[int, list[tuple[int, T]]] = {}
    for priority, weight, item in records:
        by_priority.setdefault(priority, []).append((max(0, weight), item))
    out: list[T] = []
    for priority in sorted(by_priority):
        group = by_priority[priority]
        pending = [e for e in group if e[0] == 0] + [e for e in group if e[0] > 0]
        while pending:
            total = sum(w for w, _ in pending)
            r = random() * total
            running = 0
            chosen = len(pending) - 1
            for i, (w, _) in enumerate(pending):
                running += w
                if running >= r:
                    chosen = i
                    break
            out.append(pending.pop(chosen)[1])
    return out


class Unavailable:
    """Servers that asked not to be used for a while (503 with Retry-After).

    Keys are transport addresses ``(ip, port)``; bounded by
    :data:`MAX_UNAVAILABLE`.
    """

    def __init__(self, limit: int = MAX_UNAVAILABLE) -> None:
        self.limit = limit
        self._until: OrderedDict[Address, float] = OrderedDict()
        self._failed: OrderedDict[Address, float] = OrderedDict()

    def mark_failed(self, address: Address, until: float) -> None:
        """Try ``address`` after the others until ``until`` (seconds, absolute): it timed out or failed."""
        self._failed.pop(address, None)
        self._failed[address] = until
        while len(self._failed) > self.limit:
            self._failed.popitem(last=False)

    def failed(self, address: Address, now: float) -> bool:
        """True while ``address`` is remembered as failed (:meth:`mark_failed`)."""
        t = self._failed.get(address)
        if t is None:
            return False
        if t <= now:
            del self._failed[address]
            return False
        return True

    def order(self, addresses: Iterable[Address], now: float) -> list[Address]:
        """``addresses`` with those remembered as failed moved to the end (each group in order)."""
        items = list(addresses)
        dead = [a for a in items if self.failed(a, now)]
        return [a for a in items if a not in dead] + dead

    def mark(self, address: Address, until: float) -> None:
        """Skip ``address`` until ``until`` (seconds, absolute)."""
        self._until.pop(address, None)
        self._until[address] = until
        while len(self._until) > self.limit:
            self._until.popitem(last=False)

    def until(self, address: Address, now: float) -> float | None:
        """When ``address`` may be used again, or ``None`` when it may now."""
        t = self._until.get(address)
        if t is None:
            return None
        if t <= now:
            del self._until[address]
            return None
        return t

    def available(self, addresses: Iterable[Address], now: float) -> list[Address]:
        """``addresses`` without those still unavailable at ``now``, in order."""
        return [a for a in addresses if self.until(a, now) is None]


class Failover:
    """One request's remaining targets after the first (RFC 3263 §4.3).

    It is what :class:`~txsipua.core.uac.ClientOperation` is given as
    ``alternatives``.

    Args:
        targets: every located target in order (the first is where the
            request goes first).
        unavailable: the shared table of servers that answered 503 with
            Retry-After (and of those that failed, tried last), or ``None``.
        hold: seconds a target that failed without a Retry-After is
            remembered as failed (:data:`DEAD_TARGET_HOLD`).

    Attributes:
        tried: the targets used so far, in order.
    """

    def __init__(self, targets: Sequence[Address], unavailable: Unavailable | None = None,
                 hold: float = DEAD_TARGET_HOLD) -> None:
        self._rest = list(targets[1:])
        self.tried: list[Address] = list(targets[:1])
        self.unavailable = unavailable
        self.hold = hold

    def next_target(self, failed: Address, retry_after: float | None, now: float) -> Address | None:
        """The target to try after ``failed``, or ``None`` when none is left.

        Args:
            failed: the target that timed out, failed or answered 503.
            retry_after: seconds from a 503's Retry-After (``failed`` is then
                skipped that long by every request sharing the table), or ``None``.
            now: seconds, absolute.
        """
        if retry_after is not None and self.unavailable is not None:
            self.unavailable.mark(failed, now + retry_after)
        elif self.unavailable is not None:
            self.unavailable.mark_failed(failed, now + self.hold)
        while self._rest:
            nxt = self._rest.pop(0)
            if self.unavailable is not None and self.unavailable.until(nxt, now) is not None:
                continue
            self.tried.append(nxt)
            return nxt
        return None


class TTLCache(Generic[K, T]):
    """Values kept until a deadline (the TTL of the DNS records they came from).

    Args:
        limit: entries at most; the oldest is dropped first.
    """

    def __init__(self, limit: int = 1024) -> None:
        self.limit = limit
        self._entries: OrderedDict[K, tuple[float, T]] = OrderedDict()

    def get(self, key: K, now: float) -> T | None:
        """The value for ``key`` if it has not expired at ``now``."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= now:
            del self._entries[key]
            return None
        return entry[1]

    def put(self, key: K, value: T, expires: float) -> None:
        """Keep ``value`` until ``expires`` (seconds, absolute)."""
        self._entries.pop(key, None)
        self._entries[key] = (expires, value)
        while len(self._entries) > self.limit:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


__all__ = ["DEAD_TARGET_HOLD", "MAX_UNAVAILABLE", "Failover", "TTLCache", "Unavailable", "srv_order"]
