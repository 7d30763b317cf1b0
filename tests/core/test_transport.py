"""Tests for txsipua.core.transport: RFC 3261 §18.2 and RFC 3581 rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from txsipua.core.transport import (
    Outgoing,
    response_destination,
    stamp_received,
    stamped_via,
    unbracket,
)
from txsipua.sip.message import Request
from txsipua.sip.values import Via


def _request(*vias: str) -> Request:
    return Request(
        "OPTIONS",
        "sip:bob@198.51.100.2",
        [
            *(("Via", v) for v in vias),
            ("From", "<sip:alice@example.com>;tag=1"),
            ("To", "<sip:bob@example.com>"),
            ("Call-ID", "x@192.0.2.1"),
            ("CSeq", "1 OPTIONS"),
        ],
    )


def test_outgoing_is_a_frozen_value() -> None:
    """Outgoing compares by value and cannot be changed."""
    a = Outgoing(b"x", ("192.0.2.1", 5060))
    assert a == Outgoing(b"x", ("192.0.2.1", 5060))
    with pytest.raises(AttributeError):
        a.data = b"y"  # type: ignore[misc]


def test_same_address_no_rport_is_unchanged() -> None:
    """§18.2.1: sent-by equal to the source address -> nothing added."""
    via = Via.parse("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1")
    assert stamped_via(via, ("192.0.2.1", 5060)) is None
    req = _request(str(via))
    assert stamp_received(req, ("192.0.2.1", 40000)) is req
    assert req.headers.get_all("Via") == [str(via)]


def test_different_address_adds_received() -> None:
    """§18.2.1: sent-by differing from the source address -> received=<source>."""
    req = _request("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1")
    stamp_received(req, ("203.0.113.7", 5060))
    assert req.top_via.received == "203.0.113.7"
    assert req.top_via.branch == "z9hG4bK1"
    assert req.top_via.rport is None


def test_domain_name_adds_received() -> None:
    """§18.2.1: a domain name in sent-by always gets received."""
    via = Via.parse("SIP/2.0/UDP pc33.example.com;branch=z9hG4bK1")
    new = stamped_via(via, ("192.0.2.4", 5060))
    assert new is not None and new.received == "192.0.2.4"


def test_empty_rport_is_filled_even_for_the_same_address() -> None:
    """RFC 3581 §4: rport without value -> rport=<source port> and received, always."""
    req = _request(
        "SIP/2.0/UDP 192.0.2.1:5060;rport;branch=z9hG4bK1",
        "SIP/2.0/UDP 198.51.100.9;branch=z9hG4bKother",
    )
    stamp_received(req, ("192.0.2.1", 34567))
    top = req.top_via
    assert top.rport == 34567
    assert top.received == "192.0.2.1"
    assert top.branch == "z9hG4bK1"
    vias = req.headers.get_all("Via")
    assert len(vias) == 2
    assert vias[1] == "SIP/2.0/UDP 198.51.100.9;branch=z9hG4bKother"


def test_stamping_keeps_other_vias_in_one_field_line() -> None:
    """A comma-separated Via field keeps its lower values in order."""
    req = _request("SIP/2.0/UDP a.example.com;rport;branch=z9hG4bK1, SIP/2.0/TCP b.example.com")
    stamp_received(req, ("192.0.2.8", 1111))
    vias = req.headers.get_all("Via")
    assert len(vias) == 2
    assert Via.parse(vias[0]).rport == 1111
    assert vias[1] == "SIP/2.0/TCP b.example.com"


def test_ipv6_sent_by_equal_to_source() -> None:
    """IPv6 addresses compare as addresses; brackets and case do not matter."""
    via = Via.parse("SIP/2.0/UDP [2001:DB8:0::1]:5060;branch=z9hG4bK1")
    assert stamped_via(via, ("2001:db8::1", 5060)) is None
    other = stamped_via(via, ("2001:db8::2", 5060))
    assert other is not None and other.received == "2001:db8::2"


@pytest.mark.parametrize(
    ("via", "expected"),
    [
        # rport with a value: (received or host, rport)
        ("SIP/2.0/UDP 192.0.2.1:5060;rport=40000;received=203.0.113.7", ("203.0.113.7", 40000)),
        ("SIP/2.0/UDP 192.0.2.1:5060;rport=40000", ("192.0.2.1", 40000)),
        # received: (received, sent-by port or 5060)
        ("SIP/2.0/UDP 192.0.2.1:5070;received=203.0.113.7", ("203.0.113.7", 5070)),
        ("SIP/2.0/UDP pc.example.com;received=203.0.113.7", ("203.0.113.7", 5060)),
        # neither: the sent-by
        ("SIP/2.0/UDP 192.0.2.1:5080", ("192.0.2.1", 5080)),
        ("SIP/2.0/UDP pc.example.com", ("pc.example.com", 5060)),
        ("SIP/2.0/TLS pc.example.com", ("pc.example.com", 5061)),
        # an rport flag never filled in is ignored
        ("SIP/2.0/UDP 192.0.2.1;rport", ("192.0.2.1", 5060)),
        # IPv6: addresses without brackets
        ("SIP/2.0/UDP [2001:db8::1]:5062", ("2001:db8::1", 5062)),
        ("SIP/2.0/UDP [2001:db8::1];received=2001:db8::9;rport=7", ("2001:db8::9", 7)),
    ],
)
def test_response_destination(via: str, expected: tuple[str, int]) -> None:
    """§18.2.2 and RFC 3581 §4 in one table."""
    assert response_destination(Via.parse(via)) == expected


def test_stamp_then_destination_is_the_source() -> None:
    """With rport, a stamped request's responses go back to the exact source (NAT)."""
    req = _request("SIP/2.0/UDP 192.0.2.5:5060;rport;branch=z9hG4bK1")
    stamp_received(req, ("203.0.113.50", 61000))
    assert response_destination(req.top_via) == ("203.0.113.50", 61000)


def test_unbracket() -> None:
    """Only a bracketed IPv6 reference loses its brackets."""
    assert unbracket("[::1]") == "::1"
    assert unbracket("192.0.2.1") == "192.0.2.1"
    assert unbracket("example.com") == "example.com"


@given(
    host=st.sampled_from(["192.0.2.1", "198.51.100.3", "a.example.com", "[2001:db8::1]"]),
    rport=st.sampled_from(["", ";rport", ";rport=5"]),
    ip=st.sampled_from(["192.0.2.1", "203.0.113.9", "2001:db8::1"]),
    port=st.integers(1, 65535),
)
def test_stamping_invariants(host: str, rport: str, ip: str, port: int) -> None:
    """After stamping, the response destination is the source whenever rport was asked for,
    and the source address whenever it differs from the sent-by."""
    via = Via.parse(f"SIP/2.0/UDP {host}{rport};branch=z9hG4bKx")
    new = stamped_via(via, (ip, port)) or via
    dest = response_destination(new)
    if rport == ";rport":
        assert dest == (ip, port)
    else:
        assert dest[0] == ip


def test_pure_modules_import_no_io() -> None:
    """txsipua.core.{ids,transport,transaction} import neither Twisted nor clocks, sockets, uuid.

    (ids takes ``secrets.token_hex`` as the *default* injected generator; that is the only
    randomness, and it is replaceable.)
    """
    import ast
    import importlib.util

    forbidden = {"twisted", "time", "socket", "uuid", "random", "datetime", "asyncio", "select"}
    for name in ("txsipua.core.ids", "txsipua.core.transport", "txsipua.core.transaction"):
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None
        with open(spec.origin, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                roots = {node.module.split(".")[0]}
            else:
                continue
            assert not roots & forbidden, (name, roots)


@pytest.mark.parametrize(
    "params",
    [";received=198.51.100.9", ";rport;received=198.51.100.9", ";received=198.51.100.9;rport=9",
     ";rport=9"],
)
def test_a_received_or_rport_written_by_the_sender_is_replaced(params: str) -> None:
    """§18.2.2: we stamp received (and rport); one the client wrote is never obeyed (issue 12)."""
    source = ("127.0.0.1", 5070)
    req = _request(f"SIP/2.0/UDP 127.0.0.1:5070{params};branch=z9hG4bK1")
    stamp_received(req, source)
    assert req.top_via.received in (None, "127.0.0.1")
    assert response_destination(req.top_via) == source


def test_forged_received_gets_its_response_at_the_real_source() -> None:
    """A request with a forged received=198.51.100.9 is answered at the address it came from,
    the 401/200 and its retransmissions alike (issue 12)."""
    from txsipua.core.transaction import RequestReceived, TransactionLayer

    layer = TransactionLayer()
    source = ("127.0.0.1", 5070)
    data = (
        b"OPTIONS sip:bob@127.0.0.1:5062 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKforged;received=198.51.100.9\r\n"
        b"From: <sip:alice@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\n"
        b"Call-ID: forged@192.0.2.1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
    layer.receive(data, source, 0.0)
    event = layer.next_event()
    assert isinstance(event, RequestReceived)
    from txsipua.core.builders import make_response

    layer.respond(event.transaction, make_response(event.request, 401, to_tag="t"), 0.0)
    layer.receive(data, source, 0.1)  # a retransmission: the 401 again
    sent = layer.outbox()
    assert len(sent) == 2 and {o.destination for o in sent} == {source}
    assert b"198.51.100.9" not in sent[0].data


def test_malformed_request_with_forged_received_is_rejected_at_the_real_source() -> None:
    """The stateless error response to a broken request (505 here) also ignores the sender's received."""
    from txsipua.core.transaction import TransactionLayer

    layer = TransactionLayer()
    source = ("127.0.0.1", 5070)
    data = (
        b"OPTIONS sip:bob@127.0.0.1:5062 SIP/3.0\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKbad;received=198.51.100.9\r\n"
        b"From: <sip:alice@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\n"
        b"Call-ID: bad@192.0.2.1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
    layer.receive(data, source, 0.0)
    sent = layer.outbox()
    assert len(sent) == 1 and sent[0].data.startswith(b"SIP/2.0 505") and sent[0].destination == source
