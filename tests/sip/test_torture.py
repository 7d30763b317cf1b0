"""A torture corpus in the spirit of RFC 4475: odd-but-valid messages parse, broken ones
raise :class:`~txsipua.errors.ParseError` with the status a UAS answers with.

Every message here was written for this suite.  Status mapping (RFC 3261 §8.2.2, §21):
505 for a SIP version other than 2.0, 416 for a Request-URI scheme we do not serve (seen
when ``request.uri`` is accessed), 413 for an oversized message, 400 for anything else.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from txsipua.errors import ParseError
from txsipua.sip import NameAddr, Request, Response, SipURI, parse_message
from txsipua.sip.message import MAX_MESSAGE_SIZE


def sip(*lines: str, body: bytes = b"") -> bytes:
    """Join header lines with CRLF, add the empty line and the body."""
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


def request(*extra: str, method: str = "OPTIONS", uri: str = "sip:bob@example.com",
            body: bytes = b"", drop: tuple[str, ...] = ()) -> bytes:
    """A minimal valid request with ``extra`` header lines appended; ``drop`` names to omit."""
    base = [
        ("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKt0rture"),
        ("Max-Forwards", "70"),
        ("From", "<sip:alice@example.com>;tag=a1"),
        ("To", "<sip:bob@example.com>"),
        ("Call-ID", "torture-1@192.0.2.1"),
        ("CSeq", f"1 {method}"),
    ]
    lines = [f"{method} {uri} SIP/2.0"]
    lines += [f"{n}: {v}" for n, v in base if n not in drop]
    lines += list(extra)
    return sip(*lines, body=body)


# ---------------------------------------------------------------- valid but odd


def test_escaped_characters_in_uris() -> None:
    """Percent-escapes decode in user parts; user-unreserved ``;`` and ``?`` stay in the user."""
    m = parse_message(request(
        "Contact: <sip:c%61rol;day=tue%73day@example.com;transport=tcp?subject=hi%20there>",
        'Route: <sip:a%3Fb@p1.example.com;lr>',
        uri="sip:%62ob@example.com;foo=b%61r",
    ))
    assert isinstance(m, Request)
    assert m.uri_text == "sip:%62ob@example.com;foo=b%61r"  # kept verbatim (digest-uri)
    assert m.uri.user == "bob"
    assert m.uri.params == {"foo": "bar"}
    (c,) = m.contact
    assert c.uri.user == "carol;day=tuesday"
    assert c.uri.transport == "tcp"
    assert c.uri.headers == {"subject": "hi there"}
    assert m.headers.get("Route") == "<sip:a%3Fb@p1.example.com;lr>"
    route = m.headers.get_all("Route")[0]
    assert NameAddr.parse(route).uri.user == "a?b"


def test_unreserved_question_mark_in_user() -> None:
    """``?`` is user-unreserved (RFC 3261 §25.1): it does not start URI headers before the ``@``."""
    u = SipURI.parse("sip:a?b@example.com?x=1")
    assert (u.user, u.host, u.headers) == ("a?b", "example.com", {"x": "1"})
    assert SipURI.parse(str(u)) == u


def test_whitespace_and_folding() -> None:
    """LWS around colons, tabs, folded lines and spaces inside parameters are all legal."""
    data = sip(
        "INVITE sip:bob@example.com SIP/2.0",
        "Via  :\tSIP  /  2.0\r\n  /UDP\r\n    192.0.2.1 : 5060 ;\r\n branch = z9hG4bKfold",
        "Max-Forwards :\t0068",
        'From   : "Alice \\"A\\" Liddell" \r\n   <sip:alice@example.com>\r\n  ;\r\n  tag = 98asjd8',
        "To:\r\n sip:bob@example.com",
        "Call-ID\t:\tfold-1@192.0.2.1",
        "CSeq: 0009\r\n  INVITE",
        "Subject:",
        "NewFangledHeader:   newfangled value\r\n continued newfangled value",
        "Content-Length: 0",
    )
    m = parse_message(data)
    assert isinstance(m, Request)
    v = m.top_via
    assert (v.transport, v.host, v.port, v.branch) == ("UDP", "192.0.2.1", 5060, "z9hG4bKfold")
    assert v.protocol == "SIP/2.0"
    assert m.max_forwards == 68
    assert m.from_.display_name == 'Alice "A" Liddell'
    assert m.from_.tag == "98asjd8"
    assert str(m.to.uri) == "sip:bob@example.com"
    assert m.call_id == "fold-1@192.0.2.1"
    assert (m.cseq.seq, m.cseq.method) == (9, "INVITE")
    assert m.headers.get("Subject") == ""
    assert m.headers.get("newfangledheader") == "newfangled value continued newfangled value"


def test_compact_and_long_forms_mixed() -> None:
    """Compact and long names of the same header join one list in arrival order (RFC 3261 §7.3.3)."""
    data = sip(
        "REGISTER sip:example.com SIP/2.0",
        "v: SIP/2.0/TCP 192.0.2.1;branch=z9hG4bK1",
        "Via: SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK2",
        "V: SIP/2.0/UDP 192.0.2.3;branch=z9hG4bK3",
        "f: <sip:alice@example.com>;tag=x",
        "T: <sip:alice@example.com>",
        "i: compact-1",
        "CSeq: 7 REGISTER",
        "m: <sip:alice@192.0.2.1>;expires=60",
        "Contact: <sip:alice@192.0.2.9>",
        "k: path, gruu",
        "Supported: outbound",
        "l: 0",
    )
    m = parse_message(data)
    assert [v.branch for v in m.via] == ["z9hG4bK1", "z9hG4bK2", "z9hG4bK3"]
    assert [c.uri.host for c in m.contact] == ["192.0.2.1", "192.0.2.9"]
    assert m.contact[0].expires == 60
    assert m.headers.get_all("Supported") == ["path", "gruu", "outbound"]
    assert [n for n, _ in m.headers.items()][:4] == ["Via", "Via", "Via", "From"]


def test_ipv6_references() -> None:
    """IPv6 references in the Request-URI, Via sent-by, received and Contact (RFC 5118)."""
    data = sip(
        "INVITE sip:[2001:db8::10]:5070;transport=udp SIP/2.0",
        "Via: SIP/2.0/UDP [2001:db8::9]:5060;received=2001:db8::9;rport=5061;branch=z9hG4bK6",
        "Via: SIP/2.0/UDP [2001:db8::a:b:c:d]",
        "From: <sip:alice@[2001:db8::9]>;tag=6",
        "To: <sip:bob@[2001:db8::10]>",
        "Call-ID: v6@[2001:db8::9]",
        "CSeq: 1 INVITE",
        "Contact: <sip:alice@[2001:db8::9]:5060;transport=udp>",
        "Content-Length: 0",
    )
    m = parse_message(data)
    assert isinstance(m, Request)
    assert m.uri.host_port == ("[2001:db8::10]", 5070)
    top = m.top_via
    assert (top.host, top.port, top.received, top.rport) == ("[2001:db8::9]", 5060, "2001:db8::9", 5061)
    assert m.via[1].sent_by == ("[2001:db8::a:b:c:d]", None)
    assert m.contact[0].uri.host == "[2001:db8::9]"
    assert m.call_id == "v6@[2001:db8::9]"
    # the IPv6 received= survives serialisation unquoted
    assert "received=2001:db8::9;" in str(top)


def test_combined_list_headers_with_quoted_commas() -> None:
    """Several values in one field split on commas outside quotes and ``<>``."""
    m = parse_message(request(
        "Route: <sip:p1.example.com;lr>,<sip:p2.example.com;lr>",
        "Route: <sip:p3.example.com;lr>",
        'Contact: "Bob, Jr." <sip:bob@192.0.2.4>;q=0.7, <sip:bob@192.0.2.5;a=b,c>;q=0.1',
        'Record-Route: <sip:rr1.example.com;lr>, "x,y" <sip:rr2.example.com;lr>',
        "Allow: INVITE,ACK ,  CANCEL,BYE",
        'WWW-Authenticate: Digest realm="a, b", nonce="n"',
    ))
    assert m.headers.get_all("Route") == [
        "<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>", "<sip:p3.example.com;lr>",
    ]
    assert [c.display_name for c in m.contact] == ["Bob, Jr.", None]
    assert m.contact[1].uri.params == {"a": "b,c"}
    assert [r.uri.host for r in m.record_route] == ["rr1.example.com", "rr2.example.com"]
    assert m.headers.get_all("Allow") == ["INVITE", "ACK", "CANCEL", "BYE"]
    assert m.headers.get_all("WWW-Authenticate") == ['Digest realm="a, b", nonce="n"']


def test_unknown_headers_and_odd_names() -> None:
    """Unknown headers are kept verbatim; every token character is legal in a name."""
    m = parse_message(request(
        "X-Custom: whatever; with=params, and, commas",
        "Unknown-~!%*_+`'.Header: x",
        "x-lower: 1",
    ))
    assert m.headers.get("X-CUSTOM") == "whatever; with=params, and, commas"
    assert m.headers.get_all("x-custom") == ["whatever; with=params, and, commas"]
    assert m.headers.get("unknown-~!%*_+`'.header") == "x"
    assert ("Unknown-~!%*_+`'.Header", "x") in m.headers.items()


def test_header_names_in_odd_case() -> None:
    """Header names match case-insensitively and come back in canonical spelling."""
    data = sip(
        "BYE sip:bob@192.0.2.4 SIP/2.0",
        "vIA: SIP/2.0/UDP 192.0.2.1;BRANCH=z9hG4bKcase",
        "FROM: <sip:alice@example.com>;TAG=1",
        "tO: <sip:bob@example.com>;tag=2",
        "cAlL-iD: case-1",
        "CSEQ: 2 BYE",
        "MAX-FORWARDS: 1",
        "CONTENT-LENGTH: 0",
    )
    m = parse_message(data)
    assert [n for n, _ in m.headers.items()] == [
        "Via", "From", "To", "Call-ID", "CSeq", "Max-Forwards", "Content-Length",
    ]
    assert m.top_via.branch == "z9hG4bKcase"  # parameter names are case-insensitive
    assert m.from_.tag == "1"
    assert m.max_forwards == 1


def test_long_values() -> None:
    """Long tokens, many parameters and many Via values parse (within 64 KiB)."""
    long_token = "x" * 4000
    vias = ", ".join(f"SIP/2.0/UDP 198.51.100.{i % 250 + 1};branch=z9hG4bK{i}" for i in range(150))
    params = "".join(f";p{i}=v{i}" for i in range(200))
    data = sip(
        "OPTIONS sip:bob@example.com SIP/2.0",
        f"Via: {vias}",
        f"From: <sip:alice@example.com>;tag={long_token}",
        f"To: <sip:bob@example.com{params}>",
        f"Call-ID: {long_token}@example.com",
        "CSeq: 4294967295 OPTIONS",
        f"X-Long: {'y' * 20000}",
    )
    m = parse_message(data)
    assert len(m.via) == 150 and m.via[149].branch == "z9hG4bK149"
    assert m.from_.tag == long_token
    assert len(m.to.uri.params) == 200
    assert m.cseq.seq == 2**32 - 1
    assert len(m.headers.get("X-Long") or "") == 20000


def test_flag_parameters() -> None:
    """``;lr`` and ``;rport`` without value are flags (value ``None``)."""
    m = parse_message(request(
        "Route: <sip:p1.example.com;lr;transport=tcp>",
        "Record-Route: <sip:p2.example.com;lr=on>",
    ))
    route = NameAddr.parse(m.headers.get("Route") or "")
    assert route.uri.lr and route.uri.params["lr"] is None
    assert m.record_route[0].uri.lr  # a (legacy) value does not hide the flag
    assert parse_message(request().replace(b"branch=", b"rport;branch=")).top_via.rport == ""


@pytest.mark.parametrize("line", ["SIP/2.0 200 ", "SIP/2.0 200", "sip/2.0 200 "])
def test_empty_reason_phrase(line: str) -> None:
    """Reason-Phrase may be empty (RFC 3261 §25.1: *(reserved / unreserved ...))."""
    data = request().replace(b"OPTIONS sip:bob@example.com SIP/2.0", line.encode(), 1)
    m = parse_message(data)
    assert isinstance(m, Response)
    assert (m.status, m.reason) == (200, "")


def test_reason_phrase_utf8_and_spaces() -> None:
    """The Reason-Phrase keeps its inner spaces and UTF-8 text."""
    data = request().replace(b"OPTIONS sip:bob@example.com SIP/2.0",
                             "SIP/2.0 486 Occupé  ici pour l'instant".encode(), 1)
    m = parse_message(data)
    assert isinstance(m, Response) and m.reason == "Occupé  ici pour l'instant"


def test_content_length_with_leading_zeros() -> None:
    """``Content-Length: 000000000000004`` is 4 (1*DIGIT)."""
    m = parse_message(request("Content-Length: 000000000000004", body=b"abcdEXTRA"))
    assert m.body == b"abcd"


def test_datagram_without_content_length() -> None:
    """Over UDP a missing Content-Length means the body runs to the datagram's end (§18.3)."""
    m = parse_message(request(body=b"v=0\r\n\r\nbinary\x00\xff"))
    assert m.body == b"v=0\r\n\r\nbinary\x00\xff"


def test_unusual_method_token() -> None:
    """A method is any token; CSeq must carry the same one (case-sensitive)."""
    meth = "!interesting-Method0123456789_*+`.%~'"
    m = parse_message(request(method=meth))
    assert isinstance(m, Request) and m.method == meth and m.cseq.method == meth


def test_bare_lf_and_leading_crlf() -> None:
    """Leading CRLFs are skipped (§7.5); bare LF line ends are tolerated."""
    crlf = request(body=b"body")
    lf = crlf.replace(b"\r\n", b"\n")
    for data in (b"\r\n\r\n" + crlf, lf, b"\n\n" + lf):
        m = parse_message(data)
        assert m.call_id == "torture-1@192.0.2.1"
        assert m.body == b"body"


def test_bare_lf_head_with_crlfcrlf_in_body() -> None:
    """A LF-only header section ends at its first LF LF even if the body holds CRLF CRLF."""
    head = request().replace(b"\r\n", b"\n")
    m = parse_message(head + b"a\r\n\r\nb")
    assert m.body == b"a\r\n\r\nb"


def test_display_names() -> None:
    """Quoted names may hold ``<``, ``,``, escaped quotes; token names may be several words."""
    m = parse_message(request(
        'Contact: "J \\"Q\\" <not a uri>, \\\\ ok" <sip:j@example.com>',
        "Reply-To: Bob Builder <sip:bob@example.com>",
    ))
    assert m.contact[0].display_name == 'J "Q" <not a uri>, \\ ok'
    assert NameAddr.parse(m.headers.get("Reply-To") or "").display_name == "Bob Builder"
    assert NameAddr.parse('""<sip:a@example.com>').display_name is None


def test_register_wildcard_and_zero_expires() -> None:
    """``Contact: *`` with ``Expires: 0`` removes every binding (§10.2.2)."""
    m = parse_message(request("Contact: *", "Expires: 0", method="REGISTER", uri="sip:example.com"))
    assert m.contact[0].wildcard and m.expires == 0


def test_sips_and_tel_uris() -> None:
    """sips and tel Request-URIs parse; sips defaults to TLS."""
    m = parse_message(request(uri="sips:bob@example.com"))
    assert isinstance(m, Request) and m.uri.scheme == "sips" and m.uri.transport == "tls"
    m = parse_message(request(uri="tel:+1-201-555-0123;phone-context=example.com"))
    assert isinstance(m, Request) and m.uri.user == "+1-201-555-0123"


def test_response_with_body_and_binary() -> None:
    """Bodies are bytes: CRLFCRLF and non-UTF-8 inside a body are fine."""
    body = b"\x00\x01\r\n\r\n\xff"
    data = request("Content-Type: application/octet-stream", f"Content-Length: {len(body)}",
                   body=body).replace(b"OPTIONS sip:bob@example.com SIP/2.0", b"SIP/2.0 200 OK", 1)
    m = parse_message(data)
    assert isinstance(m, Response) and m.body == body


def test_missing_empty_line_tolerated_on_datagrams() -> None:
    """A datagram whose header section ends in CRLF without the empty line still parses."""
    m = parse_message(request().replace(b"\r\n\r\n", b"\r\n"))
    assert m.body == b"" and m.cseq.seq == 1


def test_duplicate_equal_content_length_is_tolerated() -> None:
    """Two Content-Length fields with the same value do not make the body ambiguous."""
    m = parse_message(request("Content-Length: 2", "l: 2", body=b"hi"))
    assert m.body == b"hi"


# ---------------------------------------------------------------- invalid


def _bad(data: bytes, status: int = 400, words: str = "") -> ParseError:
    with pytest.raises(ParseError) as e:
        parse_message(data)
    assert e.value.status == status, e.value.detail
    assert words.lower() in e.value.detail.lower()
    return e.value


OPT = b"OPTIONS sip:bob@example.com SIP/2.0"


@pytest.mark.parametrize(
    ("data", "status", "words"),
    [
        # versions (RFC 3261 §8.2.2: 505)
        (request().replace(OPT, b"OPTIONS sip:bob@example.com SIP/7.0"), 505, "version"),
        (request().replace(OPT, b"OPTIONS sip:bob@example.com SIP/2.1"), 505, "version"),
        (request().replace(OPT, b"SIP/1.0 200 OK"), 505, "version"),
        (request().replace(OPT, b"OPTIONS sip:bob@example.com HTTP/1.1"), 400, "request line"),
        # mandatory headers
        (request(drop=("Via",)), 400, "Via"),
        (request(drop=("From",)), 400, "From"),
        (request(drop=("To",)), 400, "To"),
        (request(drop=("Call-ID",)), 400, "Call-ID"),
        (request(drop=("CSeq",)), 400, "CSeq"),
        # several values where one is allowed (RFC 4475 §3.1.2.19)
        (request("Call-ID: second@192.0.2.1"), 400, "Call-ID"),
        (request("i: second@192.0.2.1"), 400, "Call-ID"),
        (request("CSeq: 2 OPTIONS"), 400, "CSeq"),
        (request("From: <sip:eve@example.com>;tag=e"), 400, "From"),
        (request("t: <sip:eve@example.com>"), 400, "To"),
        # CSeq
        (request("CSeq: OPTIONS", drop=("CSeq",)), 400, "CSeq"),
        (request("CSeq: 1", drop=("CSeq",)), 400, "CSeq"),
        (request("CSeq: -5 OPTIONS", drop=("CSeq",)), 400, "CSeq"),
        (request("CSeq: 36893488147419103232 OPTIONS", drop=("CSeq",)), 400, "CSeq"),
        (request("CSeq: 4294967296 OPTIONS", drop=("CSeq",)), 400, "CSeq"),
        (request("CSeq: 1 OPTIONS extra", drop=("CSeq",)), 400, "CSeq"),
        (request("CSeq: ² OPTIONS", drop=("CSeq",)), 400, "CSeq"),
        (request("CSeq: 1 INVITE", drop=("CSeq",)), 400, "does not match"),
        (request("CSeq: 1 options", drop=("CSeq",)), 400, "does not match"),
        # Content-Length (RFC 3261 §18.3, §20.14)
        (request("Content-Length: -1"), 400, "Content-Length"),
        (request("Content-Length: 4x", body=b"abcd"), 400, "Content-Length"),
        (request("Content-Length: ４", body=b"abcd"), 400, "Content-Length"),
        (request("Content-Length: 99999999999999999999"), 400, "Content-Length"),
        (request("Content-Length: 9999", body=b"short"), 400, "exceeds"),
        (request("Content-Length: 6", body=b"short"), 400, "exceeds"),
        (request("Content-Length: 2", "l: 3", body=b"abc"), 400, "Content-Length"),
        # NUL, stray CR, bad bytes
        (request("Subject: a\x00b"), 400, "NUL"),
        (request("X-\x00: b"), 400, "NUL"),
        (request("Subject: a\rb"), 400, "bare CR"),
        (request("Subject: a\r\r"), 400, "bare CR"),
        (request("Subject: caf\xe9").replace("é".encode(), b"\xe9"), 400, "UTF-8"),
        # request line
        (request().replace(OPT, b"OPTIONS  sip:bob@example.com SIP/2.0"), 400, "request line"),
        (request().replace(OPT, b"OPTIONS sip:bob@example.com  SIP/2.0"), 400, "request line"),
        (request().replace(OPT, b"OPTIONS sip:bob@example.com SIP/2.0 "), 400, "request line"),
        (request().replace(OPT, b" OPTIONS sip:bob@example.com SIP/2.0"), 400, ""),
        (request().replace(OPT, b"OPTIONS\tsip:bob@example.com\tSIP/2.0"), 400, "request line"),
        (request().replace(OPT, b"OPTIONS sip:bob @example.com SIP/2.0"), 400, "request line"),
        (request().replace(OPT, b"OPTIONS bob SIP/2.0"), 400, "Request-URI"),
        (request().replace(OPT, b"OPTIONS SIP/2.0"), 400, "request line"),
        (request(method="OPT<IONS"), 400, "method"),
        # status line
        (request().replace(OPT, b"SIP/2.0 2000 OK"), 400, "status"),
        (request().replace(OPT, b"SIP/2.0 099 Low"), 400, "status"),
        (request().replace(OPT, b"SIP/2.0 700 High"), 400, "status"),
        (request().replace(OPT, b"SIP/2.0 4294967301 Overlarge"), 400, "status"),
        (request().replace(OPT, b"SIP/2.0 2OO OK"), 400, "status"),
        (request().replace(OPT, b"SIP/2.0 \xd9\xa2\xd9\xa0\xd9\xa0 OK"), 400, "status"),
        # structure
        (b"", 400, ""),
        (b"\r\n\r\n", 400, ""),
        (request().rstrip(b"\r\n"), 400, "blank line"),
        (request("this line has no colon"), 400, "colon"),
        (request(": no name"), 400, "name"),
        (request("Bad Name: x"), 400, "header name"),
        (request().replace(OPT + b"\r\n", OPT + b"\r\n continued\r\n"), 400, "continuation"),
    ],
)
def test_invalid_message(data: bytes, status: int, words: str) -> None:
    """The message is rejected by parse_message with the status to answer and a detail."""
    _bad(data, status, words)


def test_oversized_message() -> None:
    """A message above 64 KiB is refused with 413 before any parsing."""
    data = request(f"X-Pad: {'p' * MAX_MESSAGE_SIZE}")
    _bad(data, 413, "too large")


def test_request_uri_scheme_416() -> None:
    """An unknown Request-URI scheme parses, but ``.uri`` raises 416 (RFC 3261 §8.2.2.1)."""
    m = parse_message(request(uri="http://example.com/x"))
    assert isinstance(m, Request) and m.uri_text == "http://example.com/x"
    with pytest.raises(ParseError) as e:
        m.uri  # noqa: B018
    assert e.value.status == 416


def _accessor_error(extra: str, accessor: Callable[[Request | Response], object],
                    words: str, drop: tuple[str, ...] = (), uri: str = "sip:bob@example.com") -> None:
    m = parse_message(request(extra, drop=drop, uri=uri))
    with pytest.raises(ParseError) as e:
        accessor(m)
    assert e.value.status == 400
    assert words.lower() in e.value.detail.lower(), e.value.detail


@pytest.mark.parametrize(
    ("extra", "drop", "accessor", "words"),
    [
        # unterminated quotes
        ('From: "Alice <sip:alice@example.com>;tag=1', ("From",), lambda m: m.from_, "quoted"),
        ('To: <sip:bob@example.com>;x="abc', ("To",), lambda m: m.to, "unterminated"),
        ("Via: SIP/2.0/UDP 192.0.2.1;received=\"192.0.2.9", ("Via",), lambda m: m.top_via,
         "unterminated"),
        # <> mismatch
        ("To: <sip:bob@example.com", ("To",), lambda m: m.to, "<>"),
        ("To: sip:bob@example.com>", ("To",), lambda m: m.to, ">"),
        ("To: <<sip:bob@example.com>>", ("To",), lambda m: m.to, "URI"),
        ("To: <sip:bob@example.com> junk", ("To",), lambda m: m.to, "after URI"),
        ('To: "Bob" sip:bob@example.com', ("To",), lambda m: m.to, "without <URI>"),
        # bad ports and hosts
        ("Via: SIP/2.0/UDP 192.0.2.1:99999;branch=z9hG4bK1", ("Via",), lambda m: m.via, "port"),
        ("Via: SIP/2.0/UDP 192.0.2.1:abc;branch=z9hG4bK1", ("Via",), lambda m: m.via, "port"),
        ("Via: SIP/2.0/UDP 192.0.2.1:²;branch=z9hG4bK1", ("Via",), lambda m: m.via, "port"),
        ("Via: SIP/2.0/UDP 192.0.2.1 5060;branch=z9hG4bK1", ("Via",), lambda m: m.via, "sent-by"),
        ("Via: SIP/2.0/UDP", ("Via",), lambda m: m.via, "Via"),
        ("Via: SIP/2.0/UDP ,", ("Via",), lambda m: m.top_via, "Via"),
        ("Via: ,", ("Via",), lambda m: m.top_via, "Via"),
        ("Via: SIP/2.0/U<P 192.0.2.1", ("Via",), lambda m: m.via, "sent-protocol"),
        ("Contact: <sip:bob@192.0.2.4:65536>", (), lambda m: m.contact, "port"),
        ("Contact: <sip:bob@192.0.2.4:-1>", (), lambda m: m.contact, "port"),
        ("Contact: <sip:bob@exa mple.com>", (), lambda m: m.contact, "character"),
        ("Contact: <sip:bob@>", (), lambda m: m.contact, "host"),
        ("Contact: <sip:@example.com>", (), lambda m: m.contact, "user"),
        ("Contact: <sip:bob@[2001:db8::1>", (), lambda m: m.contact, "IPv6"),
        ("Record-Route: <sip:p1.example.com;;=x;lr>", (), lambda m: m.record_route, "parameter"),
        ("To: sip:a@example.com, sip:b@example.com", ("To",), lambda m: m.to, "URI"),
        # scalar fields
        ("Max-Forwards: abc", ("Max-Forwards",), lambda m: m.max_forwards, "Max-Forwards"),
        ("Max-Forwards: 300", ("Max-Forwards",), lambda m: m.max_forwards, "Max-Forwards"),
        ("Max-Forwards: -1", ("Max-Forwards",), lambda m: m.max_forwards, "Max-Forwards"),
        ("Expires: 10000000000000000000", (), lambda m: m.expires, "Expires"),
        ("Expires: 4294967296", (), lambda m: m.expires, "Expires"),
        ("Expires: ３", (), lambda m: m.expires, "Expires"),
        ("Call-ID: ", ("Call-ID",), lambda m: m.call_id, "Call-ID"),
    ],
)
def test_invalid_values_raise_on_access(extra: str, drop: tuple[str, ...],
                                        accessor: Callable[[Request | Response], object],
                                        words: str) -> None:
    """Defects inside a header value surface as ParseError (400) from its typed accessor."""
    _accessor_error(extra, accessor, words, drop)


def test_bad_request_uri_port_on_access() -> None:
    """A Request-URI with a bad port parses lazily and raises 400 on ``.uri``."""
    m = parse_message(request(uri="sip:bob@example.com:0x50"))
    assert isinstance(m, Request)
    with pytest.raises(ParseError) as e:
        m.uri  # noqa: B018
    assert e.value.status == 400 and "port" in e.value.detail


def test_max_values_accepted() -> None:
    """The largest legal scalar values are accepted."""
    m = parse_message(request("Expires: 4294967295", "Max-Forwards: 255", drop=("Max-Forwards",)))
    assert m.expires == 2**32 - 1 and m.max_forwards == 255


def test_no_space_before_angle_bracket_and_unknown_transports() -> None:
    """``"Caller"<sip:...>`` needs no LWS; unknown Via transports are tokens like any other."""
    m = parse_message(request(
        "Contact: \"Caller\"<sip:caller@192.0.2.1>;expires=0",
        "Via: SIP/2.0/UNKNOWN 192.0.2.2;branch=z9hG4bKu, SIP/2.0/SCTP 192.0.2.3;branch=z9hG4bKs",
    ))
    assert m.contact[0].display_name == "Caller" and m.contact[0].expires == 0
    assert [v.transport for v in m.via] == ["UDP", "UNKNOWN", "SCTP"]


def test_utf8_token_display_name() -> None:
    """An unquoted display name with UTF-8 letters is tolerated."""
    assert NameAddr.parse("José Ñandú <sip:j@example.com>").display_name == "José Ñandú"


def test_extra_octets_after_content_length_are_dropped() -> None:
    """Over UDP, octets past Content-Length are discarded (RFC 3261 §18.3)."""
    m = parse_message(request("Content-Length: 0", body=b"garbage after the message"))
    assert m.body == b""


@pytest.mark.parametrize(
    ("uri", "status"),
    [
        ("<sip:bob@example.com>", 400),  # <> around the Request-URI
        ("sip:bob@example.com;lr=<x>", 400),
        ("sip:bob@exa\"mple.com", 400),
        ("mailto:bob@example.com", 416),
        ("SIPS:bob@example.com:5061", 0),  # scheme is case-insensitive
    ],
)
def test_request_uri_defects_on_access(uri: str, status: int) -> None:
    """Request-URI defects surface on ``.uri``: 416 for a foreign scheme, else 400."""
    m = parse_message(request(uri=uri))
    assert isinstance(m, Request)
    if status == 0:
        assert m.uri.scheme == "sips" and m.uri.port == 5061
        return
    with pytest.raises(ParseError) as e:
        m.uri  # noqa: B018
    assert e.value.status == status


@pytest.mark.parametrize(
    "value",
    [
        "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",  # RFC 4475 §3.1.2.16
        "Al;ice <sip:a@example.com>;tag=1",
        "Al@ice <sip:a@example.com>;tag=1",
        'Al"ice <sip:a@example.com>;tag=1',
    ],
)
def test_non_token_characters_in_display_name(value: str) -> None:
    """ASCII separators in an unquoted display name are a 400 on access."""
    m = parse_message(request(f"From: {value}", drop=("From",)))
    with pytest.raises(ParseError) as e:
        m.from_  # noqa: B018
    assert e.value.status == 400


def test_message_of_exactly_max_size_is_accepted() -> None:
    """MAX_MESSAGE_SIZE bytes parse; one more is a 413."""
    base = request("X-Pad: ")
    pad = MAX_MESSAGE_SIZE - len(base)
    data = request(f"X-Pad: {'p' * pad}")
    assert len(data) == MAX_MESSAGE_SIZE
    assert parse_message(data).headers.get("X-Pad") == "p" * pad
    _bad(request(f"X-Pad: {'p' * (pad + 1)}"), 413)


def test_non_sip_uris_in_to_from_contact_are_valid() -> None:
    """RFC 4475 §3.1.1.13: absolute URIs of any scheme in To, From and Contact parse;
    only the Request-URI scheme gives 416."""
    m = parse_message(request(
        "To: isbn:2983792873",
        "From: <http://www.example.com>;tag=3234233",
        "Contact: <name:John_Smith>, <mailto:bob@example.com>;q=0.5, <im:bob@example.com>",
        "Route: <tel:+1-201-555-0123>",
        drop=("To", "From"),
    ))
    assert str(m.to.uri) == "isbn:2983792873" and m.to.uri.scheme == "isbn"
    assert m.to.uri.host == "" and m.to.tag is None
    assert str(m.from_.uri) == "http://www.example.com" and m.from_.tag == "3234233"
    assert m.from_tag == "3234233"
    assert [str(c.uri) for c in m.contact] == [
        "name:John_Smith", "mailto:bob@example.com", "im:bob@example.com"
    ]
    assert m.contact[1].params == {"q": "0.5"}
    assert str(m.from_) == "<http://www.example.com>;tag=3234233"
    assert NameAddr.parse(str(m.contact[2])) == m.contact[2]
    with pytest.raises(ParseError) as e:
        SipURI.parse("im:bob@example.com")
    assert e.value.status == 416
    m = parse_message(request(uri="im:bob@example.com"))
    with pytest.raises(ParseError) as e:
        m.uri  # noqa: B018
    assert e.value.status == 416


@pytest.mark.parametrize("value", ["<1http://x>", "<:opaque>", "<http:>", "<ht tp://x>", "<mailto:a<b>"])
def test_bad_absolute_uris_are_400(value: str) -> None:
    """An absolute URI needs a scheme (ALPHA first), a colon and text; no SP or ``<``."""
    m = parse_message(request(f"Contact: {value}"))
    with pytest.raises(ParseError) as e:
        m.contact  # noqa: B018
    assert e.value.status == 400


def test_long_header_name_is_a_400() -> None:
    """A header name longer than MAX_HEADER_NAME characters is a 400 (bounded memory)."""
    from txsipua.sip.message import MAX_HEADER_NAME

    parse_message(request(f"{'X' * MAX_HEADER_NAME}: 1"))
    _bad(request(f"{'X' * (MAX_HEADER_NAME + 1)}: 1"), 400)
    _bad(request(f"{'X' * 60000}: 1"), 400)
