"""Typed header values: Via, CSeq and name-addr (RFC 3261 §20, §25.1).

Each type is an immutable ``attrs`` value with ``parse(text)`` raising only
:class:`~txsipua.errors.ParseError` and ``str(value)`` giving the wire form.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from txsipua.errors import ParseError
from txsipua.sip.uri import (
    SipURI,
    _format_params,
    _split_hostport,
    parse_any_uri,
)

BRANCH_MAGIC_COOKIE = "z9hG4bK"
"""The prefix of every RFC 3261 branch parameter (§8.1.1.7)."""

_TOKEN_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
)
_HOST_CHARS = frozenset("0123456789abcdefABCDEF:.[]")

_via_parts: Callable[[str], Any] | None  # tuple[str, str, int | None, dict] | NotImplemented
try:
    # the optional C accelerator (txsipua/sip/_speedups_via.h), built by setup.py when a
    # compiler is present; TXSIPUA_PURE=1 (any value but empty or 0) turns it off
    if os.environ.get("TXSIPUA_PURE", "0") not in ("", "0"):
        raise ImportError("TXSIPUA_PURE is set")
    from txsipua.sip import _speedups

    _via_parts = _speedups.via_parts  # type: ignore[attr-defined,unused-ignore]
except (ImportError, AttributeError):  # no compiler at install time, an older build, or
    _via_parts = None  # asked for the pure code


def _freeze(d: Mapping[str, str | None] | None) -> dict[str, str | None]:
    return dict(d) if d else {}


def parse_header_params(text: str) -> dict[str, str | None]:
    """Parse ``;name=value;flag`` header parameters (RFC 3261 §7.3.1).

    Quoted-string values keep their quotes removed. Names are lower-cased.

    Raises:
        ParseError: an empty parameter name or an unterminated quoted string.
    """
    params: dict[str, str | None] = {}
    i, n = 0, len(text)
    while i < n:
        if text[i] in "; \t":
            i += 1
            continue
        j = i
        while j < n and text[j] not in "=;":
            j += 1
        name = text[i:j].strip().lower()
        if not name:
            raise ParseError(f"empty header parameter name in {text!r}")
        if j < n and text[j] == "=":
            j += 1
            while j < n and text[j] in " \t":
                j += 1
            if j < n and text[j] == '"':
                k = j + 1
                buf = []
                while k < n and text[k] != '"':
                    if text[k] == "\\" and k + 1 < n:
                        k += 1
                    buf.append(text[k])
                    k += 1
                if k >= n:
                    raise ParseError(f"unterminated quoted string in {text!r}")
                params[name] = "".join(buf)
                i = k + 1
            else:
                k = text.find(";", j)
                if k < 0:
                    k = n
                params[name] = text[j:k].strip()
                i = k
        else:
            params[name] = None
            i = j
    return params


def format_header_params(params: Mapping[str, str | None]) -> str:
    """Format parameters as ``;name=value`` (RFC 3261 §7.3.1, §25.1 generic-param).

    A value is written bare when it is a token or an IP-address-like host (``received=
    2001:db8::1``, ``maddr=[2001:db8::1]``), else as a quoted-string with ``\\`` and ``"``
    escaped; ``None`` writes a flag.
    """
    out = []
    for k, v in params.items():
        if v is None:
            out.append(f";{k}")
        elif v and (all(c in _TOKEN_CHARS for c in v) or all(c in _HOST_CHARS for c in v)):
            out.append(f";{k}={v}")
        else:
            out.append(';{}="{}"'.format(k, v.replace("\\", "\\\\").replace('"', '\\"')))
    return "".join(out)


@attrs.frozen
class Via:
    """One Via header value (RFC 3261 §20.42, §18, RFC 3581).

    Attributes:
        transport: ``"UDP"``, ``"TCP"``, ``"TLS"``, ``"WS"``... (upper case).
        host: sent-by host.
        port: sent-by port, or ``None``.
        params: ``branch``, ``received``, ``rport``, ``maddr``, ``ttl``... ;
            ``None`` for a flag (an ``rport`` without value).
        protocol: ``"SIP/2.0"``.
    """

    transport: str = "UDP"
    host: str = ""
    port: int | None = None
    params: dict[str, str | None] = attrs.field(factory=dict, converter=_freeze)
    protocol: str = "SIP/2.0"

    @classmethod
    def parse(cls, text: str) -> Via:
        """Parse one Via value, e.g. ``"SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1"``.

        Raises:
            ParseError: missing protocol, transport or sent-by.
        """
        if _via_parts is not None:
            # the C fast path: (transport, host, port, params) for exactly the text
            # _VIA_FAST accepts (port <= 65535), else NotImplemented
            parts = _via_parts(text)
            if parts is not NotImplemented:
                v = _VIA_NEW(Via)
                _via_transport(v, parts[0])
                _via_host(v, parts[1])
                _via_port(v, parts[2])
                _via_params(v, parts[3])
                _via_protocol(v, "SIP/2.0")
                return v
        m = _VIA_FAST(text)
        if m is None:
            return cls._parse_general(text)
        # ``SIP/2.0/UDP host[:port][;name[=token]]...``: what the general path
        # computes, from one C-speed match; built inline (no helper calls: each
        # Python-level call costs about as much as a slot store)
        transport, host, port_text, ptext = m.groups()
        port = None
        if port_text is not None:
            port = int(port_text)
            if port > 65535:
                return cls._parse_general(text)  # raises with the usual detail
        params: dict[str, str | None] = {}
        if ptext is not None:
            for item in ptext.split(";"):
                k, sep, value = item.partition("=")
                params[_NAMES_GET(k) or k.lower()] = value if sep else None
        v = _VIA_NEW(Via)
        _via_transport(v, _TRANSPORTS_GET(transport) or transport.upper())
        _via_host(v, host)
        _via_port(v, port)
        _via_params(v, params)
        _via_protocol(v, "SIP/2.0")
        return v

    @classmethod
    def _parse_general(cls, text: str) -> Via:
        """:meth:`parse` for any text (the fast path covers only the common shape)."""
        text = text.strip()
        proto, sep, rest = text.partition("/")
        if not sep:
            raise ParseError(f"bad Via: {text!r}")
        version, sep, rest = rest.partition("/")
        if not sep:
            raise ParseError(f"bad Via: {text!r}")
        rest = rest.lstrip()
        i = 0
        n = len(rest)
        while i < n and rest[i] not in " \t":
            i += 1
        transport = rest[:i].upper()
        rest = rest[i:].strip()
        if not transport or not rest:
            raise ParseError(f"bad Via, no transport or sent-by: {text!r}")
        hostport, _, ptext = rest.partition(";")
        hostport = hostport.strip(" \t")
        if " " in hostport or "\t" in hostport:
            # sent-by = host [ COLON port ]: whitespace only around the colon
            hostport = ":".join(p.strip(" \t") for p in hostport.split(":"))
            if " " in hostport or "\t" in hostport:
                raise ParseError(f"bad Via sent-by: {text[:60]!r}")
        host, port = _split_hostport(hostport, text)
        params = parse_header_params(ptext) if ptext else {}
        proto = proto.strip(" \t").upper()
        version = version.strip(" \t")
        for word in (proto, version, transport):
            if not word or any(c not in _TOKEN_CHARS for c in word):
                raise ParseError(f"bad Via sent-protocol: {text[:60]!r}")
        return cls(transport, host, port, params, f"{proto}/{version}")

    @property
    def branch(self) -> str | None:
        """The branch parameter (RFC 3261 §8.1.1.7), or ``None``."""
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        """The ``received`` parameter (§18.2.1), or ``None``."""
        return self.params.get("received")

    @property
    def rport(self) -> int | str | None:
        """RFC 3581 ``rport``: ``None`` absent, ``""`` asked for (flag), or the port number."""
        if "rport" not in self.params:
            return None
        v = self.params["rport"]
        if v is None or v == "":
            return ""
        try:
            return int(v)
        except ValueError:
            return ""

    @property
    def sent_by(self) -> tuple[str, int | None]:
        """``(host, port)`` of the sent-by."""
        return (self.host, self.port)

    def with_params(self, **params: str | None) -> Via:
        """Return a copy with the given parameters set (``None`` for a flag)."""
        p = dict(self.params)
        p.update(params)
        return attrs.evolve(self, params=p)

    def __str__(self) -> str:
        hp = self.host if self.port is None else f"{self.host}:{self.port}"
        return f"{self.protocol}/{self.transport} {hp}{format_header_params(self.params)}"


@attrs.frozen
class CSeq:
    """The CSeq header value (RFC 3261 §20.16): a sequence number and a method.

    Attributes:
        seq: 32-bit unsigned sequence number.
        method: the request method, case-sensitive.
    """

    seq: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        """Parse ``"4711 INVITE"``.

        Raises:
            ParseError: not a number and a method token, or a number that is not
                a 32-bit unsigned integer (RFC 3261 §8.1.1.5; RFC 4475 §3.1.2.4).
        """
        m = _CSEQ_FAST(text)
        if m is not None:
            seq_text, method = m.groups()
            seq = int(seq_text)
            if seq < 4294967296:
                c = _CSEQ_NEW(CSeq)
                _cseq_seq(c, seq)
                _cseq_method(c, method)
                return c
        return cls._parse_general(text)

    @classmethod
    def _parse_general(cls, text: str) -> CSeq:
        """:meth:`parse` for any text (the fast path covers ``digits SP token``)."""
        parts = text.split()
        if len(parts) != 2 or not (parts[0].isdigit() and parts[0].isascii()):
            raise ParseError(f"bad CSeq: {text[:40]!r}")
        if len(parts[0].lstrip("0")) > 10 or any(c not in _TOKEN_CHARS for c in parts[1]):
            raise ParseError(f"bad CSeq: {text[:40]!r}")
        seq = int(parts[0])
        if seq >= 2**32:
            raise ParseError(f"CSeq number out of range: {text!r}")
        return cls(seq, parts[1])

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


@attrs.frozen
class NameAddr:
    """A name-addr or addr-spec with header parameters (RFC 3261 §20.10, §20.20).

    Used for From, To, Contact, Route, Record-Route, Refer-To.

    Attributes:
        uri: the URI.
        display_name: the display name (unquoted), or ``None``.
        params: header parameters (``tag``, ``expires``, ``q``...), outside the URI.
        wildcard: True for the ``Contact: *`` form of REGISTER (§10.2.2).
    """

    uri: SipURI
    display_name: str | None = None
    params: dict[str, str | None] = attrs.field(factory=dict, converter=_freeze)
    wildcard: bool = False

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        """Parse ``"Alice" <sip:alice@example.com>;tag=1928`` or ``sip:bob@example.com;tag=2``.

        In the addr-spec form (no angle brackets) the parameters after the URI
        are header parameters, as RFC 3261 §20.10 requires.

        Raises:
            ParseError: malformed display name, brackets or URI.
        """
        m = _NAME_ADDR_URI_FAST(text)
        if m is not None:
            # ``"Quoted" <URI>;params``, ``Token words <URI>;params`` or ``<URI>;params``
            # with a common-shape SIP URI: one match for the whole value, the
            # SipURI built inline too (what uri._uri_from_match does, without its calls)
            quoted, words, scheme, user, host, port_text, uptext, ptext = m.groups()
            port = None
            if port_text is not None:
                port = int(port_text)
                if port > 65535:
                    return cls._parse_general(text)  # raises with the usual detail
            uparams: dict[str, str | None] = {}
            if uptext is not None:
                for item in uptext.split(";"):
                    k, sep, value = item.partition("=")
                    uparams[_NAMES_GET(k) or k.lower()] = value if sep else None
            uri = _URI_NEW(SipURI)
            _uri_scheme(uri, scheme)
            _uri_user(uri, user)
            _uri_password(uri, None)
            _uri_host(uri, host)
            _uri_port(uri, port)
            _uri_params(uri, uparams)
            _uri_headers(uri, {})
        else:
            m = _NAME_ADDR_FAST(text)
            if m is None:
                return cls._parse_general(text)
            # the same shape with any URI between the brackets (SipURI.parse decides)
            quoted, words, uri_text, ptext = m.groups()
            uri = parse_any_uri(uri_text)
        if quoted is None:
            display = words  # None, or the words without their trailing LWS
        elif "\\" in quoted:
            display = _UNESCAPE(r"\1", quoted) or None
        else:
            display = quoted or None
        params: dict[str, str | None] = {}
        if ptext is not None:
            for item in ptext.split(";"):
                k, sep, value = item.partition("=")
                params[_NAMES_GET(k) or k.lower()] = value if sep else None
            if '"' in ptext:  # ;+sip.instance="<urn:...>": the quotes go, as in the general path
                for k, value in params.items():
                    if value and value[0] == '"':
                        params[k] = value[1:-1]
        na = _NAME_ADDR_NEW(NameAddr)
        _na_uri(na, uri)
        _na_display(na, display)
        _na_params(na, params)
        _na_wildcard(na, False)
        return na

    @classmethod
    def _parse_general(cls, text: str) -> NameAddr:
        """:meth:`parse` for any text (the fast path covers only the common shape)."""
        text = text.strip()
        if text == "*":
            return cls(SipURI(host="*"), None, {}, True)
        display: str | None = None
        rest = text
        if text.startswith('"'):
            # quoted-string: a backslash escapes the next character (RFC 3261 §25.1)
            i, n = 1, len(text)
            buf = []
            while i < n and text[i] != '"':
                if text[i] == "\\":
                    i += 1
                    if i == n:
                        break
                buf.append(text[i])
                i += 1
            if i >= n:
                raise ParseError(f"unterminated quoted display name in {text[:60]!r}")
            display = "".join(buf)
            rest = text[i + 1 :].lstrip(" \t")
            if not rest.startswith("<"):
                raise ParseError(f"quoted display name without <URI> in {text[:60]!r}")
        lt = rest.find("<")
        if lt >= 0:
            gt = rest.find(">", lt)
            if gt < 0:
                raise ParseError(f"unterminated <> in {text[:60]!r}")
            if display is None:
                display = rest[:lt].strip(" \t")
                for ch in display:
                    # *(token LWS); UTF-8 letters are tolerated, ASCII separators are not
                    # (RFC 4475 §3.1.2.16: "Bell, Alexander" unquoted is a 400)
                    if ch not in _TOKEN_CHARS and ch not in " \t" and ord(ch) < 128:
                        raise ParseError(f"bad display name in {text[:60]!r}")
            uri = parse_any_uri(rest[lt + 1 : gt])
            after = rest[gt + 1 :].strip(" \t")
            if after and not after.startswith(";"):
                raise ParseError(f"unexpected text after URI in {text[:60]!r}")
            params = parse_header_params(after) if after else {}
            return cls(uri, display or None, params)
        if '"' in text or ">" in text:
            raise ParseError(f"display name or > without <URI> in {text[:60]!r}")
        uritext, _, ptext = text.partition(";")
        uri = parse_any_uri(uritext)
        if uri.scheme != "tel" and "?" in uritext:
            raise ParseError(f"URI headers need <> in {text!r}")
        params = parse_header_params(ptext) if ptext else {}
        return cls(uri, None, params)

    @property
    def tag(self) -> str | None:
        """The ``tag`` parameter (RFC 3261 §19.3), or ``None``."""
        return self.params.get("tag")

    @property
    def expires(self) -> int | None:
        """The ``expires`` parameter of a Contact, in seconds, or ``None``."""
        v = self.params.get("expires")
        if v is None:
            return None
        try:
            return int(v)
        except ValueError:
            return None

    def with_tag(self, tag: str) -> NameAddr:
        """Return a copy carrying ``tag``."""
        p = dict(self.params)
        p["tag"] = tag
        return attrs.evolve(self, params=p)

    def replace(self, **changes: Any) -> NameAddr:
        """Return a copy with the given attributes changed."""
        return attrs.evolve(self, **changes)

    def __str__(self) -> str:
        if self.wildcard:
            return "*"
        out = ""
        if self.display_name:
            dn = self.display_name.replace("\\", "\\\\").replace('"', '\\"')
            out = f'"{dn}" '
        return f"{out}<{self.uri}>{format_header_params(self.params)}"


# ---------------------------------------------------------------- fast paths
#
# Each parser first tries one compiled regex (C speed) that accepts only a
# common shape in which every character is one the general parser keeps
# verbatim; anything else (quotes, escapes, odd spacing, folding leftovers,
# out-of-range numbers) takes the general path, so both give equal values and
# the same errors.  tests/sip/test_fast_values.py checks that on fuzzed text.

_TOKEN_RE = r"[A-Za-z0-9\-.!%*_+`'~]"
_PARAMS_RE = rf"(?:;((?:{_TOKEN_RE}++(?:=[\x21\x23-\x3a\x3c-\x7e]*+)?+)(?:;{_TOKEN_RE}++(?:=[\x21\x23-\x3a\x3c-\x7e]*+)?+)*+))?"
"""``;name[=value]...``: token names; values of visible ASCII but ``"`` and ``;``.  The group
is the text after the first ``;`` (``None`` without parameters).

The fast patterns use possessive quantifiers (``++``, ``*+``, Python >= 3.11) wherever
giving characters back could never let the rest match (each run is followed by a
character outside its class): the same matches as the plain quantifiers, without the
backtracking bookkeeping (about a quarter of the match time).  tests/sip/test_fast_values.py
checks them against the plain forms."""
_NA_PARAM_RE = (
    rf'{_TOKEN_RE}++(?:=(?:"[\x20\x21\x23-\x3a\x3c-\x5b\x5d-\x7e]*+"|[\x21\x23-\x3a\x3c-\x7e]*+))?+'
)
_NA_PARAMS_RE = rf"(?:;({_NA_PARAM_RE}(?:;{_NA_PARAM_RE})*+))?"
"""``_PARAMS_RE`` with quoted-string values too (``+sip.instance="<urn:...>"``, RFC 5626): no
``;``, ``\\`` or control characters between the quotes, so that a split at ``;`` still
finds the parameters and dropping the two quotes gives the general parser's value."""
_HOST_FAST_RE = r"(\[[0-9A-Fa-f:.]++\]|[A-Za-z0-9][A-Za-z0-9\-.]*+(?<!-))"
"""uri._HOST_RE's common shapes: ``[IPv6]``, or letters, digits, ``-`` and ``.`` starting with a
letter or digit and not ending with ``-``."""

_VIA_FAST = re.compile(
    r"SIP/2\.0/([A-Za-z]++) " + _HOST_FAST_RE + r"(?::([0-9]{1,5}+))?" + _PARAMS_RE
).fullmatch
_CSEQ_FAST = re.compile(rf"([0-9]{{1,10}}+) ({_TOKEN_RE}++)").fullmatch
_DISPLAY_RE = (
    r'(?:"([^"\\]*+(?:\\[\s\S][^"\\]*+)*+)"[ \t]*+'
    rf"|(?:({_TOKEN_RE}++(?:[ \t]++{_TOKEN_RE}++)*+)[ \t]++)?)"
)
"""A quoted display name (escapes allowed), or token words each followed by LWS (the group
without the last LWS), or nothing."""
_UNESCAPE = re.compile(r"\\([\s\S])").sub
"""quoted-pair -> the character (RFC 3261 §25.1), as the general parser reads it."""
_URI_FAST_RE = (
    r"(sips?):"
    r"(?:([A-Za-z0-9\-_.!~*'()&=+$,/]++)@)?"  # user: no escapes, ":", ";", "?"
    + _HOST_FAST_RE
    + r"(?::([0-9]{1,5}+))?"
    r"(?:;((?:[A-Za-z0-9\-_.!~*'()\[\]/:&+$]++(?:=[A-Za-z0-9\-_.!~*'()\[\]/:&+$]*+)?+)"
    r"(?:;[A-Za-z0-9\-_.!~*'()\[\]/:&+$]++(?:=[A-Za-z0-9\-_.!~*'()\[\]/:&+$]*+)?+)*+))?"
)
"""uri._URI_PATTERN, possessive, with the ``;params`` group after its first ``;``."""
_NAME_ADDR_FAST = re.compile(_DISPLAY_RE + r"<([^<>\s\"]++)>" + _NA_PARAMS_RE).fullmatch
_NAME_ADDR_URI_FAST = re.compile(_DISPLAY_RE + "<" + _URI_FAST_RE + ">" + _NA_PARAMS_RE).fullmatch

_NAMES_GET = {
    n: n
    for n in (
        "branch", "received", "rport", "maddr", "ttl", "alias", "tag", "expires", "q",
        "transport", "lr", "user", "method", "ob", "reg-id", "+sip.instance", "gr", "line",
        "ftag", "did", "nat", "sigcomp-id", "comp",
    )
}.get
"""Parameter name -> the same name, interned, for the usual (lower-case) names: one dict
probe instead of ``str.lower`` and every value shares its key strings (``None`` otherwise)."""
_TRANSPORTS_GET = {
    spelling: t for t in ("UDP", "TCP", "TLS", "SCTP", "WS", "WSS") for spelling in (t, t.lower())
}.get
"""Transport as sent -> the upper-case transport, shared (``None`` for other spellings)."""

_VIA_NEW = Via.__new__
_via_transport, _via_host, _via_port, _via_params, _via_protocol = (
    Via.__dict__[n].__set__ for n in ("transport", "host", "port", "params", "protocol")
)
_CSEQ_NEW = CSeq.__new__
_cseq_seq = CSeq.__dict__["seq"].__set__
_cseq_method = CSeq.__dict__["method"].__set__
_NAME_ADDR_NEW = NameAddr.__new__
_na_uri, _na_display, _na_params, _na_wildcard = (
    NameAddr.__dict__[n].__set__ for n in ("uri", "display_name", "params", "wildcard")
)
_URI_NEW = SipURI.__new__
_uri_scheme, _uri_user, _uri_password, _uri_host, _uri_port, _uri_params, _uri_headers = (
    SipURI.__dict__[n].__set__
    for n in ("scheme", "user", "password", "host", "port", "params", "headers")
)
"""The fast paths build the frozen values by storing each slot directly (what the attrs
``__init__`` ends up doing, without its converters: the dicts are fresh)."""


def _new_cseq(seq: int, method: str) -> CSeq:
    """A CSeq from a checked 32-bit number and method token (used by message.py)."""
    c = _CSEQ_NEW(CSeq)
    _cseq_seq(c, seq)
    _cseq_method(c, method)
    return c


__all__ = [
    "BRANCH_MAGIC_COOKIE",
    "CSeq",
    "NameAddr",
    "Via",
    "format_header_params",
    "parse_header_params",
    "_format_params",
]
