"""The regex fast paths of SipURI/Via/NameAddr/CSeq.parse agree with the general parsers.

Each ``parse`` first tries one compiled regex for the common shape and otherwise falls
back to ``_parse_general``; the two must give equal values (every attribute) or the
same ParseError (status and detail) on any text: generated values, their wire forms
with mutations, and arbitrary text drawn from the characters SIP uses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from txsipua.errors import ParseError
from txsipua.sip import CSeq, NameAddr, SipURI, Via
from txsipua.testing import strategies as sst

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

PARSERS: list[tuple[Callable[[str], Any], Callable[[str], Any]]] = [
    (SipURI.parse, SipURI._parse_general),
    (Via.parse, Via._parse_general),
    (NameAddr.parse, NameAddr._parse_general),
    (CSeq.parse, CSeq._parse_general),
]


def _outcome(parse: Callable[[str], Any], text: str) -> tuple[str, Any]:
    try:
        value = parse(text)
    except ParseError as e:
        return ("error", (e.status, e.detail))
    return ("value", (type(value), value, repr(value), str(value)))


def _agree(text: str) -> None:
    for fast, general in PARSERS:
        assert _outcome(fast, text) == _outcome(general, text), (fast, text)


# the characters of SIP header values, weighted towards the structural ones
_SIP_CHARS = st.sampled_from(
    list("sipSIP/2.0UDPtcp :;=@<>\"\\,?&%[]-_.!~*'()+$`|{}^\t 0123456789abcXYZ")
    + ["\u00e9", "\u00b2", "\x00", "\x7f", "\u3000", "\r", "\n"]
)
_INSERTS = ["", " ", "\t", ";", "=", '"', "\\", "<", ">", ":", "@", "%41", "%", "?", ",",
            ";;", "[", "]", "65536", "99999", "0", "\u00e9", "\u00b2", "SIP", "/", "*"]


@st.composite
def _mutated(draw: st.DrawFn, base: st.SearchStrategy[Any]) -> str:
    text = str(draw(base))
    for _ in range(draw(st.integers(0, 3))):
        pos = draw(st.integers(0, len(text)))
        if draw(st.booleans()):
            text = text[:pos] + draw(st.sampled_from(_INSERTS)) + text[pos:]
        else:
            text = text[:pos] + text[pos + draw(st.integers(1, 3)) :]
    return text


_BITS = st.sampled_from(["", " ", "\t", "a", "Z", "0", "-", ".", "%41", "%", "\\", '"', "<", ">",
                         ";", "=", ":", "@", "?", ",", "[", "]", "\u00e9", "*", "`", "/", "&"])


def _piece(common: str, *odd: str) -> st.SearchStrategy[str]:
    """Mostly the common form (so that whole values reach the fast paths), else a listed
    odd form or random bits."""
    return st.one_of(st.just(common), st.just(common), st.just(common), st.just(common),
                     st.sampled_from(odd), st.lists(_BITS, max_size=4).map("".join))


@st.composite
def _structured(draw: st.DrawFn) -> str:
    """Texts assembled from the parts the fast regexes tell apart, each part sometimes odd."""
    user = draw(_piece("alice", "a.b-c", "+1%20", "a;b", "a:pw", ""))
    host = draw(_piece("example.com", "192.0.2.1", "[2001:db8::1]", "h", "a-.b", "-x", ""))
    port = draw(_piece("", ":5060", ":65535", ":65536", ":0", ":x", ":", ":123456"))
    uparams = draw(_piece("", ";lr", ";transport=tcp", ";a=b;c", ";A=B", ";=x", ";;", ";a=b=c"))
    scheme = draw(_piece("sip", "sips", "SIP", "tel", "http"))
    uri = f"{scheme}:{user}@{host}{port}{uparams}" if user else f"{scheme}:{host}{port}{uparams}"
    params = draw(_piece("", ";tag=x", ";tag=", ";tag", ";TAG=Y;q=0.5", ';x="q"', "; tag=1",
                         ";expires=60;+sip.instance=a", ";a=<b>"))
    kind = draw(st.integers(0, 4))
    if kind <= 1:  # name-addr
        display = draw(st.one_of(
            st.just(""),
            st.builds('"{}"{}'.format, st.text(' \tAb\\"<>,\u00e9', max_size=5),
                      st.sampled_from(["", " ", "\t", "  "])),
            st.builds("{}{}".format, st.text("Ab ,\t;\u00e9\"", max_size=6),
                      st.sampled_from(["", " ", "\t"])),
        ))
        return f"{display}<{uri}>{params}"
    if kind == 2:  # addr-spec
        return f"{uri}{params}"
    if kind == 3:  # via
        proto = draw(_piece("SIP/2.0/UDP ", "SIP/2.0/tls ", "sip/2.0/UDP ", "SIP/2.0/UDP  ",
                            "SIP/2.1/UDP ", "SIP / 2.0 / UDP "))
        return f"{proto}{host}{port}{params}"
    return f"{draw(_piece('1', '0009', '4294967296', '12345678901', '-1'))}" + draw(
        _piece(" INVITE", "  INVITE", " in<v", " INVITE x", " ACK"))


@SETTINGS
@given(_structured())
def test_fast_and_general_paths_agree_on_assembled_values(text: str) -> None:
    """Assembled near-common shapes: equal values or the same ParseError."""
    _agree(text)


@SETTINGS
@given(st.one_of(
    _mutated(sst.uris()), _mutated(sst.vias()), _mutated(sst.name_addrs()),
    _mutated(sst.cseqs()), st.text(_SIP_CHARS, max_size=60),
))
@example("SIP/2.0/UDP 192.0.2.1:65536;branch=z9hG4bK1")
@example("sip:a@example.com:65536")
@example("4294967296 INVITE")
@example('"A" <sip:a@example.com>;tag=1')
@example('"A " <sip:a@example.com>;tag=1')
@example('" A\t" <tel:+1-201-555-0123>;tag=1')
@example("A  <tel:+1-201-555-0123>")
@example("A B <sip:a@example.com>;tag=1")
@example("<sip:a@example.com>;tag")
@example("<sip:a@example.com>;tag=")
@example("SIP/2.0/UDP h;branch=")
def test_fast_and_general_paths_agree(text: str) -> None:
    """Fast path and general path: equal values (all attributes) or the same ParseError."""
    _agree(text)


@pytest.mark.parametrize(
    "text",
    [
        "sip:alice@example.com;transport=tcp",
        "sips:[2001:db8::1]:5061;lr",
        "sip:ines@198.51.100.82:42079;transport=tcp;ob",
        "SIP/2.0/UDP 198.51.100.187;rport;branch=z9hG4bKjina43QDzCzKXt7",
        "SIP/2.0/tcp [2001:db8::9]:5060;received=2001:db8::9;rport=5061;branch=z9hG4bK6",
        '"Dmitri" <sip:ines@example.net>;tag=OKOgxYsYYp3Y8j',
        "Bob  Builder <sip:b@example.com>",
        "<sip:a@example.com;lr>;expires=600;q=0.8",
        '"" <sip:a@example.com>',
        "0009 INVITE",
    ],
)
def test_common_shapes_take_the_fast_path(text: str) -> None:
    """The shapes seen in real traffic match a fast regex (and agree with the general path)."""
    from txsipua.sip import uri, values

    fast = (uri._URI_FAST, values._VIA_FAST, values._NAME_ADDR_FAST, values._CSEQ_FAST)
    assert any(f(text) is not None for f in fast)
    _agree(text)


def test_fast_values_are_fresh_objects() -> None:
    """Fast-built values own their parameter dicts (no sharing between parses)."""
    a = Via.parse("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1")
    b = Via.parse("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1")
    assert a == b and a.params is not b.params
    na = NameAddr.parse("<sip:a@example.com;lr>;tag=1")
    assert na.uri.headers == {} and na.uri.password is None and na.wildcard is False
    assert hash(na.uri) == hash(SipURI._parse_general("sip:a@example.com;lr"))
