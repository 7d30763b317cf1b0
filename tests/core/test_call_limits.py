"""The core's call limits: ``max_calls`` (503 + Retry-After) and ``max_call_duration`` (BYE).

Issue 12: dialogs are capped even without media, and a call ACKed and never hung up
is ended by the UA.  Two cores in memory; time is the explicit ``now`` of the Net.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.core.test_useragent import B, Net, invite
from txsipua.core import events as ev
from txsipua.core.context import MAX_CALLS
from txsipua.core.ids import SequentialIds
from txsipua.core.useragent import SessionState, UserAgentCore
from txsipua.sip.message import Request, Response

A = ("127.0.0.1", 5061)


def pair(**callee_options: Any) -> tuple[UserAgentCore, UserAgentCore, Net]:
    caller = UserAgentCore(local=A, ids=SequentialIds(), contact_user="alice")
    callee = UserAgentCore(local=B, ids=SequentialIds(counter=1000), contact_user="bob", **callee_options)

    class Answering(Net):
        def on_event(self, name: str, core: UserAgentCore, e: Any) -> None:
            if isinstance(e, ev.IncomingCall) and core is callee:
                e.session.accept(self.now, body=b"v=0\r\n")

    return caller, callee, Answering(caller=caller, callee=callee)


def finals(net: Net) -> list[Response]:
    return [m for m in net.wire if isinstance(m, Response) and m.status >= 200 and m.cseq.method == "INVITE"]


def test_the_default_cap_is_generous() -> None:
    assert UserAgentCore(local=A).max_calls == MAX_CALLS == 10_000
    assert UserAgentCore(local=A).max_call_duration is None


def test_past_max_calls_a_new_invite_gets_503_with_retry_after() -> None:
    caller, callee, net = pair(max_calls=2)
    sessions = [caller.invite(invite(caller), B, 0.0) for _ in range(3)]
    net.pump()
    assert [s.state for s in sessions[:2]] == [SessionState.CONFIRMED] * 2
    assert sorted(r.status for r in finals(net)) == [200, 200, 503]
    (refused,) = [r for r in finals(net) if r.status == 503]
    assert refused.call_id == sessions[2].call_id and refused.headers.get("Retry-After") == "5"
    assert sessions[2].state is SessionState.TERMINATED
    assert callee.live_calls == 2
    assert callee.context.stats["calls_refused"] == 1
    (event,) = [e for e in net.events["callee"] if isinstance(e, ev.CallRefused)]
    assert event.live == 2 and event.refused == 1 and event.request.method == "INVITE"
    # a call ends: room for one more
    sessions[0].hangup(net.now)
    net.pump()
    assert callee.live_calls == 1
    again = caller.invite(invite(caller), B, net.now)
    net.pump()
    assert again.state is SessionState.CONFIRMED and callee.live_calls == 2


def test_in_dialog_requests_are_not_capped() -> None:
    caller, callee, net = pair(max_calls=1)
    session = caller.invite(invite(caller), B, 0.0)
    net.pump()
    assert callee.live_calls == 1
    session.hangup(net.now)  # a BYE in the dialog at the cap is answered 200
    net.pump()
    byes = [m for m in net.wire if isinstance(m, Response) and m.cseq.method == "BYE"]
    assert [r.status for r in byes] == [200]
    assert callee.live_calls == 0 and caller.live_calls == 0


def test_every_way_a_call_ends_counts_it_out() -> None:
    """Rejected, cancelled, hung up by either side, never ACKed: live_calls returns to 0."""
    caller = UserAgentCore(local=A, ids=SequentialIds(), contact_user="alice")
    callee = UserAgentCore(local=B, ids=SequentialIds(counter=1000), contact_user="bob")
    plan = iter(["reject", "ring", "accept", "accept"])

    class Mixed(Net):
        def on_event(self, name: str, core: UserAgentCore, e: Any) -> None:
            if isinstance(e, ev.IncomingCall):
                step = next(plan)
                if step == "reject":
                    e.session.reject(self.now, 486)
                elif step == "ring":
                    e.session.ring(self.now)
                else:
                    e.session.accept(self.now, body=b"v=0\r\n")

    net = Mixed(caller=caller, callee=callee)
    rejected = caller.invite(invite(caller), B, 0.0)
    ringing = caller.invite(invite(caller), B, 0.0)
    net.pump()
    assert rejected.state is SessionState.TERMINATED
    ringing.hangup(net.now)  # CANCEL
    net.pump()
    by_caller = caller.invite(invite(caller), B, net.now)
    by_callee = caller.invite(invite(caller), B, net.now)
    unacked: list[Any] = []
    net.drop = lambda m: (isinstance(m, Request) and m.method == "ACK" and m.call_id == by_callee.call_id
                          and not unacked.append(m))
    net.pump()
    by_caller.hangup(net.now)
    net.advance(40.0)  # Timer L ends the never-ACKed one
    assert by_callee.state is SessionState.TERMINATED and unacked
    assert caller.live_calls == 0 and callee.live_calls == 0


def test_max_call_duration_sends_bye_at_the_deadline() -> None:
    caller, callee, net = pair(max_call_duration=30.0)
    session = caller.invite(invite(caller), B, 0.0)
    net.pump()
    assert session.state is SessionState.CONFIRMED
    assert callee.get_timer() == 30.0  # one named deadline for the confirmed call
    net.advance(29.5)
    assert session.state is SessionState.CONFIRMED
    net.advance(1.0)
    assert session.state is SessionState.TERMINATED
    byes = [m for m in net.wire if isinstance(m, Request) and m.method == "BYE"]
    assert len(byes) == 1 and net.ladder[-2][0] == "callee"
    (ended,) = [e for e in net.events["callee"] if isinstance(e, ev.CallEnded)]
    assert (ended.reason, ended.by_remote) == ("max-duration", False)
    assert callee.context.stats["max_duration"] == 1
    assert callee.context.next_deadline() is None and callee.live_calls == 0


def test_a_call_ended_earlier_cancels_its_duration_deadline() -> None:
    caller, callee, net = pair(max_call_duration=30.0)
    session = caller.invite(invite(caller), B, 0.0)
    net.pump()
    session.hangup(5.0)
    net.pump()
    assert callee.context.in_order == {}  # forgotten in O(1); the shared deadline is lazy
    net.advance(40.0)
    assert callee.context.stats["max_duration"] == 0
    assert callee.context.next_deadline() is None  # it fired with nothing due and is gone


def test_max_call_duration_also_ends_calls_we_placed() -> None:
    caller = UserAgentCore(local=A, ids=SequentialIds(), contact_user="alice", max_call_duration=10.0)
    callee = UserAgentCore(local=B, ids=SequentialIds(counter=1000), contact_user="bob")

    class Answering(Net):
        def on_event(self, name: str, core: UserAgentCore, e: Any) -> None:
            if isinstance(e, ev.IncomingCall):
                e.session.accept(self.now, body=b"v=0\r\n")

    net = Answering(caller=caller, callee=callee)
    session = caller.invite(invite(caller), B, 0.0)
    net.pump()
    net.advance(10.5)
    assert session.state is SessionState.TERMINATED
    (ended,) = [e for e in net.events["caller"] if isinstance(e, ev.CallEnded)]
    assert ended.reason == "max-duration"


@pytest.mark.parametrize("options", [{"max_calls": -1}, {"max_call_duration": 0}, {"max_call_duration": -5.0}])
def test_bad_limits_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        UserAgentCore(local=A, **options)


def context() -> Any:
    return UserAgentCore(local=A).context


def test_in_order_deadlines_fire_in_order_behind_one_named_deadline() -> None:
    ctx = context()
    fired: list[tuple[str, float]] = []
    for i, t in enumerate([10.0, 10.0, 12.0, 15.0]):
        ctx.schedule_in_order(f"c{i}", t, lambda now, i=i: fired.append((f"c{i}", now)))
    assert len(ctx.deadlines) == 1 and ctx.next_deadline() == 10.0
    ctx.cancel_in_order("c2")
    assert ctx.fire_due(11.0)
    assert fired == [("c0", 11.0), ("c1", 11.0)] and ctx.next_deadline() == 15.0
    assert not ctx.fire_due(14.0)
    assert ctx.fire_due(15.0) and fired[-1] == ("c3", 15.0)
    assert ctx.next_deadline() is None and ctx.in_order == {}


def test_an_in_order_deadline_earlier_than_the_last_is_an_ordinary_one() -> None:
    ctx = context()
    fired: list[str] = []
    ctx.schedule_in_order("late", 100.0, lambda now: fired.append("late"))
    ctx.schedule_in_order("early", 50.0, lambda now: fired.append("early"))  # the delay was shortened
    assert list(ctx.in_order) == ["late"] and "early" in ctx.deadlines
    ctx.fire_due(60.0)
    assert fired == ["early"]
    ctx.cancel_in_order("late")
    ctx.schedule_in_order("gone", 70.0, lambda now: fired.append("gone"))
    ctx.cancel_in_order("gone")
    ctx.fire_due(200.0)
    assert fired == ["early"] and ctx.next_deadline() is None


def test_cancelling_the_head_costs_no_scan() -> None:
    """Ten thousand calls up: ending the oldest leaves the other deadlines alone."""
    ctx = context()
    for i in range(10_000):
        ctx.schedule_in_order(i, 14_400.0 + i, lambda now: None)
    for i in range(5_000):
        ctx.cancel_in_order(i)
    assert len(ctx.deadlines) == 1 and len(ctx.in_order) == 5_000
    assert ctx.next_deadline() == 14_400.0  # stale: moves on when it fires
    ctx.fire_due(14_400.0)
    assert ctx.next_deadline() == 19_400.0
