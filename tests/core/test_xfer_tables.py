"""The three new tables walked state × input (hypothesis): the subscriber (RFC 6665), the transferor
and the transferee of a REFER (RFC 3515).  Every pair either follows its table or is ignored and
counted; the end is reported once; nothing is left armed once over."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from txsipua.core import events as ev
from txsipua.core.dialog import Dialog
from txsipua.core.ids import SequentialIds
from txsipua.core.refer import (
    NOTIFIER_TABLE,
    REFER_TABLE,
    NotifierInput,
    NotifierState,
    ReferClient,
    ReferInput,
    ReferNotifier,
    ReferState,
)
from txsipua.core.subscription import (
    SUBSCRIPTION_TABLE,
    SubInput,
    SubscriptionClient,
    SubState,
    refresh_delay,
)
from txsipua.core.useragent import UserAgentCore
from txsipua.sip.event_headers import SubscriptionState
from txsipua.sip.message import Request, Response
from txsipua.sip.sipfrag import StatusFragment
from txsipua.sip.uri import SipURI
from txsipua.sip.values import NameAddr

HERE = ("192.0.2.10", 5060)
THERE = ("198.51.100.5", 5060)


def _client() -> tuple[UserAgentCore, SubscriptionClient]:
    core = UserAgentCore(local=HERE, ids=SequentialIds())
    uri = SipURI.parse("sip:bob@198.51.100.5")
    req = core.new_request("SUBSCRIBE", uri, NameAddr(SipURI.parse("sip:alice@192.0.2.10")), NameAddr(uri),
                           headers=[("Event", "message-summary"), ("Expires", "600")])
    return core, core.subscribe(req, THERE, 0.0)


def _arg(client: SubscriptionClient, inp: SubInput) -> Any:
    sub = client.request
    if inp in (SubInput.ACCEPTED, SubInput.REJECTED):
        h = [("Via", v) for v in sub.headers.get_all("Via")] + [
            ("From", sub.headers.get("From") or ""), ("To", (sub.headers.get("To") or "") + ";tag=n1"),
            ("Call-ID", sub.call_id), ("CSeq", str(sub.cseq)), ("Contact", "<sip:bob@198.51.100.5>"),
            ("Expires", "120")]
        return Response(200 if inp is SubInput.ACCEPTED else 489, None, h)
    if inp.name.startswith("NOTIFY"):
        state = inp.name.split("_")[1].lower()
        client.subscription_state = SubscriptionState(state)
        return Request("NOTIFY", "sip:alice@192.0.2.10", [("Call-ID", sub.call_id), ("CSeq", "1 NOTIFY")])
    return None


def _ends(core: UserAgentCore) -> list[Any]:
    out = []
    while (e := core.next_event()) is not None:
        if isinstance(e, ev.SubscriptionEnded):
            out.append(e)
    return out


def test_subscription_every_state_and_input() -> None:
    """Each (state, input): the table's next state, or ignored and counted; TERMINATED reports the end
    once, leaves the core's table and cancels both deadlines."""
    for state, inp in itertools.product(SubState, SubInput):
        core, client = _client()
        _ends(core)
        client.state = state
        if state is not SubState.SUBSCRIBING:  # past the first answer there is a dialog to send in
            client.dialog = Dialog.from_uac_response(client.request, _arg(client, SubInput.ACCEPTED))
        ignored = core.context.stats["ignored"]
        took = client.step(inp, 1.0, _arg(client, inp))
        if (state, inp) in SUBSCRIPTION_TABLE:
            assert took and client.state is SUBSCRIPTION_TABLE[(state, inp)][1], (state, inp)
        else:
            assert not took and client.state is state and core.context.stats["ignored"] == ignored + 1
        ends = _ends(core)
        if client.state is SubState.TERMINATED and took:
            assert len(ends) == 1, (state, inp)
            assert not core.context.subscriptions
            assert not any(isinstance(n, tuple) and str(n[0]).startswith("subscription")
                           for n in core.context.deadlines)
        else:
            assert not ends


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(list(SubInput)), max_size=12))
def test_subscription_random_walks_end_once(inputs: list[SubInput]) -> None:
    """Any sequence of inputs from the start: the state stays in the table's states, the end is
    reported at most once, and TERMINATED absorbs everything after it."""
    core, client = _client()
    _ends(core)
    ended = 0
    for n, inp in enumerate(inputs):
        before = client.state
        client.step(inp, float(n), _arg(client, inp))
        ended += len(_ends(core))
        if before is SubState.TERMINATED:
            assert client.state is SubState.TERMINATED
    assert ended == (1 if client.state is SubState.TERMINATED else 0)


def test_refresh_delay() -> None:
    """Half-way for short grants, 32 s before the end for long ones."""
    assert [refresh_delay(g) for g in (10, 60, 64, 120, 3600)] == [5.0, 30.0, 32.0, 88.0, 3568.0]


def test_refer_client_every_state_and_input() -> None:
    """The transferor's table: SUCCEEDED and FAILED absorb everything; each pair reports as its action."""
    kinds = {"a_accept": "accepted", "a_progress": "progress", "a_succeed": "succeeded", "a_fail": "failed"}
    for state, inp in itertools.product(ReferState, ReferInput):
        client = ReferClient(2)
        client.state = state
        took = client.step(inp, 180, "x")
        entry = REFER_TABLE.get((state, inp))
        if entry is None:
            assert not took and client.state is state and client.ignored == 1 and not client.reports
        else:
            assert client.state is entry[1] and [r.kind for r in client.reports] == [kinds[entry[0].value]]
    assert all(s not in (ReferState.SUCCEEDED, ReferState.FAILED) for s, _ in REFER_TABLE)


def _notify(state: str, body: bytes) -> Request:
    return Request("NOTIFY", "sip:alice@192.0.2.10", [("Event", "refer;id=2"), ("Subscription-State", state),
                                                     ("Content-Type", "message/sipfrag")], body)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([
    "202", "486-refer", "none", "n100", "n180", "n200", "n486", "nterm", "nbad", "timer", "ended",
]), max_size=10))
def test_refer_client_walks_end_once(steps: list[str]) -> None:
    """Any order of REFER answers, NOTIFYs, timer and call end: at most one final report, last if any;
    NOTIFYs after the end get 481."""
    client = ReferClient(2)
    for n, step in enumerate(steps):
        now = float(n)
        if step == "202":
            client.on_response(Response(202), now)
        elif step == "486-refer":
            client.on_response(Response(486), now)
        elif step == "none":
            client.on_response(None, now, "timeout")
        elif step == "timer":
            client.handle_timer(now + 1000)
        elif step == "ended":
            client.call_ended()
        else:
            done = client.done
            body = b"garbage" if step == "nbad" else StatusFragment.of(int(step[1:]) if step[1:].isdigit() else 503).to_bytes()
            status = client.on_notify(_notify("terminated" if step == "nterm" else "active;expires=60", body), now)
            assert status == (481 if done else 400 if step == "nbad" else 200)
    finals = [r for r in client.reports if r.kind in ("succeeded", "failed")]
    assert len(finals) <= 1
    if finals:
        assert client.reports[-1] is finals[0] and client.done and client.deadline is None


def test_refer_notifier_every_state_and_input() -> None:
    """The transferee's table: ACTIVE sends active NOTIFYs until a final one; TERMINATED sends nothing."""
    for state, inp in itertools.product(NotifierState, NotifierInput):
        notifier = ReferNotifier(7, 0.0)
        notifier.state = state
        order = notifier.step(inp, 1.0, StatusFragment.of(180 if inp is NotifierInput.PROVISIONAL else 200))
        entry = NOTIFIER_TABLE.get((state, inp))
        if entry is None:
            assert order is None and notifier.ignored == 1
            continue
        assert order is not None and notifier.state is entry[1]
        headers = dict(order.headers)
        assert headers["Event"] == "refer;id=7"
        expected = "active;expires=59" if entry[0] == "active" else f"terminated;reason={entry[0]}"
        assert headers["Subscription-State"] == expected
        assert (notifier.deadline is None) == (entry[1] is NotifierState.TERMINATED)


def test_refer_notifier_expiry_and_repeats() -> None:
    """The first NOTIFY is 100 Trying; a second 100 sends nothing; expiry terminates with the last status."""
    notifier = ReferNotifier(3, 10.0, expires=60)
    first = notifier.first(10.0)
    assert first.body == b"SIP/2.0 100 Trying\r\n" and dict(first.headers)["Subscription-State"] == "active;expires=60"
    assert notifier.progress(100, "Trying", 11.0) is None
    ringing = notifier.progress(180, "Ringing", 12.0)
    assert ringing is not None and dict(ringing.headers)["Subscription-State"] == "active;expires=58"
    assert notifier.handle_timer(69.9) is None
    last = notifier.handle_timer(70.0)
    assert last is not None and last.body == b"SIP/2.0 180 Ringing\r\n"
    assert dict(last.headers)["Subscription-State"] == "terminated;reason=timeout"
    assert notifier.progress(200, "OK", 71.0) is None and notifier.state is NotifierState.TERMINATED
