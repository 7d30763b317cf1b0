"""Core behaviour of the SIP message parser and serialiser (RFC 3261 §7)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from txsipua.errors import ParseError
from txsipua.sip import CSeq, Headers, NameAddr, Request, Response, parse, parse_message
from txsipua.sip.values import header_tag
from txsipua.testing import strategies as sst

INVITE = (
    b"INVITE sip:bob@example.com SIP/2.0\r\n"
    b"v: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc;rport\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKxyz, SIP/2.0/TCP [2001:db8::1]:5070;branch=z9hG4bKq\r\n"
    b"Max-Forwards: 70\r\n"
    b'f: "Alice \\"A\\"" <sip:alice@example.com>;tag=1928\r\n'
    b"t: sip:bob@example.com\r\n"
    b"i: a84b4c76e66710\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"m: <sip:alice@192.0.2.1>\r\n"
    b"Subject: folded\r\n  continuation\r\n"
    b"c: application/sdp\r\n"
    b"l: 4\r\n"
    b"\r\n"
    b"v=0\r\nEXTRA"
)


def test_compact_forms_and_lists() -> None:
    """Compact names expand; Via values split across and within fields."""
    m = parse_message(INVITE)
    assert isinstance(m, Request)
    assert m.method == "INVITE"
    assert m.call_id == "a84b4c76e66710"
    assert [v.branch for v in m.via] == ["z9hG4bKabc", "z9hG4bKxyz", "z9hG4bKq"]
    assert m.via[2].host == "[2001:db8::1]" and m.via[2].port == 5070
    assert m.top_via.rport == ""
    assert m.from_.display_name == 'Alice "A"'
    assert m.from_.tag == "1928"
    assert m.to.tag is None
    assert m.cseq.seq == 314159
    assert m.headers.get("subject") == "folded continuation"
    assert m.body == b"v=0\r"[:4]
    assert m.content_type == "application/sdp"


def test_round_trip() -> None:
    """Serialising and reparsing keeps every field and fixes Content-Length."""
    m = parse_message(INVITE)
    again = parse_message(m.to_bytes())
    assert again.headers == m.headers
    assert again.body == m.body
    m.body = b"hello world"
    assert b"Content-Length: 11\r\n" in m.to_bytes()


@pytest.mark.parametrize(
    ("data", "status", "words"),
    [
        (INVITE.replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1), 505, "version"),
        (INVITE.replace(b"CSeq: 314159 INVITE", b"CSeq: 314159 BYE"), 400, "CSeq method"),
        (INVITE.replace(b"i: a84b4c76e66710\r\n", b""), 400, "Call-ID"),
        (INVITE.replace(b"l: 4", b"l: 400"), 400, "Content-Length"),
        (INVITE.replace(b"CSeq: 314159", b"CSeq: x"), 400, "CSeq"),
        (b"garbage", 400, "blank line"),
        (b"\xff\xfe\r\n\r\n", 400, "UTF-8"),
    ],
)
def test_errors(data: bytes, status: int, words: str) -> None:
    """Defects raise ParseError with the status to answer and a detail naming them."""
    with pytest.raises(ParseError) as e:
        parse_message(data)
    assert e.value.status == status
    assert words in e.value.detail


def test_response_and_headers_api() -> None:
    """Responses get default reasons; Headers is an ordered case-insensitive multimap."""
    r = Response(
        180,
        headers=[("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1"), ("call-id", "x"), ("CSeq", "1 INVITE"),
                 ("From", "<sip:a@example.com>;tag=1"), ("To", "<sip:b@example.com>;tag=2")],
    )
    assert r.reason == "Ringing"
    p = parse_message(r.to_bytes())
    assert isinstance(p, Response) and p.status == 180 and p.to.tag == "2"
    h = Headers()
    h.add("Route", "<sip:a;lr>, <sip:b;lr>")
    h.add("route", "<sip:c;lr>")
    assert h.get_all("ROUTE") == ["<sip:a;lr>", "<sip:b;lr>", "<sip:c;lr>"]
    assert h.pop_first_value("Route") == "<sip:a;lr>"
    assert h.get_all("Route") == ["<sip:b;lr>", "<sip:c;lr>"]
    h.set("Route", "<sip:z;lr>")
    assert h.items() == [("Route", "<sip:z;lr>")]
    h.add("WWW-Authenticate", 'Digest realm="a", nonce="b"')
    assert h.get_all("www-authenticate") == ['Digest realm="a", nonce="b"']
    with pytest.raises(ParseError):
        h.add("Bad Name", "x")
    with pytest.raises(ParseError):
        h.add("X", "a\r\nInjected: 1")


@pytest.mark.parametrize(
    ("value", "tag"),
    [
        ('"A;tag=no" <sip:a@example.com;tag=uri>;tag=Yes1', "Yes1"),
        ("<sip:a@example.com>", None),
        ("sip:a@example.com;tag=abc;x=1", "abc"),
        ("<sip:a@example.com> ; TAG = Mixed", "Mixed"),
        ("<sip:a@example.com>;tagx=1", None),
    ],
)
def test_tags_agree_with_the_parser(value: str, tag: str | None) -> None:
    """from_tag/to_tag give what the full NameAddr parser gives."""
    m = Request("OPTIONS", "sip:b@example.com", [("From", value), ("To", value)])
    assert m.from_tag == tag == m.to.tag


def test_non_ascii_header_name_folding_to_a_compact_form_is_refused() -> None:
    """U+212A KELVIN SIGN lower-cases to "k" (Supported): a name must be an ASCII token."""
    data = ("OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n"
            "To: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\u212a: 100rel\r\n\r\n").encode()
    with pytest.raises(ParseError, match="bad header name"):
        parse_message(data)


# ------------------------------------------------------------------ header-name memo


def test_unknown_name_spellings_are_remembered_once_validated() -> None:
    """A new valid name is memoised under its exact spelling; an invalid one never is."""
    base = (b"OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
            b"From: <sip:a@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\nCall-ID: c\r\n"
            b"CSeq: 1 OPTIONS\r\n")
    m = parse_message(base + b"X-Remember-Me \t: 1\r\n\r\n")
    assert isinstance(m, Request) and m.headers.get("x-remember-me") == "1"
    assert parse._NAMES["X-Remember-Me \t"] == ("x-remember-me", "X-Remember-Me")
    with pytest.raises(ParseError):
        parse_message(base + b"X-Bad Name: 1\r\n\r\n")
    assert "X-Bad Name" not in parse._NAMES


def test_name_memo_is_bounded_in_count_and_size() -> None:
    """New long names are parsed but not remembered; the memo never passes its bounds.

    A peer sending messages with ever new ~64 KiB header names must not make the
    process hold them (review finding: 4,096 such names held ~500 MiB).
    """
    base = (b"OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
            b"From: <sip:a@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\nCall-ID: c\r\n"
            b"CSeq: 1 OPTIONS\r\n")
    long_name = "X-" + "a" * 120  # longer than the memo keeps, within MAX_HEADER_NAME
    m = parse_message(base + long_name.encode() + b": v\r\n\r\n")
    assert m.headers.get(long_name) == "v"
    assert long_name not in parse._NAMES
    before = len(parse._NAMES)
    for k in range(50):
        parse_message(base + f"X-Long-{k:04d}-".encode() + b"b" * 100 + b": v\r\n\r\n")
    assert len(parse._NAMES) == before
    assert max(map(len, parse._NAMES)) <= parse._NAMES_MAX_LEN
    assert len(parse._NAMES) <= parse._NAMES_MAX


def test_name_memo_starts_again_when_full() -> None:
    """One datagram of 4,000 junk names (rejected later) cannot fill the memo for good.

    Second review: the memo stayed full, and every real name not in it then made the
    C path give up on every message. When full it now starts again from the canonical
    spellings.
    """
    junk = b"OPTIONS sip:x SIP/2.0\r\n" + b"".join(b"J%04d:\r\n" % k for k in range(4500)) + b"\r\n"
    with pytest.raises(ParseError):  # missing Via
        parse_message(junk)
    assert len(parse._NAMES) <= parse._NAMES_MAX
    base = (b"OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
            b"From: <sip:a@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\nCall-ID: c\r\n"
            b"CSeq: 1 OPTIONS\r\nP-Charging-Vector: icid=1\r\n\r\n")
    parse_message(base)
    assert "P-Charging-Vector" in parse._NAMES  # learned again
    assert "Via" in parse._NAMES and "i" in parse._NAMES  # the seed is kept


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("1 INVITE", (1, "INVITE")),
        ("4294967295 BYE", (4294967295, "BYE")),
        ("0000000001 ACK", (1, "ACK")),
        ("00000000000000000007 ACK", (7, "ACK")),  # leading zeros are not digits that count
        ("1 x-Foo", (1, "x-Foo")),
        (" 5 \tINVITE ", (5, "INVITE")),  # LWS around and between
        ("4294967296 BYE", None),  # not a 32-bit unsigned integer
        ("12345678901 BYE", None),
        ("1 INV<ITE", None),
        ("INVITE", None),
        ("1", None),
        ("1 INVITE x", None),
        ("\u0661 INVITE", None),  # ARABIC-INDIC DIGIT ONE is no DIGIT
    ],
)
def test_cseq_values(text: str, want: tuple[int, str] | None) -> None:
    """CSeq = 1*DIGIT LWS Method (RFC 3261 §20.16), a 32-bit number (§8.1.1.5)."""
    if want is None:
        with pytest.raises(ParseError):
            CSeq.parse(text)
    else:
        c = CSeq.parse(text)
        assert (c.seq, c.method) == want and c == CSeq(*want)



_TAG_BITS = st.sampled_from(
    ["<", ">", "sip:a@b", "tel:1", "http://x", ";", "tag", "TAG", "=", ";tag=", '"', "\\", " ",
     "\t", "x", "1", "\x7f", "\u00e9", ",", "Tag", "*", "?", "@"]
)


@settings(max_examples=1000, deadline=None)
@given(st.lists(_TAG_BITS, max_size=14).map("".join))
def test_header_tag_is_the_tag_of_a_successful_parse(value: str) -> None:
    """from_tag/to_tag (header_tag: the URI is not read) never differ from a successful
    full parse, and raise only where the full parse raises too."""
    try:
        full = NameAddr.parse(value)
    except ParseError:
        return
    assert header_tag(value) == full.tag


@given(sst.name_addrs())
def test_header_tag_of_generated_name_addrs(na: NameAddr) -> None:
    assert header_tag(str(na)) == na.tag


def test_headers_entries_and_from_entries_round_trip() -> None:
    """entries() gives (key, canonical name, value) in order; from_entries wraps them as they are."""
    m = parse_message(
        b"INVITE sip:bob@example.com SIP/2.0\r\nv: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
        b"f: <sip:alice@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\ni: c1\r\n"
        b"CSeq: 1 INVITE\r\nl: 0\r\n\r\n"
    )
    entries = list(m.headers.entries())
    assert [(k, n) for k, n, _ in entries] == [
        ("via", "Via"), ("from", "From"), ("to", "To"), ("call-id", "Call-ID"),
        ("cseq", "CSeq"), ("content-length", "Content-Length"),
    ]
    assert [(n, v) for _, n, v in entries] == m.headers.items()
    h = Headers.from_entries(entries)
    assert h == m.headers and h.get("i") == "c1" and h.get_all("Via") == m.headers.get_all("Via")
    assert h.text_length() == sum(len(n) + len(v) + 4 for n, v in h.items())


def test_forget_parsed_drops_typed_values_which_parse_again() -> None:
    m = parse_message(
        b"OPTIONS sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
        b"From: <sip:alice@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: c1\r\n"
        b"CSeq: 1 OPTIONS\r\n\r\n"
    )
    first = m.from_
    m.headers.forget_parsed()
    from txsipua.sip import values

    values._PARSED_NAME_ADDRS.clear()  # else the same text is served from the name-addr cache
    again = m.from_
    assert again == first and again is not first
    assert m.headers.get("Call-ID") == "c1"


def test_name_addr_without_tag() -> None:
    na = NameAddr.parse('"A" <sip:alice@example.com>;tag=9;x=1')
    bare = na.without_tag()
    assert bare.tag is None and bare.params == {"x": "1"} and na.tag == "9"
    assert bare.uri == na.uri and bare.display_name == "A"
    assert bare.without_tag() is bare
    assert bare.with_tag("7") == NameAddr.parse('"A" <sip:alice@example.com>;x=1;tag=7')


def test_forget_parsed_fields_still_change_in_place() -> None:
    """Frozen fields (a tuple after forget_parsed) become a list again on the next change."""
    m = parse_message(
        b"OPTIONS sip:a@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK1, SIP/2.0/UDP 192.0.2.3\r\n"
        b"Call-ID: c\r\nCSeq: 1 OPTIONS\r\nFrom: <sip:b@192.0.2.2>;tag=1\r\nTo: <sip:a@192.0.2.1>\r\n"
        b"Content-Length: 0\r\n\r\n")
    h = m.headers
    h.forget_parsed()
    assert h.pop_first_value("Via") == "SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK1"
    assert h.get_all("Via") == ["SIP/2.0/UDP 192.0.2.3"]
    h.forget_parsed()
    h.add("Subject", "x")
    h.forget_parsed()
    h.insert(0, "Max-Forwards", "70")
    assert [name for name, _ in h.items()][:2] == ["Max-Forwards", "Via"]
    assert h.get("Subject") == "x" and m.call_id == "c"
