"""Transfer end to end between UserAgents on a fake wire: blind and attended, success and failure,
REFER refused, INVITE with Replaces, INFO DTMF (RFC 3515, RFC 3891, RFC 3892, RFC 6086)."""

from __future__ import annotations

from typing import Any

import pytest
from wire import Wire

from txsipua.core.refer import ReferReport
from txsipua.errors import LocalProtocolError, TransferFailed
from txsipua.sip.event_headers import Replaces
from txsipua.sip.message import Request
from txsipua.sip.sipfrag import StatusFragment
from txsipua.ua.call import Call
from txsipua.ua.useragent import UserAgent

ALICE, BOB, CAROL = "192.0.2.10", "192.0.2.20", "192.0.2.30"


def connect(w: Wire, caller: UserAgent, callee: UserAgent) -> Call:
    """``caller`` calls ``callee`` (auto-answering); the answered Call."""
    calls: list[Call] = []
    caller.call(w.uri(callee)).addCallback(calls.append)
    w.pump()
    assert len(calls) == 1
    return calls[0]


def only_call(ua: UserAgent) -> Call:
    (call,) = ua.calls
    return call


def test_blind_transfer_ladder_and_exact_messages() -> None:
    """alice transfers bob to carol: REFER, 202, NOTIFY 100/180/200 (terminated), bob's INVITE
    with Referred-By, alice's BYE once the transfer succeeded."""
    w = Wire()
    alice, bob, carol = w.ua("alice", ALICE), w.ua("bob", BOB), w.ua("carol", CAROL)
    call = connect(w, alice, bob)
    start = len(w.log)
    transfer = call.transfer(w.uri(carol))
    reports: list[ReferReport] = []
    transfer.on_progress = reports.append
    w.pump()
    assert w.ladder(start) == [
        "alice -> bob REFER", "bob -> alice 202 REFER", "bob -> alice NOTIFY",
        "bob -> carol INVITE", "carol -> bob 180 INVITE", "carol -> bob 200 INVITE",
        # carol's 180 is reliable (bob supports 100rel, RFC 3262): bob PRACKs it
        "alice -> bob 200 NOTIFY", "bob -> carol PRACK", "bob -> alice NOTIFY", "bob -> carol ACK",
        "bob -> alice NOTIFY", "carol -> bob 200 PRACK",
        "alice -> bob 200 NOTIFY", "alice -> bob 200 NOTIFY", "alice -> bob BYE", "bob -> alice 200 BYE",
    ]
    (refer,) = w.sent("REFER", start)
    assert refer.headers.get("Refer-To") == f"<{w.uri(carol)}>"
    assert refer.headers.get("Referred-By") == f"<sip:alice@{ALICE}>"
    assert refer.headers.get("Contact") == f"<sip:alice@{ALICE}:{alice.local_address[1]}>"
    assert refer.call_id == call.call_id and refer.cseq.method == "REFER"
    notifies = w.sent("NOTIFY", start)
    assert [(n.headers.get("Event"), n.headers.get("Subscription-State"), n.content_type, n.body) for n in notifies] == [
        (f"refer;id={refer.cseq.seq}", "active;expires=60", "message/sipfrag", b"SIP/2.0 100 Trying\r\n"),
        (f"refer;id={refer.cseq.seq}", "active;expires=60", "message/sipfrag", b"SIP/2.0 180 Ringing\r\n"),
        (f"refer;id={refer.cseq.seq}", "terminated;reason=noresource", "message/sipfrag", b"SIP/2.0 200 OK\r\n"),
    ]
    assert [n.cseq.seq for n in notifies] == [1, 2, 3]  # bob's CSeq space in the dialog
    assert all(n.call_id == call.call_id and n.headers.get("Contact") for n in notifies)
    (invite,) = w.sent("INVITE", start)
    assert invite.headers.get("Referred-By") == f"<sip:alice@{ALICE}>"
    assert "Replaces" not in invite.headers
    assert str(invite.uri) == w.uri(carol)
    assert [(r.kind, r.status) for r in reports] == [("accepted", 202), ("progress", 100), ("progress", 180),
                                                     ("succeeded", 200)]
    assert transfer.done.result == StatusFragment(200, "OK")  # type: ignore[attr-defined]
    assert call.ended.called and call.transfer_in_progress is None
    assert len(bob.calls) == 1 and len(carol.calls) == 1 and not alice.calls
    assert only_call(bob).call_id == only_call(carol).call_id


def test_transfer_target_busy_fails_and_keeps_the_call() -> None:
    """carol refuses: the final NOTIFY says 486, done errbacks TransferFailed(486), alice stays on."""
    w = Wire()
    alice, bob, carol = w.ua("alice", ALICE), w.ua("bob", BOB), w.ua("carol", CAROL, auto_answer=False)
    carol.on_incoming_call = lambda incoming: incoming.reject(486)
    call = connect(w, alice, bob)
    transfer = call.transfer(w.uri(carol))
    failures: list[Any] = []
    transfer.done.addErrback(failures.append)
    w.pump()
    last = w.sent("NOTIFY")[-1]
    assert last.headers.get("Subscription-State") == "terminated;reason=noresource"
    assert last.body == b"SIP/2.0 486 Busy Here\r\n"
    assert failures[0].check(TransferFailed) and failures[0].value.status == 486
    assert call.state.value == "confirmed" and call.transfer_in_progress is None
    assert not w.sent("BYE")


def test_refer_refused_by_the_application() -> None:
    """on_refer rejects: 603 to the REFER, no NOTIFY, no INVITE; the transfer fails with 603."""
    w = Wire()
    alice, bob, carol = w.ua("alice", ALICE), w.ua("bob", BOB), w.ua("carol", CAROL)
    seen: list[Any] = []

    def decide(refer: Any) -> None:
        seen.append((str(refer.target), refer.referred_by, refer.replaces))
        refer.reject()

    bob.on_refer = decide
    call = connect(w, alice, bob)
    start = len(w.log)
    transfer = call.transfer(w.uri(carol))
    failures: list[Any] = []
    transfer.done.addErrback(failures.append)
    w.pump()
    assert w.ladder(start) == ["alice -> bob REFER", "bob -> alice 603 REFER"]
    assert seen == [(w.uri(carol), f"<sip:alice@{ALICE}>", None)]
    assert failures[0].check(TransferFailed) and failures[0].value.status == 603
    assert call.state.value == "confirmed"


def test_attended_transfer_replaces_the_consultation_call() -> None:
    """alice talks to bob and to carol, then joins them: bob's INVITE to carol carries Replaces,
    carol answers it and BYEs alice's call, alice BYEs bob on the 200 NOTIFY."""
    w = Wire()
    alice, bob, carol = w.ua("alice", ALICE), w.ua("bob", BOB), w.ua("carol", CAROL)
    to_bob = connect(w, alice, bob)
    to_carol = connect(w, alice, carol)
    carol_side = only_call(carol)
    start = len(w.log)
    transfer = to_bob.attended_transfer(to_carol)
    w.pump()
    (refer,) = w.sent("REFER", start)
    dialog = to_carol.session.dialog
    assert dialog is not None
    replaces = Replaces(dialog.call_id, dialog.remote_tag, dialog.local_tag)
    assert refer.headers.get("Refer-To") == (
        f"<sip:carol@{CAROL}:{carol.local_address[1]}?Replaces="
        + str(replaces).replace(";", "%3B").replace("=", "%3D").replace("@", "%40") + ">")
    invite = w.sent("INVITE", start)[0]
    assert invite.headers.get("Replaces") == str(replaces)
    assert invite.headers.get("Referred-By") == f"<sip:alice@{ALICE}>"
    byes = [(src, dst) for src, dst, m in w.log[start:] if isinstance(m, Request) and m.method == "BYE"]
    assert (carol.local_address, alice.local_address) in byes  # carol ended the replaced call
    assert (alice.local_address, bob.local_address) in byes  # alice left after the 200 NOTIFY
    assert transfer.done.result.status == 200  # type: ignore[attr-defined]
    assert carol_side.ended.result == "hangup"  # type: ignore[attr-defined]  # carol's BYE: replaced
    assert to_carol.ended.result == "bye" and to_bob.ended.result == "hangup"  # type: ignore[attr-defined]
    assert not alice.calls
    assert only_call(bob).call_id == only_call(carol).call_id == invite.call_id


def _invite_with_replaces(w: Wire, target: UserAgent, value: str, n: int) -> Request:
    port = target.local_address[1]
    return Request("INVITE", f"sip:carol@{CAROL}:{port}", [
        ("Via", f"SIP/2.0/UDP 203.0.113.7:5060;branch=z9hG4bKrep{n}"), ("Max-Forwards", "70"),
        ("From", "<sip:mallory@203.0.113.7>;tag=m1"), ("To", f"<sip:carol@{CAROL}>"),
        ("Call-ID", f"rep{n}@203.0.113.7"), ("CSeq", "1 INVITE"), ("Contact", "<sip:mallory@203.0.113.7>"),
        ("Replaces", value), ("Require", "replaces"),
    ])


def test_invite_with_replaces_refused_as_rfc_3891_says() -> None:
    """481 for a dialog not ours, 486 for early-only on a confirmed dialog, 400 for a bad one, 481 once ended."""
    w = Wire()
    alice, carol = w.ua("alice", ALICE), w.ua("carol", CAROL)
    to_carol = connect(w, alice, carol)
    dialog = only_call(carol).session.dialog
    assert dialog is not None
    mine = f"{dialog.call_id};to-tag={dialog.local_tag};from-tag={dialog.remote_tag}"
    cases = [(f"{dialog.call_id};to-tag=nope;from-tag={dialog.remote_tag}", 481),
             (mine + ";early-only", 486), ("no-tags", 400)]
    for n, (value, status) in enumerate(cases):
        start = len(w.log)
        carol.protocol.datagramReceived(_invite_with_replaces(w, carol, value, n).to_bytes(), ("203.0.113.7", 5060))
        w.pump()
        finals = [m.status for m in w.responses("INVITE", start) if m.status >= 200]
        assert finals == [status], value
    assert to_carol.state.value == "confirmed"  # nothing replaced
    to_carol.hangup()
    w.pump()
    start = len(w.log)
    carol.protocol.datagramReceived(_invite_with_replaces(w, carol, mine, 9).to_bytes(), ("203.0.113.7", 5060))
    w.pump()
    assert [m.status for m in w.responses("INVITE", start) if m.status >= 200] == [481]


def test_transfer_needs_a_confirmed_call_and_one_at_a_time() -> None:
    """transfer() on a call not up, or twice at once, raises LocalProtocolError."""
    w = Wire()
    alice, bob = w.ua("alice", ALICE), w.ua("bob", BOB, auto_answer=False)
    ringing = alice.place_call(w.uri(bob))
    ringing.answered.addErrback(lambda f: None)
    with pytest.raises(LocalProtocolError):
        ringing.transfer("sip:carol@192.0.2.30")
    bob.auto_answer = True
    w2 = Wire()
    a2, b2 = w2.ua("alice", ALICE), w2.ua("bob", BOB)
    call = connect(w2, a2, b2)
    b2.on_refer = lambda refer: None  # undecided: no answer yet
    call.transfer("sip:carol@192.0.2.30")
    with pytest.raises(LocalProtocolError):
        call.transfer("sip:carol@192.0.2.30")


def test_no_final_notify_times_the_transfer_out() -> None:
    """A 202 and then silence: the transfer fails (status 0) NOTIFY_WAIT (64 s) after the 202."""
    w = Wire()
    alice, bob = w.ua("alice", ALICE), w.ua("bob", BOB)
    call = connect(w, alice, bob)
    refers: list[Any] = []
    bob.on_refer = refers.append  # bob answers by hand: 202 only
    transfer = call.transfer("sip:carol@192.0.2.30")
    failures: list[Any] = []
    transfer.done.addErrback(failures.append)
    w.pump()
    refers[0].respond(202)
    w.pump()
    assert transfer.accepted.called and not transfer.done.called
    w.advance(63.9)
    assert not transfer.done.called
    w.advance(0.2)
    assert failures[0].check(TransferFailed) and failures[0].value.status == 0
    assert call.state.value == "confirmed"


def test_late_notify_after_the_transfer_gets_481() -> None:
    """Once the transfer is over a NOTIFY of refer is answered 481 (RFC 6665 §4.1.3)."""
    w = Wire()
    alice, bob, carol = w.ua("alice", ALICE), w.ua("bob", BOB), w.ua("carol", CAROL)
    call = connect(w, alice, bob)
    call.transfer(w.uri(carol), hangup_on_success=False)
    w.pump()
    bob_call = next(c for c in bob.calls if c.call_id == call.call_id)
    start = len(w.log)
    bob_call.request("NOTIFY", b"SIP/2.0 200 OK\r\n", "message/sipfrag",
                     headers=[("Event", "refer"), ("Subscription-State", "terminated")])
    w.pump()
    assert [r.status for r in w.responses("NOTIFY", start)] == [481]


def test_info_dtmf_reaches_on_dtmf_one_digit_at_a_time() -> None:
    """INFO dtmf-relay and dtmf: 200 and on_dtmf per digit; a bad body 400; other INFO as before (200)."""
    w = Wire()
    alice, bob = w.ua("alice", ALICE), w.ua("bob", BOB)
    call = connect(w, alice, bob)
    digits: list[str] = []
    only_call(bob).on_dtmf = digits.append
    statuses: list[int] = []
    for body, ctype in [(b"Signal=5\r\nDuration=160\r\n", "application/dtmf-relay"), (b"*#", "application/dtmf"),
                        (b"Signal=x\r\n", "application/dtmf-relay"), (b"hello", "text/plain")]:
        call.request("INFO", body, ctype).addCallback(lambda r: statuses.append(r.status))
        w.pump()
    assert digits == ["5", "*", "#"]
    assert statuses == [200, 200, 400, 200]
    seen: list[str] = []
    bob.on_request = lambda request, respond: (seen.append(request.method), respond(202))
    call.request("INFO", b"Signal=9\r\n", "application/dtmf-relay").addCallback(lambda r: statuses.append(r.status))
    w.pump()
    assert digits[-1] == "9" and seen == ["INFO"] and statuses[-1] == 202  # on_request still answers


def test_bad_refers_are_refused() -> None:
    """No Refer-To: 400; a tel: target 416; a Replaces that does not parse 400; on_refer raising: 500."""
    w = Wire()
    alice, bob = w.ua("alice", ALICE), w.ua("bob", BOB)
    call = connect(w, alice, bob)
    statuses: list[int] = []
    for headers in ([], [("Refer-To", "<tel:+15550100>")],
                    [("Refer-To", "<sip:carol@192.0.2.30?Replaces=nonsense>")],
                    [("Refer-To", "<sip:carol@192.0.2.30>"), ("Refer-To", "<sip:dave@192.0.2.31>")]):
        call.request("REFER", headers=headers).addCallback(lambda r: statuses.append(r.status))
        w.pump()

    def broken(refer: Any) -> None:
        raise RuntimeError("application bug")

    bob.on_refer = broken
    call.request("REFER", headers=[("Refer-To", "<sip:carol@192.0.2.30>")]).addCallback(
        lambda r: statuses.append(r.status))
    w.pump()
    assert statuses == [400, 416, 400, 400, 500]
    assert not w.sent("NOTIFY") and call.state.value == "confirmed"


def test_replacing_call_decided_by_the_application() -> None:
    """With on_incoming_call set, the application sees IncomingCall.replaces and answers; the
    replaced call gets BYE once the new one is confirmed."""
    w = Wire()
    alice, bob, carol = w.ua("alice", ALICE), w.ua("bob", BOB), w.ua("carol", CAROL, auto_answer=False)
    seen: list[Any] = []

    def decide(incoming: Any) -> None:
        seen.append(incoming.replaces)
        incoming.answer()

    carol.on_incoming_call = decide
    to_bob = connect(w, alice, bob)
    to_carol = connect(w, alice, carol)
    replaced = seen[0]  # the first call has nothing to replace
    assert replaced is None
    carol_side = only_call(carol)
    to_bob.attended_transfer(to_carol)
    w.pump()
    assert seen[1] is carol_side
    assert carol_side.ended.called and to_carol.ended.result == "bye"  # type: ignore[attr-defined]
    assert len(carol.calls) == 1 and only_call(carol).call_id == only_call(bob).call_id


def test_info_digits_reach_call_audio_like_rfc_4733_ones() -> None:
    """With media, an INFO digit goes through call.audio.digit_received(digit, "info"): on_digit
    hears it and collect_digits gets it (the one path audio-frames gives RTP digits too)."""
    w = Wire()
    alice, bob = w.ua("alice", ALICE, media=True), w.ua("bob", BOB, media=True)
    call = connect(w, alice, bob)
    bob_call = only_call(bob)
    assert bob_call.audio is not None
    heard: list[tuple[str, str]] = []
    bob_call.audio.on_digit = lambda digit, via: heard.append((digit, via))
    collected: list[Any] = []
    bob_call.audio.collect_digits(max_digits=2, timeout=None, inter_digit_timeout=None).addCallback(collected.append)
    for body in (b"Signal=4\r\n", b"Signal=2\r\n"):
        call.request("INFO", body, "application/dtmf-relay")
        w.pump()
    assert heard == [("4", "info"), ("2", "info")]
    assert collected and str(collected[0]) == "42"
    call.hangup()
    w.pump()


@pytest.mark.parametrize(("body", "status", "message"), [
    (b"garbage\r\n", 400, "transfer failed: no final status: subscription terminated (noresource): "
                          "malformed message/sipfrag"),
    (b"SIP/2.0 100 Trying\r\n", 200, "transfer failed: no final status: subscription terminated (noresource)"),
])
def test_a_final_notify_without_a_final_status(body: bytes, status: int, message: str) -> None:
    """The transferee ends the subscription with a sipfrag that does not parse (answered 400) or that is
    not final (200): the transfer fails with status 0 and a message saying no final status came."""
    w = Wire()
    alice, bob = w.ua("alice", ALICE), w.ua("bob", BOB)
    call = connect(w, alice, bob)
    refers: list[Any] = []
    bob.on_refer = refers.append
    transfer = call.transfer("sip:carol@192.0.2.30")
    failures: list[Any] = []
    transfer.done.addErrback(failures.append)
    w.pump()
    refers[0].respond(202)
    w.pump()
    bob_call = next(c for c in bob.calls if c.call_id == call.call_id)
    start = len(w.log)
    bob_call.request("NOTIFY", body, "message/sipfrag",
                     headers=[("Event", f"refer;id={refers[0].request.cseq.seq}"),
                              ("Subscription-State", "terminated;reason=noresource")])
    w.pump()
    assert [r.status for r in w.responses("NOTIFY", start)] == [status]
    assert failures[0].check(TransferFailed) and failures[0].value.status == 0
    assert str(failures[0].value) == message and " 0 " not in str(failures[0].value)
    assert call.state.value == "confirmed" and call.transfer_in_progress is None


def test_a_refer_to_a_user_agent_without_account_is_refused_up_front() -> None:
    """bob has no account (``txsipua answer`` without --account): the REFER gets 603 with the reason,
    no 202, no NOTIFY, no INVITE; alice's transfer fails with that status."""
    w = Wire()
    alice, bob = w.ua("alice", ALICE), w.ua("bob", BOB)
    call = connect(w, alice, bob)
    bob.account = None
    transfer = call.transfer("sip:carol@192.0.2.30")
    failures: list[Any] = []
    transfer.done.addErrback(failures.append)
    start = len(w.log)
    w.pump()
    assert [(r.status, r.reason) for r in w.responses("REFER", start)] == [
        (603, "Decline (no account to place the transferred call)")]
    assert not w.sent("NOTIFY", start) and not w.sent("INVITE", start)
    assert failures[0].check(TransferFailed) and failures[0].value.status == 603


def test_an_accepted_refer_whose_invite_cannot_be_sent_notifies_why() -> None:
    """The REFER was accepted (202) but the INVITE cannot be placed: the final NOTIFY's sipfrag names why."""
    w = Wire()
    alice, bob = w.ua("alice", ALICE), w.ua("bob", BOB)
    call = connect(w, alice, bob)

    def cannot(*args: Any, **kwargs: Any) -> Any:
        raise LocalProtocolError("no route to the target")

    bob.place_call = cannot  # type: ignore[method-assign]
    transfer = call.transfer("sip:carol@192.0.2.30")
    failures: list[Any] = []
    transfer.done.addErrback(failures.append)
    start = len(w.log)
    w.pump()
    assert [r.status for r in w.responses("REFER", start)] == [202]
    last = w.sent("NOTIFY", start)[-1]
    assert last.body == (b"SIP/2.0 503 Service Unavailable (cannot place the transferred call: "
                         b"no route to the target)\r\n")
    assert failures[0].value.status == 503
