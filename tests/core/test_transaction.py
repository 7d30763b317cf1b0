"""Client transactions (RFC 3261 §17.1, RFC 6026) and layer-wide behaviour, with explicit ``now``."""

from __future__ import annotations

import pytest
from test_transaction_helpers import (
    UAS,
    drain,
    make_request,
    make_response,
    parsed,
    run_timers,
    wire,
)

from txsipua.core.transaction import (
    ClientTransaction,
    Kind,
    ResponseReceived,
    State,
    StrayResponse,
    Timers,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimedOut,
    build_ack,
)
from txsipua.core.transport import Outgoing
from txsipua.errors import LocalProtocolError
from txsipua.sip.message import Request

# ------------------------------------------------------------------ NICT


def test_nict_udp_retransmits_then_timer_f() -> None:
    """NICT over UDP: 0.5, 1.5, 3.5, 7.5 s, then every T2 = 4 s; Timer F at 32 s (§17.1.2.2)."""
    layer = TransactionLayer()
    req = make_request("OPTIONS")
    txn = layer.send_request(req, UAS, 0.0)
    assert txn.kind is Kind.NICT and txn.state is State.TRYING
    assert layer.outbox() == [Outgoing(wire(req), UAS)]
    fired = run_timers(layer, 100.0)
    sends = [t for t, out in fired if out]
    assert sends == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert all(out == [Outgoing(wire(req), UAS)] for _, out in fired if out)
    assert fired[-1] == (32.0, [])
    events = drain(layer)
    assert events == [TransactionTimedOut(txn, "F"), TransactionTerminated(txn)]
    assert txn.state is State.TERMINATED
    assert len(layer) == 0 and layer.get_timer() is None


def test_nict_provisional_moves_retransmissions_to_t2() -> None:
    """After a 1xx, Timer E fires at intervals of T2 (§17.1.2.2 Proceeding)."""
    layer = TransactionLayer()
    req = make_request("REGISTER")
    txn = layer.send_request(req, UAS, 0.0)
    layer.outbox()
    layer.handle_timer(0.5)
    assert layer.outbox()
    layer.receive(wire(make_response(req, 100)), UAS, 1.0)
    [event] = drain(layer)
    assert isinstance(event, ResponseReceived) and event.response.status == 100
    assert txn.state is State.PROCEEDING
    fired = run_timers(layer, 20.0)
    assert [t for t, out in fired if out] == [1.5, 5.5, 9.5, 13.5, 17.5]


def test_nict_final_response_then_timer_k() -> None:
    """A final response goes to the TU once; retransmissions are absorbed; Timer K = T4."""
    layer = TransactionLayer()
    req = make_request("BYE", to_tag="b1")
    txn = layer.send_request(req, UAS, 0.0)
    layer.outbox()
    ok = make_response(req, 200)
    layer.receive(wire(ok), UAS, 0.2)
    [event] = drain(layer)
    assert isinstance(event, ResponseReceived) and event.transaction is txn
    assert txn.last_response is event.response
    assert txn.state is State.COMPLETED
    layer.receive(wire(ok), UAS, 0.3)
    assert drain(layer) == []
    assert layer.stats["absorbed"] == 1
    assert layer.get_timer() == pytest.approx(5.2)
    assert run_timers(layer, 100.0) == [(pytest.approx(5.2), [])]
    assert drain(layer) == [TransactionTerminated(txn)]
    assert len(layer) == 0


def test_nict_reliable_never_retransmits_and_k_is_zero() -> None:
    """Over TCP: no Timer E; Timer F still 64*T1; Completed lasts zero seconds."""
    layer = TransactionLayer()
    req = make_request("OPTIONS")
    txn = layer.send_request(req, UAS, 0.0, reliable=True)
    assert len(layer.outbox()) == 1
    assert layer.get_timer() == 32.0
    layer.receive(wire(make_response(req, 200)), UAS, 1.0, reliable=True)
    events = drain(layer)
    assert [type(e) for e in events] == [ResponseReceived, TransactionTerminated]
    assert txn.state is State.TERMINATED and len(layer) == 0
    assert layer.get_timer() is None


def test_nict_reliable_timeout() -> None:
    """Over TCP the only client timer is F."""
    layer = TransactionLayer()
    txn = layer.send_request(make_request("OPTIONS"), UAS, 0.0, reliable=True)
    layer.outbox()
    assert run_timers(layer, 100.0) == [(32.0, [])]
    assert drain(layer) == [TransactionTimedOut(txn, "F"), TransactionTerminated(txn)]


# ------------------------------------------------------------------ ICT


def test_ict_timer_a_doubles_without_cap_then_timer_b() -> None:
    """ICT over UDP: Timer A 0.5, 1, 2, 4, 8, 16 s (no T2 cap); Timer B at 64*T1 (§17.1.1.2)."""
    layer = TransactionLayer()
    req = make_request("INVITE")
    txn = layer.send_request(req, UAS, 0.0)
    assert txn.kind is Kind.ICT and txn.state is State.CALLING
    layer.outbox()
    fired = run_timers(layer, 100.0)
    assert [t for t, out in fired if out] == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert fired[-1] == (32.0, [])
    assert drain(layer) == [TransactionTimedOut(txn, "B"), TransactionTerminated(txn)]
    assert len(layer) == 0


def test_ict_custom_timers() -> None:
    """T1 is a parameter: B = 64*T1."""
    layer = TransactionLayer(timers=Timers(t1=0.1, t2=4.0, t4=5.0))
    layer.send_request(make_request("INVITE"), UAS, 10.0)
    fired = run_timers(layer, 100.0)
    assert [round(t, 6) for t, out in fired if out] == [10.1, 10.3, 10.7, 11.5, 13.1, 16.3]
    assert fired[-1][0] == pytest.approx(16.4)


def test_ict_reliable_no_retransmission() -> None:
    """ICT over TCP: no Timer A; Timer B still fires."""
    layer = TransactionLayer()
    txn = layer.send_request(make_request("INVITE"), UAS, 0.0, reliable=True)
    assert len(layer.outbox()) == 1
    assert run_timers(layer, 100.0) == [(32.0, [])]
    assert drain(layer) == [TransactionTimedOut(txn, "B"), TransactionTerminated(txn)]


def test_ict_provisional_stops_a_and_b() -> None:
    """In Proceeding the INVITE is no longer retransmitted and Timer B no longer runs (Fig. 5)."""
    layer = TransactionLayer()
    req = make_request("INVITE")
    txn = layer.send_request(req, UAS, 0.0)
    layer.outbox()
    layer.receive(wire(make_response(req, 180)), UAS, 0.3)
    [event] = drain(layer)
    assert isinstance(event, ResponseReceived) and event.response.status == 180
    assert txn.state is State.PROCEEDING
    assert layer.get_timer() is None
    layer.receive(wire(make_response(req, 183)), UAS, 5.0)
    assert [e.response.status for e in drain(layer)] == [183]  # type: ignore[union-attr]


def _invite_with_route() -> Request:
    return make_request(
        "INVITE",
        "z9hG4bKict",
        cseq=314,
        vias=["SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKlower"],
        extra=[
            ("Route", "<sip:p1.example.com;lr>, <sip:p2.example.com;lr>"),
            ("Route", "<sip:p3.example.com;lr>"),
            (
                "Authorization",
                'Digest username="alice", realm="r", nonce="n", uri="x", response="0"',
            ),
            ("Contact", "<sip:alice@192.0.2.10>"),
            ("Content-Type", "application/sdp"),
        ],
    )


def test_build_ack_for_non_2xx() -> None:
    """§17.1.1.3: same URI, Call-ID, From, CSeq number; To of the response; top Via; Routes."""
    invite = _invite_with_route()
    invite.body = b"v=0\r\n"
    resp = make_response(invite, 486, to_tag="busy1")
    ack = build_ack(invite, resp)
    assert ack.method == "ACK"
    assert ack.uri_text == invite.uri_text
    assert ack.headers.get_all("Via") == ["SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKict"]
    assert ack.call_id == invite.call_id
    assert ack.headers.get("From") == invite.headers.get("From")
    assert ack.to.tag == "busy1"
    assert ack.headers.get("To") == resp.headers.get("To")
    assert (ack.cseq.seq, ack.cseq.method) == (314, "ACK")
    assert ack.headers.get_all("Route") == [
        "<sip:p1.example.com;lr>",
        "<sip:p2.example.com;lr>",
        "<sip:p3.example.com;lr>",
    ]
    assert ack.max_forwards == 70
    assert "Authorization" not in ack.headers and "Contact" not in ack.headers
    assert ack.body == b""


def test_ict_non_2xx_sends_ack_and_resends_it_for_retransmissions() -> None:
    """A 486 is ACKed by the transaction, passed up once; its retransmission is ACKed again."""
    layer = TransactionLayer()
    invite = _invite_with_route()
    txn = layer.send_request(invite, UAS, 0.0)
    layer.outbox()
    busy = make_response(invite, 486, to_tag="busy1")
    layer.receive(wire(busy), UAS, 0.1)
    [event] = drain(layer)
    assert isinstance(event, ResponseReceived) and event.response.status == 486
    assert txn.state is State.COMPLETED
    [out] = layer.outbox()
    assert out.destination == UAS
    [ack] = parsed([out])
    assert isinstance(ack, Request) and ack.method == "ACK"
    assert ack.to.tag == "busy1" and ack.cseq.seq == 314
    assert txn.ack is not None and out.data == txn.ack_data
    # the 486 is retransmitted (our ACK was lost): the same ACK again, nothing for the TU
    layer.receive(wire(busy), UAS, 0.6)
    assert drain(layer) == []
    assert layer.outbox() == [out]
    # no INVITE retransmission in Completed; Timer D (32 s over UDP) ends it
    fired = run_timers(layer, 100.0)
    assert fired == [(pytest.approx(32.1), [])]
    assert drain(layer) == [TransactionTerminated(txn)]
    assert len(layer) == 0


def test_ict_non_2xx_reliable_timer_d_is_zero() -> None:
    """Over TCP the ICT terminates as soon as it has sent the ACK."""
    layer = TransactionLayer()
    invite = make_request("INVITE")
    txn = layer.send_request(invite, UAS, 0.0, reliable=True)
    layer.outbox()
    layer.receive(wire(make_response(invite, 603)), UAS, 0.1, reliable=True)
    assert [type(e) for e in drain(layer)] == [ResponseReceived, TransactionTerminated]
    assert [m.method for m in parsed(layer.outbox())] == ["ACK"]  # type: ignore[union-attr]
    assert txn.state is State.TERMINATED and len(layer) == 0


def test_ict_2xx_accepted_forwards_retransmissions_until_timer_m() -> None:
    """RFC 6026: 2xx -> Accepted; each 2xx (retransmission or fork) goes to the TU; no ACK here."""
    layer = TransactionLayer()
    invite = make_request("INVITE")
    txn = layer.send_request(invite, UAS, 0.0)
    layer.outbox()
    ok = make_response(invite, 200, to_tag="x1")
    layer.receive(wire(ok), UAS, 0.2)
    assert [e.response.status for e in drain(layer)] == [200]  # type: ignore[union-attr]
    assert txn.state is State.ACCEPTED
    assert layer.outbox() == []  # the TU sends the ACK for a 2xx itself
    layer.receive(wire(ok), UAS, 0.7)
    layer.receive(wire(make_response(invite, 200, to_tag="fork2")), UAS, 0.8)
    events = drain(layer)
    assert [e.response.to.tag for e in events] == ["x1", "fork2"]  # type: ignore[union-attr]
    assert all(isinstance(e, ResponseReceived) and e.transaction is txn for e in events)
    # a late 486 is not for the TU
    layer.receive(wire(make_response(invite, 486)), UAS, 0.9)
    assert drain(layer) == [] and layer.stats["ignored"] == 1
    assert run_timers(layer, 100.0) == [(pytest.approx(32.2), [])]
    assert drain(layer) == [TransactionTerminated(txn)]
    # after Timer M a 2xx retransmission is stray (the UA core re-ACKs it, §13.2.2.4)
    layer.receive(wire(ok), UAS, 40.0)
    [stray] = drain(layer)
    assert isinstance(stray, StrayResponse) and stray.source == UAS


def test_ict_2xx_after_provisional() -> None:
    """Proceeding -> Accepted on 2xx."""
    layer = TransactionLayer()
    invite = make_request("INVITE")
    txn = layer.send_request(invite, UAS, 0.0)
    layer.receive(wire(make_response(invite, 180)), UAS, 0.1)
    layer.receive(wire(make_response(invite, 200)), UAS, 3.0)
    assert txn.state is State.ACCEPTED
    assert layer.get_timer() == pytest.approx(35.0)


# ------------------------------------------------------------------ matching


def test_response_matching_uses_branch_and_cseq_method() -> None:
    """§17.1.3: an INVITE and its CANCEL share a branch; the CSeq method tells them apart."""
    layer = TransactionLayer()
    invite = make_request("INVITE", "z9hG4bKshared")
    ict = layer.send_request(invite, UAS, 0.0)
    cancel = make_request("CANCEL", "z9hG4bKshared")
    nict = layer.send_request(cancel, UAS, 1.0)
    assert isinstance(nict, ClientTransaction) and nict.kind is Kind.NICT
    assert len(layer) == 2
    layer.receive(wire(make_response(cancel, 200)), UAS, 1.1)
    [e] = drain(layer)
    assert isinstance(e, ResponseReceived) and e.transaction is nict
    layer.receive(wire(make_response(invite, 487)), UAS, 1.2)
    [e] = drain(layer)
    assert isinstance(e, ResponseReceived) and e.transaction is ict


def test_response_with_unknown_branch_is_stray() -> None:
    """A response for no transaction is reported, not dropped."""
    layer = TransactionLayer()
    layer.send_request(make_request("OPTIONS", "z9hG4bKmine"), UAS, 0.0)
    other = make_response(make_request("OPTIONS", "z9hG4bKother"), 200)
    layer.receive(wire(other), UAS, 0.1)
    [e] = drain(layer)
    assert isinstance(e, StrayResponse)
    assert layer.stats["stray_responses"] == 1


def test_response_with_wrong_method_is_stray() -> None:
    """Same branch, other CSeq method: no match."""
    layer = TransactionLayer()
    req = make_request("OPTIONS", "z9hG4bKmine")
    layer.send_request(req, UAS, 0.0)
    odd = make_request("INFO", "z9hG4bKmine")
    layer.receive(wire(make_response(odd, 200)), UAS, 0.1)
    assert isinstance(drain(layer)[0], StrayResponse)


def test_response_without_via_is_dropped() -> None:
    """A response missing its Via (only possible when handed over parsed) is dropped and counted."""
    layer = TransactionLayer()
    req = make_request("OPTIONS")
    layer.send_request(req, UAS, 0.0)
    resp = make_response(req, 200)
    resp.headers.remove("Via")
    layer.receive_message(resp, UAS, 0.1)
    assert drain(layer) == []
    assert layer.stats["dropped_bad_via"] == 1


# ------------------------------------------------------------------ TU errors


def test_send_request_rejects_bad_requests() -> None:
    """ACK, missing cookie, missing Via and a duplicate branch are the TU's mistakes."""
    layer = TransactionLayer()
    with pytest.raises(LocalProtocolError, match="send_stateless"):
        layer.send_request(make_request("ACK"), UAS, 0.0)
    with pytest.raises(LocalProtocolError, match="z9hG4bK"):
        layer.send_request(make_request("OPTIONS", "old2543"), UAS, 0.0)
    with pytest.raises(LocalProtocolError, match="z9hG4bK"):
        layer.send_request(make_request("OPTIONS", ""), UAS, 0.0)
    novia = make_request("OPTIONS")
    novia.headers.remove("Via")
    with pytest.raises(LocalProtocolError, match="Via"):
        layer.send_request(novia, UAS, 0.0)
    layer.send_request(make_request("OPTIONS", "z9hG4bKdup"), UAS, 0.0)
    with pytest.raises(LocalProtocolError, match="already live"):
        layer.send_request(make_request("OPTIONS", "z9hG4bKdup"), UAS, 0.0)
    assert len(layer) == 1


def test_send_stateless() -> None:
    """An ACK for a 2xx leaves through the outbox without a transaction."""
    layer = TransactionLayer()
    ack = make_request("ACK", "z9hG4bKack", to_tag="b1")
    layer.send_stateless(ack, UAS, 0.0)
    assert layer.outbox() == [Outgoing(wire(ack), UAS)]
    assert len(layer) == 0 and layer.get_timer() is None


# ------------------------------------------------------------------ transport errors


def test_transport_error_ends_client_transactions_to_that_destination() -> None:
    """§17.1.4: the TU learns of it as TransactionTimedOut(txn, "transport")."""
    layer = TransactionLayer()
    a = layer.send_request(make_request("INVITE", "z9hG4bKa"), UAS, 0.0)
    b = layer.send_request(make_request("OPTIONS", "z9hG4bKb"), ("203.0.113.3", 5060), 0.0)
    layer.transport_error(UAS, 0.1)
    assert drain(layer) == [TransactionTimedOut(a, "transport"), TransactionTerminated(a)]
    assert a.state is State.TERMINATED and b.state is State.TRYING
    assert len(layer) == 1


def test_transport_error_ignored_by_completed_nict() -> None:
    """A NICT in Completed sends nothing and ignores transport errors."""
    layer = TransactionLayer()
    req = make_request("OPTIONS")
    txn = layer.send_request(req, UAS, 0.0)
    layer.receive(wire(make_response(req, 200)), UAS, 0.1)
    drain(layer)
    layer.transport_error(UAS, 0.2)
    assert drain(layer) == [] and txn.state is State.COMPLETED


# ------------------------------------------------------------------ timers at scale


def test_timer_heap_with_thousands_of_transactions() -> None:
    """Thousands of live transactions: get_timer is the earliest; all leave after termination."""
    layer = TransactionLayer()
    reqs = []
    for i in range(3000):
        req = make_request("OPTIONS", f"z9hG4bK{i}", call_id=f"c{i}")
        layer.send_request(req, UAS, i * 0.001)
        reqs.append(req)
    assert len(layer) == 3000
    assert layer.get_timer() == 0.5
    # answer every second one: their Timers E and F become stale heap entries
    for i, req in enumerate(reqs):
        if i % 2 == 0:
            layer.receive(wire(make_response(req, 200)), UAS, 3.0)
    drain(layer)
    layer.outbox()
    assert layer.get_timer() == pytest.approx(0.501)  # the first unanswered one (i = 1)
    layer.handle_timer(1000.0)
    events = drain(layer)
    assert sum(isinstance(e, TransactionTerminated) for e in events) == 3000
    assert sum(isinstance(e, TransactionTimedOut) for e in events) == 1500
    assert len(layer) == 0 and layer.transaction_count == 0
    assert layer.get_timer() is None


def test_stale_timer_entries_are_compacted() -> None:
    """Cancelled timers do not pile up in the heap (nor keep dead transactions alive)."""
    layer = TransactionLayer()
    reqs = [make_request("OPTIONS", f"z9hG4bK{i}", call_id=f"c{i}") for i in range(3000)]
    for req in reqs:
        layer.send_request(req, UAS, 0.0)
    for req in reqs:  # E and F of each become stale; K starts
        layer.receive(wire(make_response(req, 200)), UAS, 0.1)
    # 3000 live K timers; without compaction the heap would hold 9000 entries
    assert len(layer._heap) < 6000
    layer.handle_timer(5.1)
    assert len(layer) == 0 and layer.get_timer() is None
    assert layer._heap == []


def test_handle_timer_early_fires_nothing() -> None:
    """Calling handle_timer before the deadline does nothing."""
    layer = TransactionLayer()
    layer.send_request(make_request("OPTIONS"), UAS, 0.0)
    layer.outbox()
    layer.handle_timer(0.49)
    assert layer.outbox() == [] and layer.get_timer() == 0.5


def test_handle_timer_late_restarts_from_now() -> None:
    """A late call fires the overdue timer once and restarts it from ``now`` (no burst)."""
    layer = TransactionLayer()
    layer.send_request(make_request("OPTIONS"), UAS, 0.0)
    layer.outbox()
    layer.handle_timer(10.0)
    assert len(layer.outbox()) == 1
    assert layer.get_timer() == 11.0


def test_timers_are_validated() -> None:
    """A zero T1 would retransmit forever at the same instant; T2 below T1 makes no sense."""
    with pytest.raises(ValueError):
        Timers(t1=0)
    with pytest.raises(ValueError, match="T2"):
        Timers(t1=1.0, t2=0.5)
    with pytest.raises(ValueError):
        Timers(t4=-1)
    with pytest.raises(ValueError):
        Timers(d=-1)
    assert Timers().t64 == 32.0
    assert Timers(t1=0.25).t64 == 16.0
