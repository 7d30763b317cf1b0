"""Hypothesis strategies for SIP values and messages (RFC 3261 §19.1, §20, §25).

Public test kit: every strategy draws values that :mod:`txsipua.sip` can serialise and
parse back to an equal value, so they serve round-trip properties and as raw material
for fuzzing (mutate the bytes of a drawn message).  Hosts are documentation names and
addresses (``example.com``/``.net``/``.org``, 192.0.2.0/24, 198.51.100.0/24,
203.0.113.0/24, 2001:db8::/32); nothing drawn here is ever dialled.

Example::

    from hypothesis import given
    from txsipua.testing.strategies import requests

    @given(requests())
    def test_round_trip(req):
        assert parse_message(req.to_bytes()).headers.get("Call-ID") == req.call_id

Requires ``hypothesis`` (the ``test`` extra).
"""

from __future__ import annotations

import functools
import ipaddress
import string
from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import strategies as st

from txsipua.sip.message import Headers, Request, Response
from txsipua.sip.uri import SipURI
from txsipua.sip.values import BRANCH_MAGIC_COOKIE, CSeq, NameAddr, Via

__all__ = [
    "branches",
    "call_ids",
    "cseqs",
    "display_names",
    "header_params",
    "hosts",
    "ip_hosts",
    "messages",
    "methods",
    "name_addrs",
    "ports",
    "reason_phrases",
    "requests",
    "responses",
    "sip_uris",
    "tel_uris",
    "tokens",
    "uris",
    "vias",
]

_F = TypeVar("_F", bound=Callable[..., Any])


def _cached(factory: _F) -> _F:
    """Build each strategy once per argument set: hypothesis pays a set-up cost per new
    strategy object, which nested ``@composite`` draws would otherwise pay on every draw."""
    return functools.cache(factory)  # type: ignore[return-value]


TOKEN_ALPHABET = string.ascii_letters + string.digits + "-.!%*_+`'~"
"""The characters of an RFC 3261 ``token`` (§25.1)."""

_LOWER_TOKEN = string.ascii_lowercase + string.digits + "-.!%*_+`'~"

# printable text without control characters or surrogates: header values, display names
_TEXT = st.characters(blacklist_categories=("Cc", "Cs"))

_KNOWN_METHODS = ("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK",
                  "SUBSCRIBE", "NOTIFY", "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE")


@_cached
def tokens(min_size: int = 1, max_size: int = 16, lower: bool = False) -> st.SearchStrategy[str]:
    """RFC 3261 tokens (§25.1); ``lower`` keeps letters lower case (parameter names)."""
    return st.text(_LOWER_TOKEN if lower else TOKEN_ALPHABET, min_size=min_size, max_size=max_size)


@_cached
def _label() -> st.SearchStrategy[str]:
    alnum = string.ascii_lowercase + string.digits
    return st.builds(
        lambda a, mid, b: a + mid + b if mid or b else a,
        st.sampled_from(alnum),
        st.text(alnum + "-", max_size=10),
        st.sampled_from(alnum),
    )


@_cached
def _domain_names() -> st.SearchStrategy[str]:
    return st.builds(
        lambda labels, tld: ".".join([*labels, tld]),
        st.lists(_label(), min_size=0, max_size=3),
        st.sampled_from(("example.com", "example.net", "example.org", "invalid")),
    )


@_cached
def ip_hosts(v6: bool | None = None) -> st.SearchStrategy[str]:
    """Documentation IP addresses as URI hosts: IPv4 dotted, or an IPv6 reference ``[...]``.

    Args:
        v6: True for IPv6 only, False for IPv4 only, None for both.
    """
    v4s = st.builds(
        lambda net, n: f"{net}.{n}",
        st.sampled_from(("192.0.2", "198.51.100", "203.0.113")),
        st.integers(0, 255),
    )
    v6s = st.builds(
        lambda n: "[" + str(ipaddress.IPv6Address(0x20010DB8 << 96 | n)) + "]",
        st.integers(0, 2**96 - 1) | st.integers(0, 0xFFFF),
    )
    if v6 is True:
        return v6s
    if v6 is False:
        return v4s
    return v4s | v6s


@_cached
def hosts() -> st.SearchStrategy[str]:
    """URI hosts (RFC 3261 §25.1 ``host``): domain names, IPv4, IPv6 references."""
    return _domain_names() | ip_hosts()


@_cached
def ports() -> st.SearchStrategy[int | None]:
    """A port number 1-65535, or None (no port)."""
    return st.none() | st.integers(1, 65535)


@_cached
def _uri_param_values() -> st.SearchStrategy[str | None]:
    return st.none() | tokens(lower=False) | st.text(_TEXT, max_size=12)


@_cached
def _uri_params() -> st.SearchStrategy[dict[str, str | None]]:
    known = st.fixed_dictionaries(
        {},
        optional={
            "transport": st.sampled_from(("udp", "tcp", "tls", "sctp", "ws")),
            "lr": st.none(),
            "user": st.sampled_from(("phone", "ip")),
            "maddr": ip_hosts(),
            "ob": st.none(),
        },
    )
    extra = st.dictionaries(tokens(lower=True, max_size=8), _uri_param_values(), max_size=3)
    return st.builds(lambda a, b: {**b, **a}, known, extra)


@_cached
def sip_uris(
    schemes: tuple[str, ...] = ("sip", "sips"),
    with_user: bool | None = None,
    with_headers: bool = True,
) -> st.SearchStrategy[SipURI]:
    """:class:`SipURI` values with user, password, host, port, parameters and headers.

    Args:
        schemes: the schemes to draw from.
        with_user: True to always have a user part, False never, None either.
        with_headers: whether URI headers (``?name=value``) may appear.
    """
    users: st.SearchStrategy[str | None]
    any_user = tokens() | st.text(_TEXT, min_size=1, max_size=16)
    if with_user is None:
        users = st.none() | any_user
    elif with_user:
        users = any_user
    else:
        users = st.none()

    passwords = st.none() | st.text(_TEXT, max_size=8)
    uri_headers = st.dictionaries(
        st.text(_TEXT, min_size=1, max_size=8), st.text(_TEXT, max_size=8), max_size=2
    )
    scheme_s = st.sampled_from(schemes)

    @st.composite
    def build(draw: st.DrawFn) -> SipURI:
        user = draw(users)
        return SipURI(
            scheme=draw(scheme_s),
            user=user,
            password=draw(passwords) if user is not None else None,
            host=draw(hosts()),
            port=draw(ports()),
            params=draw(_uri_params()),
            headers=draw(uri_headers) if with_headers else {},
        )

    return build()


@_cached
def tel_uris() -> st.SearchStrategy[SipURI]:
    """``tel:`` URIs (RFC 3966) as :class:`SipURI` with scheme ``tel``."""
    number = st.builds(lambda d: "+" + d, st.text("0123456789-.", min_size=1, max_size=15)) | \
        st.text("0123456789", min_size=1, max_size=8)
    params = st.fixed_dictionaries(
        {}, optional={"phone-context": _domain_names(), "ext": st.text("0123456789", min_size=1)}
    )
    return st.builds(lambda n, p: SipURI(scheme="tel", user=n, params=p), number, params)


@_cached
def uris(with_headers: bool = True) -> st.SearchStrategy[SipURI]:
    """sip, sips or tel URIs."""
    return sip_uris(with_headers=with_headers) | tel_uris()


@_cached
def _param_values() -> st.SearchStrategy[str | None]:
    return st.none() | tokens() | ip_hosts() | st.text(_TEXT, max_size=12)


def header_params(
    required: dict[str, st.SearchStrategy[str | None]] | None = None,
) -> st.SearchStrategy[dict[str, str | None]]:
    """Header parameters (``;name=value``, RFC 3261 §7.3.1): lower-case token names.

    Args:
        required: names always present, with the strategy for their value.
    """
    extra = st.dictionaries(tokens(lower=True, max_size=8), _param_values(), max_size=3)
    fixed = st.fixed_dictionaries(required or {})
    return st.builds(lambda e, f: {**e, **f}, extra, fixed)


@_cached
def branches() -> st.SearchStrategy[str]:
    """RFC 3261 branch ids: the magic cookie ``z9hG4bK`` then a token (§8.1.1.7)."""
    return st.builds(lambda t: BRANCH_MAGIC_COOKIE + t, tokens(max_size=24))


@_cached
def vias(transports: tuple[str, ...] = ("UDP", "TCP", "TLS", "SCTP", "WS", "WSS")) -> st.SearchStrategy[Via]:
    """Via values (RFC 3261 §20.42) with a branch, and maybe received/rport (RFC 3581)."""
    params = st.builds(
        lambda branch, opt, extra: {"branch": branch, **opt, **extra},
        branches(),
        st.fixed_dictionaries(
            {},
            optional={
                "received": ip_hosts().map(lambda h: h.strip("[]")),
                "rport": st.none() | st.integers(1, 65535).map(str),
                "ttl": st.integers(0, 255).map(str),
            },
        ),
        st.dictionaries(tokens(lower=True, max_size=8), _param_values(), max_size=2).map(
            lambda d: {k: v for k, v in d.items() if k not in ("branch", "received", "rport", "ttl")}
        ),
    )
    return st.builds(
        Via,
        transport=st.sampled_from(transports),
        host=hosts(),
        port=ports(),
        params=params,
    )


@_cached
def display_names() -> st.SearchStrategy[str | None]:
    """Display names: None, or non-empty text (written as a quoted-string)."""
    return st.none() | st.text(_TEXT, min_size=1, max_size=20)


@_cached
def name_addrs(tag: bool | None = None, uri: st.SearchStrategy[SipURI] | None = None) -> st.SearchStrategy[NameAddr]:
    """name-addr values (From, To, Contact, Route...; RFC 3261 §20.10).

    Args:
        tag: True to always carry a ``tag``, False never, None either.
        uri: the URI strategy (default :func:`uris`).
    """
    required: dict[str, st.SearchStrategy[str | None]] = {}
    if tag:
        required["tag"] = tokens()
    params = header_params(required)
    if tag is False:
        params = params.map(lambda p: {k: v for k, v in p.items() if k != "tag"})
    return st.builds(NameAddr, uri=uri if uri is not None else uris(), display_name=display_names(),
                     params=params)


@_cached
def methods() -> st.SearchStrategy[str]:
    """Request methods: the usual ones and arbitrary extension tokens."""
    return st.sampled_from(_KNOWN_METHODS) | tokens(max_size=12)


@_cached
def cseqs(method: str | None = None) -> st.SearchStrategy[CSeq]:
    """CSeq values with a 32-bit sequence number (RFC 3261 §20.16)."""
    return st.builds(CSeq, st.integers(0, 2**32 - 1), st.just(method) if method else methods())


@_cached
def call_ids() -> st.SearchStrategy[str]:
    """Call-IDs: ``word [@ word]`` (RFC 3261 §20.8)."""
    word_chars = TOKEN_ALPHABET + "()<>:\\\"/[]?{}"
    word = st.text(word_chars, min_size=1, max_size=24)
    return st.builds(lambda a, b: a if b is None else f"{a}@{b}", word, st.none() | word)


@_cached
def _header_values() -> st.SearchStrategy[str]:
    # the parser strips SP and HTAB around a value; CR, LF and NUL cannot appear
    return st.text(_TEXT | st.just(" "), max_size=40).map(lambda s: s.strip(" \t"))


@_cached
def _extension_headers() -> st.SearchStrategy[list[tuple[str, str]]]:
    return st.lists(
        st.tuples(tokens(max_size=12).map(lambda t: "X-" + t), _header_values()), max_size=4
    )


@_cached
def reason_phrases() -> st.SearchStrategy[str]:
    """Reason-Phrases: text without CR/LF and without SP/HTAB at the ends; maybe empty."""
    return _header_values()


_SEQS = st.integers(0, 2**32 - 1)
_VIA_LISTS = st.lists(vias(), min_size=1, max_size=3)
_CONTACT_LISTS = st.lists(name_addrs(uri=sip_uris()), max_size=2)
_ROUTE_LISTS = st.lists(sip_uris(with_headers=False).map(lambda u: u.with_params(lr=None)), max_size=2)
_REASONS = st.none() | reason_phrases()
_STATUSES = st.integers(100, 699)


def _common_headers(draw: st.DrawFn, method: str, is_request: bool) -> list[tuple[str, str]]:
    via_list = draw(_VIA_LISTS)
    via_fields: list[tuple[str, str]]
    if draw(st.booleans()):
        via_fields = [("Via", ", ".join(str(v) for v in via_list))]
    else:
        via_fields = [("Via", str(v)) for v in via_list]
    fields: list[tuple[str, str]] = []
    if is_request:
        fields.append(("Max-Forwards", str(draw(st.integers(0, 255)))))
    fields.append(("From", str(draw(name_addrs(tag=True)))))
    fields.append(("To", str(draw(name_addrs(tag=None if is_request else True)))))
    fields.append(("Call-ID", draw(call_ids())))
    fields.append(("CSeq", f"{draw(_SEQS)} {method}"))
    for c in draw(_CONTACT_LISTS):
        fields.append(("Contact", str(c)))
    for r in draw(_ROUTE_LISTS):
        fields.append(("Record-Route" if not is_request else "Route", f"<{r}>"))
    if draw(st.booleans()):
        fields.append(("Expires", str(draw(_SEQS))))
    fields += draw(_extension_headers())
    # header order carries no meaning between different names (RFC 3261 §7.3.1)
    if draw(st.booleans()):
        draw(st.randoms(use_true_random=False)).shuffle(fields)
    return via_fields + fields


@_cached
def _bodies() -> st.SearchStrategy[bytes]:
    return st.binary(max_size=200)


@st.composite
def _requests(draw: st.DrawFn, method_strategy: st.SearchStrategy[str]) -> Request:
    method = draw(method_strategy)
    headers = _common_headers(draw, method, True)
    body = draw(_bodies())
    if body:
        headers.append(("Content-Type", "application/octet-stream"))
    return Request(method, draw(uris(with_headers=False)), Headers(headers), body)


@_cached
def requests(methods_: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[Request]:
    """Valid requests (RFC 3261 §7.1, §8.1.1): Via, Max-Forwards, From, To, Call-ID,
    CSeq (matching the method), maybe Contact, Route, Expires, extension headers, a body.

    Args:
        methods_: the method strategy (default :func:`methods`).
    """
    return _requests(methods_ if methods_ is not None else methods())


@st.composite
def _responses(draw: st.DrawFn, statuses: st.SearchStrategy[int]) -> Response:
    headers = _common_headers(draw, draw(methods()), False)
    body = draw(_bodies())
    return Response(draw(statuses), draw(_REASONS), Headers(headers), body)


@_cached
def responses(statuses: st.SearchStrategy[int] | None = None) -> st.SearchStrategy[Response]:
    """Valid responses (RFC 3261 §7.2): status 100-699, any reason phrase, the headers
    of :func:`requests` with a To tag.

    Args:
        statuses: the status strategy (default 100-699).
    """
    return _responses(statuses if statuses is not None else _STATUSES)


@_cached
def messages() -> st.SearchStrategy[Request | Response]:
    """Requests or responses."""
    return st.one_of(requests(), responses())
