"""Session timers (RFC 4028) and UPDATE (RFC 3311) between two sans-IO cores, with exact times."""

from __future__ import annotations

from typing import Any

import pytest
from test_reliable import ANSWER, OFFER, A, B, Net, incoming, invite

from txsipua.core import events as ev
from txsipua.core.ids import SequentialIds
from txsipua.core.invite import Phase
from txsipua.core.session_timer import SessionExpires, expiry_delay, too_small, uas_answer
from txsipua.core.useragent import UserAgentCore
from txsipua.sip.message import Request, parse_message

OFFER2 = b"v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\n"
ANSWER2 = b"v=0\r\no=- 2 2 IN IP4 192.0.2.2\r\ns=-\r\n"


def make(caller_se: int | None = None, callee_se: int | None = None, callee_min_se: int = 90,
         use_100rel: bool = False) -> tuple[UserAgentCore, UserAgentCore, Net]:
    caller = UserAgentCore(local=A, ids=SequentialIds(), contact_user="alice", session_expires=caller_se)
    callee = UserAgentCore(local=B, ids=SequentialIds(counter=1000), contact_user="bob", session_expires=callee_se,
                           min_se=callee_min_se, use_100rel=use_100rel)
    net = Net(caller, callee)

    def on_event(side: str, e: Any) -> None:
        # re-INVITEs and UPDATEs with an offer are answered as an application would
        if isinstance(e, ev.IncomingRequest) and e.session is not None:
            if e.request.method == "INVITE":
                e.session.answer_reinvite(e.transaction, e.request, net.now, body=ANSWER2)
            elif e.request.method == "UPDATE":
                e.session.answer_update(e.transaction, e.request, net.now, body=ANSWER2)

    net.on_event = on_event
    return caller, callee, net


def answered_call(net: Net, caller: UserAgentCore, request: Request | None = None) -> tuple[Any, Any]:
    session = caller.invite(request or invite(caller), B, 0.0)
    net.pump()
    uas = incoming(net)
    uas.accept(0.0, body=ANSWER)
    net.pump()
    assert session.phase is Phase.CONFIRMED and uas.phase is Phase.CONFIRMED
    return session, uas


def test_session_expires_values_and_negotiation() -> None:
    """Session-Expires parses with its refresher; a request below our Min-SE is too small; the UAS
    keeps the interval asked for and names the requester refresher when it supports timers."""
    assert SessionExpires.parse("1800;refresher=uac") == SessionExpires(1800, "uac")
    assert SessionExpires.parse(" 90 ; foo=1 ;refresher=UAS") == SessionExpires(90, "uas")
    assert SessionExpires.parse("soon") is None and SessionExpires.parse(None) is None
    assert str(SessionExpires(120, "uas")) == "120;refresher=uas"
    assert expiry_delay(1800) == 1768 and expiry_delay(90) == 60
    req = parse_message(b"UPDATE sip:b@192.0.2.2 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
                        b"From: <sip:a@192.0.2.1>;tag=1\r\nTo: <sip:b@192.0.2.2>;tag=2\r\nCall-ID: c\r\n"
                        b"CSeq: 2 UPDATE\r\nSupported: timer\r\nSession-Expires: 100\r\nContent-Length: 0\r\n\r\n")
    assert isinstance(req, Request)
    assert too_small(req, 90) is None and too_small(req, 120) == 120
    fields, agreement = uas_answer(req, None, 90)
    assert fields == [("Session-Expires", "100;refresher=uac"), ("Require", "timer")]
    assert agreement is not None and agreement.interval == 100 and not agreement.we_refresh


def test_uac_refreshes_with_update_at_half_the_interval() -> None:
    """Caller asks 1800 s: the 200 says 1800;refresher=uac with Require: timer; the caller sends
    UPDATE (the callee allows it) at 900 s and 1800 s, each with Session-Expires: 1800;refresher=uac,
    and the callee's expiry moves with each refresh: no BYE in an hour."""
    caller, callee, net = make(caller_se=1800)
    session, uas = answered_call(net, caller)
    inv = net.sent("caller", "INVITE")[0]
    assert inv.headers.get("Session-Expires") == "1800" and inv.headers.get("Min-SE") == "90"
    ok = net.sent("callee", "200")[0]
    assert ok.headers.get("Session-Expires") == "1800;refresher=uac"
    assert ok.headers.get("Require") == "timer"
    assert session.timer.refresh_at == 900.0 and uas.timer.expires_at == 1768.0
    net.run_until(3600.0)
    updates = net.sent("caller", "UPDATE")
    assert net.times("caller", "UPDATE") == [900.0, 1800.0, 2700.0, 3600.0]
    assert {u.headers.get("Session-Expires") for u in updates} == {"1800;refresher=uac"}
    assert all(not u.body for u in updates)
    assert net.sent("caller", "BYE") == [] and net.sent("callee", "BYE") == []
    assert uas.timer.expires_at == 3600.0 + 1768.0


def test_watcher_sends_bye_when_no_refresh_comes() -> None:
    """The caller, the refresher, never refreshes (its timer stopped): the callee sends BYE at
    Session-Expires - min(32, SE/3) = 1768 s (RFC 4028 §10) and the call ends "session-expired"."""
    caller, callee, net = make(caller_se=1800)
    session, uas = answered_call(net, caller)
    session.timer.stop(net.now)
    net.run_until(1800.0)
    assert net.sent("caller", "UPDATE") == []
    assert net.times("callee", "BYE")[0] == 1768.0
    ended = [e for e in net.events["callee"] if isinstance(e, ev.CallEnded)]
    assert [e.reason for e in ended] == ["session-expired"]
    assert callee.context.stats["session_expired"] == 1


def test_422_is_retried_with_the_min_se_named() -> None:
    """The callee's Min-SE is 1000: the caller's INVITE asking 300 s gets 422 with Min-SE: 1000; the
    INVITE goes again with CSeq 2, Session-Expires: 1000 and Min-SE: 1000 and is answered."""
    caller, callee, net = make(caller_se=300, callee_min_se=1000)
    session, uas = answered_call(net, caller)
    r422 = net.sent("callee", "422")[0]
    assert r422.headers.get("Min-SE") == "1000"
    invites = net.sent("caller", "INVITE")
    assert [str(i.cseq) for i in invites] == ["1 INVITE", "2 INVITE"]
    assert invites[1].headers.get("Session-Expires") == "1000" and invites[1].headers.get("Min-SE") == "1000"
    assert invites[1].call_id == invites[0].call_id and invites[1].from_.tag == invites[0].from_.tag
    assert session.timer.interval == 1000 and session.timer.refresh_at == 500.0


def test_uas_refresher_refreshes_by_reinvite_when_update_is_not_allowed() -> None:
    """An INVITE asking 120;refresher=uas whose Allow lacks UPDATE: the callee refreshes at 60 s with
    a re-INVITE carrying its SDP and Session-Expires: 120;refresher=uac; the caller's 2xx keeps it so."""
    caller, callee, net = make()
    req = invite(caller, headers=[("Session-Expires", "120;refresher=uas")])
    req.headers.set("Allow", "INVITE, ACK, CANCEL, BYE")
    session, uas = answered_call(net, caller, req)
    assert net.sent("callee", "200")[0].headers.get("Session-Expires") == "120;refresher=uas"
    assert uas.timer.we_refresh and session.timer.expires_at == 120 - 32
    net.run_until(61.0)
    reinvites = net.sent("callee", "INVITE")
    assert net.times("callee", "INVITE") == [60.0]
    assert reinvites[0].headers.get("Session-Expires") == "120;refresher=uac"
    assert reinvites[0].body == ANSWER
    assert net.sent("callee", "ACK")
    assert uas.timer.we_refresh and uas.timer.refresh_at == 120.0
    assert session.timer.expires_at == 60.0 + 88.0
    assert net.sent("callee", "UPDATE") == []


def test_update_with_an_offer_in_a_confirmed_dialog() -> None:
    """UPDATE with an offer: the callee's application answers it; the 200 carries Contact and the
    answer; both sides hold the new descriptions."""
    caller, callee, net = make()
    session, uas = answered_call(net, caller)
    op = session.update(net.now, body=OFFER2)
    net.pump()
    update = net.sent("caller", "UPDATE")[0]
    assert update.headers.get("Contact") and update.headers.get("Content-Type") == "application/sdp"
    ok = [m for m in net.sent("callee", "200") if m.cseq.method == "UPDATE"][0]
    assert ok.body == ANSWER2 and ok.headers.get("Contact")
    assert session.remote_sdp == ANSWER2 and session.local_sdp == OFFER2
    assert uas.remote_sdp == OFFER2 and uas.local_sdp == ANSWER2
    assert [e.operation for e in net.events["caller"] if isinstance(e, ev.RequestCompleted)] == [op]


def test_crossing_updates_with_offers_both_get_491() -> None:
    """Both sides send an UPDATE with an offer at once: each is answered 491 (RFC 3311 §5.2)."""
    caller, callee, net = make()
    session, uas = answered_call(net, caller)
    session.update(net.now, body=OFFER2)
    uas.update(net.now, body=ANSWER2)
    net.pump()
    statuses = sorted((m.cseq.method, m.status) for _, _, m in net.wire
                      if not isinstance(m, Request) and m.cseq.method == "UPDATE")
    assert statuses == [("UPDATE", 491), ("UPDATE", 491)]
    assert session.local_sdp == OFFER and uas.local_sdp == ANSWER  # nothing changed


def test_update_in_the_early_dialog_of_a_reliable_180() -> None:
    """After a reliable 180 and its PRACK, the callee sends UPDATE (no body) in the early dialog;
    the caller finds the call by the early dialog and answers 200."""
    caller, callee, net = make(use_100rel=True)
    session = caller.invite(invite(caller), B, 0.0)
    net.pump()
    uas = incoming(net)
    uas.ring(0.0)
    net.pump()
    uas.update(net.now)
    net.pump()
    update = net.sent("callee", "UPDATE")[0]
    assert str(update.cseq) == "1 UPDATE"
    ok = [m for m in net.sent("caller", "200") if m.cseq.method == "UPDATE"]
    assert len(ok) == 1
    uas.accept(net.now, body=ANSWER)
    net.pump()
    assert session.phase is Phase.CONFIRMED
    uas.hangup(net.now)
    net.pump()
    assert str(net.sent("callee", "BYE")[0].cseq) == "2 BYE"  # the dialog's CSeq went on from the UPDATE


def test_challenged_update_is_retried_with_credentials() -> None:
    """An UPDATE answered 401 is sent again with Authorization and CSeq + 1 (RFC 3261 §22.2),
    and its 200 completes it; CANCEL and ACK stay unauthenticated as before."""
    from txsipua.auth.client import DigestClient
    from txsipua.auth.credentials import Credential, InMemoryCredentials
    from txsipua.core import builders

    creds = InMemoryCredentials([Credential(realm="callee.example.org", username="alice-auth", password="pw")])
    caller = UserAgentCore(local=A, ids=SequentialIds(), contact_user="alice", digest=DigestClient(creds))
    callee = UserAgentCore(local=B, ids=SequentialIds(counter=1000), contact_user="bob")
    net = Net(caller, callee)
    session, uas = answered_call(net, caller)
    challenged: list[Request] = []

    def intercept(msg: Any) -> bool:
        if isinstance(msg, Request) and msg.method == "UPDATE" and not challenged:
            challenged.append(msg)
            return True
        return False

    net.drop = intercept
    op = session.update(net.now)
    net.pump()
    response = builders.make_response(challenged[0], 401, headers=[(
        "WWW-Authenticate", 'Digest realm="callee.example.org", nonce="n0nce", algorithm=MD5, qop="auth"')])
    caller.receive(response.to_bytes(), B, net.now)
    net.pump()
    updates = net.sent("caller", "UPDATE")
    assert len(updates) == 2
    assert updates[1].headers.get("Authorization", "").startswith("Digest ")
    assert updates[1].cseq.seq == updates[0].cseq.seq + 1
    done = [e for e in net.events["caller"] if isinstance(e, ev.RequestCompleted) and e.operation is op]
    assert done and done[0].response.status == 200


def _refused_invite(headers: list[tuple[str, str]]) -> tuple[list[Any], Net]:
    caller, callee, net = make()
    caller.invite(invite(caller, headers=headers), B, 0.0)
    net.pump()
    return net.sent("callee", "400"), net


@pytest.mark.parametrize(("headers", "reason"), [
    ([("Session-Expires", "soon")], "Malformed Session-Expires"),
    ([("Session-Expires", "-1800")], "Malformed Session-Expires"),
    ([("Session-Expires", str(2**32))], "Malformed Session-Expires"),
    ([("Session-Expires", "1800"), ("Min-SE", "lots")], "Malformed Min-SE"),
    ([("Session-Expires", "1800"), ("Min-SE", str(2**32))], "Malformed Min-SE"),
    ([("Session-Expires", "300"), ("Min-SE", "600")], "Session-Expires below Min-SE"),
])
def test_malformed_session_timer_fields_get_400_with_a_reason(headers: list[tuple[str, str]], reason: str) -> None:
    """An INVITE whose Session-Expires or Min-SE is not delta-seconds (or whose Session-Expires is
    below its own Min-SE, RFC 4028 §5) is answered 400 with the reason, and no call is offered."""
    refused, net = _refused_invite(headers)
    assert [(r.status, r.reason) for r in refused] == [(400, reason)]
    assert not [e for e in net.events["callee"] if isinstance(e, ev.IncomingCall)]


def test_a_largest_valid_session_expires_is_accepted() -> None:
    """2**32 - 1 is still delta-seconds: no 400."""
    refused, net = _refused_invite([("Session-Expires", str(2**32 - 1)), ("Min-SE", "90")])
    assert refused == [] and [e for e in net.events["callee"] if isinstance(e, ev.IncomingCall)]


def test_an_update_with_a_malformed_session_expires_gets_400() -> None:
    """In a confirmed dialog, an UPDATE with Session-Expires: x1 is refused 400; the call stays up."""
    caller, callee, net = make()
    session, uas = answered_call(net, caller)
    bad = session.dialog.create_request("UPDATE", via=caller.context.via("z9hG4bKbadse"),
                                        headers=[("Session-Expires", "x1")])
    callee.receive(bad.to_bytes(), A, net.now)
    net.pump()
    assert [(r.status, r.reason, r.cseq.method) for r in net.sent("callee", "400")] == [
        (400, "Malformed Session-Expires", "UPDATE")]
    assert uas.phase is Phase.CONFIRMED
