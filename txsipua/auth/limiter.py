"""Failed-authentication limits per source address and per user, sans-IO, bounded.

A password guesser (``svcrack`` and the like) sends credentials as fast as the
server answers.  A :class:`FailureLimiter` counts failed digest checks per key
(a source IP address, an auth username) in a fixed window; at ``max_failures``
within ``window`` seconds the key is locked out for ``lockout`` seconds, and a
:class:`Lockout` is returned for the caller to log.  While locked, the
:class:`~txsipua.auth.server.DigestServer` answers requests of that source, or
credentials of that user, with 403 before checking anything (see its
``limiter`` argument).  Unknown users count like known ones, so a lockout
tells an attacker nothing about which users exist.

Memory is bounded: each kind of key keeps at most ``max_entries`` entries.
When a new key must be counted and the table is full, the least recently
touched entry that is *not locked* is dropped (it only forgets failures), so
spraying source addresses or user names cannot grow the tables, nor make the
limiter forget an active lockout.  Locked entries are kept apart, in the order
their lockouts end, and go back to the counting table once their lockout is
over.  When every entry of a kind is locked (``max_entries`` keys locked at
once: a distributed guesser), the limiter *fails closed*: a key it does not
know is reported locked (:meth:`FailureLimiter.locked_until`) until the oldest
lockout ends, and its failures are not counted; known keys are unaffected.

Nothing here reads a clock: every call takes ``now`` (seconds, absolute).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal

import attrs

__all__ = ["FailureLimiter", "Lockout"]

Kind = Literal["source", "user"]


@attrs.frozen
class Lockout:
    """A key reached its failure limit and is refused until ``until``.

    Attributes:
        kind: ``"source"`` (an IP address) or ``"user"`` (an auth username).
        key: the address or the username.
        failures: the failures counted in the window.
        until: when the lockout ends, seconds, absolute.
    """

    kind: Kind
    key: str
    failures: int
    until: float


@attrs.define
class _Entry:
    failures: int
    window_start: float
    locked_until: float


class FailureLimiter:
    """Counts failed authentications per source and per user; locks out the noisy ones.

    Args:
        max_failures: failures allowed per key within ``window``; the one that
            reaches it starts a lockout.
        window: the counting window, seconds (a key's count starts again after it).
        lockout: how long a locked key is refused, seconds.
        max_entries: the most keys remembered per kind (bounded memory).

    Attributes:
        lockouts: how many lockouts were started.

    Raises:
        ValueError: a limit, window, lockout or size below 1.
    """

    def __init__(self, max_failures: int = 10, window: float = 60.0, lockout: float = 60.0,
                 max_entries: int = 10000) -> None:
        if max_failures < 1 or window <= 0 or lockout <= 0 or max_entries < 1:
            raise ValueError("max_failures, window, lockout and max_entries must be positive")
        self.max_failures = max_failures
        self.window = float(window)
        self.lockout = float(lockout)
        self.max_entries = max_entries
        self.lockouts = 0
        # per kind: entries not locked, least recently touched first ...
        self._tables: dict[Kind, OrderedDict[str, _Entry]] = {
            "source": OrderedDict(), "user": OrderedDict(),
        }
        # ... and locked entries, in the order their lockouts end (never evicted)
        self._locked: dict[Kind, OrderedDict[str, _Entry]] = {
            "source": OrderedDict(), "user": OrderedDict(),
        }

    def __len__(self) -> int:
        """Keys remembered, both kinds together (at most ``2 * max_entries``)."""
        return sum(len(t) for t in self._tables.values()) + sum(len(t) for t in self._locked.values())

    def _release(self, kind: Kind, now: float) -> None:
        """Move the entries whose lockout ended by ``now`` back to the counting table (oldest first)."""
        locked, table = self._locked[kind], self._tables[kind]
        while locked:
            key, entry = next(iter(locked.items()))
            if entry.locked_until > now:
                break
            del locked[key]
            table[key] = entry
            table.move_to_end(key, last=False)

    def _saturated_until(self, kind: Kind) -> float | None:
        """When every entry of ``kind`` is locked: the end of the oldest lockout, else ``None``."""
        locked = self._locked[kind]
        if len(locked) < self.max_entries:
            return None
        return next(iter(locked.values())).locked_until

    def locked_until(self, kind: Kind, key: str, now: float) -> float | None:
        """When the lockout of ``key`` ends, or ``None`` when it is not locked at ``now``.

        A key not remembered while every entry of ``kind`` is locked is
        reported locked until the oldest lockout ends (fail closed, see the
        module docstring).
        """
        self._release(kind, now)
        entry = self._locked[kind].get(key)
        if entry is not None:
            return entry.locked_until
        table = self._tables[kind]
        if key in table:
            table.move_to_end(key)
            return None
        return self._saturated_until(kind)

    def failed(self, kind: Kind, key: str, now: float) -> Lockout | None:
        """Count one failure of ``key`` at ``now``; return the :class:`Lockout` it starts, if any.

        A new key is not counted while every entry of ``kind`` is locked (it
        is refused by :meth:`locked_until` meanwhile).
        """
        self._release(kind, now)
        table, locked = self._tables[kind], self._locked[kind]
        entry = locked.get(key)
        if entry is not None:  # locked: failures while locked neither extend nor report
            if now - entry.window_start >= self.window:
                entry.failures, entry.window_start = 0, now
            entry.failures += 1
            return None
        entry = table.get(key)
        if entry is None and len(table) + len(locked) >= self.max_entries:
            if not table:
                return None  # every entry locked: fail closed, see locked_until()
            table.popitem(last=False)  # the least recently touched entry not locked
        if entry is None or now - entry.window_start >= self.window:
            locked_until = entry.locked_until if entry is not None else float("-inf")
            entry = _Entry(0, now, locked_until)
        entry.failures += 1
        table[key] = entry
        table.move_to_end(key)
        if entry.failures >= self.max_failures and entry.locked_until <= now:
            entry.locked_until = now + self.lockout
            entry.failures = 0
            entry.window_start = now
            del table[key]
            locked[key] = entry
            self.lockouts += 1
            return Lockout(kind, key, self.max_failures, entry.locked_until)
        return None

    def succeeded(self, kind: Kind, key: str) -> None:
        """Forget the failures of ``key`` (a user who got the password right); a lockout stays."""
        entry = self._locked[kind].get(key)
        if entry is not None:
            entry.failures = 0
        else:
            self._tables[kind].pop(key, None)
