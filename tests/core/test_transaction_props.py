"""Property tests for the transaction layer: every state x input, random walks, garbage input."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_transaction_helpers import UAC, UAS, drain, make_request, make_response, wire

from txsipua.core.transaction import (
    INITIAL_STATE,
    TABLES,
    Input,
    Kind,
    RequestReceived,
    State,
    Transaction,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimedOut,
)
from txsipua.errors import LocalProtocolError
from txsipua.sip.message import Request, Response, parse_message

_CLIENT_PATHS = {
    Kind.ICT: {
        State.CALLING: [],
        State.PROCEEDING: [180],
        State.COMPLETED: [486],
        State.ACCEPTED: [200],
        State.TERMINATED: ["transport"],
    },
    Kind.NICT: {
        State.TRYING: [],
        State.PROCEEDING: [100],
        State.COMPLETED: [200],
        State.TERMINATED: ["transport"],
    },
}
_SERVER_PATHS = {
    Kind.IST: {
        State.PROCEEDING: [],
        State.COMPLETED: [486],
        State.CONFIRMED: [486, "ACK"],
        State.ACCEPTED: [200],
        State.TERMINATED: ["transport"],
    },
    Kind.NIST: {
        State.TRYING: [],
        State.PROCEEDING: [100],
        State.COMPLETED: [200],
        State.TERMINATED: [500, "transport"],
    },
}


def _cases() -> list[tuple[Kind, State, Input]]:
    paths = {**_CLIENT_PATHS, **_SERVER_PATHS}
    return [(k, s, i) for k in Kind for s in paths[k] for i in Input]


def _ack() -> Request:
    return make_request("ACK", cseq_method="ACK", to_tag="b1")


def _in_state(layer: TransactionLayer, kind: Kind, state: State) -> tuple[Transaction, Request]:
    """Drive a fresh transaction of ``kind`` to ``state`` through the public API."""
    method = "INVITE" if kind in (Kind.ICT, Kind.IST) else "OPTIONS"
    req = make_request(method)
    txn: Transaction
    if kind in _CLIENT_PATHS:
        txn = layer.send_request(req, UAS, 0.0)
        for step in _CLIENT_PATHS[kind][state]:
            if step == "transport":
                layer.transport_error(UAS, 0.1)
            else:
                assert isinstance(step, int)
                layer.receive(wire(make_response(req, step)), UAS, 0.1)
    else:
        layer.receive(wire(req), UAC, 0.0)
        [server] = layer.transactions()
        txn = server
        for step in _SERVER_PATHS[kind][state]:
            if step == "transport":
                layer.transport_error(UAC, 0.1)
            elif step == "ACK":
                layer.receive(wire(_ack()), UAC, 0.1)
            else:
                assert isinstance(step, int)
                layer.respond(server, make_response(txn.request, step), 0.1)
    assert txn.state is state
    drain(layer)
    layer.outbox()
    return txn, req


def _message_for(inp: Input, req: Request) -> Request | Response | None:
    return {
        Input.REQUEST: req,
        Input.ACK: _ack(),
        Input.RESPONSE_1XX: make_response(req, 180),
        Input.RESPONSE_2XX: make_response(req, 200),
        Input.RESPONSE_300_699: make_response(req, 486),
        Input.TU_1XX: make_response(req, 180),
        Input.TU_2XX: make_response(req, 200),
        Input.TU_300_699: make_response(req, 486),
    }.get(inp)


@pytest.mark.parametrize(("kind", "state", "inp"), _cases())
def test_every_state_and_input(kind: Kind, state: State, inp: Input) -> None:
    """Each (state, input) does what its table says; an absent pair is ignored and counted."""
    layer = TransactionLayer()
    txn, req = _in_state(layer, kind, state)
    ignored = layer.stats["ignored"]
    entry = TABLES[kind].get((state, inp))
    layer._step(txn, inp, _message_for(inp, req), UAC, 1.0)
    events = drain(layer)
    if entry is None:
        assert txn.state is state
        assert layer.stats["ignored"] == ignored + 1
        assert events == [] and layer.outbox() == []
    else:
        assert txn.state is entry[1]
        assert layer.stats["ignored"] == ignored
    terminated = [e for e in events if isinstance(e, TransactionTerminated)]
    if txn.state is State.TERMINATED:
        assert txn not in layer.transactions() and len(layer) == 0
        assert txn.timers == {}
        assert len(terminated) == (0 if state is State.TERMINATED else 1)
    else:
        assert layer.transactions() == [txn]
        assert terminated == []


def test_tables_only_use_states_of_their_machine() -> None:
    """No table mentions a state its figure does not have; every state but Terminated has exits."""
    for kind, table in TABLES.items():
        paths = {**_CLIENT_PATHS, **_SERVER_PATHS}[kind]
        states = {s for s, _ in table} | {n for _, n in table.values()}
        assert states <= set(paths)
        assert INITIAL_STATE[kind] in states
        for state in paths:
            exits = [n for (s, _), (_, n) in table.items() if s is state and n is not state]
            assert bool(exits) == (state is not State.TERMINATED)


# ------------------------------------------------------------------ random walks

_CLIENT_OPS = ["1xx", "2xx", "3xx", "timer", "transport", "wait", "stray"]
_SERVER_OPS = ["again", "ack", "ack2xx", "tu1xx", "tu2xx", "tu4xx", "acked", "timer", "transport"]


def _check_outbox(layer: TransactionLayer) -> None:
    for out in layer.outbox():
        parse_message(out.data)  # the layer only ever sends valid SIP


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    invite=st.booleans(),
    reliable=st.booleans(),
    ops=st.lists(st.sampled_from(_CLIENT_OPS), max_size=25),
)
def test_client_random_walk(invite: bool, reliable: bool, ops: list[str]) -> None:
    """Any sequence of responses, timers and errors: no exception, one Terminated, no leak."""
    layer = TransactionLayer()
    req = make_request("INVITE" if invite else "MESSAGE")
    txn = layer.send_request(req, UAS, 0.0, reliable=reliable)
    now = 0.0
    events = []
    for op in ops:
        now += 0.01
        if op == "timer":
            deadline = layer.get_timer()
            if deadline is not None:
                now = max(now, deadline)
                layer.handle_timer(now)
        elif op == "transport":
            layer.transport_error(UAS, now)
        elif op == "wait":
            now += 3.0
            layer.handle_timer(now)
        elif op == "stray":
            layer.receive(wire(make_response(make_request("INVITE", "z9hG4bKx"), 200)), UAS, now)
        else:
            status = {"1xx": 180, "2xx": 200, "3xx": 486}[op]
            layer.receive(wire(make_response(req, status)), UAS, now, reliable=reliable)
        _check_outbox(layer)
        events += drain(layer)
        assert (txn.state is State.TERMINATED) == (len(layer) == 0)
    if txn.state is State.PROCEEDING and invite:  # an ICT in Proceeding waits for a final
        layer.receive(wire(make_response(req, 486)), UAS, now)
    layer.handle_timer(now + 1000.0)
    _check_outbox(layer)
    events += drain(layer)
    assert txn.state is State.TERMINATED and len(layer) == 0 and layer.get_timer() is None
    assert [e for e in events if isinstance(e, TransactionTerminated)] == [
        TransactionTerminated(txn)
    ]
    assert sum(isinstance(e, TransactionTimedOut) for e in events) <= 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    invite=st.booleans(),
    reliable=st.booleans(),
    ops=st.lists(st.sampled_from(_SERVER_OPS), max_size=25),
)
def test_server_random_walk(invite: bool, reliable: bool, ops: list[str]) -> None:
    """Any sequence of retransmissions, ACKs, TU orders, timers: only TU misuse raises."""
    layer = TransactionLayer()
    req = make_request("INVITE" if invite else "SUBSCRIBE")
    layer.receive(wire(req), UAC, 0.0, reliable=reliable)
    [txn] = layer.transactions()
    events = drain(layer)
    now = 0.0
    for op in ops:
        now += 0.01
        if op == "again":  # after termination a retransmission makes a new transaction
            layer.receive(wire(req), UAC, now, reliable=reliable)
        elif op == "ack":
            layer.receive(wire(_ack()), UAC, now, reliable=reliable)
        elif op == "ack2xx":
            ack = make_request("ACK", "z9hG4bKnew", cseq_method="ACK", to_tag="b1")
            layer.receive(wire(ack), UAC, now, reliable=reliable)
        elif op == "acked":
            layer.ack_received(txn, now)  # type: ignore[arg-type]
        elif op == "timer":
            deadline = layer.get_timer()
            if deadline is not None:
                now = max(now, deadline)
                layer.handle_timer(now)
        elif op == "transport":
            layer.transport_error(UAC, now)
        else:
            status = {"tu1xx": 183, "tu2xx": 200, "tu4xx": 404}[op]
            inp = {183: Input.TU_1XX, 200: Input.TU_2XX, 404: Input.TU_300_699}[status]
            allowed = txn.state is State.TERMINATED or (txn.state, inp) in TABLES[txn.kind]
            try:
                layer.respond(txn, make_response(req, status), now)  # type: ignore[arg-type]
            except LocalProtocolError:
                assert not allowed
            else:
                assert allowed
        _check_outbox(layer)
        events += drain(layer)
        live = layer.transactions()
        assert (txn in live) == (txn.state is not State.TERMINATED)
        assert all(t.state is not State.TERMINATED for t in live)
        assert len(live) <= 1
    for t in layer.transactions():
        if t.state in (State.PROCEEDING, State.TRYING):
            layer.respond(t, make_response(req, 500), now)  # type: ignore[arg-type]
    layer.handle_timer(now + 1000.0)
    _check_outbox(layer)
    events += drain(layer)
    assert txn.state is State.TERMINATED and len(layer) == 0 and layer.get_timer() is None
    created = [
        e.transaction
        for e in events
        if isinstance(e, RequestReceived) and e.transaction and e.request.method != "ACK"
    ]
    assert created[0] is txn
    terminated = [e.transaction for e in events if isinstance(e, TransactionTerminated)]
    assert sorted(map(id, terminated)) == sorted(map(id, created))


# ------------------------------------------------------------------ garbage

_SAMPLE = (
    wire(
        make_request(
            "INVITE",
            extra=[("Contact", "<sip:alice@192.0.2.10>"), ("Content-Type", "application/sdp")],
        )
    )
    + b"v=0\r\n"
)
_SAMPLES = [
    _SAMPLE,
    wire(make_response(make_request("INVITE"), 180)),
    wire(make_request("ACK", cseq_method="ACK", to_tag="b1")),
    wire(make_request("OPTIONS", "")),
]


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=600))
def test_random_bytes_never_raise(data: bytes) -> None:
    """Whatever arrives, receive() returns; anything it sends is valid SIP."""
    layer = TransactionLayer()
    layer.receive(data, UAC, 0.0)
    layer.receive(data, UAC, 0.1, reliable=True)
    _check_outbox(layer)
    drain(layer)


@settings(max_examples=200, deadline=None)
@given(
    base=st.sampled_from(_SAMPLES),
    edits=st.lists(
        st.tuples(st.integers(0, 2000), st.integers(0, 8), st.binary(max_size=6)), max_size=6
    ),
    reliable=st.booleans(),
)
def test_mutated_messages_never_raise(
    base: bytes, edits: list[tuple[int, int, bytes]], reliable: bool
) -> None:
    """Valid messages with bytes cut, replaced or inserted: no exception, valid output only."""
    data = bytearray(base)
    for pos, cut, insert in edits:
        pos %= len(data) + 1
        data[pos : pos + cut] = insert
    layer = TransactionLayer()
    layer.send_request(make_request("INVITE"), UAS, 0.0)  # so mutated responses may match
    layer.receive(bytes(data), UAC, 0.0, reliable=reliable)
    layer.receive(bytes(data), UAC, 0.5, reliable=reliable)
    layer.handle_timer(100.0)
    _check_outbox(layer)
    drain(layer)
