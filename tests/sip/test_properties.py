"""Hypothesis properties of the wire format: round trips and "only ParseError escapes".

Round trips use the public strategies of :mod:`txsipua.testing.strategies`; the fuzzers
feed arbitrary bytes and mutated valid messages (flipped bytes, truncation, inserted
CR/LF/NUL/quotes/brackets...) to :func:`parse_message` and to every typed accessor.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from txsipua.errors import ParseError
from txsipua.sip import CSeq, NameAddr, Request, Response, SipURI, Via, parse_message
from txsipua.sip.stream import StreamFramer
from txsipua.testing import strategies as sst

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# whole messages take many draws each: fewer examples keep the file at a few seconds
MESSAGES = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

CORPUS = [p.read_bytes() for p in sorted((Path(__file__).parent / "corpus").glob("*.sip"))]


# ---------------------------------------------------------------- value round trips


@FAST
@given(sst.uris())
def test_uri_round_trip(uri: SipURI) -> None:
    """str(uri) parses back to an equal URI (RFC 3261 §19.1)."""
    assert SipURI.parse(str(uri)) == uri
    assert SipURI.parse(str(uri)).to_text() == str(uri)


@FAST
@given(sst.vias())
def test_via_round_trip(via: Via) -> None:
    """str(via) parses back to an equal Via (RFC 3261 §20.42)."""
    assert Via.parse(str(via)) == via


@FAST
@given(sst.name_addrs())
def test_name_addr_round_trip(na: NameAddr) -> None:
    """str(name_addr) parses back to an equal value (RFC 3261 §20.10)."""
    assert NameAddr.parse(str(na)) == na


@FAST
@given(sst.cseqs())
def test_cseq_round_trip(cseq: CSeq) -> None:
    """str(cseq) parses back to an equal CSeq."""
    assert CSeq.parse(str(cseq)) == cseq


# ---------------------------------------------------------------- message round trips


def _expected_items(msg: Request | Response) -> list[tuple[str, str]]:
    return [(n, v) for n, v in msg.headers.items() if n != "Content-Length"]


@MESSAGES
@given(sst.requests())
def test_request_round_trip(req: Request) -> None:
    """A request serialises and parses back to the same method, URI, headers, body and values."""
    got = parse_message(req.to_bytes())
    assert isinstance(got, Request)
    assert got.method == req.method
    assert got.uri_text == req.uri_text and got.uri == req.uri
    assert _expected_items(got) == _expected_items(req)
    assert got.headers.get("Content-Length") == str(len(req.body))
    assert got.body == req.body
    assert got.via == req.via and got.top_via == req.via[0]
    assert got.from_ == req.from_ and got.to == req.to
    assert got.cseq == req.cseq and got.call_id == req.call_id
    assert got.contact == req.contact
    assert got.max_forwards == req.max_forwards and got.expires == req.expires
    assert got.to_bytes() == req.to_bytes()


@MESSAGES
@given(sst.responses())
def test_response_round_trip(resp: Response) -> None:
    """A response serialises and parses back to the same status, reason, headers and body."""
    got = parse_message(resp.to_bytes())
    assert isinstance(got, Response)
    assert (got.status, got.reason) == (resp.status, resp.reason)
    assert _expected_items(got) == _expected_items(resp)
    assert got.body == resp.body
    assert got.via == resp.via and got.to == resp.to and got.to.tag
    assert got.record_route == resp.record_route
    assert got.to_bytes() == resp.to_bytes()


@settings(MESSAGES, max_examples=20)
@given(st.lists(sst.messages(), min_size=1, max_size=3), st.data())
def test_stream_round_trip(msgs: list[Request | Response], data: st.DataObject) -> None:
    """Messages written back to back on a stream come out of the framer whole, in order."""
    wire = b"".join(m.to_bytes() for m in msgs)
    cut = data.draw(st.integers(0, len(wire)))
    f = StreamFramer()
    out = f.feed(wire[:cut]) + f.feed(wire[cut:])
    assert [m.to_bytes() for m in out] == [m.to_bytes() for m in msgs]


# ---------------------------------------------------------------- fuzzing


def _touch_everything(msg: Request | Response) -> None:
    """Call every typed accessor; each may raise ParseError and nothing else."""
    accessors = [
        lambda: msg.via, lambda: msg.top_via, lambda: msg.cseq, lambda: msg.from_,
        lambda: msg.to, lambda: msg.contact, lambda: msg.max_forwards, lambda: msg.expires,
        lambda: msg.record_route, lambda: msg.call_id, lambda: msg.content_type,
        lambda: [str(v) for v in msg.via], lambda: str(msg.from_), lambda: str(msg.to),
        lambda: msg.top_via.rport, lambda: [c.expires for c in msg.contact],
        lambda: msg.headers.get_all("Route"), lambda: msg.to_bytes(),
    ]
    if isinstance(msg, Request):
        accessors += [lambda: msg.uri, lambda: str(msg.uri), lambda: msg.uri.transport]
    for accessor in accessors:
        with contextlib.suppress(ParseError):
            accessor()
    # the fast tag path agrees with the full name-addr parser whenever that one succeeds
    for fast, full in ((lambda: msg.from_tag, lambda: msg.from_), (lambda: msg.to_tag, lambda: msg.to)):
        with contextlib.suppress(ParseError):
            tag = fast()
            assert tag == full().tag


def _parse_and_touch(data: bytes) -> None:
    try:
        msg = parse_message(data)
    except ParseError as e:
        assert e.status in (400, 413, 416, 505)
        return
    _touch_everything(msg)


def _frame_and_touch(data: bytes) -> None:
    f = StreamFramer()
    try:
        msgs = f.feed(data)
    except ParseError:
        assert f.broken
        return
    for m in msgs:
        _touch_everything(m)


@FUZZ
@given(st.binary(max_size=600))
@example(b"SIP/2.0 200 OK\r\nVia: ,\r\n\r\n")
@example(b"A sip:b SIP/2.0\r\nv: ,\r\nf: x\r\nt: x\r\ni: x\r\nCSeq: 1 A\r\n\r\n")
def test_arbitrary_bytes(data: bytes) -> None:
    """Arbitrary bytes raise nothing but ParseError, from the parser or the accessors."""
    _parse_and_touch(data)
    _frame_and_touch(data)


_INSERTS = [b"\r", b"\n", b"\r\n", b"\x00", b'"', b"\\", b"<", b">", b";", b",", b":", b" ",
            b"\t", b"@", b"[", b"]", b"=", b"?", b"%", b"\xff", "²".encode(), b"\r\n ", b"\r\n\r\n"]


# truncation mostly yields "no blank line": draw it less often than the others
_MUTATIONS = ("flip", "flip", "insert", "insert", "insert", "delete", "duplicate", "truncate")


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid message (from the corpus or the strategies) with a few random mutations."""
    if draw(st.integers(0, 3)):
        data = bytearray(draw(st.sampled_from(CORPUS)))
    else:
        data = bytearray(draw(sst.messages()).to_bytes())
    for _ in range(draw(st.integers(1, 4))):
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
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 40))]
    return bytes(data)


@settings(FUZZ, max_examples=200)
@given(mutated())
def test_mutated_messages(data: bytes) -> None:
    """Mutated valid messages raise nothing but ParseError, from the parser or the accessors."""
    _parse_and_touch(data)
    _frame_and_touch(data)


@FUZZ
@given(st.text(max_size=80))
def test_value_parsers_on_arbitrary_text(text: str) -> None:
    """SipURI/Via/NameAddr/CSeq.parse raise nothing but ParseError on any text."""
    for parse in (SipURI.parse, Via.parse, NameAddr.parse, CSeq.parse):
        try:
            value = parse(text)
        except ParseError:
            continue
        str(value)
