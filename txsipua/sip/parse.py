"""Parsing one SIP message from bytes (RFC 3261 §7, §18.3, §25).

:func:`parse_message` splits the header section into start line and fields in
one pass over ``str.split`` and checks what every message must have (the five
mandatory headers, one CSeq matching the method, a Content-Length that fits).
This pure code is the reference: the optional C accelerator ``_speedups.parse_head``
does the same for the common shapes and declines (``None``) everything else, so
this code decides every odd case and raises every error.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

from txsipua.errors import ParseError
from txsipua.sip import _abnf
from txsipua.sip.headers import _CANONICAL, _FIRST, _KEY, _TOKEN_CHARS, Headers
from txsipua.sip.message import SIP_VERSION, Request, Response
from txsipua.sip.values import CSeq, _new_cseq

_parse_head: Callable[[bytes, int, dict[str, tuple[str, str]]], Any] | None
try:
    # the optional C accelerator, built by setup.py when a compiler is present;
    # TXSIPUA_PURE=1 (any value but empty or 0) turns it off
    if os.environ.get("TXSIPUA_PURE", "0") not in ("", "0"):
        raise ImportError("TXSIPUA_PURE is set")
    from txsipua.sip._speedups import parse_head as _parse_head
except ImportError:  # no compiler at install time, or asked for the pure code
    _parse_head = None

MAX_MESSAGE_SIZE = 65535
"""Largest message accepted by default, in bytes (a UDP datagram's maximum)."""

MAX_HEADER_NAME = 128
"""Longest header field name accepted, in characters (the longest registered name has 32):
a longer one is a 400, so junk names cannot make a peer's message worth holding."""


_REQUIRED = ("via", "from", "to", "call-id", "cseq")
_REQUIRED_SET = frozenset(_REQUIRED)
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
    start, fields, keys, body_start = _split(data, end)
    headers = _NEW(Headers)
    headers._f = fields
    headers._keys = keys
    headers._cache = cache = {}
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
    cseq = cache["cseq"] = CSeq.parse(fields[keys.index("cseq")][2])
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


def _split(data: bytes, end: int) -> tuple[str, list[tuple[str, str, str]], list[str], int]:
    """Split ``data`` into start line, header fields and body offset (RFC 3261 §7).

    ``end`` is ``data.find(b"\\r\\n\\r\\n")``.  Returns ``(start line, fields, lookup
    keys, body offset)`` where fields are ``(lookup key, canonical name, value)``.  Taken
    for whatever the C accelerator declines (or always, without it).

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
_REQUEST_LINE = re.compile(_abnf.REQUEST_LINE.replace("SIP/", "(?i:SIP)/")).fullmatch
_STATUS_LINE = re.compile(_abnf.STATUS_LINE.replace("SIP/", "(?i:SIP)/")).fullmatch
"""The start lines (RFC 3261 §7.1, §7.2, §25.1); the version's letters in any case."""


def _start_line(start: str) -> Request | Response:
    """Parse the start line (RFC 3261 §7.1, §7.2, §25.1) into an empty message.

    Raises:
        ParseError: 505 for a version other than SIP/2.0, else 400.
    """
    msg: Request | Response
    m = _REQUEST_LINE(start)
    if m is not None:
        msg = _NEW(Request)
        msg.method = m[1]
        msg._uri_text = m[2]
        msg._uri = None
        return msg
    m = _STATUS_LINE(start)
    if m is not None:
        msg = _NEW(Response)
        msg.status = int(m[1])
        reason = m[2]
        msg.reason = reason.strip(" \t") if reason else ""
        return msg
    raise _start_line_error(start)


def _start_line_error(start: str) -> ParseError:
    """The error for a start line that neither start-line pattern matches."""
    if start[:4].upper() == "SIP/":
        # Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        version, _, rest = start.partition(" ")
        if version.upper() != SIP_VERSION:
            return ParseError(f"unsupported SIP version {version[:20]!r}", status=505)
        code = rest.partition(" ")[0]
        if len(code) == 3 and code.isdigit() and code.isascii():
            return ParseError(f"status code {code} out of range")
        return ParseError(f"bad status code {code[:20]!r}")
    # Request-Line = Method SP Request-URI SP SIP-Version: exactly one SP between
    # elements (RFC 4475 §3.1.2.9 answers extra spaces with 400)
    parts = start.split(" ")
    if len(parts) != 3 or not parts[0]:
        return ParseError(f"bad request line {start[:60]!r}")
    method, uri_text, version = parts
    vu = version.upper()
    if vu != SIP_VERSION:
        if vu.startswith("SIP/") and len(vu) > 4:
            return ParseError(f"unsupported SIP version {version[:20]!r}", status=505)
        return ParseError(f"bad request line {start[:60]!r}")
    if not _TOKEN(method):
        return ParseError(f"bad method {method[:20]!r}")
    return ParseError(f"bad Request-URI {uri_text[:60]!r}")


_TOKEN = re.compile(_abnf.TOKEN).fullmatch
_CONTENT_LENGTH = re.compile(_abnf.CONTENT_LENGTH).fullmatch


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
    m = _CONTENT_LENGTH(text)
    if m is not None:
        return int(m[1])
    text = text.strip(" \t")
    if text.isdigit() and text.isascii():
        raise ParseError(f"Content-Length {text[:20]}... is too large")
    raise ParseError(f"bad Content-Length {text[:20]!r}")


__all__ = ["MAX_HEADER_NAME", "MAX_MESSAGE_SIZE", "parse_message"]
