"""Requests with a field that only fails when the UAS reads it: always a final response (RFC 3261 §8.2).

The transaction layer answers a message that does not parse; a field parsed on
first use (the From tag of a request with a To tag, the Contact of a re-INVITE,
the To of any request on the pure path) fails later, in the UAS dispatch or a
session.  That request must still get a final response with the error's status
and a reason naming the defect, and its server transaction must end: a request
left unanswered keeps its transaction until the table is full (review8 H1, H2).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from txsipua.core import events as ev
from txsipua.core.ids import SequentialIds
from txsipua.core.useragent import SessionState, UserAgentCore
from txsipua.sip import message
from txsipua.sip.message import parse_message

A = ("127.0.0.1", 5061)
B = ("127.0.0.1", 5062)
SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"


@contextmanager
def pure_tags() -> Iterator[None]:
    """The To/From tags read by the pure code (as without the C accelerator, TXSIPUA_PURE=1)."""
    saved = message._tag_param
    message._tag_param = None
    try:
        yield
    finally:
        message._tag_param = saved


def answer_everything(core: UserAgentCore, now: float) -> None:
    """The application: every call rejected 486, every other request answered (488 to a re-INVITE)."""
    while (e := core.next_event()) is not None:
        if isinstance(e, ev.IncomingCall):
            e.session.reject(now, 486)
        elif isinstance(e, ev.IncomingRequest):
            status = 488 if e.request.method == "INVITE" else 200
            core.respond(e.transaction, core.make_response(e.request, status), now)


def request_text(method: str, *, branch: str, call_id: str = "c1@192.0.2.1", from_tag: str = "f1",
                 to_tag: str | None = None, cseq: int = 1, contact: str = "<sip:alice@127.0.0.1:5061>",
                 body: str = "") -> dict[str, str]:
    """The request as ``{"start": ..., header: value}``, in order (mutated, then joined)."""
    fields = {
        "start": f"{method} sip:bob@127.0.0.1:5062 SIP/2.0",
        "Via": f"SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK{branch}",
        "From": f"<sip:alice@example.com>;tag={from_tag}",
        "To": "<sip:bob@example.com>" + (f";tag={to_tag}" if to_tag is not None else ""),
        "Call-ID": call_id,
        "CSeq": f"{cseq} {method}",
        "Max-Forwards": "70",
        "Contact": contact,
    }
    if body:
        fields["Content-Type"] = "application/sdp"
    fields["Content-Length"] = str(len(body.encode()))
    fields["body"] = body
    return fields


def join(fields: dict[str, str]) -> bytes:
    head = [fields["start"]] + [f"{k}: {v}" for k, v in fields.items() if k not in ("start", "body")]
    return ("\r\n".join(head) + "\r\n\r\n" + fields["body"]).encode()


def finals(core: UserAgentCore) -> list[tuple[int, str]]:
    out = []
    for o in core.outbox():
        if o.data.startswith(b"SIP/2.0 "):
            r = parse_message(o.data)
            if r.status >= 200:
                out.append((r.status, r.reason))
    return out


def established() -> tuple[UserAgentCore, dict[str, str]]:
    """A callee with a confirmed call from A; returns it and the dialog's identifiers."""
    callee = UserAgentCore(local=B, ids=SequentialIds(counter=1000), contact_user="bob")
    callee.receive(join(request_text("INVITE", branch="inv1", body=SDP)), A, 0.0)
    call = next(e for e in iter(callee.next_event, None) if isinstance(e, ev.IncomingCall))
    call.session.accept(0.0, body=SDP.encode())
    callee.outbox()
    ack = request_text("ACK", branch="ack1", to_tag=call.session.local_tag)
    ack.pop("Contact")
    callee.receive(join(ack), A, 0.1)
    assert call.session.state is SessionState.CONFIRMED
    list(iter(callee.next_event, None))
    return callee, {"to_tag": call.session.local_tag}


def settle(core: UserAgentCore, now: float) -> None:
    """Run every timer for 100 s (longer than 64*T1) with explicit times."""
    t = now
    while (deadline := core.get_timer()) is not None and deadline <= now + 100:
        t = max(t, deadline)
        core.handle_timer(t)
        answer_everything(core, t)
        core.outbox()


@pytest.mark.parametrize("method", ["OPTIONS", "INVITE", "MESSAGE"])
def test_bad_from_with_a_to_tag_is_answered_400_and_freed(method: str) -> None:
    """H2: a To tag and From ``<<<>>;tag=1``: 400 naming the defect; the transaction ends."""
    callee = UserAgentCore(local=B, ids=SequentialIds(counter=1000), contact_user="bob")
    req = request_text(method, branch="bf1", to_tag="t9")
    req["From"] = "<<<>>;tag=1"
    callee.receive(join(req), A, 0.0)
    got = finals(callee)
    assert len(got) == 1 and got[0][0] == 400 and "<<<>>" in got[0][1], got
    assert callee.layer.transaction_count == 1
    settle(callee, 0.0)
    assert callee.layer.transaction_count == 0


@pytest.mark.parametrize("accelerated", [True, False])
@pytest.mark.parametrize("method", ["OPTIONS", "INVITE"])
def test_garbage_to_is_answered_400_on_both_paths(method: str, accelerated: bool) -> None:
    """H1: ``To: garbage<<`` gets 400 with and without the C tag reader; nothing is left."""
    callee = UserAgentCore(local=B, ids=SequentialIds(counter=1000), contact_user="bob")
    req = request_text(method, branch="tg1")
    req["To"] = "garbage<<"
    if accelerated:
        callee.receive(join(req), A, 0.0)
    else:
        with pure_tags():
            callee.receive(join(req), A, 0.0)
    got = finals(callee)
    assert [s for s, _ in got] == [400] and "garbage" in got[0][1], got
    assert not list(iter(callee.next_event, None))
    settle(callee, 0.0)
    assert callee.layer.transaction_count == 0


def test_reinvite_with_bad_contact_is_answered_400_and_the_call_goes_on() -> None:
    """H2: an in-dialog re-INVITE with ``Contact: <<junk`` gets 400; the dialog is kept."""
    callee, d = established()
    bad = request_text("INVITE", branch="re1", to_tag=d["to_tag"], cseq=2, contact="<<junk")
    callee.receive(join(bad), A, 1.0)
    got = finals(callee)
    assert [s for s, _ in got] == [400] and "<<junk" in got[0][1], got
    assert callee.session_count == 1
    good = request_text("INVITE", branch="re2", to_tag=d["to_tag"], cseq=3)
    callee.receive(join(good), A, 2.0)
    assert [type(e) for e in iter(callee.next_event, None)] == [ev.IncomingRequest]
    settle(callee, 2.0)  # the application never answers the good one: the core does not either
    assert callee.layer.transaction_count == 1
    bye = request_text("BYE", branch="bye1", to_tag=d["to_tag"], cseq=4)
    callee.receive(join(bye), A, 3.0)
    assert [s for s, _ in finals(callee)] == [200]


# ------------------------------------------------------------------ never silence

_BITS = ["<", ">", '"', ";", ",", "=", ":", "@", " ", "\t", "tag", ";tag=", "\\", "sip:", "*",
         "1", "INVITE", "OPTIONS", "\u00e9", "\x00", "\x7f", "\x1c", "99999999999", "-"]

_value = st.one_of(
    st.lists(st.sampled_from(_BITS), max_size=8).map("".join),
    st.text(alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=20),
)


@st.composite
def mutation(draw: st.DrawFn, value: str) -> str:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(_value)
    i = draw(st.integers(0, len(value)))
    j = draw(st.integers(i, min(len(value), i + 6)))
    return value[:i] + (draw(_value) if kind < 3 else "") + value[j:]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["OPTIONS", "INVITE", "in-dialog INVITE", "in-dialog INFO"]),
       name=st.sampled_from(["From", "To", "Contact", "CSeq", "Call-ID"]), data=st.data())
def test_any_mutated_field_gets_a_final_response(kind: str, name: str, data: Any) -> None:
    """Any value of From/To/Contact/CSeq/Call-ID: a final response, never silence, no transaction left."""
    if kind.startswith("in-dialog"):
        callee, d = established()
        method = kind.split()[1]
        req = request_text(method, branch="m1", to_tag=d["to_tag"], cseq=5)
    else:
        callee = UserAgentCore(local=B, ids=SequentialIds(counter=1000), contact_user="bob")
        req = request_text(kind, branch="m1", body=SDP if kind == "INVITE" else "")
    req[name] = data.draw(mutation(req[name]), label=name)
    for accelerated in (True, False):
        if not accelerated:
            req["Via"] += "x"  # a new transaction
        raw = join(req)
        if accelerated:
            callee.receive(raw, A, 1.0)
        else:
            with pure_tags():
                callee.receive(raw, A, 1.0)
        answer_everything(callee, 1.0)
        # answered by the layer when it does not parse, else by the UAS or the application
        assert finals(callee), f"no final response to {raw!r}"
    settle(callee, 1.0)
    assert callee.layer.transaction_count == 0
