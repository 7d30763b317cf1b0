"""The location service's binding store (RFC 3261 §10.3, §16.5).

A :class:`BindingStore` maps each address-of-record to its registered contacts.
It is sans-IO: every call that depends on time takes ``now`` (seconds,
absolute) and nothing here reads a clock.  Expired bindings of *every* AOR are
removed by :meth:`BindingStore.purge`, which costs O(expired × log n) through a
heap of deadlines (entries whose binding was refreshed or removed since are
skipped lazily), so a registrar can call it on every REGISTER.

The store can be capped (``max_bindings``): :meth:`BindingStore.room` tells a
registrar whether a change that adds bindings still fits, so it can refuse with
503 and Retry-After (RFC 3261 §21.5.4) instead of growing without bound.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator

import attrs

from txsipua.core.transport import Address
from txsipua.sip.uri import SipURI
from txsipua.sip.values import NameAddr

__all__ = ["Binding", "BindingExpired", "BindingStore", "ContactKey", "contact_key"]

ContactKey = tuple[str, "str | None", str, "int | None", str]
"""How contacts of one AOR are told apart (see :func:`contact_key`)."""


def contact_key(uri: SipURI) -> ContactKey:
    """A comparison key for contact URIs (a simplification of RFC 3261 §19.1.4).

    Scheme, user, host (case-insensitive), port and transport: two contacts
    with the same key are the same binding (§10.3 step 7 replaces it).
    """
    return (uri.scheme, uri.user, uri.host.lower(), uri.port, uri.transport)


@attrs.frozen
class Binding:
    """One registered contact of an address-of-record (RFC 3261 §10.3).

    Attributes:
        aor: the address-of-record, lower case: ``"sip:alice@example.com"``.
        contact: the Contact as registered (its ``expires`` parameter removed).
        expires_at: when it runs out, seconds, absolute.
        call_id: the Call-ID of the REGISTER that made or refreshed it.
        cseq: that REGISTER's CSeq number.
        source: where that REGISTER came from, ``(ip, port)``.
    """

    aor: str
    contact: NameAddr
    expires_at: float
    call_id: str
    cseq: int
    source: Address

    def remaining(self, now: float) -> int:
        """Whole seconds left at ``now`` (rounded up, never below 0)."""
        return max(0, math.ceil(self.expires_at - now))


@attrs.frozen
class BindingExpired:
    """A binding ran out and was removed (reported by :meth:`BindingStore.purge`).

    Attributes:
        binding: the binding removed.
    """

    binding: Binding


class BindingStore:
    """Bindings per address-of-record, in memory, optionally capped.

    Args:
        max_bindings: the most bindings held over all AORs (``None``: no cap).

    Raises:
        ValueError: ``max_bindings`` is below 1.
    """

    def __init__(self, max_bindings: int | None = None) -> None:
        if max_bindings is not None and max_bindings < 1:
            raise ValueError("max_bindings must be at least 1")
        self.max_bindings = max_bindings
        self._tables: dict[str, dict[ContactKey, Binding]] = {}
        self._count = 0
        self._deadlines: list[tuple[float, str, ContactKey]] = []

    def __len__(self) -> int:
        """The number of bindings held (expired ones not yet purged included)."""
        return self._count

    def aors(self) -> Iterator[str]:
        """The AORs that hold at least one binding (expired ones not yet purged included)."""
        return iter(list(self._tables))

    def get(self, aor: str, key: ContactKey) -> Binding | None:
        """The binding of ``aor`` with contact key ``key``, live or not yet purged."""
        return self._tables.get(aor.lower(), {}).get(key)

    def bindings(self, aor: str, now: float) -> list[Binding]:
        """The live bindings of ``aor`` at ``now``, in registration order."""
        table = self._tables.get(aor.lower(), {})
        return [b for b in table.values() if b.expires_at > now]

    def room(self, adding: int) -> bool:
        """Whether ``adding`` more bindings fit under the cap (purge first for a fair answer)."""
        return self.max_bindings is None or self._count + adding <= self.max_bindings

    def put(self, binding: Binding) -> bool:
        """Add or replace the binding of ``binding.aor`` with the same contact key.

        Returns:
            ``True`` when it replaced an existing binding (a refresh).
        """
        aor = binding.aor.lower()
        key = contact_key(binding.contact.uri)
        table = self._tables.setdefault(aor, {})
        refreshed = key in table
        if not refreshed:
            self._count += 1
        table[key] = binding
        heapq.heappush(self._deadlines, (binding.expires_at, aor, key))
        return refreshed

    def remove(self, aor: str, key: ContactKey) -> Binding | None:
        """Remove one binding; return it, or ``None`` when there was none."""
        aor = aor.lower()
        table = self._tables.get(aor)
        if table is None:
            return None
        binding = table.pop(key, None)
        if binding is not None:
            self._count -= 1
        if not table:
            del self._tables[aor]
        return binding

    def clear(self, aor: str) -> int:
        """Remove every binding of ``aor`` (``Contact: *``, §10.2.2); return how many."""
        table = self._tables.pop(aor.lower(), {})
        self._count -= len(table)
        return len(table)

    def next_expiry(self) -> float | None:
        """The earliest deadline of a binding held, seconds, absolute (may be a stale entry's)."""
        while self._deadlines:
            when, aor, key = self._deadlines[0]
            binding = self._tables.get(aor, {}).get(key)
            if binding is not None and binding.expires_at == when:
                return when
            heapq.heappop(self._deadlines)  # refreshed or removed since
        return None

    def purge(self, now: float) -> list[BindingExpired]:
        """Remove the bindings of every AOR that ran out by ``now``; report each."""
        expired = []
        while self._deadlines and self._deadlines[0][0] <= now:
            when, aor, key = heapq.heappop(self._deadlines)
            binding = self._tables.get(aor, {}).get(key)
            if binding is not None and binding.expires_at == when:
                self.remove(aor, key)
                expired.append(BindingExpired(binding))
        if len(self._deadlines) > 4 * self._count + 64:  # many refreshes: rebuild the heap
            self._deadlines = [
                (b.expires_at, aor, k) for aor, t in self._tables.items() for k, b in t.items()
            ]
            heapq.heapify(self._deadlines)
        return expired
