"""SIP messages: requests, responses and their typed accessors (RFC 3261 §7, §20).

Theory of operation: :func:`~txsipua.sip.parse.parse_message` (re-exported here)
splits a datagram (or a framed stream message) into start line, header fields
and body; header values stay text until a typed accessor (:attr:`Message.via`,
:attr:`Message.cseq`...) parses them on first use and caches the result.  Any
mutation of the headers drops the cache.  Whatever bytes arrive, only
:class:`~txsipua.errors.ParseError` escapes.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable, Iterable
from typing import Any

from txsipua.errors import ParseError
from txsipua.sip.headers import (
    _CANONICAL,
    Headers,
    _coerce_headers,
    canonical_name,
    header_key,
    split_list_value,
)
from txsipua.sip.uri import SipURI
from txsipua.sip.values import CSeq, NameAddr, Via, header_tag

_tag_param: Callable[[str], Any] | None  # str | None | NotImplemented
try:
    # the optional C accelerator, built by setup.py when a compiler is present;
    # TXSIPUA_PURE=1 (any value but empty or 0) turns it off
    if os.environ.get("TXSIPUA_PURE", "0") not in ("", "0"):
        raise ImportError("TXSIPUA_PURE is set")
    from txsipua.sip._speedups import tag_param as _tag_param
except ImportError:  # no compiler at install time, or asked for the pure code
    _tag_param = None

SIP_VERSION = "SIP/2.0"

_MAX_DELTA_SECONDS = 2**32 - 1

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

        Read without parsing the URI (:func:`~txsipua.sip.values.header_tag`; the C
        ``tag_param`` for the common shapes when built): the tag equals
        ``from_.tag``/``to.tag`` whenever those parse.

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
        return header_tag(text)

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


# parse_message needs Request and Response: imported once they exist (txsipua.sip
# imports this module first, so the cycle always resolves in this order)
from txsipua.sip.parse import MAX_HEADER_NAME, MAX_MESSAGE_SIZE, parse_message  # noqa: E402

__all__ = [
    "Headers",
    "MAX_HEADER_NAME",
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
