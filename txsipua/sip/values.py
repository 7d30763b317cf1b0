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
from txsipua.sip import _abnf
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
    if '"' not in text:
        # no quoted-string: every parameter is what lies between two semicolons
        for item in text.split(";"):
            name, sep, value = item.partition("=")
            name = name.strip().lower()
            if not name:
                if sep:
                    raise ParseError(f"empty header parameter name in {text!r}")
                continue
            params[name] = value.strip() if sep else None
        return params
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
            # the C accelerator: (transport, host, port, params) for the common shape
            # (what the code below gives for it), else NotImplemented
            parts = _via_parts(text)
            if parts is not NotImplemented:
                v = _VIA_NEW(Via)
                _via_transport(v, parts[0])
                _via_host(v, parts[1])
                _via_port(v, parts[2])
                _via_params(v, parts[3])
                _via_protocol(v, "SIP/2.0")
                return v
        m = _VIA(text)
        if m is None:
            raise _via_error(text)
        proto, version, transport, host, port_text, ptext = m.groups()
        port = None
        if port_text:
            port = int(port_text)
            if port > 65535:
                raise ParseError(f"port {port} out of range in Via {text[:60]!r}")
        # what cls(...) stores, without the converter's copy (the dict is fresh)
        v = _VIA_NEW(Via)
        _via_transport(v, transport.upper())
        _via_host(v, host)
        _via_port(v, port)
        _via_params(v, parse_header_params(ptext) if ptext else {})
        proto = proto.upper()
        _via_protocol(v, "SIP/2.0" if proto == "SIP" and version == "2.0" else f"{proto}/{version}")
        return v

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
        m = _CSEQ(text)
        if m is None:
            raise ParseError(f"bad CSeq: {text[:40]!r}")
        seq = int(m[1])
        if seq >= 4294967296:
            raise ParseError(f"CSeq number out of range: {text!r}")
        return _new_cseq(seq, m[2])

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


PARSED_NAME_ADDR_CACHE_SIZE = 2048
"""How many parsed name-addrs :meth:`NameAddr.parse` keeps by text (then it starts afresh).

The same Contact, To and Route values come again and again; a value is
immutable, so the same text gives back the same value.  Bounded: a peer
sending ever new values costs one dict insertion each."""
_PARSED_NAME_ADDRS: dict[str, NameAddr] = {}


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
        cached = _PARSED_NAME_ADDRS.get(text)
        if cached is not None and cls is NameAddr:
            return cached
        if len(_PARSED_NAME_ADDRS) >= PARSED_NAME_ADDR_CACHE_SIZE:
            _PARSED_NAME_ADDRS.clear()
        value = _PARSED_NAME_ADDRS[text] = cls._parse(text)
        return value

    @classmethod
    def _parse(cls, text: str) -> NameAddr:
        m = _NAME_ADDR(text)
        if m is not None:
            # name-addr = [ display-name ] LAQUOT addr-spec RAQUOT, then *( SEMI param )
            quoted, words, uri_text, ptext = m.groups()
            if quoted is not None:
                display = _UNESCAPE(r"\1", quoted) if "\\" in quoted else quoted
            elif words and _DISPLAY_BAD(words) is not None:
                # display-name = *(token LWS): UTF-8 letters are tolerated, ASCII
                # separators are not (RFC 4475 §3.1.2.16: "Bell, Alexander" is a 400)
                raise ParseError(f"bad display name in {text[:60]!r}")
            else:
                display = words
            params = parse_header_params(ptext) if ptext else {}
            return _new_name_addr(parse_any_uri(uri_text), display or None, params)
        text = text.strip()
        if text == "*":
            return cls(SipURI(host="*"), None, {}, True)
        if "<" in text:
            raise _name_addr_error(text)
        if '"' in text or ">" in text:
            raise ParseError(f"display name or > without <URI> in {text[:60]!r}")
        uritext, _, ptext = text.partition(";")
        uri = parse_any_uri(uritext)
        if uri.scheme != "tel" and "?" in uritext:
            raise ParseError(f"URI headers need <> in {text!r}")
        params = parse_header_params(ptext) if ptext else {}
        return _new_name_addr(uri, None, params)

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
        return _new_name_addr(self.uri, self.display_name, p, self.wildcard)

    def without_tag(self) -> NameAddr:
        """Return a copy without the ``tag`` parameter (``self`` when it has none)."""
        if "tag" not in self.params:
            return self
        p = dict(self.params)
        del p["tag"]
        return _new_name_addr(self.uri, self.display_name, p, self.wildcard)

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


# ---------------------------------------------------------------- grammar and builders

_CSEQ = re.compile(_abnf.CSEQ).fullmatch
_VIA = re.compile(rf"\s*{_abnf.VIA_PARM}\s*").fullmatch
_VIA_PROTOCOL = re.compile(r"\s*([^/]*)/([^/]*)/[ \t]*([^ \t]*)([\s\S]*)").fullmatch
_TOKEN = re.compile(_abnf.TOKEN).fullmatch
_QUOTED = re.compile(_abnf.QUOTED_STRING).match
_NAME_ADDR = re.compile(rf"\s*{_abnf.NAME_ADDR}[ \t]*(;[\s\S]*)?\s*").fullmatch
_UNESCAPE = re.compile(r"\\([\s\S])").sub
"""quoted-pair -> the character it stands for (RFC 3261 §25.1)."""
_DISPLAY_BAD = re.compile(
    "[" + re.escape("".join(c for c in map(chr, range(128)) if c not in _TOKEN_CHARS and c not in " \t")) + "]"
).search
"""An ASCII character that is neither a token character nor SP/HTAB (unquoted display name)."""


def _via_error(text: str) -> ParseError:
    """The error for a Via value that ``via-parm`` does not match, naming the part."""
    m = _VIA_PROTOCOL(text)
    if m is None:
        return ParseError(f"bad Via: {text[:60]!r}")
    proto, version, transport, rest = m.groups()
    if not all(_TOKEN(w.strip(" \t")) for w in (proto, version, transport)):
        return ParseError(f"bad Via sent-protocol: {text[:60]!r}")
    if not rest.strip():
        return ParseError(f"bad Via, no transport or sent-by: {text[:60]!r}")
    hostport = rest.partition(";")[0].strip(" \t")
    if " " not in hostport and "\t" not in hostport:
        try:
            _split_hostport(hostport, text)  # names the bad host or port
        except ParseError as e:
            return e
    return ParseError(f"bad Via sent-by: {text[:60]!r}")

_VIA_NEW = Via.__new__
_via_transport, _via_host, _via_port, _via_params, _via_protocol = (
    Via.__dict__[n].__set__ for n in ("transport", "host", "port", "params", "protocol")
)
"""Parsed Vias are stored slot by slot (what the attrs ``__init__`` ends up doing, without
its converter: the dict is fresh)."""
_CSEQ_NEW = CSeq.__new__
_cseq_seq = CSeq.__dict__["seq"].__set__
_cseq_method = CSeq.__dict__["method"].__set__


_NAME_ADDR_NEW = NameAddr.__new__
_na_uri, _na_display, _na_params, _na_wildcard = (
    NameAddr.__dict__[n].__set__ for n in ("uri", "display_name", "params", "wildcard")
)


def header_tag(text: str) -> str | None:
    """The ``tag`` header parameter of a From or To value, without parsing its URI.

    The parameters are found as :meth:`NameAddr.parse` finds them (after the
    ``<URI>`` of a name-addr, after the first ``;`` of an addr-spec, RFC 3261
    §20.10), so the tag equals ``NameAddr.parse(text).tag`` whenever that
    succeeds; the URI and display name are not checked (this is what transaction
    and dialog matching read, §17.2.3, §12.2.2).

    Raises:
        ParseError: the value has no recognisable name-addr or addr-spec shape, or
            its parameters are malformed.
    """
    m = _NAME_ADDR(text)
    if m is not None:
        ptext = m[4]
    else:
        text = text.strip()
        if text == "*":
            return None
        if "<" in text:
            raise _name_addr_error(text)
        if '"' in text or ">" in text:
            raise ParseError(f"display name or > without <URI> in {text[:60]!r}")
        ptext = text.partition(";")[2]
    return parse_header_params(ptext).get("tag") if ptext else None


def _name_addr_error(text: str) -> ParseError:
    """The error for a value holding ``<`` that the name-addr pattern does not match."""
    rest = text
    if text.startswith('"'):
        m = _QUOTED(text)
        if m is None:
            return ParseError(f"unterminated quoted display name in {text[:60]!r}")
        rest = text[m.end() :].lstrip(" \t")
        if not rest.startswith("<"):
            return ParseError(f"quoted display name without <URI> in {text[:60]!r}")
    lt = rest.find("<")
    if rest.find(">", lt) < 0:
        return ParseError(f"unterminated <> in {text[:60]!r}")
    if '"' in rest[:lt]:
        return ParseError(f"bad display name in {text[:60]!r}")
    return ParseError(f"unexpected text after URI in {text[:60]!r}")


def _new_name_addr(uri: SipURI, display: str | None, params: dict[str, str | None],
                   wildcard: bool = False) -> NameAddr:
    """What ``NameAddr(uri, display, params, wildcard)`` stores, without the converter's copy
    (``params`` is fresh)."""
    na = _NAME_ADDR_NEW(NameAddr)
    _na_uri(na, uri)
    _na_display(na, display)
    _na_params(na, params)
    _na_wildcard(na, wildcard)
    return na


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
    "header_tag",
    "parse_header_params",
    "_format_params",
]
