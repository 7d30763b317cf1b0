"""StreamFramer: SIP over TCP/TLS byte streams (RFC 3261 §18.3) and keepalives (RFC 5626 §3.5.1)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from txsipua.errors import ParseError
from txsipua.sip import Request, Response
from txsipua.sip.stream import StreamFramer


def message(n: int, body: bytes = b"", method: str = "MESSAGE", compact: bool = False) -> bytes:
    """A request numbered ``n`` (its CSeq) with a correct Content-Length."""
    cl = "l" if compact else "Content-Length"
    return (
        f"{method} sip:bob@example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK{n}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@example.com>;tag=a\r\n"
        "To: <sip:bob@example.com>\r\n"
        "Call-ID: stream@192.0.2.1\r\n"
        f"CSeq: {n} {method}\r\n"
        f"{cl}: {len(body)}\r\n"
        "\r\n"
    ).encode() + body


def response(n: int, body: bytes = b"") -> bytes:
    """A 200 answering :func:`message` ``n``."""
    return (
        "SIP/2.0 200 OK\r\n"
        f"Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK{n}\r\n"
        "From: <sip:alice@example.com>;tag=a\r\n"
        "To: <sip:bob@example.com>;tag=b\r\n"
        "Call-ID: stream@192.0.2.1\r\n"
        f"CSeq: {n} MESSAGE\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    ).encode() + body


def seqs(msgs: list[Request | Response]) -> list[int]:
    return [m.cseq.seq for m in msgs]


def test_one_message_one_chunk() -> None:
    """A whole message in one chunk comes out at once, body included."""
    f = StreamFramer()
    (m,) = f.feed(message(1, b"hello"))
    assert isinstance(m, Request) and m.body == b"hello"
    assert f.buffered == 0


def test_byte_at_a_time() -> None:
    """Fed one byte at a time, each message appears exactly when its last byte arrives."""
    data = message(1, b"body\r\n\r\nwith blank lines") + response(2) + message(3, b"x" * 300)
    ends = {len(message(1, b"body\r\n\r\nwith blank lines")) - 1,
            len(message(1, b"body\r\n\r\nwith blank lines") + response(2)) - 1,
            len(data) - 1}
    f = StreamFramer()
    out: list[Request | Response] = []
    for i in range(len(data)):
        got = f.feed(data[i : i + 1])
        assert bool(got) == (i in ends), i
        out += got
    assert seqs(out) == [1, 2, 3]
    assert out[0].body == b"body\r\n\r\nwith blank lines"
    assert isinstance(out[1], Response) and out[1].status == 200
    assert f.pongs_due == 0 and f.pings_received == 0


def test_several_messages_in_one_chunk() -> None:
    """Many messages in one chunk all come out in order; a partial tail waits."""
    whole = b"".join(message(i, bytes([65 + i]) * i) for i in range(1, 6))
    tail = message(6, b"abcdef")
    f = StreamFramer()
    out = f.feed(whole + tail[:-3])
    assert seqs(out) == [1, 2, 3, 4, 5]
    assert [m.body for m in out] == [bytes([65 + i]) * i for i in range(1, 6)]
    assert f.buffered == len(tail) - 3
    (last,) = f.feed(tail[-3:])
    assert last.body == b"abcdef"


def test_body_split_across_chunks() -> None:
    """The header section and the body may arrive in any number of pieces."""
    body = bytes(range(256)) * 10
    data = message(1, body)
    head_len = data.index(b"\r\n\r\n") + 4
    f = StreamFramer()
    assert f.feed(data[: head_len - 1]) == []
    assert f.feed(data[head_len - 1 : head_len + 100]) == []
    assert f.feed(data[head_len + 100 : -1]) == []
    (m,) = f.feed(data[-1:])
    assert m.body == body


def test_keepalives_between_messages() -> None:
    """Double-CRLF pings are skipped and each owes one CRLF pong (RFC 5626 §3.5.1)."""
    f = StreamFramer()
    out = f.feed(b"\r\n\r\n" + message(1) + b"\r\n\r\n\r\n\r\n" + message(2) + b"\r\n\r\n")
    assert seqs(out) == [1, 2]
    assert f.pings_received == 4 and f.pongs_due == 4
    assert f.take_pongs() == b"\r\n" * 4
    assert f.pongs_due == 0 and f.take_pongs() == b""
    assert f.pongs_received == 0
    # a lone CRLF before a start line is no ping (RFC 3261 §7.5)
    assert seqs(f.feed(b"\r\n" + message(3) + b"\r\n\r\n\r\n" + message(4))) == [3, 4]
    assert f.pings_received == 5


def test_ping_split_across_chunks() -> None:
    """A ping fed byte by byte is still one ping."""
    f = StreamFramer()
    for b in b"\r\n\r\n":
        assert f.feed(bytes([b])) == []
    assert f.pings_received == 1 and f.pongs_due == 1
    (m,) = f.feed(message(1))
    assert m.cseq.seq == 1
    assert f.pings_received == 1


def test_pong_received_on_outbound_connection() -> None:
    """On a connection this side opened each CRLF is a pong answering its ping."""
    f = StreamFramer(outbound=True)
    assert f.feed(b"\r\n") == []
    assert f.pongs_received == 1 and f.pings_received == 0 and f.pongs_due == 0
    assert f.feed(b"") == []
    assert f.pongs_received == 1
    assert f.feed(b"\r") == [] and f.pongs_received == 1
    assert f.feed(b"\n") == [] and f.pongs_received == 2  # successive pongs stay pongs
    assert seqs(f.feed(b"\r\n" + message(2) + b"\r\n")) == [2]
    assert f.pongs_received == 4
    assert f.take_pongs() == b""


def test_bare_lf_keepalive_and_message() -> None:
    """LF-only line ends count as line ends for keepalives and framing."""
    lf = message(1, b"hi").replace(b"\r\n", b"\n")
    f = StreamFramer()
    (m,) = f.feed(b"\n\n" + lf)
    assert m.body == b"hi" and f.pongs_due == 1


def test_compact_and_folded_content_length() -> None:
    """``l:`` and a folded Content-Length frame the body too."""
    f = StreamFramer()
    (m,) = f.feed(message(1, b"abc", compact=True))
    assert m.body == b"abc"
    folded = message(2, b"wxyz").replace(b"Content-Length: 4", b"Content-Length:\r\n 0004")
    (m,) = f.feed(folded)
    assert m.body == b"wxyz"


def test_missing_content_length_breaks_the_stream() -> None:
    """Without Content-Length the body's end is unknown: ParseError, the framer is broken."""
    data = message(1).replace(b"Content-Length: 0\r\n", b"")
    f = StreamFramer()
    with pytest.raises(ParseError) as e:
        f.feed(data)
    assert e.value.status == 400 and "Content-Length" in e.value.detail
    assert f.broken
    with pytest.raises(ParseError):
        f.feed(message(2))


@pytest.mark.parametrize(
    "value", [b"-1", b"abc", b"1 2", b"\xc2\xb2", b"99999999999999"],
)
def test_bad_content_length_breaks_the_stream(value: bytes) -> None:
    """A Content-Length that is not a number is a framing defect (400)."""
    data = message(1).replace(b"Content-Length: 0", b"Content-Length: " + value)
    f = StreamFramer()
    with pytest.raises(ParseError) as e:
        f.feed(data)
    assert e.value.status in (400, 413)
    assert f.broken


def test_differing_content_lengths_break_the_stream() -> None:
    """Two differing Content-Length values make the framing ambiguous."""
    data = message(1, b"ab").replace(b"Content-Length: 2", b"Content-Length: 2\r\nl: 1")
    with pytest.raises(ParseError):
        StreamFramer().feed(data)


def test_oversized_message() -> None:
    """A Content-Length taking the message past max_size is refused at once (413)."""
    f = StreamFramer(max_size=1000)
    head = message(1).replace(b"Content-Length: 0", b"Content-Length: 5000")
    with pytest.raises(ParseError) as e:
        f.feed(head)
    assert e.value.status == 413 and f.broken


def test_oversized_header_section() -> None:
    """A header section that never ends is refused once it exceeds max_size (413)."""
    f = StreamFramer(max_size=1000)
    assert f.feed(b"INVITE sip:bob@example.com SIP/2.0\r\n") == []
    with pytest.raises(ParseError) as e:
        for _ in range(100):
            f.feed(b"X-Pad: " + b"p" * 20 + b"\r\n")
    assert e.value.status == 413 and f.broken


def test_message_exactly_max_size() -> None:
    """A message of exactly max_size bytes is accepted."""
    data = message(1, b"")
    body = b"z" * 200
    data = message(1, body)
    f = StreamFramer(max_size=len(data))
    (m,) = f.feed(data)
    assert m.body == body


def test_unparseable_but_framed_message_is_skipped() -> None:
    """A well-framed message that fails to parse is set aside; the stream goes on."""
    bad = message(2, b"oops").replace(b"CSeq: 2 MESSAGE", b"CSeq: two MESSAGE")
    f = StreamFramer()
    out = f.feed(message(1) + bad + message(3))
    assert seqs(out) == [1, 3]
    ((frame, err),) = f.take_rejected()
    assert frame == bad and err.status == 400 and "CSeq" in err.detail
    assert f.take_rejected() == []
    assert not f.broken


def test_feed_frames_returns_raw_bytes() -> None:
    """feed_frames frames without parsing, for callers that parse later."""
    f = StreamFramer()
    a, b = message(1, b"x"), response(2, b"yz")
    assert f.feed_frames(b"\r\n\r\n" + a + b[:10]) == [a]
    assert f.feed_frames(b[10:]) == [b]
    assert f.pongs_due == 1


def test_leading_garbage_line_ends_only() -> None:
    """Only CR and LF are skipped between messages: other bytes start a message."""
    f = StreamFramer()
    assert f.feed(b"\r") == []
    assert f.feed(b"\n\r") == []
    assert f.feed(b"\n") == []
    assert f.pings_received == 1
    assert seqs(f.feed(message(9))) == [9]


@settings(max_examples=60, deadline=None)
@given(
    bodies=st.lists(st.binary(max_size=200), min_size=1, max_size=5),
    pings=st.lists(st.integers(0, 3), min_size=5, max_size=5),
    cuts=st.lists(st.integers(1, 4000), max_size=12),
)
def test_any_chunking_gives_the_same_messages(bodies: list[bytes], pings: list[int],
                                              cuts: list[int]) -> None:
    """However the stream is cut into chunks, the same messages and pings come out."""
    data = b"".join(b"\r\n\r\n" * pings[i] + message(i + 1, body) for i, body in enumerate(bodies))
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    f = StreamFramer()
    out: list[Request | Response] = []
    for a, b in zip(points, points[1:], strict=False):
        out += f.feed(data[a:b])
    assert seqs(out) == list(range(1, len(bodies) + 1))
    assert [m.body for m in out] == bodies
    assert f.pings_received == sum(pings[: len(bodies)])
    assert f.buffered == 0 and not f.broken
