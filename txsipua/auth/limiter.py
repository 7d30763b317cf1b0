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

Memory is bounded: each kind of key keeps at most ``max_entries`` entries, the
least recently touched one is dropped first, so spraying source addresses or
user names cannot grow the tables (an entry dropped that way only forgets
failures; a locked key that keeps trying is touched each time and stays).

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
        self._tables: dict[Kind, OrderedDict[str, _Entry]] = {
            "source": OrderedDict(), "user": OrderedDict(),
        }

    def __len__(self) -> int:
        """Keys remembered, both kinds together (at most ``2 * max_entries``)."""
        return sum(len(t) for t in self._tables.values())

    def locked_until(self, kind: Kind, key: str, now: float) -> float | None:
        """When the lockout of ``key`` ends, or ``None`` when it is not locked at ``now``."""
        table = self._tables[kind]
        entry = table.get(key)
        if entry is None or entry.locked_until <= now:
            return None
        table.move_to_end(key)
        return entry.locked_until

    def failed(self, kind: Kind, key: str, now: float) -> Lockout | None:
        """Count one failure of ``key`` at ``now``; return the :class:`Lockout` it starts, if any."""
        table = self._tables[kind]
        entry = table.get(key)
        if entry is None or now - entry.window_start >= self.window:
            locked_until = entry.locked_until if entry is not None else float("-inf")
            entry = _Entry(0, now, locked_until)
        entry.failures += 1
        table[key] = entry
        table.move_to_end(key)
        while len(table) > self.max_entries:
            table.popitem(last=False)
        if entry.failures >= self.max_failures and entry.locked_until <= now:
            entry.locked_until = now + self.lockout
            entry.failures = 0
            entry.window_start = now
            self.lockouts += 1
            return Lockout(kind, key, self.max_failures, entry.locked_until)
        return None

    def succeeded(self, kind: Kind, key: str) -> None:
        """Forget the failures of ``key`` (a user who got the password right); a lockout stays."""
        entry = self._tables[kind].get(key)
        if entry is not None and entry.locked_until == float("-inf"):
            del self._tables[kind][key]
        elif entry is not None:
            entry.failures = 0
