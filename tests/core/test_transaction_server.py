"""Server transactions (RFC 3261 §17.2, RFC 6026), matching (§17.2.3, §9.2) and malformed input."""

from __future__ import annotations

import pytest
from test_transaction_helpers import (
    UAC,
    drain,
    make_request,
    make_response,
    parsed,
    run_timers,
    wire,
)

from txsipua.core.ids import SequentialIds
from txsipua.core.transaction import (
    Kind,
    RequestReceived,
    ServerTransaction,
    State,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimedOut,
)
from txsipua.core.transport import Outgoing
from txsipua.errors import LocalProtocolError
from txsipua.sip.message import Request, Response


def _new_server(
    layer: TransactionLayer, req: Request, now: float = 0.0, reliable: bool = False
) -> ServerTransaction:
    layer.receive(wire(req), UAC, now, reliable=reliable)
    events = drain(layer)
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, RequestReceived) and event.transaction is not None
    assert event.source == UAC
    return event.transaction


# ------------------------------------------------------------------ IST


def test_ist_sends_100_trying_at_once() -> None:
    """A new INVITE: 100 Trying with the request's Via, From, To, Call-ID, CSeq, Timestamp."""
    layer = TransactionLayer()
    invite = make_request("INVITE", extra=[("Timestamp", "54"), ("Subject", "hi")])
    txn = _new_server(layer, invite)
    assert txn.kind is Kind.IST and txn.state is State.PROCEEDING
    [out] = layer.outbox()
    assert out.destination == UAC
    [trying] = parsed([out])
    assert isinstance(trying, Response) and trying.status == 100
    assert trying.headers.get_all("Via") == invite.headers.get_all("Via")
    assert trying.headers.get("Timestamp") == "54"
    assert trying.to.tag is None and trying.cseq == invite.cseq
    assert "Subject" not in trying.headers


@pytest.mark.parametrize("status", [180, 200, 401, 486])
def test_ist_no_100_trying_when_the_tu_answers_in_the_same_input(status: int) -> None:
    """RFC 3261 §17.2.1: a TU that answers before the outbox is read makes the 100 needless."""
    layer = TransactionLayer()
    invite = make_request("INVITE")
    txn = _new_server(layer, invite)
    layer.respond(txn, make_response(invite, status, to_tag="b1" if status >= 200 else None), 0.0)
    [out] = layer.outbox()
    [answer] = parsed([out])
    assert isinstance(answer, Response) and answer.status == status
    assert layer.outbox() == []  # and none later either


def test_ist_100_trying_is_sent_once_even_if_the_tu_answers_later() -> None:
    """The 100 goes out with the input's outbox; a later answer follows it, no second 100."""
    layer = TransactionLayer()
    invite = make_request("INVITE")
    txn = _new_server(layer, invite)
    [trying] = parsed(layer.outbox())
    assert isinstance(trying, Response) and trying.status == 100
    layer.respond(txn, make_response(invite, 200, to_tag="b1"), 1.0)
    [ok] = parsed(layer.outbox())
    assert isinstance(ok, Response) and ok.status == 200


def test_ist_retransmitted_invite_gets_last_response() -> None:
    """A retransmitted INVITE is absorbed and answered with the last response sent."""
    layer = TransactionLayer()
    invite = make_request("INVITE")
    txn = _new_server(layer, invite)
    [trying] = layer.outbox()
    layer.receive(wire(invite), UAC, 0.5)
    assert drain(layer) == []
    assert layer.outbox() == [trying]
    ringing = make_response(invite, 180)
    layer.respond(txn, ringing, 1.0)
    assert layer.outbox() == [Outgoing(wire(ringing), UAC)]
    layer.receive(wire(invite), UAC, 1.5)
    assert layer.outbox() == [Outgoing(wire(ringing), UAC)]
    assert drain(layer) == []
    assert txn.last_response is ringing


def test_ist_non_2xx_timer_g_and_h() -> None:
    """Completed over UDP: G at T1 doubling capped at T2; H at 64*T1 reports the missing ACK."""
    layer = TransactionLayer()
    invite = make_request("INVITE")
    txn = _new_server(layer, invite)
    layer.outbox()
    busy = make_response(invite, 486)
    layer.respond(txn, busy, 0.0)
    assert txn.state is State.COMPLETED
    assert layer.outbox() == [Outgoing(wire(busy), UAC)]
    fired = run_timers(layer, 100.0)
    assert [t for t, out in fired if out] == [0.5, 1.5, 3.5, 7.5] + [
        x + 0.5 for x in range(11, 32, 4)
    ]
    assert all(out == [Outgoing(wire(busy), UAC)] for _, out in fired if out)
    assert fired[-1] == (32.0, [])
    assert drain(layer) == [TransactionTimedOut(txn, "H"), TransactionTerminated(txn)]
    assert len(layer) == 0


def test_ist_ack_confirms_then_timer_i() -> None:
    """The ACK for a non-2xx is absorbed (not for the TU), stops G and H; Timer I = T4."""
    layer = TransactionLayer()
    invite = make_request("INVITE")
    txn = _new_server(layer, invite)
    busy = make_response(invite, 486, to_tag="t9")
    layer.respond(txn, busy, 0.0)
    layer.handle_timer(0.5)
    layer.outbox()
    ack = make_request("ACK", cseq_method="ACK", to_tag="t9")
    layer.receive(wire(ack), UAC, 0.7)
    assert drain(layer) == []
    assert txn.state is State.CONFIRMED
    # retransmitted ACK and INVITE are absorbed in Confirmed
    layer.receive(wire(ack), UAC, 0.8)
    layer.receive(wire(invite), UAC, 0.9)
    assert drain(layer) == [] and layer.outbox() == []
    assert run_timers(layer, 100.0) == [(pytest.approx(5.7), [])]
    assert drain(layer) == [TransactionTerminated(txn)]
    assert len(layer) == 0


def test_ist_reliable_no_timer_g_and_i_zero() -> None:
    """Over TCP: no Timer G; the ACK ends the transaction at once (I = 0)."""
    layer = TransactionLayer()
    invite = make_request("INVITE")
    txn = _new_server(layer, invite, reliable=True)
    layer.respond(txn, make_response(invite, 404), 0.0)
    assert len(layer.outbox()) == 1  # the 404 only: answered at once, no 100 Trying (§17.2.1)
    assert layer.get_timer() == 32.0  # only H
    layer.receive(
        wire(make_request("ACK", cseq_method="ACK", to_tag="b1")), UAC, 1.0, reliable=True
    )
    assert drain(layer) == [TransactionTerminated(txn)]
    assert layer.get_timer() is None and len(layer) == 0


def test_ist_2xx_is_retransmitted_until_the_tu_reports_the_ack() -> None:
    """Accepted: the 2xx goes out at T1, 2T1... capped at T2 until ack_received (§13.3.1.4)."""
    layer = TransactionLayer()
    invite = make_request("INVITE")
    txn = _new_server(layer, invite)
    layer.outbox()
    ok = make_response(invite, 200)
    layer.respond(txn, ok, 0.0)
    assert txn.state is State.ACCEPTED
    assert layer.outbox() == [Outgoing(wire(ok), UAC)]
    fired = run_timers(layer, 12.0)
    assert [t for t, out in fired if out] == [0.5, 1.5, 3.5, 7.5, 11.5]
    # a retransmitted INVITE is absorbed in Accepted
    layer.receive(wire(invite), UAC, 12.1)
    assert drain(layer) == [] and layer.outbox() == []
    # the ACK for a 2xx has its own branch: it goes to the TU with no transaction
    ack = make_request("ACK", "z9hG4bKack2xx", cseq_method="ACK", to_tag="b1")
    layer.receive(wire(ack), UAC, 12.2)
    [event] = drain(layer)
    assert isinstance(event, RequestReceived) and event.transaction is None
    assert event.request.method == "ACK"
    layer.ack_received(txn, 12.2)
    assert txn.acked
    fired = run_timers(layer, 100.0)
    assert fired == [(32.0, [])]  # Timer L, quietly
    assert drain(layer) == [TransactionTerminated(txn)]
    assert len(layer) == 0


def test_ist_2xx_without_ack_times_out_with_timer_l() -> None:
    """No ACK reported within 64*T1: TransactionTimedOut(txn, "L") then Terminated."""
    layer = TransactionLayer()
    invite = make_request("INVITE")
    txn = _new_server(layer, invite)
    layer.respond(txn, make_response(invite, 180), 0.0)
    layer.respond(txn, make_response(invite, 200), 1.0)
    layer.outbox()
    fired = run_timers(layer, 100.0)
    assert [t for t, out in fired if out][:5] == [1.5, 2.5, 4.5, 8.5, 12.5]
    assert fired[-1] == (33.0, [])
    assert drain(layer) == [TransactionTimedOut(txn, "L"), TransactionTerminated(txn)]
    layer.ack_received(txn, 40.0)  # late: ignored, never raises
    assert layer.stats["late_tu"] == 1


def test_ist_2xx_over_reliable_transport_is_still_retransmitted() -> None:
    """The 2xx is end to end (§13.3.1.4): retransmitted over TCP too."""
    layer = TransactionLayer()
    invite = make_request("INVITE")
    txn = _new_server(layer, invite, reliable=True)
    layer.respond(txn, make_response(invite, 200), 0.0)
    layer.outbox()
    fired = run_timers(layer, 2.0)
    assert [t for t, out in fired if out] == [0.5, 1.5]


def test_ist_ack_matching_accepted_transaction_goes_to_tu() -> None:
    """An ACK reusing the INVITE's branch (in Accepted) goes to the TU with the IST."""
    layer = TransactionLayer()
    invite = make_request("INVITE")
    txn = _new_server(layer, invite)
    layer.respond(txn, make_response(invite, 200), 0.0)
    ack = make_request("ACK", cseq_method="ACK", to_tag="b1", sent_by="192.0.2.10:5060;rport")
    layer.receive(wire(ack), ("192.0.2.10", 5999), 0.1)
    [event] = drain(layer)
    assert isinstance(event, RequestReceived) and event.transaction is txn
    assert event.source == ("192.0.2.10", 5999)
    assert event.request.top_via.rport == 5999  # stamped like any request for the TU


def test_ist_second_2xx_from_tu_is_sent() -> None:
    """RFC 6026 Accepted: 2xx from TU / send response."""
    layer = TransactionLayer()
    invite = make_request("INVITE")
    txn = _new_server(layer, invite)
    layer.respond(txn, make_response(invite, 200), 0.0)
    layer.outbox()
    again = make_response(invite, 200)
    layer.respond(txn, again, 0.1)
    assert layer.outbox() == [Outgoing(wire(again), UAC)]


def test_respond_misuse_raises_but_late_respond_is_ignored() -> None:
    """A final after a final is a TU bug; a response to a terminated transaction is a race."""
    layer = TransactionLayer()
    invite = make_request("INVITE")
    txn = _new_server(layer, invite)
    layer.respond(txn, make_response(invite, 486), 0.0)
    with pytest.raises(LocalProtocolError, match="Completed"):
        layer.respond(txn, make_response(invite, 200), 0.1)
    with pytest.raises(LocalProtocolError):
        layer.respond(txn, make_response(invite, 180), 0.1)
    layer.handle_timer(100.0)
    assert txn.state is State.TERMINATED
    layer.respond(txn, make_response(invite, 500), 101.0)
    assert layer.stats["late_tu"] == 1


# ------------------------------------------------------------------ NIST


def test_nist_absorbs_until_it_answers_then_timer_j() -> None:
    """Trying absorbs; Completed resends the final; Timer J = 64*T1 over UDP."""
    layer = TransactionLayer()
    req = make_request("OPTIONS")
    txn = _new_server(layer, req)
    assert txn.kind is Kind.NIST and txn.state is State.TRYING
    assert layer.outbox() == []
    layer.receive(wire(req), UAC, 0.5)
    assert drain(layer) == [] and layer.outbox() == []
    ok = make_response(req, 200)
    layer.respond(txn, ok, 1.0)
    assert txn.state is State.COMPLETED
    assert layer.outbox() == [Outgoing(wire(ok), UAC)]
    layer.receive(wire(req), UAC, 1.5)
    assert layer.outbox() == [Outgoing(wire(ok), UAC)] and drain(layer) == []
    assert run_timers(layer, 100.0) == [(33.0, [])]
    assert drain(layer) == [TransactionTerminated(txn)]
    assert len(layer) == 0


def test_nist_proceeding_resends_provisional() -> None:
    """Proceeding: a retransmitted request gets the last 1xx."""
    layer = TransactionLayer()
    req = make_request("REGISTER")
    txn = _new_server(layer, req)
    trying = make_response(req, 100)
    layer.respond(txn, trying, 0.0)
    assert txn.state is State.PROCEEDING
    layer.outbox()
    layer.receive(wire(req), UAC, 0.5)
    assert layer.outbox() == [Outgoing(wire(trying), UAC)]


def test_nist_reliable_timer_j_is_zero() -> None:
    """Over TCP the NIST terminates when it sends its final response."""
    layer = TransactionLayer()
    req = make_request("OPTIONS")
    txn = _new_server(layer, req, reliable=True)
    layer.respond(txn, make_response(req, 200), 0.0)
    assert drain(layer) == [TransactionTerminated(txn)]
    assert len(layer) == 0 and layer.get_timer() is None


def test_transport_error_ends_server_transactions() -> None:
    """§17.2.4: a response that cannot be sent ends the transaction; the TU is told."""
    layer = TransactionLayer()
    invite = make_request("INVITE")
    txn = _new_server(layer, invite)
    layer.transport_error(UAC, 0.1)
    assert drain(layer) == [TransactionTimedOut(txn, "transport"), TransactionTerminated(txn)]


# ------------------------------------------------------------------ matching


def test_cancel_gets_its_own_transaction_and_finds_the_invite() -> None:
    """§9.2: CANCEL (same branch) is a new NIST; matching_invite finds the IST."""
    layer = TransactionLayer()
    invite = make_request("INVITE", "z9hG4bKinv")
    ist = _new_server(layer, invite)
    cancel = make_request("CANCEL", "z9hG4bKinv")
    nist = _new_server(layer, cancel, now=1.0)
    assert nist is not ist and nist.kind is Kind.NIST
    assert layer.matching_invite(cancel) is ist
    assert layer.matching_invite(make_request("CANCEL", "z9hG4bKother")) is None
    # other sent-by: no match (§17.2.3)
    assert layer.matching_invite(make_request("CANCEL", "z9hG4bKinv", sent_by="192.0.2.99")) is None
    # a retransmitted CANCEL goes to the CANCEL's own transaction
    layer.respond(nist, make_response(cancel, 200), 1.1)
    layer.outbox()
    layer.receive(wire(cancel), UAC, 1.2)
    assert [m.status for m in parsed(layer.outbox())] == [200]  # type: ignore[union-attr]
    assert len(layer) == 2


def test_server_matching_needs_same_sent_by_and_method() -> None:
    """Same branch from another sent-by, or another method, is a new transaction."""
    layer = TransactionLayer()
    _new_server(layer, make_request("OPTIONS", "z9hG4bKsame"))
    _new_server(layer, make_request("OPTIONS", "z9hG4bKsame", sent_by="192.0.2.11:5060"))
    _new_server(layer, make_request("INFO", "z9hG4bKsame"))
    assert len(layer) == 3


def test_rfc2543_requests_are_matched_without_branch() -> None:
    """No magic cookie: matched by URI, Call-ID, From tag, CSeq and top Via (§17.2.3)."""
    layer = TransactionLayer()
    invite = make_request("INVITE", "")  # no branch at all
    txn = _new_server(layer, invite)
    layer.outbox()
    layer.receive(wire(invite), UAC, 0.5)  # retransmission
    assert drain(layer) == [] and len(layer.outbox()) == 1
    layer.respond(txn, make_response(invite, 486, to_tag="z"), 1.0)
    ack = make_request("ACK", "", cseq_method="ACK", to_tag="z")
    layer.receive(wire(ack), UAC, 1.1)
    assert txn.state is State.CONFIRMED
    # an old-style branch works the same; a different CSeq is a different transaction
    assert layer.matching_invite(make_request("CANCEL", "")) is txn
    _new_server(layer, make_request("INVITE", "", cseq=2))
    assert len(layer) == 2
    old = make_request("OPTIONS", "1234")
    t2 = _new_server(layer, old)
    layer.receive(wire(old), UAC, 2.0)
    assert drain(layer) == [] and t2.state is State.TRYING


# ------------------------------------------------------------------ §18.2.1 on receipt


def test_received_and_rport_are_stamped_and_responses_follow_them() -> None:
    """A NATed client: received + rport stamped; responses go to the source address."""
    layer = TransactionLayer()
    req = make_request("OPTIONS", sent_by="192.0.2.5:5060;rport")
    # make_request puts ;branch after the sent-by: "192.0.2.5:5060;rport;branch=..."
    source = ("203.0.113.50", 61000)
    layer.receive(wire(req), source, 0.0)
    [event] = drain(layer)
    assert isinstance(event, RequestReceived)
    via = event.request.top_via
    assert via.received == "203.0.113.50" and via.rport == 61000
    txn = event.transaction
    assert txn is not None and txn.response_destination == source
    ok = make_response(event.request, 200)
    layer.respond(txn, ok, 0.1)
    [out] = layer.outbox()
    assert out.destination == source
    assert "received=203.0.113.50" in out.data.decode() and "rport=61000" in out.data.decode()
    # the retransmission still matches (stamping changes no matching field)
    layer.receive(wire(req), source, 0.2)
    assert len(layer.outbox()) == 1 and len(layer) == 1


def test_received_without_rport_uses_sent_by_port() -> None:
    """§18.2.2: received present, no rport -> (received, sent-by port)."""
    layer = TransactionLayer()
    req = make_request("OPTIONS", sent_by="pc.example.com:5070")
    txn = _new_server(layer, req)
    assert txn.response_destination == ("192.0.2.10", 5070)
    assert txn.request.top_via.received == "192.0.2.10"


def test_reliable_responses_go_to_the_connection() -> None:
    """Over TCP the response goes back over the connection, i.e. to the source address."""
    layer = TransactionLayer()
    req = make_request("OPTIONS", sent_by="pc.example.com:5070")
    source = ("192.0.2.10", 49152)
    layer.receive(wire(req), source, 0.0, reliable=True)
    [event] = drain(layer)
    assert isinstance(event, RequestReceived) and event.transaction is not None
    assert event.transaction.response_destination == source


# ------------------------------------------------------------------ malformed input


def _bad(extra: bytes = b"") -> bytes:
    return (
        b"INVITE sip:bob@198.51.100.2 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKbad\r\n"
        b"v: SIP/2.0/UDP 203.0.113.1;branch=z9hG4bKlow\r\n"
        b"f: <sip:alice@example.com>;tag=a1\r\n"
        b"To: <sip:bob@example.com>\r\n"
        b"i: bad1@192.0.2.10\r\n"
        b"CSeq: 1 INVITE\r\n" + extra + b"\r\n"
    )


def test_malformed_request_is_answered_statelessly() -> None:
    """A request with a parse error but a usable Via/From/To/Call-ID/CSeq gets 400 naming it."""
    layer = TransactionLayer(ids=SequentialIds())
    layer.receive(_bad(b"Content-Length: many\r\n"), UAC, 0.0)
    assert drain(layer) == []
    [out] = layer.outbox()
    assert out.destination == UAC
    [resp] = parsed([out])
    assert isinstance(resp, Response) and resp.status == 400
    assert "Content-Length" in resp.reason
    assert resp.headers.get_all("Via") == [
        "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKbad",
        "SIP/2.0/UDP 203.0.113.1;branch=z9hG4bKlow",
    ]
    assert resp.to.tag == "0000000000000001"
    assert resp.call_id == "bad1@192.0.2.10" and str(resp.cseq) == "1 INVITE"
    assert len(layer) == 0 and layer.stats["rejected"] == 1


def test_wrong_version_gets_505() -> None:
    """SIP/3.0: 505 Version Not Supported (§8.2.6 via the parser's status)."""
    layer = TransactionLayer()
    data = _bad().replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1)
    layer.receive(data, UAC, 0.0)
    [resp] = parsed(layer.outbox())
    assert isinstance(resp, Response) and resp.status == 505


def test_malformed_ack_and_responses_are_dropped() -> None:
    """Never answer an ACK or a response; count the drop."""
    layer = TransactionLayer()
    ack = _bad(b"Content-Length: x\r\n").replace(b"INVITE sip", b"ACK sip", 1)
    layer.receive(ack, UAC, 0.0)
    resp = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.10\r\nContent-Length: x\r\n\r\n"
    layer.receive(resp, UAC, 0.0)
    assert layer.outbox() == [] and drain(layer) == []
    assert layer.stats["dropped_unparseable"] == 2


@pytest.mark.parametrize(
    ("cut", "defect"),
    [
        (b"i: bad1@192.0.2.10\r\n", "missing Call-ID"),
        (b"CSeq: 1 INVITE\r\n", "missing CSeq"),
        (b"f: <sip:alice@example.com>;tag=a1\r\n", "missing From"),
        (b"To: <sip:bob@example.com>\r\n", "missing To"),
    ],
)
def test_request_missing_a_mandatory_header_gets_400(cut: bytes, defect: str) -> None:
    """RFC 3261 §8.2, RFC 4475 §3.1.2.18: a usable top Via is enough for a 400 naming
    the missing header; what is missing is made up so the answer is valid SIP."""
    layer = TransactionLayer(ids=SequentialIds())
    layer.receive(_bad().replace(cut, b""), UAC, 0.0)
    [out] = layer.outbox()
    assert out.destination == UAC
    [resp] = parsed([out])
    assert isinstance(resp, Response) and resp.status == 400
    assert defect in resp.reason
    assert resp.top_via.branch == "z9hG4bKbad"
    assert len(layer) == 0 and layer.stats["rejected"] == 1


def test_bad_via_is_dropped() -> None:
    """A request whose top Via cannot be parsed cannot be answered: dropped, counted."""
    layer = TransactionLayer()
    data = _bad().replace(b"SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKbad", b"garbage", 1)
    layer.receive(data, UAC, 0.0)
    assert layer.outbox() == [] and drain(layer) == []
    assert layer.stats["dropped_bad_via"] == 1


def test_rfc2543_request_with_bad_from_is_rejected() -> None:
    """The 2543 key reads From: a malformed From gets a stateless 400."""
    layer = TransactionLayer()
    req = make_request("OPTIONS", "")
    req.headers.set("From", "<sip:alice@example.com;tag=1")  # unterminated <
    layer.receive(wire(req), UAC, 0.0)
    [resp] = parsed(layer.outbox())
    assert isinstance(resp, Response) and resp.status == 400
    assert len(layer) == 0


def test_keepalive_is_counted_not_answered() -> None:
    """A CRLF keepalive (RFC 5626) is neither an error nor a message."""
    layer = TransactionLayer()
    layer.receive(b"\r\n\r\n", UAC, 0.0)
    layer.receive(b"", UAC, 0.0)
    assert layer.outbox() == [] and layer.stats["keepalives"] == 2


def test_malformed_request_without_usable_via_is_dropped() -> None:
    """A stateless answer needs a top Via that parses (§18.2.2): otherwise dropped."""
    layer = TransactionLayer()
    data = _bad(b"Content-Length: x\r\n")
    data = data.replace(b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKbad\r\n", b"", 1)
    data = data.replace(b"v: SIP/2.0/UDP 203.0.113.1;branch=z9hG4bKlow\r\n", b"", 1)
    layer.receive(data, UAC, 0.0)
    assert layer.outbox() == [] and layer.stats["dropped_unparseable"] == 1
    layer.receive(_bad(b"Content-Length: x\r\n").replace(b"branch=z9hG4bKbad", b"branch=\x00"), UAC, 0.0)
    assert layer.outbox() == [] and layer.stats["dropped_unparseable"] == 2


@pytest.mark.parametrize(
    ("cseq", "defect"),
    [
        (b"CSeq: INVITE", "CSeq"),  # not a number (RFC 4475 §3.1.2.4 style)
        (b"CSeq: 36893488147419103232 INVITE", "CSeq"),  # over 2**32
        (b"CSeq: 2147483648 INVITE", "2**31"),  # RFC 3261 §8.1.1.5: below 2**31
    ],
)
def test_bad_cseq_number_gets_400(cseq: bytes, defect: str) -> None:
    """A CSeq that is no number, or one not below 2**31, is a 400 naming the CSeq."""
    layer = TransactionLayer(ids=SequentialIds())
    layer.receive(_bad().replace(b"CSeq: 1 INVITE", cseq), UAC, 0.0)
    [resp] = parsed(layer.outbox())
    assert isinstance(resp, Response) and resp.status == 400
    assert defect in resp.reason
    assert resp.call_id == "bad1@192.0.2.10"
    assert len(layer) == 0 and drain(layer) == []


@pytest.mark.parametrize(
    ("extra", "defect"),
    [
        (b"Call-ID: second@192.0.2.10\r\n", "Call-ID"),
        (b"From: <sip:mallory@example.com>;tag=m1\r\n", "From"),
        (b"X-Junk: a\x00b\r\n", "NUL"),
    ],
)
def test_repeated_single_headers_and_nul_get_400(extra: bytes, defect: str) -> None:
    """Two Call-IDs or two Froms (RFC 4475 §3.1.2.19), or a NUL byte: 400 naming it,
    with the first Call-ID and From copied."""
    layer = TransactionLayer(ids=SequentialIds())
    layer.receive(_bad(extra), UAC, 0.0)
    [resp] = parsed(layer.outbox())
    assert isinstance(resp, Response) and resp.status == 400
    assert defect in resp.reason
    assert resp.call_id == "bad1@192.0.2.10"
    assert resp.from_.tag == "a1" and resp.headers.get_all("From") == ["<sip:alice@example.com>;tag=a1"]


def test_stateless_400_ignores_a_received_the_peer_wrote() -> None:
    """§18.2.2: the answer goes to the packet's source (its port with rport), never to a
    ``received``/``rport`` value the peer put in its own Via (a reflection)."""
    layer = TransactionLayer(ids=SequentialIds())
    data = _bad().replace(b"i: bad1@192.0.2.10\r\n", b"").replace(
        b"192.0.2.10:5060;branch=z9hG4bKbad", b"192.0.2.10:5060;received=203.0.113.99;rport=9;branch=z9hG4bKbad"
    )
    layer.receive(data, ("198.51.100.7", 40000), 0.0)
    [out] = layer.outbox()
    assert out.destination == ("198.51.100.7", 40000)
    [resp] = parsed([out])
    assert resp.top_via.received == "198.51.100.7" and resp.top_via.rport == 40000
    layer.receive(data.replace(b"rport=9;", b""), ("198.51.100.7", 40000), 0.0)
    [out] = layer.outbox()
    assert out.destination == ("198.51.100.7", 5060)


def test_oversized_and_long_header_name_requests() -> None:
    """Past MAX_MESSAGE_SIZE: 413; a header name past MAX_HEADER_NAME: 400 (no transaction
    holds either, so a flood of them holds no memory)."""
    layer = TransactionLayer(ids=SequentialIds())
    layer.receive(_bad(b"X-Pad: " + b"p" * 70000 + b"\r\n"), UAC, 0.0)
    [resp] = parsed(layer.outbox())
    assert isinstance(resp, Response) and resp.status == 413
    layer.receive(_bad(b"X" * 60000 + b": 1\r\n"), UAC, 0.0)
    [resp] = parsed(layer.outbox())
    assert isinstance(resp, Response) and resp.status == 400 and "header name" in resp.reason
    assert len(layer) == 0


def test_flood_of_long_header_names_holds_no_memory() -> None:
    """Issue 12: OPTIONS with 60 KB header names each get a stateless 400 and leave
    nothing behind (3,000 of them used to hold 150 MB in live server transactions)."""
    import tracemalloc

    layer = TransactionLayer(ids=SequentialIds())
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        for k in range(100):
            data = _bad(b"X" * 60000 + b": 1\r\n").replace(b"z9hG4bKbad", b"z9hG4bKbad%d" % k)
            layer.receive(data, UAC, float(k))
            layer.outbox()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(layer) == 0 and layer.stats["rejected"] == 100
    assert held - base < 1_000_000  # 100 x 60 KB would be 6 MB


def test_finished_server_transaction_keeps_bytes_not_objects() -> None:
    """After its final response a server transaction keeps the bytes and status, not the Response,
    and its request's fields are frozen for the collector; a retransmission still gets the bytes."""
    import gc

    layer = TransactionLayer()
    invite = make_request("INVITE")
    txn = _new_server(layer, invite)
    layer.outbox()
    busy = make_response(invite, 486)
    layer.respond(txn, busy, 1.0)
    assert layer.outbox() == [Outgoing(wire(busy), UAC)]
    assert txn.last_response is None and txn.final_status == 486
    assert txn.response_data == wire(busy)
    fields = txn.request.headers._fields
    assert type(fields) is tuple
    # strings only: the collector stops tracking the inner tuples on one pass, the outer one
    # on the next (CPython untracks a tuple once everything in it is untracked)
    gc.collect()
    gc.collect()
    assert not gc.is_tracked(fields)
    layer.receive(wire(invite), UAC, 1.5)
    assert layer.outbox() == [Outgoing(wire(busy), UAC)]
    assert txn.request.method == "INVITE" and txn.request.call_id == invite.call_id
