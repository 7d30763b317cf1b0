"""The C fast path of ``Via.parse`` (``txsipua.sip._speedups.via_parts``) against the pure path.

``via_parts(text)`` must answer ``(transport, host, port, params)`` for exactly the text the
pure fast path accepts (``values._VIA_FAST`` fullmatches and the port is at most 65535), equal
to what that path builds, and ``NotImplemented`` for everything else; ``Via.parse`` must give
the same values and the same errors with and without it (RFC 3261 §20.42).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from txsipua.errors import ParseError
from txsipua.sip import values
from txsipua.sip.values import Via

try:
    from txsipua.sip import _speedups

    via_parts: Callable[[str], Any] | None = _speedups.via_parts  # type: ignore[attr-defined,unused-ignore]
except (ImportError, AttributeError):  # pragma: no cover - an install without a compiler
    via_parts = None

pytestmark = pytest.mark.skipif(
    via_parts is None,
    reason="the C accelerator txsipua.sip._speedups.via_parts is not built "
    "(no compiler at install time, or a build older than _speedups_via.h)",
)


@contextmanager
def _accelerator(fn: Callable[[str], Any] | None) -> Iterator[None]:
    """Run the body with ``values._via_parts`` set to ``fn`` (None: the pure path)."""
    saved = values._via_parts
    values._via_parts = fn
    try:
        yield
    finally:
        values._via_parts = saved


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


def _pure_fast(text: str) -> tuple[str, str, int | None, dict[str, str | None]] | None:
    """What the pure fast path builds for ``text``, or None when it does not take it."""
    m = values._VIA_FAST(text)
    if m is None or (m.group(3) is not None and int(m.group(3)) > 65535):
        return None
    with _accelerator(None):
        v = Via.parse(text)
    return (v.transport, v.host, v.port, v.params)


def _check(text: str) -> None:
    assert via_parts is not None
    got = via_parts(text)
    want = _pure_fast(text)
    if want is None:
        assert got is NotImplemented, text
    else:
        assert type(got) is tuple and len(got) == 4, text
        assert got[:3] == want[:3], text
        assert type(got[2]) is type(want[2])
        assert type(got[3]) is dict
        assert list(got[3].items()) == list(want[3].items()), text  # order too
        assert all(type(k) is str for k in got[3])
        assert all(v is None or type(v) is str for v in got[3].values())
    with _accelerator(via_parts):
        fast = _parse(text)
    with _accelerator(None):
        pure = _parse(text)
    assert fast == pure, text


# ------------------------------------------------------------------ strategies

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
_NAMES = [
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
    st.sampled_from(_NAMES),
    st.text(alphabet="abcXYZ019-.!%*_+`'~", min_size=1, max_size=12),
)
_value = st.one_of(
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
    for name, value in draw(st.lists(st.tuples(_name, _value), max_size=6)):
        text += ";" + name if value is None else f";{name}={value}"
    return text + draw(st.sampled_from([""] * 8 + [";", " ", "\r\n", ",", ";;", "é"]))


@st.composite
def _mutated(draw: st.DrawFn) -> str:
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


# ------------------------------------------------------------------ tests


@settings(max_examples=1000, deadline=None)
@given(_via_text())
def test_generated_vias_agree(text: str) -> None:
    _check(text)


@settings(max_examples=600, deadline=None)
@given(_mutated())
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


def test_no_reference_or_memory_leak() -> None:
    assert via_parts is not None
    texts = [
        "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport;received=198.51.100.2",
        "SIP/2.0/Udp [2001:db8::1];Odd=1;odd=2;x",
        "SIP/2.0/UDP h:65536;branch=x",  # declined after the head
        "SIP/2.0/UDP h;branch=x;bad=\"q\"",  # declined in the parameters
        "SIP/2.0/UDP é",
    ]
    shared = [via_parts(texts[0])[0], *via_parts(texts[0])[3]]
    for t in texts:
        via_parts(t)
    before = [sys.getrefcount(s) for s in shared]
    none_before = sys.getrefcount(None)
    tracemalloc.start()
    try:
        for t in texts:
            via_parts(t)
        base, _ = tracemalloc.get_traced_memory()
        for _ in range(2000):
            for t in texts:
                via_parts(t)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - base < 4096
    assert [sys.getrefcount(s) for s in shared] == before
    assert abs(sys.getrefcount(None) - none_before) < 100  # a leak would be 2000+


def test_txsipua_pure_turns_it_off() -> None:
    code = "from txsipua.sip import values; print(values._via_parts is None)"
    env = dict(os.environ, TXSIPUA_PURE="1")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "True"
    env.pop("TXSIPUA_PURE")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
