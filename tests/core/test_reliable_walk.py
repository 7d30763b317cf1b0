"""Random walks through calls with reliable provisionals and session timers: every call ends once, nothing leaks."""

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
SDP = b"v=0\r\n"
PLANS = ["ring-accept", "ring183sdp-accept", "ring-ring183sdp-accept", "ring", "ring-reject", "ring-hangup",
         "ring183sdp-hangup-accept"]


@settings(max_examples=200, deadline=None)
@given(
    plan=st.sampled_from(PLANS),
    caller_hangs_up_at=st.one_of(st.none(), st.integers(0, 8)),
    callee_hangs_up_at=st.one_of(st.none(), st.integers(0, 8)),
    loss=st.sampled_from([0.0, 0.1, 0.3, 0.7]),
    session_expires=st.sampled_from([None, 90]),
    seed=st.integers(0, 2**16),
)
def test_reliable_calls_end_once_and_leave_nothing(
    plan: str, caller_hangs_up_at: int | None, callee_hangs_up_at: int | None, loss: float,
    session_expires: int | None, seed: int,
) -> None:
    """Reliable 180/183 (with SDP: the 2xx waits for the PRACK), random loss and hang-ups on
    either side at any step, a 90 s session timer or none: each side reports the end once,
    every session is TERMINATED and no transaction, dialog or deadline is left."""
    rng = random.Random(seed)
    caller = UserAgentCore(local=A, ids=SequentialIds(), session_expires=session_expires)
    callee = UserAgentCore(local=B, ids=SequentialIds(counter=1000), use_100rel=True)
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
                    parse_message(out.data)
                    if out.destination in cores and rng.random() >= loss:
                        cores[out.destination].receive(out.data, addr, now)
                while (e := core.next_event()) is not None:
                    moved = True
                    events[addr].append(e)
                    if isinstance(e, ev.IncomingCall):
                        incoming.append(e.session)
                        for order in plan.split("-"):
                            if e.session.phase not in (Phase.RECEIVED, Phase.RINGING):
                                break
                            if order == "ring":
                                e.session.ring(now)
                            elif order == "ring183sdp":
                                e.session.ring(now, body=SDP, status=183)
                            elif order == "accept":
                                e.session.accept(now, body=SDP)
                            elif order == "reject":
                                e.session.reject(now, 486)
                            elif order == "hangup":
                                e.session.hangup(now)
                    elif isinstance(e, ev.IncomingRequest) and e.session is not None:
                        if e.request.method == "INVITE":
                            e.session.answer_reinvite(e.transaction, e.request, now, body=SDP)
                        elif e.request.method == "UPDATE":
                            e.session.answer_update(e.transaction, e.request, now, body=SDP)

    request = caller.new_request("INVITE", SipURI.parse("sip:bob@127.0.0.1:5062"),
                                 NameAddr(SipURI.parse("sip:alice@example.com")),
                                 NameAddr(SipURI.parse("sip:bob@example.com")), body=SDP,
                                 content_type="application/sdp")
    session = caller.invite(request, B, now)
    for step in range(12):
        pump()
        if step == caller_hangs_up_at:
            session.hangup(now)
        if step == callee_hangs_up_at:
            for s in incoming:
                s.hangup(now)
        now += 0.3
        for core in cores.values():
            t = core.get_timer()
            if t is not None and t <= now:
                core.handle_timer(now)
    if session_expires is not None and session.phase is Phase.CONFIRMED and loss == 0.0:
        # a session timer keeps a lossless call up past several refreshes
        for _ in range(400):
            deadlines = [t for t in (c.get_timer() for c in cores.values()) if t is not None]
            if not deadlines or min(deadlines) > 200.0:
                break
            now = max(now, min(deadlines))
            for core in cores.values():
                t = core.get_timer()
                if t is not None and t <= now:
                    core.handle_timer(now)
            pump()
        assert session.phase is Phase.CONFIRMED
    if session.phase in (Phase.CALLING, Phase.PROCEEDING, Phase.CONFIRMED):
        session.hangup(now)
    end = now + 300.0
    while now < end:
        pump()
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
    assert len([e for e in events[A] if isinstance(e, ev.CallEnded | ev.CallAttemptFailed)
                and e.session is session]) == 1, events[A]
    for s in incoming:
        assert s.phase is Phase.TERMINATED, (s, s.reliable.state if s.reliable else None)
        assert len([e for e in events[B] if isinstance(e, ev.CallEnded) and e.session is s]) <= 1
    for core in cores.values():
        assert core.session_count == 0
        assert core.layer.transaction_count == 0
        assert core.get_timer() is None
