"""The INVITE usage tables, the dialog table and the named deadlines (txsipua.core.invite*, dialogs, context)."""

from __future__ import annotations

from typing import Any

import pytest

from txsipua.core import events as ev
from txsipua.core.context import CoreContext
from txsipua.core.dialogs import DialogTable
from txsipua.core.ids import SequentialIds
from txsipua.core.invite import DIALOG_TABLE, Input, InviteSession, Phase
from txsipua.core.invite_client import CLIENT_TABLE, InviteClientSession
from txsipua.core.invite_server import SERVER_TABLE, InviteServerSession
from txsipua.core.transaction import ServerTransaction
from txsipua.core.useragent import UserAgentCore
from txsipua.errors import LocalProtocolError
from txsipua.sip.message import Request
from txsipua.sip.uri import SipURI
from txsipua.sip.values import NameAddr

A = ("127.0.0.1", 5061)
B = ("127.0.0.1", 5062)

TABLES = [(CLIENT_TABLE, InviteClientSession, Phase.CALLING), (SERVER_TABLE, InviteServerSession, Phase.RECEIVED)]


@pytest.mark.parametrize(("table", "cls", "start"), TABLES)
def test_every_action_is_a_method_and_every_phase_can_end(table: Any, cls: type, start: Phase) -> None:
    """Each action names a method of its session class; from every phase reached, TERMINATED is reachable."""
    for action, _ in table.values():
        assert callable(getattr(cls, action.value, None)), action
    reached = {start}
    frontier = [start]
    while frontier:
        phase = frontier.pop()
        for (p, _), (_, nxt) in table.items():
            if p is phase and nxt not in reached:
                reached.add(nxt)
                frontier.append(nxt)
    assert Phase.TERMINATED in reached
    for phase in reached - {Phase.TERMINATED}:
        seen = {phase}
        todo = [phase]
        while todo:
            p0 = todo.pop()
            for (p, _), (_, nxt) in table.items():
                if p is p0 and nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        assert Phase.TERMINATED in seen, f"{cls.__name__} can get stuck in {phase}"
    # a terminated call only re-ACKs (or ACKs and BYEs) late 2xx responses
    assert {i for (p, i) in table if p is Phase.TERMINATED} <= {Input.ANSWER_AGAIN, Input.ANSWER_FORK}


@pytest.mark.parametrize(("table", "cls", "start"), TABLES)
def test_both_tables_include_the_dialog_phase(table: Any, cls: type, start: Phase) -> None:
    """The shared dialog phase (CONFIRMED, TERMINATING) is the same on both sides."""
    for key, value in DIALOG_TABLE.items():
        assert table[key] == value


def _invite(core: UserAgentCore) -> Request:
    return core.new_request("INVITE", SipURI.parse("sip:bob@127.0.0.1:5062"),
                            NameAddr(SipURI.parse("sip:alice@example.com")), NameAddr(SipURI.parse("sip:bob@example.com")))


@pytest.mark.parametrize("phase", list(Phase))
def test_inputs_absent_from_the_client_table_are_ignored_and_counted(phase: Phase) -> None:
    """Absent from the table: nothing happens, nothing is sent, stats["ignored"] counts it."""
    core = UserAgentCore(local=A, ids=SequentialIds())
    session = core.invite(_invite(core), B, 0.0)
    core.outbox()
    for inp in Input:
        if (phase, inp) in CLIENT_TABLE:
            continue
        session.phase = phase
        before = core.context.stats["ignored"]
        assert session._step(inp, 1.0, None) is False
        assert core.context.stats["ignored"] == before + 1
        assert session.phase is phase
    assert core.outbox() == [] and core.next_event() is None


def test_second_hangup_is_ignored_and_sends_nothing() -> None:
    """hangup() is idempotent: the second one is an input absent from CANCEL_PENDING."""
    core = UserAgentCore(local=A, ids=SequentialIds())
    session = core.invite(_invite(core), B, 0.0)
    core.outbox()
    session.hangup(0.1)
    assert session.phase is Phase.CANCEL_PENDING
    session.hangup(0.2)
    assert core.context.stats["ignored"] == 1
    assert core.outbox() == []


def test_orders_absent_from_the_table_raise() -> None:
    """ring/accept/reject on our own INVITE, or accept twice, are LocalProtocolErrors."""
    caller = UserAgentCore(local=A, ids=SequentialIds())
    callee = UserAgentCore(local=B, ids=SequentialIds(counter=100))
    session = caller.invite(_invite(caller), B, 0.0)
    with pytest.raises(LocalProtocolError):
        session.ring(0.0)
    with pytest.raises(LocalProtocolError):
        session.accept(0.0)
    for out in caller.outbox():
        callee.receive(out.data, A, 0.0)
    incoming = callee.next_event()
    assert isinstance(incoming, ev.IncomingCall)
    incoming.session.accept(0.0)
    with pytest.raises(LocalProtocolError, match="accepted"):
        incoming.session.accept(0.0)
    with pytest.raises(LocalProtocolError):
        incoming.session.reject(0.0)


def test_public_state_is_the_coarse_session_state() -> None:
    """CANCEL_PENDING shows as CALLING, CANCELLING as PROCEEDING (what the user API always saw)."""
    assert Phase.CANCEL_PENDING.public.value == "calling"
    assert Phase.CANCELLING.public.value == "proceeding"
    assert {p.public.value for p in Phase} == {
        "calling", "proceeding", "received", "ringing", "accepted", "confirmed", "terminating", "terminated"}


def test_dialog_table_finds_by_id_and_by_transaction() -> None:
    """Dialog id, unanswered INVITE and awaited ACK are three O(1) lookups; discard checks the owner."""
    table: DialogTable[str] = DialogTable()
    table.add(("c", "l", "r"), "s1")
    assert table.get(("c", "l", "r")) == "s1" and len(table) == 1
    table.discard(("c", "l", "r"), "other")
    assert len(table) == 1
    table.discard(("c", "l", "r"), "s1")
    assert table.get(("c", "l", "r")) is None and len(table) == 0
    txn: Any = object.__new__(ServerTransaction)
    table.await_ack(txn, "s2")
    table.add_unanswered(txn, "s3")
    assert table.pop_awaiting_ack(txn) == "s2" and table.pop_awaiting_ack(txn) is None
    assert table.pop_unanswered(txn) == "s3" and table.pop_unanswered(txn) is None


def _context() -> CoreContext:
    core = UserAgentCore(local=A)
    return core.context


def test_named_deadlines_replace_and_fire_in_order() -> None:
    """schedule() replaces a name; next_deadline() is the earliest; fire_due() fires earliest first."""
    ctx = _context()
    fired: list[tuple[str, float]] = []
    ctx.schedule("a", 5.0, lambda now: fired.append(("a", now)))
    ctx.schedule("b", 3.0, lambda now: fired.append(("b", now)))
    ctx.schedule("a", 4.0, lambda now: fired.append(("a2", now)))
    assert ctx.next_deadline() == 3.0
    assert ctx.fire_due(2.0) is False
    while ctx.fire_due(10.0):
        pass
    assert fired == [("b", 10.0), ("a2", 10.0)]
    assert ctx.next_deadline() is None


def test_get_timer_is_the_earliest_of_layer_and_named_deadlines() -> None:
    """One timer: the core's deadline is min(transaction layer, named deadlines)."""
    core = UserAgentCore(local=A, ids=SequentialIds())
    assert core.get_timer() is None
    core.context.schedule("x", 100.0, lambda now: None)
    assert core.get_timer() == 100.0
    core.invite(_invite(core), B, 0.0)  # Timer A at T1
    assert core.get_timer() == 0.5


def test_give_up_after_cancel_is_a_named_deadline() -> None:
    """The §9.1 64*T1 give-up is scheduled when the CANCEL goes out, and fires through handle_timer."""
    caller = UserAgentCore(local=A, ids=SequentialIds())
    session = caller.invite(_invite(caller), B, 0.0)
    invite = caller.outbox()[0].data
    trying = (
        b"SIP/2.0 100 Trying\r\n" + b"".join(
            line + b"\r\n" for line in invite.split(b"\r\n")
            if line.split(b":")[0] in (b"Via", b"From", b"To", b"Call-ID", b"CSeq"))
        + b"Content-Length: 0\r\n\r\n"
    )
    caller.receive(trying, B, 0.1)
    session.hangup(1.0)
    assert session.phase is Phase.CANCELLING
    assert caller.context.next_deadline() == 1.0 + 32.0
    t = caller.get_timer()
    while t is not None and t <= 33.0:
        caller.handle_timer(t)
        t = caller.get_timer()
    assert session.phase is Phase.TERMINATED
    events = []
    while (e := caller.next_event()) is not None:
        events.append(e)
    assert [e.reason for e in events if isinstance(e, ev.CallEnded)] == ["cancelled"]


def test_sessions_are_invite_sessions() -> None:
    """Both usages are InviteSessions (the ua layer types calls so)."""
    assert issubclass(InviteClientSession, InviteSession) and issubclass(InviteServerSession, InviteSession)


def test_a_cancelled_deadline_does_not_fire_and_the_earliest_follows() -> None:
    """cancel() forgets a deadline (even from an earlier callback); next_deadline() moves on."""
    ctx = _context()
    fired: list[str] = []
    ctx.schedule("a", 1.0, lambda now: (fired.append("a"), ctx.cancel("b")))
    ctx.schedule("b", 2.0, lambda now: fired.append("b"))
    ctx.schedule("c", 9.0, lambda now: fired.append("c"))
    ctx.cancel("c")
    assert ctx.next_deadline() == 1.0
    ctx.schedule("a", 3.0, ctx.deadlines["a"][1])  # moved later: the earliest is now b
    assert ctx.next_deadline() == 2.0
    ctx.schedule("a", 1.0, ctx.deadlines["a"][1])
    assert ctx.fire_due(5.0) is True
    assert fired == ["a"] and ctx.next_deadline() is None


def test_the_give_up_deadline_is_forgotten_when_the_487_comes() -> None:
    """A call cancelled normally leaves no named deadline behind (nothing holds the session)."""
    caller = UserAgentCore(local=A, ids=SequentialIds())
    callee = UserAgentCore(local=B, ids=SequentialIds(counter=100))
    session = caller.invite(_invite(caller), B, 0.0)
    for _ in range(4):
        for out in caller.outbox():
            callee.receive(out.data, A, 0.0)
        for out in callee.outbox():
            caller.receive(out.data, B, 0.0)
        while (e := callee.next_event()) is not None:
            if isinstance(e, ev.IncomingCall):
                e.session.ring(0.0)
        if session.phase is Phase.PROCEEDING:
            session.hangup(0.0)
    assert session.phase is Phase.TERMINATED
    assert caller.context.next_deadline() is None
