"""Random walks through both INVITE usages: whatever is lost and whoever hangs up when, every call ends once and nothing leaks."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from txsipua.core import events as ev
from txsipua.core.ids import SequentialIds
from txsipua.core.invite import Phase
from txsipua.core.useragent import UserAgentCore
from txsipua.sip.message import parse_message
from txsipua.sip.uri import SipURI
from txsipua.sip.values import NameAddr

A = ("127.0.0.1", 5061)
B = ("127.0.0.1", 5062)

CALLEE_PLANS = ["accept", "ring-accept", "ring", "reject", "ring-reject", "hangup", "ring-hangup", "nothing"]


def _terminal(events: list[Any], session: Any) -> list[Any]:
    return [e for e in events if isinstance(e, ev.CallEnded | ev.CallAttemptFailed) and e.session is session]


@settings(max_examples=300, deadline=None)
@given(
    plan=st.sampled_from(CALLEE_PLANS),
    caller_hangs_up_at=st.one_of(st.none(), st.integers(0, 8)),
    callee_hangs_up_at=st.one_of(st.none(), st.integers(0, 8)),
    loss=st.sampled_from([0.0, 0.1, 0.3, 0.7]),
    seed=st.integers(0, 2**16),
)
def test_every_call_ends_once_and_leaves_nothing(
    plan: str, caller_hangs_up_at: int | None, callee_hangs_up_at: int | None, loss: float, seed: int
) -> None:
    """Random loss, random hang-ups on either side at any step: each side reports the end once,
    every session is TERMINATED and no transaction, dialog or deadline is left after 200 s."""
    rng = random.Random(seed)
    caller = UserAgentCore(local=A, ids=SequentialIds())
    callee = UserAgentCore(local=B, ids=SequentialIds(counter=1000))
    cores = {A: caller, B: callee}
    events: dict[Any, list[Any]] = {A: [], B: []}
    incoming: list[Any] = []
    now = 0.0

    def pump() -> None:
        moved = True
        while moved:
            moved = False
            for addr, core in cores.items():
                for out in core.outbox():
                    moved = True
                    parse_message(out.data)  # everything sent parses
                    if out.destination in cores and rng.random() >= loss:
                        cores[out.destination].receive(out.data, addr, now)
                while (e := core.next_event()) is not None:
                    moved = True
                    events[addr].append(e)
                    if isinstance(e, ev.IncomingCall):
                        incoming.append(e.session)
                        if plan.startswith("ring"):
                            e.session.ring(now)
                        if plan.endswith("accept"):
                            e.session.accept(now, body=b"v=0\r\n")
                        elif plan.endswith("reject"):
                            e.session.reject(now, 486)
                        elif plan == "hangup":
                            e.session.hangup(now)

    request = caller.new_request("INVITE", SipURI.parse("sip:bob@127.0.0.1:5062"),
                                 NameAddr(SipURI.parse("sip:alice@example.com")),
                                 NameAddr(SipURI.parse("sip:bob@example.com")), body=b"v=0\r\n",
                                 content_type="application/sdp")
    session = caller.invite(request, B, now)
    for step in range(12):
        pump()
        if step == caller_hangs_up_at:
            session.hangup(now)
        if step == callee_hangs_up_at or (plan == "ring-hangup" and step == 3):
            for s in incoming:
                s.hangup(now)
        now += 0.3
        for core in cores.values():
            t = core.get_timer()
            if t is not None and t <= now:
                core.handle_timer(now)
    if session.phase in (Phase.CALLING, Phase.PROCEEDING, Phase.CONFIRMED):
        session.hangup(now)
    end = now + 200.0
    while now < end:
        pump()
        # the callee's application gives up on anything still ringing (an INVITE may
        # arrive after its CANCEL) and, once the caller is gone, on a call whose
        # BYE was lost every time (what a media or session timeout does)
        for s in incoming:
            if s.phase in (Phase.RECEIVED, Phase.RINGING) or session.phase is Phase.TERMINATED:
                s.hangup(now)
        pump()
        deadlines = [t for t in (c.get_timer() for c in cores.values()) if t is not None]
        if not deadlines:
            break
        now = max(now, min(deadlines))
        for core in cores.values():
            t = core.get_timer()
            if t is not None and t <= now:
                core.handle_timer(now)
    pump()
    assert session.phase is Phase.TERMINATED, session
    assert len(_terminal(events[A], session)) == 1, events[A]
    for s in incoming:
        assert s.phase is Phase.TERMINATED, s
        assert len([e for e in events[B] if isinstance(e, ev.CallEnded) and e.session is s]) <= 1
    for core in cores.values():
        assert core.session_count == 0
        assert core.layer.transaction_count == 0
        assert core.get_timer() is None
