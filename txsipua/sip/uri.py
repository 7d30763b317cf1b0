"""SIP and SIPS URIs (RFC 3261 §19.1, §25.1).

Anatomy::

    sip:alice:secret@example.com:5060;transport=udp;lr?subject=hi
    \\_/ \\___/ \\____/ \\_________/ \\__/ \\_________________/ \\________/
   scheme user password  host      port     params           headers

Only ``sip``, ``sips`` and ``tel`` schemes are understood; any other scheme
raises :class:`~txsipua.errors.ParseError` with status 416 (Unsupported URI
Scheme, RFC 3261 §8.2.2.1).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote

import attrs

from txsipua.errors import ParseError
from txsipua.sip import _abnf

_HOST_RE = re.compile(rf"(?:{_abnf.HOST})\Z")
_FORBIDDEN = frozenset(' \t"<>\\^`{|}\x7f' + "".join(map(chr, range(32))))
_FORBIDDEN_SEARCH = re.compile("[" + re.escape("".join(sorted(_FORBIDDEN))) + "]").search
_USER_SAFE = "-_.!~*'()&=+$,;?/"
_PASSWORD_SAFE = "-_.!~*'()&=+$,"
_PARAM_SAFE = "-_.!~*'()[]/:&+$"  # paramchar minus escaped (RFC 3261 §25.1)


PARSED_URI_CACHE_SIZE = 2048
"""How many parsed SIP URIs :meth:`SipURI.parse` keeps by text (then it starts afresh).

A user agent sees the same few URIs again and again (its own, its
registrar's, its peers' Contacts): a URI value is immutable, so the same
text gives back the same value instead of a new parse.  Bounded, so a peer
sending ever new URIs costs one dict insertion each."""
_PARSED: dict[str, SipURI] = {}


def _freeze_headers(d: Mapping[str, str] | None) -> dict[str, str]:
    return dict(d) if d else {}


def _freeze(d: Mapping[str, str | None] | None) -> dict[str, str | None]:
    return dict(d) if d else {}


@attrs.frozen(eq=True, hash=False)
class SipURI:
    """A parsed ``sip:``/``sips:``/``tel:`` URI (RFC 3261 §19.1).

    Attributes:
        scheme: ``"sip"``, ``"sips"`` or ``"tel"`` (lower case).
        user: the user part, percent-decoded, or ``None``.
        password: the password part, or ``None`` (its use is discouraged).
        host: host name, IPv4 address or bracketed IPv6 reference ``[::1]``.
        port: port number, or ``None`` when absent.
        params: URI parameters; names lower case, value ``None`` for flags (``lr``).
        headers: URI headers (``?name=value``), rarely used.
    """

    scheme: str = "sip"
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: dict[str, str | None] = attrs.field(factory=dict, converter=_freeze)
    headers: dict[str, str] = attrs.field(factory=dict, converter=_freeze_headers)

    def __hash__(self) -> int:
        return hash((self.scheme, self.user, self.host.lower(), self.port))

    @classmethod
    def parse(cls, text: str) -> SipURI:
        """Parse a URI.

        Args:
            text: the URI text, e.g. ``"sip:alice@example.com;transport=tcp"``.

        Raises:
            ParseError: status 416 for an unsupported scheme, 400 for any other defect.
        """
        uri = _PARSED.get(text)
        if uri is not None and cls is SipURI:
            return uri
        raw = text
        text = text.strip()
        scheme, sep, rest = text.partition(":")
        if not sep:
            raise ParseError(f"URI without scheme: {text[:60]!r}")
        bad = _FORBIDDEN_SEARCH(text)
        if bad is not None:  # RFC 3261 §25.1: SP, CTLs, <>" are never in a URI
            raise ParseError(f"character {bad[0]!r} in URI {text[:60]!r}")
        scheme = scheme.lower()
        if scheme == "tel":
            number, _, ptext = rest.partition(";")
            if not number:
                raise ParseError(f"tel URI without number: {text!r}")
            return cls(scheme="tel", user=number, host="", params=_parse_params(ptext))
        if scheme not in ("sip", "sips"):
            raise ParseError(f"unsupported URI scheme {scheme!r}", status=416)
        # the userinfo may hold "?" and ";" (user-unreserved), but "@" appears
        # nowhere else unescaped: split it off first (RFC 3261 §25.1)
        user = password = None
        userinfo = None
        if "@" in rest:
            userinfo, _, rest = rest.partition("@")
            if not userinfo:
                raise ParseError(f"empty user part in URI {text[:60]!r}")
        headers: dict[str, str] = {}
        if "?" in rest:
            rest, _, htext = rest.partition("?")
            for item in htext.split("&"):
                if item:
                    k, _, v = item.partition("=")
                    headers[unquote(k)] = unquote(v)
        if userinfo is not None:
            if ":" in userinfo:
                u, _, p = userinfo.partition(":")
                user, password = unquote(u), unquote(p)
            else:
                user = unquote(userinfo) if "%" in userinfo else userinfo
        hostport, _, ptext = rest.partition(";")
        params = _parse_params(ptext) if ptext else {}
        host, port = _split_hostport(hostport, text)
        # what cls(...) stores, without the converters' copies (the dicts are fresh)
        uri = _URI_NEW(SipURI)
        _set_scheme(uri, scheme)
        _set_user(uri, user)
        _set_password(uri, password)
        _set_host(uri, host)
        _set_port(uri, port)
        _set_params(uri, params)
        _set_headers(uri, headers)
        if len(_PARSED) >= PARSED_URI_CACHE_SIZE:
            _PARSED.clear()
        _PARSED[raw] = uri
        return uri

    @property
    def host_port(self) -> tuple[str, int | None]:
        """``(host, port)``; the port is ``None`` when the URI names none."""
        return (self.host, self.port)

    @property
    def transport(self) -> str:
        """The ``transport`` parameter, lower case; ``"tls"`` for sips, else ``"udp"``."""
        t = self.params.get("transport")
        if t:
            return t.lower()
        return "tls" if self.scheme == "sips" else "udp"

    @property
    def lr(self) -> bool:
        """True when the URI carries the ``lr`` parameter (loose routing, RFC 3261 §16.12)."""
        return "lr" in self.params

    @property
    def address_of_record(self) -> str:
        """``scheme:user@host`` without port or parameters (the AOR form, RFC 3261 §10.3)."""
        if self.user:
            return f"{self.scheme}:{self.user}@{self.host.lower()}"
        return f"{self.scheme}:{self.host.lower()}"

    def replace(self, **changes: Any) -> SipURI:
        """Return a copy with the given attributes changed."""
        return attrs.evolve(self, **changes)

    def with_params(self, **params: str | None) -> SipURI:
        """Return a copy with the given URI parameters set (``None`` for a flag)."""
        p = dict(self.params)
        p.update(params)
        return attrs.evolve(self, params=p)

    def __str__(self) -> str:
        if self.scheme == "tel":
            return "tel:" + (self.user or "") + _format_params(self.params)
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(quote(self.user, safe=_USER_SAFE))
            if self.password is not None:
                out.append(":" + quote(self.password, safe=_PASSWORD_SAFE))
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out.append(f":{self.port}")
        if self.params:
            out.append(_format_params(self.params))
        if self.headers:
            out.append(
                "?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in self.headers.items())
            )
        return "".join(out)

    def to_text(self) -> str:
        """The URI as text; same as ``str(uri)``."""
        return str(self)


_SCHEME = re.compile(_abnf.SCHEME)
_URI_NEW = SipURI.__new__
_set_scheme, _set_user, _set_password, _set_host, _set_port, _set_params, _set_headers = (
    SipURI.__dict__[n].__set__
    for n in ("scheme", "user", "password", "host", "port", "params", "headers")
)


@attrs.frozen(eq=True, hash=False)
class AbsoluteURI(SipURI):
    """A URI of a scheme other than sip, sips and tel, kept as text (RFC 3261 §25.1).

    ``absolute-URI = scheme ":" ( hier-part / opaque-part )``: valid in From, To and
    Contact (RFC 4475 §3.1.1.13: ``<http://www.example.com>``, ``isbn:2983792873``),
    never as a Request-URI (416).  The SIP attributes are empty (``host`` is ``""``,
    ``user`` and ``port`` ``None``); ``opaque`` is everything after the colon.

    Attributes:
        opaque: the text after ``scheme:``, exactly as received.
    """

    opaque: str = ""

    def __hash__(self) -> int:
        return hash((self.scheme, self.opaque))

    @property
    def address_of_record(self) -> str:
        """The URI itself (there is no user/host to reduce it to)."""
        return str(self)

    def __str__(self) -> str:
        return f"{self.scheme}:{self.opaque}"


def parse_any_uri(text: str) -> SipURI:
    """Parse a URI of any scheme: :meth:`SipURI.parse`, or an :class:`AbsoluteURI`.

    What a name-addr or addr-spec holds (RFC 3261 §25.1 ``addr-spec = SIP-URI /
    SIPS-URI / absoluteURI``).

    Raises:
        ParseError: no scheme, a character no URI holds, or a malformed SIP URI.
    """
    try:
        return SipURI.parse(text)
    except ParseError as e:
        if e.status != 416:
            raise
    text = text.strip()
    scheme, _, opaque = text.partition(":")
    if not _SCHEME.fullmatch(scheme) or not opaque:
        raise ParseError(f"bad absolute URI {text[:60]!r}")
    return AbsoluteURI(scheme=scheme.lower(), opaque=opaque)


def _split_hostport(hostport: str, text: str) -> tuple[str, int | None]:
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ParseError(f"unterminated IPv6 reference in {text!r}")
        host = hostport[: end + 1]
        rest = hostport[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ParseError(f"bad host in URI {text!r}")
        ptext = rest[1:] if rest else ""
    else:
        host, _, ptext = hostport.partition(":")
    if not host or not _HOST_RE.match(host):
        raise ParseError(f"bad host {host!r} in URI {text!r}")
    port: int | None = None
    if ptext:
        if not (ptext.isdigit() and ptext.isascii()) or len(ptext) > 5:
            raise ParseError(f"bad port {ptext!r} in URI {text!r}")
        port = int(ptext)
        if port > 65535:
            raise ParseError(f"port {port} out of range in URI {text!r}")
    return host, port


def _parse_params(ptext: str) -> dict[str, str | None]:
    params: dict[str, str | None] = {}
    for item in ptext.split(";"):
        item = item.strip()
        if not item:
            continue
        k, sep, v = item.partition("=")
        k = (unquote(k) if "%" in k else k).strip().lower()
        if not k:
            raise ParseError(f"empty URI parameter name in {ptext!r}")
        params[k] = (unquote(v.strip()) if "%" in v else v.strip()) if sep else None
    return params


def _format_params(params: Mapping[str, str | None]) -> str:
    """Format URI parameters, escaping what ``paramchar`` does not allow (RFC 3261 §25.1)."""
    out = []
    for k, v in params.items():
        k = quote(k, safe=_PARAM_SAFE)
        out.append(f";{k}" if v is None else f";{k}={quote(v, safe=_PARAM_SAFE)}")
    return "".join(out)
