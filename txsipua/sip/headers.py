"""Header fields: names, the ordered case-insensitive multimap (RFC 3261 §7.3, §20).

Header names are kept in canonical form (compact forms expanded, RFC 3261
§7.3.3) and matched case-insensitively; list headers split at commas outside
quotes and angle brackets (§7.3.1).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from operator import itemgetter
from typing import Any

from txsipua.errors import ParseError

_COMPACT = {
    "i": "Call-ID",
    "m": "Contact",
    "v": "Via",
    "f": "From",
    "t": "To",
    "l": "Content-Length",
    "c": "Content-Type",
    "k": "Supported",
    "s": "Subject",
    "e": "Content-Encoding",
    "o": "Event",
    "r": "Refer-To",
    "b": "Referred-By",
    "u": "Allow-Events",
    "x": "Session-Expires",
    "a": "Accept-Contact",
    "j": "Reject-Contact",
    "d": "Request-Disposition",
    "y": "Identity",
}

_CANONICAL_LIST = [
    "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Allow-Events",
    "Authentication-Info", "Authorization", "Call-ID", "Call-Info", "Contact",
    "Content-Disposition", "Content-Encoding", "Content-Language", "Content-Length",
    "Content-Type", "CSeq", "Date", "Error-Info", "Event", "Expires", "From", "In-Reply-To",
    "Max-Forwards", "Min-Expires", "MIME-Version", "Organization", "Path", "Priority",
    "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require", "RAck", "Reason",
    "Record-Route", "Refer-To", "Referred-By", "Reply-To", "Require", "Retry-After", "Route",
    "RSeq", "Server", "Service-Route", "Session-Expires", "Subject", "Subscription-State",
    "Supported", "Timestamp", "To", "Unsupported", "User-Agent", "Via", "Warning",
    "WWW-Authenticate", "P-Asserted-Identity", "Privacy", "Min-SE", "Replaces",
    "Accept-Contact", "Reject-Contact", "Request-Disposition", "Identity",
]

_CANONICAL: dict[str, str] = {n.lower(): n for n in _CANONICAL_LIST}
_CANONICAL.update(_COMPACT)
# key (lower-case canonical name) for any spelling seen
# canonical spellings and upper-case compact forms hit the tables at once (no lower())
_CANONICAL.update({n: n for n in _CANONICAL_LIST})
_CANONICAL.update({k.upper(): v for k, v in _COMPACT.items()})
_KEY: dict[str, str] = {k: v.lower() for k, v in _CANONICAL.items()}

_LIST_HEADERS = frozenset(
    k.lower()
    for k in (
        "Via", "Route", "Record-Route", "Contact", "Allow", "Supported", "Require",
        "Proxy-Require", "Unsupported", "Accept", "Accept-Encoding", "Accept-Language",
        "Allow-Events", "Path", "Service-Route", "Content-Encoding", "Content-Language",
        "In-Reply-To", "Call-Info", "Alert-Info", "Error-Info", "Warning", "Reason",
        "P-Asserted-Identity", "Privacy",
    )
)

_TOKEN_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
)


_TOKEN_FULL = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+").fullmatch
"""A header name is an RFC 3261 §25.1 token (the characters of ``_TOKEN_CHARS``)."""

_FIRST = itemgetter(0)
_NAME_VALUE = itemgetter(1, 2)
_NAME = itemgetter(1)
_VALUE = itemgetter(2)


def header_key(name: str) -> str:
    """The lookup key of a header name: lower-case canonical (compact forms expanded)."""
    k = _KEY.get(name)
    if k is not None:
        return k
    lower = name.lower()
    return _KEY.get(lower, lower)


def canonical_name(name: str) -> str:
    """The canonical spelling of a header name (``i`` -> ``Call-ID``, ``cseq`` -> ``CSeq``)."""
    return _CANONICAL.get(name.lower(), name)


def split_list_value(value: str) -> list[str]:
    """Split a comma-separated header value, respecting quoted strings and ``<...>``.

    RFC 3261 §7.3.1: ``Route: <sip:a;lr>, <sip:b;lr>`` carries two values.
    """
    if "," not in value:
        v = value.strip()
        return [v] if v else []
    out = []
    depth = 0
    quoted = False
    start = 0
    i = 0
    n = len(value)
    while i < n:
        c = value[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == "<":
            depth += 1
        elif c == ">":
            depth = max(0, depth - 1)
        elif c == "," and depth == 0:
            part = value[start:i].strip()
            if part:
                out.append(part)
            start = i + 1
        i += 1
    part = value[start:].strip()
    if part:
        out.append(part)
    return out


class Headers:
    """An ordered, case-insensitive multimap of header fields (RFC 3261 §7.3).

    Each field is kept as one ``(name, value)`` line in arrival order; names are
    stored in canonical spelling and looked up case-insensitively, compact forms
    included (``h.get("i")`` is ``h.get("Call-ID")``).
    """

    # _f: the fields as (lookup key, canonical name, value) in order.
    # _keys: the lookup keys of _f in order (a C-speed index for get), or None
    #   until first needed; every mutation resets it.
    # _cache: typed values parsed from the fields (Message accessors); every
    #   mutation clears it.
    __slots__ = ("_f", "_keys", "_cache")

    def __init__(self, fields: Iterable[tuple[str, str]] | None = None) -> None:
        self._f: list[tuple[str, str, str]] = []
        self._keys: list[str] | None = None
        self._cache: dict[str, Any] = {}
        if fields:
            for name, value in fields:
                self.add(name, value)

    @classmethod
    def from_entries(
        cls, entries: list[tuple[str, str, str]], keys: list[str] | None = None
    ) -> Headers:
        """Headers over already-valid ``(lookup key, canonical name, value)`` entries.

        The fast way to build the fields of a message from values that are known
        to be valid: the entries of received messages (:meth:`entries`) and
        values this package formatted.  Nothing is checked and the list is not
        copied (it becomes the new object's own: do not use it afterwards).
        Each entry's key is :func:`header_key` of its name and the name is
        :func:`canonical_name`'s spelling; a value holds no CR, LF or NUL.
        Use :meth:`add` for anything else: it checks.

        Args:
            entries: the fields in order.
            keys: ``[e[0] for e in entries]`` when the caller has it, else ``None``.
        """
        h = cls.__new__(cls)
        h._f = entries
        h._keys = keys
        h._cache = {}
        return h

    _from_parsed = from_entries  # the parser's name for it

    def entries(self) -> Iterator[tuple[str, str, str]]:
        """Iterate the fields as ``(lookup key, canonical name, value)``, in order.

        The lookup key is the lower-case canonical name (:func:`header_key`):
        what a one-pass copy of selected fields into :meth:`from_entries` needs.
        Do not change the headers while iterating.
        """
        return iter(self._f)

    @property
    def _fields(self) -> list[tuple[str, str, str]]:
        """The fields as ``(lookup key, canonical name, value)``; read-only outside this class
        (assigning a new list is allowed and resets the index; never mutate it in place)."""
        return self._f

    @_fields.setter
    def _fields(self, fields: list[tuple[str, str, str]]) -> None:
        self._f = fields
        self._keys = None
        self._cache.clear()

    def forget_parsed(self) -> None:
        """Drop the typed values parsed from these fields (they are parsed again on demand).

        For a message kept only for reference (e.g. by a finished transaction):
        fewer objects for the garbage collector to walk.  The lookup index goes
        too (rebuilt on the next lookup), and the fields are held in a tuple,
        which the collector stops tracking once it has seen it hold only
        strings (a list it walks on every pass); the next change turns them
        back into a list.
        """
        self._cache = {}  # a new empty dict is not tracked by the collector; a cleared one stays tracked
        self._keys = None
        if type(self._f) is list:
            self._f = tuple(self._f)  # type: ignore[assignment]

    def _mutable(self) -> list[tuple[str, str, str]]:
        """The field list, to change in place (a tuple left by :meth:`forget_parsed` becomes a list)."""
        f = self._f
        if type(f) is not list:
            f = self._f = list(f)
        return f

    def _index(self) -> list[str]:
        keys = self._keys
        if keys is None or len(keys) != len(self._f):
            keys = self._keys = list(map(_FIRST, self._f))
        return keys

    def get(self, name: str, default: str | None = None) -> str | None:
        """The value of the first field named ``name``, or ``default``."""
        key = _KEY.get(name) or header_key(name)
        keys = self._keys
        if keys is None or len(keys) != len(self._f):
            keys = self._index()
        if key in keys:
            return self._f[keys.index(key)][2]
        return default

    def _first(self, key: str) -> str | None:
        """The first value under lookup ``key`` (already lower-case canonical), or None."""
        keys = self._keys
        if keys is None or len(keys) != len(self._f):
            keys = self._index()
        try:
            return self._f[keys.index(key)][2]
        except ValueError:
            return None

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name`` in order.

        For list headers (Via, Route, Contact, Allow...) comma-separated values
        within one field are split; authentication headers are never split.
        """
        key = _KEY.get(name) or header_key(name)
        keys = self._keys
        if keys is None or len(keys) != len(self._f):
            keys = self._index()
        if key not in keys:  # the usual answer (Require, Record-Route...): a C-speed scan of the index
            return []
        fields = self._f
        if keys.count(key) == 1:
            value = fields[keys.index(key)][2]
            return split_list_value(value) if key in _LIST_HEADERS else [value]
        if key in _LIST_HEADERS:
            out: list[str] = []
            for k, _, v in fields:
                if k == key:
                    out.extend(split_list_value(v))
            return out
        return [v for k, _, v in fields if k == key]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        return header_key(name) in self._index()

    def _changed(self) -> None:
        self._keys = None
        self._cache.clear()

    def add(self, name: str, value: str) -> None:
        """Append a field at the end."""
        self._check(name, value)
        self._mutable().append((header_key(name), canonical_name(name), value))
        self._changed()

    def insert(self, index: int, name: str, value: str) -> None:
        """Insert a field before position ``index`` of all fields (0 = first)."""
        self._check(name, value)
        self._mutable().insert(index, (header_key(name), canonical_name(name), value))
        self._changed()

    def prepend(self, name: str, value: str) -> None:
        """Insert a field before the first field of the same name (or first of all).

        This is how a Via or Record-Route is pushed (RFC 3261 §16.6).
        """
        key = header_key(name)
        keys = self._index()
        self.insert(keys.index(key) if key in keys else 0, name, value)

    def set(self, name: str, value: str) -> None:
        """Replace every field named ``name`` by one field, in the first one's place."""
        self._check(name, value)
        key = header_key(name)
        new = (key, canonical_name(name), value)
        out = []
        placed = False
        for f in self._f:
            if f[0] == key:
                if not placed:
                    out.append(new)
                    placed = True
            else:
                out.append(f)
        if not placed:
            out.append(new)
        self._f = out
        self._changed()

    def set_all(self, name: str, values: Iterable[str]) -> None:
        """Replace every field named ``name`` by one field per value."""
        self.remove(name)
        for v in values:
            self.add(name, v)

    def remove(self, name: str) -> None:
        """Remove every field named ``name`` (no error when absent)."""
        key = header_key(name)
        self._f = [f for f in self._f if f[0] != key]
        self._changed()

    def pop_first_value(self, name: str) -> str | None:
        """Remove and return the first value of a list header (e.g. the top Via).

        A field holding several comma-separated values keeps the others.
        """
        key = header_key(name)
        for i, (k, n, v) in enumerate(self._f):
            if k == key:
                parts = split_list_value(v)
                fields = self._mutable()
                if len(parts) > 1:
                    fields[i] = (k, n, ", ".join(parts[1:]))
                else:
                    del fields[i]
                self._changed()
                return parts[0] if parts else v
        return None

    def items(self) -> list[tuple[str, str]]:
        """All fields as ``(canonical name, value)`` in order."""
        return list(map(_NAME_VALUE, self._f))

    def text_length(self) -> int:
        """Characters of the fields as written (``name: value`` and CRLF per field)."""
        f = self._f
        return sum(map(len, map(_NAME, f))) + sum(map(len, map(_VALUE, f))) + 4 * len(f)

    def copy(self) -> Headers:
        """A shallow copy (values are immutable strings)."""
        return Headers.from_entries(list(self._f))

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.items())

    def __len__(self) -> int:
        return len(self._f)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(k, v) for k, _, v in self._f] == [(k, v) for k, _, v in other._f]

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"

    @staticmethod
    def _check(name: str, value: str) -> None:
        if _TOKEN_FULL(name) is None:
            raise ParseError(f"bad header name {name!r}")
        if "\r" in value or "\n" in value or "\x00" in value:
            raise ParseError(f"header {name} value contains CR, LF or NUL")


def _coerce_headers(headers: Headers | Iterable[tuple[str, str]] | None) -> Headers:
    if isinstance(headers, Headers):
        return headers
    return Headers(headers)


__all__ = [
    "Headers",
    "canonical_name",
    "header_key",
    "split_list_value",
]
