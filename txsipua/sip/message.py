"""SIP messages: parsing and serialisation (RFC 3261 §7, §20, §25).

Theory of operation: :func:`parse_message` splits a datagram (or a framed
stream message) into start line, header fields and body in one pass over
``str.split``; header values stay text until a typed accessor
(:attr:`Message.via`, :attr:`Message.cseq`...) parses them on first use and
caches the result.  Any mutation of the headers drops the cache.  Whatever
bytes arrive, only :class:`~txsipua.errors.ParseError` escapes.

Header names are kept in canonical form (compact forms expanded, RFC 3261
§7.3.3) and matched case-insensitively.
"""

from __future__ import annotations

import abc
import os
import re
from collections.abc import Callable, Iterable, Iterator
from operator import itemgetter
from typing import Any

from txsipua.errors import ParseError
from txsipua.sip.uri import SipURI
from txsipua.sip.values import CSeq, NameAddr, Via, _new_cseq

_SplitHead = Callable[
    [bytes, int, dict[str, tuple[str, str]]],
    "tuple[str, list[tuple[str, str, str]], list[str]] | None",
]
_split_head: _SplitHead | None
_parse_head: Callable[[bytes, int, dict[str, tuple[str, str]]], Any] | None
_tag_param: Callable[[str], Any] | None  # str | None | NotImplemented
try:
    # the optional C accelerator of the header split, built by setup.py when a
    # compiler is present; TXSIPUA_PURE=1 (any value but empty or 0) turns it off
    if os.environ.get("TXSIPUA_PURE", "0") not in ("", "0"):
        raise ImportError("TXSIPUA_PURE is set")
    from txsipua.sip._speedups import parse_head as _parse_head
    from txsipua.sip._speedups import split_head as _split_head
    from txsipua.sip._speedups import tag_param as _tag_param
except ImportError:  # no compiler at install time, or asked for the pure code
    _parse_head = None
    _split_head = None
    _tag_param = None

SIP_VERSION = "SIP/2.0"

_MAX_DELTA_SECONDS = 2**32 - 1

MAX_MESSAGE_SIZE = 65535
"""Largest message accepted by default, in bytes (a UDP datagram's maximum)."""

MAX_HEADER_NAME = 128
"""Longest header field name accepted, in characters (the longest registered name has 32):
a longer one is a 400, so junk names cannot make a peer's message worth holding."""


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

_STATUS_REASONS = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 199: "Early Dialog Terminated",
    200: "OK", 202: "Accepted", 204: "No Notification",
    300: "Multiple Choices", 301: "Moved Permanently", 302: "Moved Temporarily",
    305: "Use Proxy", 380: "Alternative Service",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    407: "Proxy Authentication Required", 408: "Request Timeout", 410: "Gone",
    412: "Conditional Request Failed", 413: "Request Entity Too Large",
    414: "Request-URI Too Long", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 420: "Bad Extension", 421: "Extension Required",
    422: "Session Interval Too Small", 423: "Interval Too Brief",
    480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    482: "Loop Detected", 483: "Too Many Hops", 484: "Address Incomplete", 485: "Ambiguous",
    486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here",
    489: "Bad Event", 491: "Request Pending", 493: "Undecipherable",
    500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
    513: "Message Too Large", 580: "Precondition Failure",
    600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}

_TOKEN_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
)


_FIRST = itemgetter(0)
_NAME_VALUE = itemgetter(1, 2)


def _is_digits(text: str) -> bool:
    """True for a non-empty run of ASCII digits (``str.isdigit`` accepts ``"²"``)."""
    return text.isdigit() and text.isascii()


def reason_phrase(status: int) -> str:
    """The default reason phrase for ``status`` (RFC 3261 §21), or a class default."""
    r = _STATUS_REASONS.get(status)
    if r:
        return r
    return {1: "Trying", 2: "OK", 3: "Redirect", 4: "Client Error", 5: "Server Error"}.get(
        status // 100, "Global Failure"
    )


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


def _fast_tag(value: str) -> str | None:
    """The ``tag`` header parameter of a From/To value, or ``None`` (RFC 3261 §19.3).

    Parameters after ``>`` (name-addr) or after the URI (addr-spec, where
    they are header parameters, §20.10) are searched; quoted display names
    cannot hide a ``;tag=`` because the search starts after the closing ``>``.
    """
    gt = value.rfind(">")
    if gt >= 0 and value.find(">") != gt:
        # a '>' in a display name or a parameter: only the full parser knows where
        # the name-addr ends
        return NameAddr.parse(value).tag
    rest = value[gt + 1 :] if gt >= 0 else value
    mentions = rest.lower().count("tag")
    if not mentions:
        return None
    i = rest.find(";tag=")
    if mentions > 1 or i < 0 or '"' in rest or "," in rest:
        # an odd spelling (";TAG =", a second tag in another case), a quoted
        # parameter that may hide ";tag=", or a comma: the full parser decides
        return NameAddr.parse(value).tag
    start = i + 5
    end = rest.find(";", start)
    tag = (rest[start:] if end < 0 else rest[start:end]).strip()
    return tag if tag else NameAddr.parse(value).tag


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
    def _from_parsed(
        cls, fields: list[tuple[str, str, str]], keys: list[str] | None = None
    ) -> Headers:
        """Wrap already-validated ``(key, canonical name, value)`` fields (not copied).

        ``keys``, when given, must be ``[f[0] for f in fields]``.
        """
        h = cls.__new__(cls)
        h._f = fields
        h._keys = keys
        h._cache = {}
        return h

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
        if key in _LIST_HEADERS:
            out: list[str] = []
            for k, _, v in self._f:
                if k == key:
                    out.extend(split_list_value(v))
            return out
        return [v for k, _, v in self._f if k == key]

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
        self._f.append((header_key(name), canonical_name(name), value))
        self._changed()

    def insert(self, index: int, name: str, value: str) -> None:
        """Insert a field before position ``index`` of all fields (0 = first)."""
        self._check(name, value)
        self._f.insert(index, (header_key(name), canonical_name(name), value))
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
                if len(parts) > 1:
                    self._f[i] = (k, n, ", ".join(parts[1:]))
                else:
                    del self._f[i]
                self._changed()
                return parts[0] if parts else v
        return None

    def items(self) -> list[tuple[str, str]]:
        """All fields as ``(canonical name, value)`` in order."""
        return list(map(_NAME_VALUE, self._f))

    def copy(self) -> Headers:
        """A shallow copy (values are immutable strings)."""
        return Headers._from_parsed(list(self._f))

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
        if not name or any(c not in _TOKEN_CHARS for c in name):
            raise ParseError(f"bad header name {name!r}")
        if "\r" in value or "\n" in value or "\x00" in value:
            raise ParseError(f"header {name} value contains CR, LF or NUL")


def _coerce_headers(headers: Headers | Iterable[tuple[str, str]] | None) -> Headers:
    if isinstance(headers, Headers):
        return headers
    return Headers(headers)


class Message(abc.ABC):
    """Common part of :class:`Request` and :class:`Response`.

    Attributes:
        headers: the :class:`Headers`.
        body: the body, bytes (its length is written as Content-Length).
    """

    __slots__ = ("headers", "body")
    is_request: bool = False

    headers: Headers
    body: bytes

    def _cached(self, key: str, build: Any) -> Any:
        cache = self.headers._cache
        try:
            return cache[key]
        except KeyError:
            value = cache[key] = build()
            return value

    def _required(self, key: str) -> str:
        v = self.headers._first(key)
        if v is None:
            raise ParseError(f"missing {_CANONICAL[key]} header")
        return v

    @property
    def via(self) -> list[Via]:
        """All Via values, top first (parsed, cached). Raises ParseError if malformed."""
        return self._cached("via", lambda: [Via.parse(v) for v in self.headers.get_all("Via")])

    @property
    def top_via(self) -> Via:
        """The topmost Via. Raises ParseError when there is none."""
        cache = self.headers._cache
        v = cache.get("top_via")
        if v is None:
            text = self.headers._first("via")
            if text is None:
                raise ParseError("missing Via header")
            if "," in text:
                parts = split_list_value(text)
                if not parts:
                    raise ParseError(f"empty Via value {text[:40]!r}")
                text = parts[0]
            v = cache["top_via"] = Via.parse(text)
        return v

    @property
    def call_id(self) -> str:
        """The Call-ID (RFC 3261 §20.8). Raises ParseError when missing or empty."""
        v = self.headers._first("call-id")
        if not v:
            raise ParseError("missing Call-ID header" if v is None else "empty Call-ID header")
        return v

    @property
    def cseq(self) -> CSeq:
        """The CSeq (parsed, cached). Raises ParseError when missing or malformed."""
        cache = self.headers._cache
        v = cache.get("cseq")
        if v is None:
            v = cache["cseq"] = CSeq.parse(self._required("cseq"))
        return v

    @property
    def from_(self) -> NameAddr:
        """The From header (parsed, cached). Raises ParseError when missing or malformed."""
        cache = self.headers._cache
        v = cache.get("from")
        if v is None:
            v = cache["from"] = NameAddr.parse(self._required("from"))
        return v

    @property
    def to(self) -> NameAddr:
        """The To header (parsed, cached). Raises ParseError when missing or malformed."""
        cache = self.headers._cache
        v = cache.get("to")
        if v is None:
            v = cache["to"] = NameAddr.parse(self._required("to"))
        return v

    def _tag(self, key: str) -> str | None:
        """The tag parameter of the From (``key="from"``) or To (``"to"``) value.

        Read without parsing the URI (C ``tag_param`` when built, else
        :func:`_fast_tag`; both hand odd values to the full name-addr parser).

        Raises:
            ParseError: the header is missing, or its odd value does not parse.
        """
        h = self.headers
        v = h._cache.get(key)
        if v is not None:
            return v.tag
        text = h._first(key)
        if text is None:
            raise ParseError(f"missing {_CANONICAL[key]} header")
        if _tag_param is not None:
            tag = _tag_param(text)
            if tag is not NotImplemented:
                return tag
        return _fast_tag(text)

    @property
    def from_tag(self) -> str | None:
        """The From tag without parsing the URI (the hot path of transaction/dialog matching;
        RFC 3261 §19.3). Raises ParseError when From is missing."""
        return self._tag("from")

    @property
    def to_tag(self) -> str | None:
        """The To tag without parsing the URI (RFC 3261 §19.3). Raises ParseError when To is
        missing."""
        return self._tag("to")

    @property
    def contact(self) -> list[NameAddr]:
        """All Contact values (parsed, cached); ``[]`` when absent."""
        return self._cached(
            "contact", lambda: [NameAddr.parse(v) for v in self.headers.get_all("Contact")]
        )

    @property
    def record_route(self) -> list[NameAddr]:
        """All Record-Route values, top first; ``[]`` when absent."""
        return self._cached(
            "rr", lambda: [NameAddr.parse(v) for v in self.headers.get_all("Record-Route")]
        )

    @property
    def max_forwards(self) -> int | None:
        """Max-Forwards as an int, or ``None`` when absent. ParseError if not a number."""
        v = self.headers.get("Max-Forwards")
        if v is None:
            return None
        v = v.strip()
        if not _is_digits(v) or len(v.lstrip("0")) > 3 or int(v) > 255:
            # RFC 3261 §20.22: 0-255 (RFC 4475 §3.1.2.4 rejects 300)
            raise ParseError(f"bad Max-Forwards: {v[:20]!r}")
        return int(v)

    @property
    def expires(self) -> int | None:
        """The Expires header in seconds, or ``None``. ParseError if not a number."""
        v = self.headers.get("Expires")
        if v is None:
            return None
        v = v.strip()
        if not _is_digits(v) or len(v.lstrip("0")) > 10 or int(v) > _MAX_DELTA_SECONDS:
            # RFC 3261 §20.19, §25.1: delta-seconds, at most 2**32-1
            raise ParseError(f"bad Expires: {v[:20]!r}")
        return int(v)

    @property
    def content_type(self) -> str | None:
        """The media type of the body, lower case without parameters, or ``None``."""
        v = self.headers.get("Content-Type")
        if v is None:
            return None
        return v.split(";", 1)[0].strip().lower()

    @abc.abstractmethod
    def _start_line(self) -> str:
        """The request or status line, without CRLF."""

    def to_bytes(self) -> bytes:
        """Serialise to bytes, writing a Content-Length equal to ``len(body)``."""
        body = self.body
        lines = [self._start_line()]
        cl = False
        for k, n, v in self.headers._f:
            if k == "content-length":
                if not cl:
                    lines.append(f"Content-Length: {len(body)}")
                    cl = True
                continue
            lines.append(f"{n}: {v}")
        if not cl:
            lines.append(f"Content-Length: {len(body)}")
        lines.append("")
        lines.append("")
        return "\r\n".join(lines).encode("utf-8") + body

    def __bytes__(self) -> bytes:
        return self.to_bytes()


class Request(Message):
    """A SIP request (RFC 3261 §7.1).

    Args:
        method: the method, e.g. ``"INVITE"`` (case-sensitive token).
        uri: the Request-URI, text or :class:`SipURI`.
        headers: a :class:`Headers` or ``(name, value)`` pairs.
        body: the body bytes.
    """

    __slots__ = ("method", "_uri_text", "_uri")
    is_request = True

    def __init__(
        self,
        method: str,
        uri: str | SipURI,
        headers: Headers | Iterable[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> None:
        self.method = method
        self.headers = _coerce_headers(headers)
        self.body = body
        self._uri: SipURI | None
        if isinstance(uri, SipURI):
            self._uri = uri
            self._uri_text = str(uri)
        else:
            self._uri = None
            self._uri_text = uri

    @property
    def uri(self) -> SipURI:
        """The Request-URI, parsed on first use. Raises ParseError (416 for other schemes)."""
        if self._uri is None:
            self._uri = SipURI.parse(self._uri_text)
        return self._uri

    @uri.setter
    def uri(self, value: str | SipURI) -> None:
        if isinstance(value, SipURI):
            self._uri = value
            self._uri_text = str(value)
        else:
            self._uri = None
            self._uri_text = value

    @property
    def uri_text(self) -> str:
        """The Request-URI exactly as received or set (the digest-uri, RFC 3261 §22.4)."""
        return self._uri_text

    def _start_line(self) -> str:
        return f"{self.method} {self._uri_text} {SIP_VERSION}"

    def copy(self) -> Request:
        """A copy with its own headers (body bytes shared)."""
        r = Request(self.method, self._uri_text, self.headers.copy(), self.body)
        r._uri = self._uri
        return r

    def __repr__(self) -> str:
        return f"<Request {self.method} {self._uri_text}>"


class Response(Message):
    """A SIP response (RFC 3261 §7.2).

    Args:
        status: the status code, 100-699.
        reason: the reason phrase; the RFC 3261 §21 default when ``None``.
        headers: a :class:`Headers` or ``(name, value)`` pairs.
        body: the body bytes.
    """

    __slots__ = ("status", "reason")
    is_request = False

    def __init__(
        self,
        status: int,
        reason: str | None = None,
        headers: Headers | Iterable[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> None:
        self.status = status
        self.reason = reason if reason is not None else reason_phrase(status)
        self.headers = _coerce_headers(headers)
        self.body = body

    @property
    def is_provisional(self) -> bool:
        """True for 1xx."""
        return self.status < 200

    @property
    def is_success(self) -> bool:
        """True for 2xx."""
        return 200 <= self.status < 300

    def _start_line(self) -> str:
        return f"{SIP_VERSION} {self.status} {self.reason}"

    def copy(self) -> Response:
        """A copy with its own headers (body bytes shared)."""
        return Response(self.status, self.reason, self.headers.copy(), self.body)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


_REQUIRED = ("via", "from", "to", "call-id", "cseq")
_REQUIRED_SET = frozenset(_REQUIRED)
_METHODS = frozenset(
    ("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE", "NOTIFY",
     "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE")
)
_SINGLE = ("from", "to", "call-id", "cseq")


def parse_message(
    data: bytes, *, stream: bool = False, max_size: int = MAX_MESSAGE_SIZE
) -> Request | Response:
    """Parse one SIP message.

    Args:
        data: the bytes of one datagram, or one message framed from a stream.
        stream: True when ``data`` came from a stream transport: a missing
            Content-Length is then an error (RFC 3261 §18.3); for datagrams the
            body runs to the end and bytes past Content-Length are discarded.
        max_size: the largest message accepted, in bytes (CRLFs before the
            start line included).

    Returns:
        A :class:`Request` or :class:`Response`.

    Raises:
        ParseError: for any defect: status 505 for a version other than SIP/2.0,
            413 for an oversized message, 400 otherwise, with a detail naming the
            defect.  Nothing else escapes.
    """
    if type(data) is not bytes:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ParseError("message must be bytes")
        data = bytes(data)
    if len(data) > max_size:
        raise ParseError(f"message of {len(data)} bytes is too large", status=413)
    # RFC 3261 §7.5: ignore CRLFs before the start line (keepalives).
    if data.startswith(_CR_OR_LF):
        data = data.lstrip(b"\r\n")
    end = data.find(b"\r\n\r\n")
    if end > 0 and _parse_head is not None:
        common = _parse_head(data, end, _NAMES)
        if common is not None:
            # the C accelerator checked what the code below checks, for a common
            # message: build it from the parts
            fields, keys, is_request, first, second, seq, cseq_method, length = common
            headers = _NEW(Headers)
            headers._f = fields
            headers._keys = keys
            headers._cache = {"cseq": _new_cseq(seq, cseq_method)}
            msg: Request | Response
            if is_request:
                msg = _NEW(Request)
                msg.method = first
                msg._uri_text = second
                msg._uri = None
            else:
                msg = _NEW(Response)
                msg.status = first
                msg.reason = second
            msg.headers = headers
            if length >= 0:
                msg.body = data[end + 4 : end + 4 + length]
            elif stream:
                raise ParseError("missing Content-Length on a stream transport")
            else:
                msg.body = data[end + 4 :]
            return msg
    split = _split_head(data, end, _NAMES) if end > 0 and _split_head is not None else None
    if split is not None:
        # the C accelerator split a plain header section (printable ASCII, CRLF
        # line ends, names seen before); anything else takes the pure path
        start, fields, keys = split
        body_start = end + 4
    else:
        start, fields, keys, body_start = _split_general(data, end)
    headers = _NEW(Headers)
    headers._f = fields
    headers._keys = keys
    headers._cache = cache = {}

    # start line (RFC 3261 §7.1, §7.2, §25.1)
    m = _START_LINE(start)
    if m is not None:
        # the common shapes: "SIP/2.0 200 OK" or "INVITE sip:... SIP/2.0"
        method, uri_text, code, reason = m.groups()
        if method is None:
            msg = _NEW(Response)
            msg.status = int(code)
            msg.reason = reason.strip(" \t") if reason else ""
        else:
            msg = _NEW(Request)
            msg.method = method
            msg._uri_text = uri_text
            msg._uri = None
    else:
        msg = _start_line(start)
    msg.headers = headers

    # mandatory, single-valued headers (RFC 3261 §8.1.1, §8.2.2, §7.3.1;
    # RFC 4475 §3.1.2.19: several Call-ID/CSeq/From/To values are a 400)
    present = set(keys)
    if not present >= _REQUIRED_SET:
        for req in _REQUIRED:
            if req not in present:
                raise ParseError(f"missing {_CANONICAL[req]} header")
    repeated = len(keys) - len(present)
    if repeated and repeated != keys.count("via") - 1:  # more than the Vias repeat
        for req in _SINGLE:
            count = keys.count(req)
            if count > 1:
                raise ParseError(f"{count} {_CANONICAL[req]} header fields")
    else:
        repeated = 0  # only Vias repeat (if anything): not Content-Length
    # parsed and cached now: a malformed CSeq is a ParseError of the parse
    cseq_text = fields[keys.index("cseq")][2]
    num, _, cseq_method = cseq_text.partition(" ")
    if cseq_method in _METHODS and len(num) <= 10 and num.isdigit() and num.isascii():
        # "digits SP known-method": what CSeq.parse gives, without the regex
        seq = int(num)
        if seq >= 4294967296:
            raise ParseError(f"CSeq number out of range: {cseq_text!r}")
        cseq = cache["cseq"] = _new_cseq(seq, cseq_method)
    else:
        cseq = cache["cseq"] = CSeq.parse(cseq_text)
    if msg.is_request and cseq.method != msg.method:  # type: ignore[union-attr]
        raise ParseError(
            f"CSeq method {cseq.method} does not match the request method "
            f"{msg.method}"  # type: ignore[union-attr]
        )

    # body (RFC 3261 §18.3, §20.14)
    if "content-length" in present:
        cl_text = fields[keys.index("content-length")][2]
        if (
            repeated
            and keys.count("content-length") > 1
            and any(v != cl_text for v in headers.get_all("Content-Length"))
        ):
            raise ParseError("several differing Content-Length header fields")
        if len(cl_text) < 10 and cl_text.isdigit() and cl_text.isascii():
            length = int(cl_text)
        else:
            length = _content_length(cl_text)
        body = data[body_start : body_start + length]
        if len(body) < length:
            # RFC 3261 §18.3: a datagram shorter than Content-Length is discarded
            raise ParseError(
                f"Content-Length {length} exceeds the {len(data) - body_start} body bytes received"
            )
    elif stream:
        raise ParseError("missing Content-Length on a stream transport")
    else:
        body = data[body_start:]
    msg.body = body
    return msg


def _split_general(data: bytes, end: int) -> tuple[str, list[tuple[str, str, str]], list[str], int]:
    """Split ``data`` into start line, header fields and body offset (RFC 3261 §7).

    ``end`` is ``data.find(b"\\r\\n\\r\\n")``.  Returns ``(start line, fields, lookup
    keys, body offset)`` where fields are ``(lookup key, canonical name, value)``.  The
    reference path of :func:`parse_message`, taken for whatever the C accelerator
    declines (or always, without it).

    Raises:
        ParseError: a malformed header section.
    """
    if end >= 0:
        head_b = data[:end]
        body_start = end + 4
    else:
        end = data.find(b"\n\n")
        if end < 0:
            if data.endswith(b"\n"):
                # header section ending without the empty line: tolerated
                head_b = data.rstrip(b"\r\n")
                body_start = len(data)
            else:
                raise ParseError("no blank line after the header fields")
        else:
            head_b = data[:end].rstrip(b"\r")
            body_start = end + 2
    try:
        head = head_b.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ParseError(f"header section is not UTF-8 (byte {e.start})") from None
    if "\x00" in head:
        raise ParseError("NUL byte in the header section")
    lines = head.splitlines()
    # splitlines() also splits at a bare CR or LF (and at VT, FF, NEL...): when the
    # head does not end with a line break and the lengths add up, every separator
    # was a CRLF and the lines are those of head.split("\r\n"); otherwise the
    # careful path below decides
    if (
        not head
        or head[-1] in _LINE_BREAKS
        or len(head) != sum(map(len, lines)) + 2 * len(lines) - 2
    ):
        lines = head.split("\r\n")
        # every CR and LF of a well-formed header section is part of a CRLF line end
        if len(head_b) - len(head_b.translate(None, b"\r\n")) != 2 * len(lines) - 2:
            head, head_b, body_start, lines = _bare_lf_head(data, head, head_b, body_start)
    start = lines[0]
    if not start:
        raise ParseError("empty start line")
    fields: list[tuple[str, str, str]] = []
    append = fields.append
    names_get = _NAMES.get
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        entry = names_get(name) if sep else None
        if entry is None:
            # not a name seen before (or no colon, a folded line, an error)
            entry = _new_field_name(line, name, sep, fields)
            if entry is None:  # a continuation line, joined to the previous field
                continue
        append((entry[0], entry[1], value.strip(" \t")))
    keys = list(map(_FIRST, fields))
    return start, fields, keys, body_start


_CR_OR_LF = (b"\r", b"\n")
_NEW = object.__new__
_TOKEN_RE = r"[A-Za-z0-9\-.!%*_+`'~]"
_START_LINE = re.compile(
    rf"({_TOKEN_RE}+) ([^ \t]*:[^ \t]*) SIP/2\.0|SIP/2\.0 ([1-6][0-9][0-9])(?: (.*))?"
).fullmatch
"""The common start lines, each accepted exactly as :func:`_start_line` would.

Request-Line: a token, exactly one SP, a URI holding a colon and no SP or HT, one SP,
``SIP/2.0``.  Status-Line: ``SIP/2.0``, a status of 100-699, and an optional reason.
"""


def _start_line(start: str) -> Request | Response:
    """Parse any start line (RFC 3261 §7.1, §7.2, §25.1) into an empty message.

    Raises:
        ParseError: 505 for a version other than SIP/2.0, else 400.
    """
    msg: Request | Response
    if start.startswith("SIP/") or (start[0] in "sS" and start[:4].upper() == "SIP/"):
        version, sp, rest = start.partition(" ")
        if version.upper() != SIP_VERSION:
            raise ParseError(f"unsupported SIP version {version[:20]!r}", status=505)
        code, _, reason = rest.partition(" ")
        if len(code) != 3 or not (code.isdigit() and code.isascii()):
            raise ParseError(f"bad status code {code[:20]!r}")
        status = int(code)
        if status < 100 or status > 699:
            raise ParseError(f"status code {status} out of range")
        msg = _NEW(Response)
        msg.status = status
        msg.reason = reason.strip(" \t")
    else:
        # Request-Line = Method SP Request-URI SP SIP-Version: exactly one SP
        # between elements (RFC 4475 §3.1.2.9 answers extra spaces with 400)
        parts = start.split(" ")
        if len(parts) != 3:
            raise ParseError(f"bad request line {start[:60]!r}")
        method, uri_text, version = parts
        if version != SIP_VERSION:
            vu = version.upper()
            if vu == SIP_VERSION:
                pass
            elif vu.startswith("SIP/") and len(vu) > 4:
                raise ParseError(f"unsupported SIP version {version[:20]!r}", status=505)
            else:
                raise ParseError(f"bad request line {start[:60]!r}")
        if not method:
            raise ParseError(f"bad request line {start[:60]!r}")
        for ch in method:
            if ch not in _TOKEN_CHARS:
                raise ParseError(f"bad method {method[:20]!r}")
        if ":" not in uri_text or "\t" in uri_text:
            raise ParseError(f"bad Request-URI {uri_text[:60]!r}")
        msg = _NEW(Request)
        msg.method = method
        msg._uri_text = uri_text
        msg._uri = None
    return msg


_LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
"""The characters at which ``str.splitlines`` ends a line."""

_NAMES: dict[str, tuple[str, str]] = {}
"""Header field names as written before the colon (trailing LWS included) that passed
validation -> ``(lookup key, canonical name)``; a bounded memo of :func:`_new_field_name`."""
_NAMES_MAX = 4096
_NAMES_MAX_LEN = 64
_NAMES_SEED = {n: (k, _CANONICAL[n]) for n, k in _KEY.items()}
_NAMES.update(_NAMES_SEED)


def _new_field_name(
    line: str, name: str, sep: str, fields: list[tuple[str, str, str]]
) -> tuple[str, str] | None:
    """Classify a header line whose name is not in ``_NAMES`` (RFC 3261 §7.3.1, §7.3.3).

    Returns ``(lookup key, canonical name)`` for a field line, remembering a
    valid name, or ``None`` for a continuation line, which is joined to the
    last field of ``fields`` here.

    Raises:
        ParseError: an empty line, a continuation before any field, no colon,
            an empty or non-token name.
    """
    if not line:
        raise ParseError("empty line inside the header section")
    c0 = line[0]
    if c0 == " " or c0 == "\t":
        # folded continuation (RFC 3261 §7.3.1): joins the previous field
        if not fields:
            raise ParseError("continuation line before any header field")
        k, n, v = fields[-1]
        fields[-1] = (k, n, (v + " " + line.strip(" \t")).strip(" \t"))
        return None
    if not sep:
        raise ParseError(f"header field without colon: {line[:40]!r}")
    stripped = name.rstrip(" \t")
    if not stripped:
        raise ParseError("header field with an empty name")
    if len(stripped) > MAX_HEADER_NAME:
        raise ParseError(f"header name of {len(stripped)} characters (at most {MAX_HEADER_NAME})")
    key = _KEY.get(stripped)
    if key is not None:
        entry = (key, _CANONICAL[stripped])
    elif not stripped.isascii():
        # a token is ASCII (RFC 3261 §25.1); checked before lower(), which maps
        # U+212A KELVIN SIGN to "k" (the compact form of Supported)
        raise ParseError(f"bad header name {stripped[:40]!r}")
    else:
        lname = stripped.lower()
        key = _KEY.get(lname)
        if key is not None:
            entry = (key, _CANONICAL[lname])
        else:
            for ch in stripped:
                if ch not in _TOKEN_CHARS:
                    raise ParseError(f"bad header name {stripped[:40]!r}")
            entry = (lname, stripped)
    if len(name) <= _NAMES_MAX_LEN:
        # bounded in count and size: a peer sending ever new (long) names cannot
        # grow it past 4,096 spellings of at most 64 characters; when full it starts
        # again from the canonical spellings, so names learned from junk (even from
        # a message rejected later) cannot keep real names out of it for good
        if len(_NAMES) >= _NAMES_MAX:
            _NAMES.clear()
            _NAMES.update(_NAMES_SEED)
        _NAMES[name] = entry
    return entry


def _bare_lf_head(
    data: bytes, head: str, head_b: bytes, body_start: int
) -> tuple[str, bytes, int, list[str]]:
    """Re-split a header section that uses bare LF line ends (RFC 3261 §7.5 tolerance).

    Returns ``(head, head_b, body_start, lines)``.

    Raises:
        ParseError: a CR that does not end a line.
    """
    if head_b.count(b"\r") != head_b.count(b"\r\n"):
        raise ParseError("bare CR in the header section")
    lf = data.find(b"\n\n", 0, len(head_b) + 2)
    if lf >= 0 and lf < len(head_b):
        # the empty line is LF LF: what followed was already the body
        head_b = data[:lf].rstrip(b"\r")
        body_start = lf + 2
        try:
            head = head_b.decode("utf-8")
        except UnicodeDecodeError as e:  # pragma: no cover - a prefix of valid UTF-8 text
            raise ParseError(f"header section is not UTF-8 (byte {e.start})") from None
    lines = head.replace("\r\n", "\n").split("\n")
    return head, head_b, body_start, lines


def _content_length(text: str) -> int:
    """The value of a Content-Length header (RFC 3261 §20.14): 1*DIGIT, leading zeros allowed.

    Raises:
        ParseError: not a run of digits, or more than ten significant digits.
    """
    text = text.strip(" \t")
    if not _is_digits(text):
        raise ParseError(f"bad Content-Length {text[:20]!r}")
    digits = text.lstrip("0")
    if len(digits) > 10:
        raise ParseError(f"Content-Length {text[:20]}... is too large")
    return int(digits or "0")


__all__ = [
    "Headers",
    "MAX_MESSAGE_SIZE",
    "Message",
    "Request",
    "Response",
    "SIP_VERSION",
    "canonical_name",
    "header_key",
    "parse_message",
    "reason_phrase",
    "split_list_value",
]
