"""The shortcuts of the Via/NameAddr/CSeq fast paths give what the general parsers give.

The fast paths (txsipua/sip/values.py) use possessive regexes, build parameter dicts with
a table of usual names instead of ``str.lower``, share the upper-case transport strings,
and take quoted parameter values (``+sip.instance="<urn:...>"``) on NameAddr.  Each of
those is checked here: the possessive patterns against the plain (backtracking) forms
they replaced, and the parsed values against ``_parse_general`` on parameter lists with
mixed-case names, flags next to empty values, duplicates and quoted values.
"""

from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from txsipua.errors import ParseError
from txsipua.sip import CSeq, NameAddr, Via, uri, values

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------ the plain patterns (oracles)
# The fast patterns as they were before they became possessive, groups as then:
# ``;params`` with its leading ";" ("" for none) and display words with their trailing LWS.
_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]"
_PLAIN_PARAMS = rf"((?:;{_TOKEN}+(?:=[\x21\x23-\x3a\x3c-\x7e]*)?)*)"
_PLAIN_HOST = r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9\-.]*[A-Za-z0-9.])?)"
_PLAIN_VIA = re.compile(
    r"SIP/2\.0/([A-Za-z]+) " + _PLAIN_HOST + r"(?::([0-9]{1,5}))?" + _PLAIN_PARAMS
).fullmatch
_PLAIN_CSEQ = re.compile(rf"([0-9]{{1,10}}) ({_TOKEN}+)").fullmatch
_PLAIN_DISPLAY = r'(?:"((?:[^"\\]|\\[\s\S])*)"[ \t]*|((?:[A-Za-z0-9\-.!%*_+`\'~]+[ \t]+)*))'
_PLAIN_QUOTED_VALUE = r'"[\x20\x21\x23-\x3a\x3c-\x5b\x5d-\x7e]*"'
_PLAIN_NA_PARAMS = rf"((?:;{_TOKEN}+(?:=(?:{_PLAIN_QUOTED_VALUE}|[\x21\x23-\x3a\x3c-\x7e]*))?)*)"
_PLAIN_NAME_ADDR = re.compile(_PLAIN_DISPLAY + r"<([^<>\s\"]+)>" + _PLAIN_NA_PARAMS).fullmatch
_PLAIN_NAME_ADDR_URI = re.compile(
    _PLAIN_DISPLAY + "<" + uri._URI_PATTERN + ">" + _PLAIN_NA_PARAMS
).fullmatch


def _params_group(plain: str) -> str | None:
    """A plain ``;params`` group as the possessive patterns capture it."""
    return plain[1:] if plain else None


def _words_group(plain: str | None) -> str | None:
    return plain.rstrip(" \t") or None if plain is not None else None


def _same_match(fast: Any, plain: Any, text: str, normalise: Any) -> None:
    f, p = fast(text), plain(text)
    assert (f is None) == (p is None), text
    if f is not None:
        assert f.groups() == normalise(p.groups()), text


def _via_groups(g: tuple[Any, ...]) -> tuple[Any, ...]:
    return (*g[:3], _params_group(g[3]))


def _na_groups(g: tuple[Any, ...]) -> tuple[Any, ...]:
    quoted, words, *middle, ptext = g
    if len(middle) == 5:  # scheme, user, host, port, ;uri-params
        middle[4] = _params_group(middle[4])
    return (quoted, _words_group(words) if quoted is None else None, *middle,
            _params_group(ptext))


_CHARS = st.sampled_from(
    list("SIP/2.0UDPudp sip:@<>\"\\;=,.-_~!*'()&+$`%?[]tag;branchrportAZaz09\t")
    + ["\u00e9", "\r", "\n", "\x00", "65536", ";;", "=="]
)
_TEXT = st.lists(_CHARS, max_size=40).map("".join)
_PREFIXED = st.builds(
    "{}{}".format,
    st.sampled_from(["SIP/2.0/UDP ", "SIP/2.0/tcp h", "", "<sip:", '"A\\" b" <sip:a@',
                     "Ab  cd\t<sip:", "12 ", "<sips:[2001:db8::1]"]),
    _TEXT,
)


def _mostly(common: list[str], odd: list[str]) -> st.SearchStrategy[str]:
    """A common form three times out of four, else an odd one."""
    return st.tuples(st.integers(0, 3), st.sampled_from(common), st.sampled_from(odd)).map(
        lambda t: t[2] if t[0] == 3 else t[1]
    )


_HOSTS = _mostly(["192.0.2.1", "h", "h.example.com", "[2001:db8::1]", "a-b.c."],
                 ["a-", "a.", "-a", "a--b.c", "[::1", "h_x", ""])
_PORTS = _mostly(["", ":5060", ":0"], [":65536", ":123456", ":", ":x"])
_SOME_PARAMS = _mostly(
    ["", ";branch=z9hG4bK1;rport", ";rport=5060;received=192.0.2.1", ";tag=a", ";lr",
     ";RPort;Branch=Z", ";x=;x", ";a=<b>", ";expires=60;q=0.5", ';+sip.instance="<urn:u:1>"'],
    [";", ";;", ";=x", ";a=b=c", ";a b", ';a="b"x', ';a="b;c"', ';a="\\"', ';a="'],
)
_URIS = st.builds(
    "{}:{}{}{}{}".format,
    _mostly(["sip", "sips"], ["SIP", "tel", "sip ", "http"]),
    _mostly(["", "alice@", "a.b-c+1@"], ["a:pw@", "a%41@", "@", "a;b@"]),
    _HOSTS, _PORTS,
    _mostly(["", ";lr", ";transport=tcp", ";LR;x=Y", ";a="], [";=x", ";a=[b]", ";a=%41", ";"]),
)
_DISPLAYS = _mostly(['', '"A" ', '"A\\"B" ', '"A"', "A B ", "A  B\t", '"" '],
                    ['"A', "A", "A<", '"A"x ', "\u00e9 "])


@st.composite
def _near_common(draw: st.DrawFn) -> str:
    """Texts in or near the shapes the fast patterns accept, sometimes with a character
    inserted or removed."""
    kind = draw(st.integers(0, 2))
    if kind == 0:
        t = draw(_mostly(["UDP", "tcp", "Tls"], ["", "U2", "U DP"]))
        text = f"SIP/2.0/{t} {draw(_HOSTS)}{draw(_PORTS)}{draw(_SOME_PARAMS)}"
    elif kind == 1:
        text = f"{draw(_DISPLAYS)}<{draw(_URIS)}>{draw(_SOME_PARAMS)}"
        if draw(st.integers(0, 3)) == 0:
            text = text.replace("<sip", "<x-sip:", 1)  # an URI only _NAME_ADDR_FAST takes
    else:
        text = f"{draw(st.sampled_from(['1', '0001', '12345678901', 'x']))} " + draw(
            st.sampled_from(["INVITE", "x-Y", "A B", "<"]))
    if draw(st.integers(0, 3)) == 0:
        pos = draw(st.integers(0, len(text)))
        if draw(st.booleans()):
            text = text[:pos] + draw(_CHARS) + text[pos:]
        else:
            text = text[:pos] + text[pos + 1 :]
    return text


@SETTINGS
@given(st.one_of(_TEXT, _PREFIXED, _near_common(), _near_common()))
@example("SIP/2.0/UDP a-:5060;x")
@example("SIP/2.0/UDP a.;x")
@example("SIP/2.0/UDP a--b.c-")
@example('"a\\"" <sip:a@b>')
@example("A B  <sip:a@b>;x=\"<urn:u>\";y")
@example("<sip:a@b:123456>")
@example("<sip:a@b;lr;=x>")
def test_possessive_patterns_match_as_the_plain_ones(text: str) -> None:
    """Every possessive fast pattern accepts exactly what its plain form accepts, same groups."""
    _same_match(values._VIA_FAST, _PLAIN_VIA, text, _via_groups)
    _same_match(values._CSEQ_FAST, _PLAIN_CSEQ, text, lambda g: g)
    _same_match(values._NAME_ADDR_FAST, _PLAIN_NAME_ADDR, text, _na_groups)
    _same_match(values._NAME_ADDR_URI_FAST, _PLAIN_NAME_ADDR_URI, text, _na_groups)


# ------------------------------------------------------------ parameter lists

_NAMES = st.sampled_from([
    "branch", "Branch", "BRANCH", "rport", "RPort", "received", "tag", "TAG", "Tag", "expires",
    "q", "lr", "transport", "Transport", "+sip.instance", "+SIP.Instance", "reg-id", "x", "X",
    "x-Custom", "ob", "maddr", "ttl",
])
_VALUES = st.sampled_from([
    None, "", "z9hG4bK1", "z9hG4bKAbC", "5060", "192.0.2.1", "[2001:db8::1]", "2001:db8::1",
    "UDP", "Aa", "a=b", "<b>", '"<urn:uuid:1>"', '""', '"a b"', '"a;b"', '"a\\"b"', '"a',
    "a b", "\u00e9",
])


@st.composite
def _param_text(draw: st.DrawFn) -> str:
    """``;name[=value]`` lists, with repeated names (some in another case) and flags."""
    out: list[str] = []
    names: list[str] = draw(st.lists(_NAMES, max_size=5))
    duplicate: bool = draw(st.booleans())
    if names and duplicate:
        names.append(draw(st.sampled_from(names)).swapcase())  # a duplicate in another case
    for name in names:
        value = draw(_VALUES)
        out.append(f";{name}" if value is None else f";{name}={value}")
    return "".join(out)


def _outcome(parse: Any, text: str) -> tuple[str, Any]:
    try:
        value = parse(text)
    except ParseError as e:
        return ("error", (e.status, e.detail))
    return ("value", (type(value), value, repr(value), str(value)))


@SETTINGS
@given(
    st.sampled_from(["UDP", "udp", "Tcp", "TLS", "ws", "WSS", "SCTP", "xyz", "Udp"]),
    st.sampled_from(["192.0.2.1", "192.0.2.1:5060", "h.example.com:65535", "[2001:db8::1]:5061",
                     "h:65536"]),
    _param_text(),
)
@example("UDP", "192.0.2.1", ";rport;rport=")
@example("UDP", "192.0.2.1", ";rport=;rport")
@example("UDP", "192.0.2.1", ";Branch=A;branch=B")
@example("udp", "192.0.2.1", ";BRANCH=z9hG4bKAbC;Received=192.0.2.2")
def test_via_parameters(transport: str, sent_by: str, params: str) -> None:
    """Via: names lower-cased (duplicates: the last value, at the first place), flags
    ``None`` and empty values ``""``, transport upper-case: as the general parser."""
    text = f"SIP/2.0/{transport} {sent_by}{params}"
    fast, general = _outcome(Via.parse, text), _outcome(Via._parse_general, text)
    assert fast == general
    if fast[0] == "value":
        via = fast[1][1]
        assert list(via.params) == list(Via._parse_general(text).params)
        assert via.transport == transport.upper()


@SETTINGS
@given(
    st.sampled_from(["", '"Alice" ', "Bob  Builder\t", '"A \\"B\\"" ', '"" ']),
    st.sampled_from(["sip:a@example.com", "sips:b@[2001:db8::1]:5061;transport=tcp",
                     "sip:c@192.0.2.1;LR;Transport=UDP;x=Y", "sip:192.0.2.1:65536",
                     "tel:+1-201-555-0123", "sip:a@b;lr;lr=1"]),
    _param_text(),
)
@example("", "sip:a@example.com", ';+sip.instance="<urn:uuid:1>";reg-id=1')
@example("", "sip:a@example.com", ";tag;tag=")
@example("", "sip:a@example.com", ';tag="a";TAG=b')
@example("", "sip:a@example.com", ';x=""')
def test_name_addr_parameters(display: str, uri_text: str, params: str) -> None:
    """NameAddr: header and URI parameters, quoted values without their quotes, display
    names: as the general parser (the same dict order too)."""
    text = f"{display}<{uri_text}>{params}"
    fast, general = _outcome(NameAddr.parse, text), _outcome(NameAddr._parse_general, text)
    assert fast == general
    if fast[0] == "value":
        na = fast[1][1]
        ref = NameAddr._parse_general(text)
        assert list(na.params) == list(ref.params)
        assert list(na.uri.params) == list(ref.uri.params)


def test_quoted_contact_parameters_take_the_fast_path() -> None:
    """A Contact with ``+sip.instance="<urn:...>"`` (RFC 5626) no longer needs the general parser."""
    text = '<sip:a@192.0.2.1:5060;ob>;+sip.instance="<urn:uuid:00000000-0000-1000-8000-000000000001>";reg-id=1'
    assert values._NAME_ADDR_URI_FAST(text) is not None
    na = NameAddr.parse(text)
    assert na == NameAddr._parse_general(text)
    assert na.params == {"+sip.instance": "<urn:uuid:00000000-0000-1000-8000-000000000001>",
                         "reg-id": "1"}
    # an escape or a ";" inside the quotes: the general parser, same value
    for odd in ('<sip:a@b>;x="a\\"b"', '<sip:a@b>;x="a;b"'):
        assert values._NAME_ADDR_URI_FAST(odd) is None
        assert NameAddr.parse(odd) == NameAddr._parse_general(odd)


def test_fast_values_share_their_usual_strings() -> None:
    """Usual parameter names and transports are one shared string per process, whatever
    message they came from (less memory per held Via/dialog; key probes by identity)."""
    a = Via.parse("SIP/2.0/udp 192.0.2.1;branch=z9hG4bK1;rport")
    b = Via.parse("SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK2;rport=5060")
    assert a.transport == "UDP" and a.transport is b.transport
    ka, kb = list(a.params), list(b.params)
    assert ka == kb == ["branch", "rport"] and all(x is y for x, y in zip(ka, kb, strict=True))
    c = Via.parse("SIP/2.0/UDP 192.0.2.2;Branch=z9hG4bK2")
    assert list(c.params) == ["branch"]


def test_cseq_fast_path() -> None:
    """CSeq: the fast path's bounds are the general parser's."""
    for text in ("1 INVITE", "4294967295 BYE", "4294967296 BYE", "0000000001 ACK", "1 x-Foo"):
        assert _outcome(CSeq.parse, text) == _outcome(CSeq._parse_general, text)
    assert CSeq.parse("4294967295 BYE") == CSeq(4294967295, "BYE")
