"""The optional C accelerator (``txsipua.sip._speedups``) against the pure parser.

The pure Python parser is the reference.  Each C entry point answers for the common
shapes and declines (``None`` / ``NotImplemented``) the rest, so that the pure code
decides every odd input and raises every error.  Checked here with hypothesis on
corpus messages, generated messages and their mutations (flipped bits, inserted
CR/LF/NUL, folding, odd spacing and case in names...), and generated and mutated
Via and From/To values:

* ``parse_message`` with the accelerator and without it (``parse_head``, ``tag_param``,
  ``via_parts`` all off) give the same message (start line, fields, body, typed values,
  serialisation) or the same ParseError (status and detail);
* ``via_parts(text)``, when it answers, gives exactly the parts the pure ``Via.parse``
  gives (order and types included), and ``Via.parse`` is the same either way;
* ``tag_param(value)`` answers only where the pure ``header_tag`` succeeds, with the
  same value (neither reads the URI): it declines every shape it is not sure of, so
  ``from_tag``/``to_tag`` give the same value or the same ParseError either way
  (``"garbage<<"`` raises on both paths; the reviewer once found None on the C path).

In CI the extension must be built (``.ci/run`` installs with a compiler), so these
tests never skip there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from txsipua.errors import ParseError
from txsipua.sip import NameAddr, message, parse, parse_message, values
from txsipua.sip.values import Via, header_tag
from txsipua.testing import strategies as sst

try:
    from txsipua.sip import _speedups

    via_parts: Callable[[str], Any] | None = _speedups.via_parts  # type: ignore[attr-defined,unused-ignore]
    tag_param: Callable[[str], Any] | None = _speedups.tag_param  # type: ignore[attr-defined,unused-ignore]
    parse_head: Callable[..., Any] | None = _speedups.parse_head  # type: ignore[attr-defined,unused-ignore]
except (ImportError, AttributeError):  # pragma: no cover - an install without a compiler
    via_parts = tag_param = parse_head = None

pytestmark = pytest.mark.skipif(
    parse_head is None, reason="the C accelerator is not built for this tree (`pip install -e .` or `python3 setup.py build_ext --inplace` builds it)"
)

CORPUS = [p.read_bytes() for p in sorted((Path(__file__).parent / "corpus").glob("*.sip"))]
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@contextmanager
def _pure() -> Iterator[None]:
    """Run the body with every C entry point switched off (the pure reference path)."""
    saved = (parse._parse_head, message._tag_param, values._via_parts)
    parse._parse_head = message._tag_param = values._via_parts = None
    try:
        yield
    finally:
        parse._parse_head, message._tag_param, values._via_parts = saved


@contextmanager
def _accelerator(fn: Callable[[str], Any] | None) -> Iterator[None]:
    """Run the body with ``values._via_parts`` set to ``fn`` (None: the pure path)."""
    saved = values._via_parts
    values._via_parts = fn
    try:
        yield
    finally:
        values._via_parts = saved


# ------------------------------------------------------------------ parse_message


def _value(get: Any) -> Any:
    try:
        return ("value", get())
    except ParseError as e:
        return ("error", e.status, e.detail)


def _outcome(data: bytes, stream: bool) -> Any:
    try:
        m = parse_message(data, stream=stream)
    except ParseError as e:
        return ("error", e.status, e.detail)
    start = (m.method, m.uri_text) if m.is_request else (m.status, m.reason)
    typed = [_value(lambda: m.cseq), _value(lambda: m.top_via), _value(lambda: m.via),
             _value(lambda: m.from_), _value(lambda: m.to), _value(lambda: m.call_id),
             _value(lambda: m.contact), _value(lambda: m.max_forwards)]
    tags = [_value(lambda: m.from_tag), _value(lambda: m.to_tag)]  # before from_/to are cached
    return ("ok", m.is_request, start, list(m.headers._fields), m.headers.items(), m.body,
            typed, m.to_bytes(), tags)


def _agree(data: bytes) -> None:
    for stream in (False, True):
        fast = _outcome(data, stream)
        with _pure():
            pure = _outcome(data, stream)
        assert fast == pure  # the tags too: the same value or the same error


_INSERTS = [b"\r", b"\n", b"\r\n", b"\x00", b'"', b"<", b">", b";", b",", b":", b" ", b"\t",
            b"\r\n ", b"\r\n\t", b"\r\n\r\n", b"\xff", "\u00e9".encode(), b"\x0b", b"\x0c",
            b"\x1c", "\u0085".encode(), "\u2028".encode(), b"\r\r", b"\n\n", b"X-A", b"v",
            b"VIA", b"call-ID", b"l: 3\r\n", b"CSeq: 1 X\r\n", b"i: x\r\n"]
_MUTATIONS = ("flip", "insert", "insert", "insert", "delete", "duplicate", "case", "truncate")


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 2)):
        data = bytearray(draw(st.sampled_from(CORPUS)))
    else:
        data = bytearray(draw(sst.messages()).to_bytes())
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(_MUTATIONS))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[pos:]
        elif kind == "insert":
            data[pos:pos] = draw(st.sampled_from(_INSERTS))
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 8))]
        elif kind == "duplicate":
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 60))]
        elif kind == "case":
            data[pos : pos + 8] = bytes(data[pos : pos + 8]).swapcase()
    return bytes(data)


@pytest.mark.parametrize("data", CORPUS)
def test_corpus_agrees(data: bytes) -> None:
    _agree(data)


@SETTINGS
@given(_mutated())
@example(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nFrom: <sip:a@b>;tag=1\r\n"
         b"To: <sip:b@c>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nCSeq: 1 OPTIONS\r\n\r\n")
def test_mutated_messages_agree(data: bytes) -> None:
    _agree(data)


@SETTINGS
@given(st.binary(max_size=300))
def test_arbitrary_bytes_agree(data: bytes) -> None:
    _agree(data)


@SETTINGS
@given(st.lists(st.sampled_from(
    [b"Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n", b"v: x\r\n", b"From: <sip:a@b>;tag=1\r\n",
     b"f: a\r\n", b"To: <sip:b@c>\r\n", b"Call-ID: c\r\n", b"i: d\r\n", b"CSeq: 1 INVITE\r\n",
     b"CSeq: 2 BYE\r\n", b"Content-Length: 3\r\n", b"l: 0\r\n", b"Content-Length: 99\r\n",
     b"Route: <sip:p;lr>\r\n", b"Route: <sip:q;lr>\r\n", b"X-A: \r\n continued\r\n"]), max_size=12),
    st.sampled_from([b"INVITE sip:a@b SIP/2.0", b"SIP/2.0 200 OK", b"BYE sip:a@b SIP/2.0",
                     b"SIP/2.0 487 Request Terminated", b"sip/2.0 180 Ringing"]),
    st.binary(max_size=5))
def test_assembled_messages_agree(lines: list[bytes], start: bytes, body: bytes) -> None:
    """Mandatory fields present, missing or repeated, in every order: parse_head answers
    only what the pure checks accept, with the same parts."""
    data = start + b"\r\n" + b"".join(lines) + b"\r\n" + body
    _agree(data)
    assert parse_head is not None
    got = parse_head(data, data.find(b"\r\n\r\n"), parse._NAMES)
    if got is None:
        return
    with _pure():
        try:
            m = parse_message(data)
        except ParseError as e:
            pytest.fail(f"parse_head accepted what the pure code refuses: {e}")
    fields, keys, is_request, first, second, seq, method, length = got
    assert fields == m.headers._fields and keys == list(m.headers._index())
    assert is_request == m.is_request
    assert (first, second) == ((m.method, m.uri_text) if m.is_request else (m.status, m.reason))
    assert (seq, method) == (m.cseq.seq, m.cseq.method)


# ------------------------------------------------------------------ via_parts


def _parse(text: str) -> object:
    """Via.parse's outcome: the fields (with their types) or the error."""
    try:
        v = Via.parse(text)
    except ParseError as e:
        return ("error", str(e))
    return (
        v.transport,
        v.host,
        v.port,
        type(v.port),
        list(v.params.items()),
        type(v.params),
        v.protocol,
    )


def _check(text: str) -> None:
    assert via_parts is not None
    got = via_parts(text)
    with _accelerator(None):
        pure = _parse(text)
    if got is not NotImplemented:
        assert isinstance(pure, tuple) and pure[0] != "error", text
        assert type(got) is tuple and len(got) == 4, text
        assert got[:3] == pure[:3], text
        assert type(got[2]) is pure[3]
        assert type(got[3]) is dict
        assert list(got[3].items()) == pure[4], text  # order too
        assert all(type(k) is str for k in got[3])
        assert all(v is None or type(v) is str for v in got[3].values())
        assert pure[6] == "SIP/2.0"
    with _accelerator(via_parts):
        fast = _parse(text)
    assert fast == pure, text


# ------------------------------------------------------------------ via strategies


_PREFIXES = ["SIP/2.0/"] * 8 + ["sip/2.0/", "SIP/2.0 /", "SIP/2.1/", "SIP /2.0/", "SIP/2.0/ ", ""]
_TRANSPORTS = [
    "UDP", "udp", "Udp", "uDP", "TCP", "tcp", "TLS", "tls", "WS", "ws", "Ws", "WSS", "wss",
    "SCTP", "sctp", "XYZ", "x", "ud p", "", "UDP2", "ÜDP", "U\u0130P",
]  # fmt: skip
_HOSTS = [
    "192.0.2.1", "198.51.100.7", "203.0.113.250", "edge.example.net", "a", "A9", "9",
    "pbx-1.example.com", "a.", "a..b", "[2001:db8::1]", "[::1]", "[2001:DB8::a:1]",
    "[::ffff:192.0.2.1]", "[]", "[2001:db8::g]", "[2001:db8::1", "2001:db8::1", "a-", "-a",
    "a-b", ".a", "host_name", "é.example", "h\u0131st", "a" * 300, "x" * 70 + "-y", "",
    "192.0.2.1 ",
]  # fmt: skip
_PARAM_NAMES = [
    "branch", "Branch", "BRANCH", "rport", "RPort", "received", "Received", "maddr", "ttl",
    "alias", "tag", "q", "transport", "reg-id", "+sip.instance", "SIGCOMP-ID", "comp", "x",
    "X-Y", "a.b", "!%*_+`'~", "", "a b", "é", "na\u0130me", "n;m", 'n"', "k=v",
]  # fmt: skip
_VALUES = [
    None, None, "", "z9hG4bK776asdhds", "z9hG4bK" + "A" * 200, "60895", "198.51.100.9",
    "[2001:db8::1]", "2001:db8::1", "a=b", "=", '"quoted"', '"', "sp ace", " lead", "trail ",
    "tab\t", "é", "x\x7f", "x\x00", "#$%&'()*+,-./:<>?@[\\]^_`{|}~", ",next",
]  # fmt: skip

_name = st.one_of(
    st.sampled_from(_PARAM_NAMES),
    st.text(alphabet="abcXYZ019-.!%*_+`'~", min_size=1, max_size=12),
)
_param_value = st.one_of(
    st.sampled_from(_VALUES),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12),
)


@st.composite
def _port(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 9))
    if kind < 4:
        return ""
    if kind < 8:
        n = draw(st.integers(0, 70000))
        zeros = "0" * draw(st.integers(0, 2)) if draw(st.booleans()) else ""
        return f":{zeros}{n}"
    return draw(st.sampled_from([":", ": 5060", ":5060 ", ":123456", ":-1", ":5o6o", "::1"]))


@st.composite
def _via_text(draw: st.DrawFn) -> str:
    text = (
        draw(st.sampled_from(_PREFIXES))
        + draw(st.one_of(st.sampled_from(_TRANSPORTS), st.text(alphabet="uUdDpPx", max_size=5)))
        + draw(st.sampled_from([" "] * 6 + ["  ", "\t", "", " \t"]))
        + draw(st.sampled_from(_HOSTS))
        + draw(_port())
    )
    for name, value in draw(st.lists(st.tuples(_name, _param_value), max_size=6)):
        text += ";" + name if value is None else f";{name}={value}"
    return text + draw(st.sampled_from([""] * 8 + [";", " ", "\r\n", ",", ";;", "é"]))


@st.composite
def _mutated_via(draw: st.DrawFn) -> str:
    """An accepted-looking text with one character inserted, replaced or deleted."""
    text = draw(_via_text())
    i = draw(st.integers(0, len(text)))
    c = draw(st.sampled_from(list(" \t;:=[]-.\"'\\,é\x00\x7fAz09") + ["\u0130", "\U0001f600"]))
    op = draw(st.integers(0, 2))
    if op == 0:
        return text[:i] + c + text[i:]
    if op == 1:
        return text[:i] + c + text[i + 1 :]
    return text[:i] + text[i + 1 :]




@settings(max_examples=1000, deadline=None)
@given(_via_text())
def test_generated_vias_agree(text: str) -> None:
    _check(text)


@settings(max_examples=600, deadline=None)
@given(_mutated_via())
def test_mutated_vias_agree(text: str) -> None:
    _check(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_arbitrary_text_agrees(text: str) -> None:
    _check(text)
    _check("SIP/2.0/UDP " + text)


@pytest.mark.parametrize(
    "text",
    [
        "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1",
        "SIP/2.0/udp [2001:db8::1]:65535;Branch=x;RPORT;a=b=c;a;x=",
        "SIP/2.0/Tls pbx.example.com;rport=0;received=192.0.2.9;branch=z9hG4bKa",
        "SIP/2.0/UDP h:00000",
        "SIP/2.0/UDP h:65535",
        "SIP/2.0/UDP h:65536",
        "SIP/2.0/UDP h:99999",
        "SIP/2.0/UDP h:123456",
        "SIP/2.0/UDP h:012345",
        "SIP/2.0/UDP h:000001;x",
        "SIP/2.0/UDP h:00001;x",
        "SIP/2.0/UDP h:",
        "SIP/2.0/UDP h;",
        "SIP/2.0/UDP h;;x",
        "SIP/2.0/UDP a-",
        "SIP/2.0/UDP a-;x",
        "SIP/2.0/UDP [::1",
        "SIP/2.0/UDP []",
        "SIP/2.0/UDP ",
        "SIP/2.0/ h",
        "SIP/2.0/",
        "SIP/2.0",
        "",
        "SIP/2.0/UDP h;n=\x80",
        "SIP/2.0/UDP h;n=é",
        "SIP/2.0/UDP h;n=\U0001f600",
        'SIP/2.0/UDP h;n="q"',
        "SIP/2.0/UDP h;branch=1;BRANCH=2;Branch",
        "SIP/2.0/UDP h ;rport",
        "SIP/2.0/UDP h\t;rport",
    ],
)
def test_edge_cases_agree(text: str) -> None:
    _check(text)


def test_repeated_name_keeps_first_position_and_last_value() -> None:
    assert via_parts is not None
    got = via_parts("SIP/2.0/UDP h;a=1;B;A=2;b=3")
    assert got == ("UDP", "h", None, {"a": "2", "b": "3"})
    assert list(got[3]) == ["a", "b"]


def test_port_bounds_and_declines() -> None:
    assert via_parts is not None
    assert via_parts("SIP/2.0/UDP h:0")[2] == 0
    assert via_parts("SIP/2.0/UDP h:65535")[2] == 65535
    assert via_parts("SIP/2.0/UDP h:65536") is NotImplemented
    with _accelerator(via_parts), pytest.raises(ParseError):
        Via.parse("SIP/2.0/UDP h:65536")


def test_common_names_and_transports_are_shared() -> None:
    assert via_parts is not None
    a = via_parts("SIP/2.0/udp h;branch=1;Received=x;rport")
    b = via_parts("SIP/2.0/UDP g;BRANCH=2;received=y;RPORT=5")
    assert a[0] is b[0] == "UDP"
    for ka, kb in zip(a[3], b[3], strict=True):
        assert ka is kb


def test_non_str_raises_type_error() -> None:
    assert via_parts is not None
    for bad in (b"SIP/2.0/UDP h", None, 5, ["SIP/2.0/UDP h"]):
        with pytest.raises(TypeError):
            via_parts(bad)  # type: ignore[arg-type]


def test_str_subclass_gives_plain_values() -> None:
    class S(str):
        def lower(self) -> str:  # never consulted: the pattern reads the characters
            return "overridden"

    assert via_parts is not None
    got = via_parts(S("SIP/2.0/UDP h:1;X=y"))
    assert got == ("UDP", "h", 1, {"x": "y"})
    assert type(got[1]) is str
    _check(S("SIP/2.0/UDP h:1;X=y"))


# ------------------------------------------------------------------ tag_param


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("<sip:a@b>;tag=abc", "abc"),
        ('"Chloe \\"CJ\\" Jones" <sip:a@b;tag=no>;tag=x1;other', "x1"),
        ("sip:a@b;tag=t", "t"),  # addr-spec: header parameters after the URI
        ("<sip:a@b>", None),
        ("<sip:a@b;tag=in-uri>", None),  # a URI parameter is not the tag
        ("<sip:a@b>;TAG=x", NotImplemented),  # odd spelling: the full parser
        ("<sip:a@b>;tag=", NotImplemented),  # empty
        ("<sip:a@b>;tag=a;tag=b", NotImplemented),  # repeated
        ('<sip:a@b>;x="y";tag=a', NotImplemented),  # a quoted parameter
        ("<sip:a@b>;tag= a", NotImplemented),  # strip() would change it
        ("<sip:a@b>;tag=\u00e9", NotImplemented),  # non-ASCII
    ],
)
def test_tag_param_examples(value: str, want: object) -> None:
    assert tag_param(value) == want if want is not None else tag_param(value) is None
    if want is not NotImplemented:
        assert header_tag(value) == want == NameAddr.parse(value).tag


_TAG_BITS = st.sampled_from(
    ["<", ">", "sip:a@b", ";", "tag", "TAG", "=", ";tag=", '"', "\\", " ", "\t", "x", "1",
     "\x1c", "\x7f", "\u00e9", ",", "Tag", "tel:1", "http://x"]
)


@settings(max_examples=1000, deadline=None)
@given(st.lists(_TAG_BITS, max_size=14).map("".join))
def test_tag_param_agrees_with_the_pure_code(value: str) -> None:
    assert tag_param is not None
    got = tag_param(value)
    if got is NotImplemented:
        return
    try:
        want = header_tag(value)
    except ParseError as e:
        pytest.fail(f"tag_param answered {got!r} where the pure code raises {e}")
    assert got == want
    _same_tag_either_way(value)


@settings(max_examples=300, deadline=None)
@given(sst.name_addrs())
def test_tag_param_on_generated_name_addrs(na: NameAddr) -> None:
    assert tag_param is not None
    got = tag_param(str(na))
    assert got is NotImplemented or got == na.tag


def _tag_outcome(value: str) -> Any:
    m = message.Request("OPTIONS", "sip:a@b", [("To", value)])
    return _value(lambda: m.to_tag)


def _same_tag_either_way(value: str) -> None:
    fast = _tag_outcome(value)
    with _pure():
        pure = _tag_outcome(value)
    assert fast == pure, value


@pytest.mark.parametrize(
    "value",
    ["garbage<<", '"x <sip:b@c>;tag=9', "<sip:b@c> junk;tag=7", "<", "<<<>>", "a>b<sip:x>;tag=1",
     "<sip:b@c>;tag=x;tag=y", "sip:b@c;tag=", "<sip:b@c>;=v;tag=1", '"a<b" sip:x;tag=1',
     "\x1c<sip:b@c>;tag=1", "<sip:b@c>;tag=1\x1c", '"q\\" <sip:b@c>;tag=2', "*", "",
     '<sip:"x>;tag=1', "a;tag=1 <sip:x>", "sip:a@b;tag=t", " <sip:b@c> ;tag=3 "],
)
def test_tag_same_value_or_error_on_both_paths(value: str) -> None:
    """The reviewer's To values: the C path gives exactly what the pure one does (value or error)."""
    assert tag_param is not None
    got = tag_param(value)
    if got is not NotImplemented:
        assert got == header_tag(value), value
    _same_tag_either_way(value)


@settings(max_examples=1000, deadline=None)
@given(st.lists(_TAG_BITS, max_size=14).map("".join))
def test_tag_outcome_is_the_same_on_both_paths(value: str) -> None:
    _same_tag_either_way(value)
