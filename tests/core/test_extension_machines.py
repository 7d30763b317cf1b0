"""Every state x input of the reliable-provisional and session-timer machines (RFC 3262, RFC 4028)."""

from __future__ import annotations

import collections
from collections.abc import Hashable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from txsipua.core.reliable import (
    RECEIVER_TABLE,
    SENDER_TABLE,
    ReceiverInput,
    ReceiverState,
    ReliableReceiver,
    ReliableSender,
    SenderInput,
    SenderState,
    parse_rack,
    rseq_of,
)
from txsipua.core.session_timer import TIMER_TABLE, Agreement, SessionTimer, TimerInput, TimerState
from txsipua.core.transaction import Timers
from txsipua.sip.message import Request, Response


class FakeHost:
    """The bits of SessionHost the machines use: named deadlines, stats, timers."""

    def __init__(self) -> None:
        self.timers = Timers()
        self.stats: collections.Counter[str] = collections.Counter()
        self.deadlines: dict[Hashable, tuple[float, Any]] = {}

    def schedule(self, name: Hashable, deadline: float, fire: Any) -> None:
        self.deadlines[name] = (deadline, fire)

    def cancel(self, name: Hashable) -> None:
        self.deadlines.pop(name, None)

    def fire(self, kind: str, now: float) -> bool:
        for name, (_, fire) in list(self.deadlines.items()):
            if name[0] == kind:
                del self.deadlines[name]
                fire(now)
                return True
        return False


class Owner:
    def __init__(self) -> None:
        self.sent: list[tuple[int, float]] = []
        self.acked: list[Response] = []
        self.unacked = 0
        self.refreshes = 0
        self.expired = 0

    def transmit_provisional(self, response: Response, now: float) -> None:
        self.sent.append((int(response.headers.get("RSeq") or 0), now))

    def provisional_acknowledged(self, response: Response, prack: Request, now: float) -> None:
        self.acked.append(response)

    def provisional_unacknowledged(self, now: float) -> None:
        self.unacked += 1

    def send_refresh(self, now: float) -> None:
        self.refreshes += 1

    def session_expired(self, now: float) -> None:
        self.expired += 1


def _prack(rseq: int) -> Request:
    return Request("PRACK", "sip:bob@192.0.2.2", [("RAck", f"{rseq} 1 INVITE"), ("CSeq", "2 PRACK")])


def _feed_sender(sender: ReliableSender, host: FakeHost, inp: SenderInput, now: float) -> None:
    if inp is SenderInput.SEND:
        sender.send(Response(180), now)
    elif inp is SenderInput.PRACK:
        out = sender.outstanding
        rseq = int(out.headers.get("RSeq")) if out is not None else 99
        if sender.acknowledges(_prack(rseq), 1):
            sender.prack(_prack(rseq), now)
        else:
            sender._step(SenderInput.PRACK, now, _prack(rseq))  # noqa: SLF001 - the walk feeds every input
    elif inp is SenderInput.RETRANSMIT:
        if not host.fire("100rel-retransmit", now):
            sender._step(inp, now)  # noqa: SLF001
    elif inp is SenderInput.GIVE_UP:
        if not host.fire("100rel-give-up", now):
            sender._step(inp, now)  # noqa: SLF001
    else:
        sender.final_sent(now)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list(SenderInput)), max_size=12))
def test_sender_walk(inputs: list[SenderInput]) -> None:
    """Any sequence of inputs: each transition is the table's (or ignored and counted); deadlines are
    armed exactly while a 1xx awaits its PRACK; RSeq numbers go up by one; after CLOSED nothing is sent."""
    host, owner = FakeHost(), Owner()
    sender = ReliableSender(host, owner, 7, "s")  # type: ignore[arg-type]
    now = 0.0
    for inp in inputs:
        now += 1.0
        before, ignored = sender.state, host.stats["ignored"]
        sent_before = len(owner.sent)
        _feed_sender(sender, host, inp, now)
        if (before, inp) not in SENDER_TABLE:
            assert sender.state is before and host.stats["ignored"] == ignored + 1
        if before is SenderState.CLOSED:
            assert len(owner.sent) == sent_before
        armed = {name[0] for name in host.deadlines}
        if sender.state is SenderState.AWAITING_PRACK:
            assert armed == {"100rel-retransmit", "100rel-give-up"} and sender.outstanding is not None
        else:
            assert armed == set() and sender.outstanding is None
    numbers = [n for n, _ in owner.sent]
    distinct = sorted(set(numbers))
    assert distinct == list(range(7, 7 + len(distinct)))


def test_every_sender_state_and_input_is_declared_or_ignored() -> None:
    """The table's keys are states x inputs; from CLOSED nothing moves."""
    for (state, inp), (_, nxt) in SENDER_TABLE.items():
        assert isinstance(state, SenderState) and isinstance(inp, SenderInput) and isinstance(nxt, SenderState)
    assert not [k for k in SENDER_TABLE if k[0] is SenderState.CLOSED]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(1, 12), max_size=15))
def test_receiver_walk(rseqs: list[int]) -> None:
    """Any RSeq sequence: PRACKed exactly the first and then each one above the last by one."""
    receiver = ReliableReceiver()
    expected: list[int] = []
    last: int | None = None
    pracked = []
    for r in rseqs:
        inp = receiver.classify(r)
        assert (receiver.state, inp) in RECEIVER_TABLE
        if receiver.receive(r, 0.0):
            pracked.append(r)
        if last is None or r == last + 1:
            expected.append(r)
            last = r
    assert pracked == expected
    assert receiver.state is (ReceiverState.NONE if not rseqs else ReceiverState.RECEIVING)
    assert {(s, i) for s in ReceiverState for i in ReceiverInput} - set(RECEIVER_TABLE) == {
        (ReceiverState.NONE, ReceiverInput.NEXT), (ReceiverState.NONE, ReceiverInput.REPEAT),
        (ReceiverState.NONE, ReceiverInput.GAP), (ReceiverState.RECEIVING, ReceiverInput.FIRST)}


def _feed_timer(timer: SessionTimer, host: FakeHost, inp: TimerInput, now: float) -> None:
    if inp is TimerInput.WE_REFRESH:
        timer.negotiated(Agreement(120, True), now)
    elif inp is TimerInput.THEY_REFRESH:
        timer.negotiated(Agreement(120, False), now)
    elif inp is TimerInput.NO_TIMER:
        timer.negotiated(None, now)
    elif inp is TimerInput.REFRESH_DUE:
        if not host.fire("session-refresh", now):
            timer._step(inp, now)  # noqa: SLF001 - the walk feeds every input
    elif inp is TimerInput.EXPIRY_DUE:
        if not host.fire("session-expiry", now):
            timer._step(inp, now)  # noqa: SLF001
    else:
        timer.stop(now)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list(TimerInput)), max_size=12))
def test_session_timer_walk(inputs: list[TimerInput]) -> None:
    """Any sequence: the table decides; the refresher has a refresh at +SE/2 and an expiry at
    SE - min(32, SE/3); the watcher only the expiry; OFF and STOPPED none; BYE at most once."""
    host, owner = FakeHost(), Owner()
    timer = SessionTimer(host, owner, "t")  # type: ignore[arg-type]
    now = 0.0
    for inp in inputs:
        now += 1.0
        before, ignored = timer.state, host.stats["ignored"]
        _feed_timer(timer, host, inp, now)
        if (before, inp) not in TIMER_TABLE:
            assert timer.state is before and host.stats["ignored"] == ignored + 1
        armed = {name[0]: d for name, (d, _) in host.deadlines.items()}
        if timer.state is TimerState.REFRESHER and inp is TimerInput.WE_REFRESH:
            assert armed == {"session-refresh": now + 60, "session-expiry": now + 88}
        elif timer.state is TimerState.WATCHER:
            assert set(armed) == {"session-expiry"}
        elif timer.state in (TimerState.OFF, TimerState.STOPPED):
            assert armed == {}
    assert owner.expired <= 1
    assert not [k for k in TIMER_TABLE if k[0] is TimerState.STOPPED]


def test_rseq_and_rack_values() -> None:
    """RSeq counts only on a 1xx requiring 100rel; RAck parses its three parts or is refused."""
    r = Response(183, headers=[("Require", "100rel"), ("RSeq", "42")])
    assert rseq_of(r) == 42
    assert rseq_of(Response(183, headers=[("RSeq", "42")])) is None
    assert rseq_of(Response(200, headers=[("Require", "100rel"), ("RSeq", "42")])) is None
    assert rseq_of(Response(180, headers=[("Require", "100rel"), ("RSeq", "0")])) is None
    assert parse_rack("776656 1 INVITE") == (776656, 1, "INVITE")
    assert parse_rack("1 INVITE") is None and parse_rack(None) is None
