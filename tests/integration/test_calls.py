"""Calls end to end on loopback, through the test proxy: answer, media, DTMF, hold, BYE, CANCEL, failures.

alice and bob register with the proxy (401), alice calls ``sip:bob@example.com``
through it (407), the proxy forwards to bob's binding.  After every call the
leak check waits for both cores to hold no session and no transaction.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from loopback import REALM, Proxy, account, eventually, registered_pair, settled, tone, within
from twisted.internet import defer

from txsipua.errors import AuthenticationError, CallFailed
from txsipua.media.sdp import SessionDescription


@pytest_twisted.inlineCallbacks
def test_answered_call_negotiates_pcmu_media_and_dtmf(reactor: Any, proxy: Proxy, make_ua: Any) -> None:
    """INVITE (407, retried) -> 180 -> 200 with SDP -> ACK; audio both ways; DTMF arrives; BYE."""
    alice, bob, callee = yield registered_pair(reactor, proxy, make_ua)
    call = yield within(reactor, alice.call("sip:bob@example.com"))
    incoming = yield within(reactor, callee.arrived)
    bob_call = incoming.call
    yield within(reactor, bob_call.confirmed)
    # signalling: one 407 then 180/200 through the proxy, one ACK
    assert alice.wire.statuses_received("INVITE")[:1] == [407]
    assert 180 in alice.wire.statuses_received("INVITE")
    assert alice.wire.statuses_received("INVITE")[-1] == 200
    final_invite = alice.wire.requests_sent("INVITE")[-1]
    acks = alice.wire.requests_sent("ACK")
    assert [a.cseq.seq for a in acks] == [final_invite.cseq.seq - 1, final_invite.cseq.seq]
    assert acks[0].top_via.branch == alice.wire.requests_sent("INVITE")[0].top_via.branch  # 407's ACK
    assert acks[1].top_via.branch != final_invite.top_via.branch  # 2xx ACK: a transaction of its own
    # SDP offer/answer: PCMU first, both sides agree on the peer's RTP port
    offer = SessionDescription.parse(alice.wire.requests_sent("INVITE")[-1].body)
    assert offer.media[0].port == call.media.port
    assert call.media_params is not None and bob_call.media_params is not None
    assert call.media_params.codec.name.upper() == "PCMU"
    assert bob_call.media_params.codec.name.upper() == "PCMU"
    assert call.media_params.remote_port == bob_call.media.port
    assert bob_call.media_params.remote_port == call.media.port
    # media both ways: 0.2 s of audio is 10 packets of 20 ms
    played = yield within(reactor, defer.gatherResults([
        call.media.play(tone(0.2)), bob_call.media.play(tone(0.2, 660.0)),
    ]))
    assert played == [True, True]
    yield eventually(reactor, lambda: call.media.stats.packets_received >= 10
                     and bob_call.media.stats.packets_received >= 10, 2.0, "RTP both ways")
    assert call.media.stats.packets_sent >= 10 and bob_call.media.stats.packets_sent >= 10
    assert call.media.stats.invalid == 0 and bob_call.media.stats.invalid == 0
    # DTMF (RFC 4733) reaches bob once per digit
    digits: list[str] = []
    bob_call.media.on_dtmf = digits.append
    sent = yield within(reactor, call.send_dtmf("12#"))
    assert sent is True
    yield eventually(reactor, lambda: len(digits) >= 3, 2.0, "three digits")
    assert digits == ["1", "2", "#"]
    # alice hangs up: BYE/200 and both calls end
    reason = yield within(reactor, call.hangup())
    assert reason == "hangup"
    bob_reason = yield within(reactor, bob_call.ended)
    assert bob_reason == "bye"
    yield eventually(reactor, lambda: alice.wire.statuses_received("BYE") == [200], 1.0, "200 to BYE")
    assert alice.calls == set() and bob.calls == set()
    yield settled(reactor, alice, bob)


@pytest_twisted.inlineCallbacks
def test_callee_hangs_up(reactor: Any, proxy: Proxy, make_ua: Any) -> None:
    """BYE from the callee: the caller's call ends with "bye", nothing leaks."""
    alice, bob, callee = yield registered_pair(reactor, proxy, make_ua)
    call = yield within(reactor, alice.call("sip:bob@example.com"))
    incoming = yield within(reactor, callee.arrived)
    yield within(reactor, incoming.call.confirmed)
    reason = yield within(reactor, incoming.call.hangup())
    assert reason == "hangup"
    caller_reason = yield within(reactor, call.ended)
    assert caller_reason == "bye"
    yield eventually(reactor, lambda: bob.wire.statuses_received("BYE") == [200], 1.0, "200 to BYE")
    # bob's BYE follows the Record-Route the proxy added: it went to the proxy
    bye_dest = [dest for m, dest in bob.wire.sent if getattr(m, "method", "") == "BYE"]
    assert bye_dest and bye_dest[0] == proxy.address
    yield settled(reactor, alice, bob)


@pytest_twisted.inlineCallbacks
def test_hold_and_resume_reinvite(reactor: Any, proxy: Proxy, make_ua: Any) -> None:
    """hold(): re-INVITE with a=sendonly, answered a=recvonly; resume(): back to sendrecv (RFC 3264 §8.4)."""
    alice, bob, callee = yield registered_pair(reactor, proxy, make_ua)
    call = yield within(reactor, alice.call("sip:bob@example.com"))
    incoming = yield within(reactor, callee.arrived)
    bob_call = incoming.call
    yield within(reactor, bob_call.confirmed)
    first = SessionDescription.parse(alice.wire.requests_sent("INVITE")[-1].body)

    response = yield within(reactor, call.hold())
    assert response.status == 200
    reinvite = alice.wire.requests_sent("INVITE")[-1]
    assert reinvite.to.tag, "the re-INVITE is in the dialog"
    held_offer = SessionDescription.parse(reinvite.body)
    assert held_offer.media[0].direction == "sendonly"
    assert held_offer.session_version == first.session_version + 1
    assert SessionDescription.parse(response.body).media[0].direction == "recvonly"
    assert call.media_params is not None and call.media_params.direction == "sendonly"
    assert bob_call.media_params is not None and bob_call.media_params.direction == "recvonly"
    yield eventually(reactor, lambda: len(alice.wire.requests_sent("ACK")) == 3, 1.0, "the re-INVITE's ACK")

    response = yield within(reactor, call.resume())
    assert response.status == 200
    resumed = SessionDescription.parse(alice.wire.requests_sent("INVITE")[-1].body)
    assert resumed.media[0].direction == "sendrecv"
    assert SessionDescription.parse(response.body).media[0].direction == "sendrecv"
    assert call.media_params.direction == "sendrecv"
    assert bob_call.media_params.direction == "sendrecv"
    # audio flows again after resume
    before = bob_call.media.stats.packets_received
    yield within(reactor, call.media.play(tone(0.1)))
    yield eventually(reactor, lambda: bob_call.media.stats.packets_received >= before + 5, 2.0, "audio")
    yield within(reactor, call.hangup())
    yield within(reactor, bob_call.ended)
    yield settled(reactor, alice, bob)


@pytest_twisted.inlineCallbacks
def test_cancel_while_ringing(reactor: Any, proxy: Proxy, make_ua: Any) -> None:
    """hangup() while the callee rings sends CANCEL (no credentials); 487 ends both sides."""
    alice, bob, callee = yield registered_pair(reactor, proxy, make_ua, mode="ring")
    call = alice.place_call("sip:bob@example.com")
    ringing: defer.Deferred[Any] = defer.Deferred()
    call.on_progress = lambda r: r.status == 180 and not ringing.called and ringing.callback(r)
    yield within(reactor, ringing)
    incoming = yield within(reactor, callee.arrived)
    reason = yield within(reactor, call.hangup())
    assert reason == "cancelled"
    with pytest.raises(CallFailed) as info:
        yield call.answered
    assert info.value.status == 487
    bob_reason = yield within(reactor, incoming.call.ended)
    assert bob_reason == "cancelled"
    cancels = alice.wire.requests_sent("CANCEL")
    assert len(cancels) == 1
    assert "Authorization" not in cancels[0].headers
    assert "Proxy-Authorization" not in cancels[0].headers
    invite = alice.wire.requests_sent("INVITE")[-1]
    assert cancels[0].top_via.branch == invite.top_via.branch
    assert cancels[0].cseq.seq == invite.cseq.seq
    assert alice.wire.statuses_received("CANCEL") == [200]
    assert 487 in alice.wire.statuses_received("INVITE")
    assert bob.wire.statuses_sent("INVITE")[-1] == 487
    yield settled(reactor, alice, bob)


@pytest_twisted.inlineCallbacks
def test_rejected_call(reactor: Any, proxy: Proxy, make_ua: Any) -> None:
    """486 Busy Here from the callee: CallFailed carrying the status; the 486 is ACKed."""
    alice, bob, callee = yield registered_pair(reactor, proxy, make_ua, mode="reject")
    with pytest.raises(CallFailed) as info:
        yield within(reactor, alice.call("sip:bob@example.com"))
    assert info.value.status == 486
    assert info.value.response.status == 486
    assert alice.calls == set() and bob.calls == set()
    # the non-2xx ACK is in the INVITE transaction (same branch)
    yield eventually(reactor, lambda: bool(bob.wire.requests_received("ACK")), 1.0, "the ACK of the 486")
    yield settled(reactor, alice, bob)


@pytest_twisted.inlineCallbacks
def test_call_to_unknown_and_unregistered_users(reactor: Any, proxy: Proxy, make_ua: Any) -> None:
    """No such user: 404; a user with no binding: 480 (RFC 3261 §16.5) - both CallFailed."""
    alice = yield make_ua(account("alice", proxy))
    yield within(reactor, alice.register(600))
    with pytest.raises(CallFailed) as info:
        yield within(reactor, alice.call("sip:dave@example.com"))
    assert info.value.status == 404
    with pytest.raises(CallFailed) as info:
        yield within(reactor, alice.call("carol"))  # a user of the account's domain
    assert info.value.status == 480
    assert alice.wire.requests_sent("INVITE")[-1].uri_text == "sip:carol@example.com"
    yield settled(reactor, alice)


@pytest_twisted.inlineCallbacks
def test_call_with_wrong_password(reactor: Any, proxy: Proxy, make_ua: Any) -> None:
    """407 twice: AuthenticationError naming the realm after exactly one retry; the 407s are ACKed."""
    alice = yield make_ua(account("alice", proxy, password="wrong"))
    with pytest.raises(AuthenticationError) as info:
        yield within(reactor, alice.call("sip:bob@example.com"))
    assert info.value.status == 407
    assert info.value.realms == (REALM,)
    assert REALM in str(info.value)
    assert len(alice.wire.requests_sent("INVITE")) == 2
    assert alice.wire.statuses_received("INVITE").count(407) >= 2
    assert alice.calls == set()
    yield settled(reactor, alice)


@pytest_twisted.inlineCallbacks
def test_direct_call_without_proxy(reactor: Any, make_ua: Any) -> None:
    """A UA with no account answers; a caller with no registrar calls its IP URI directly."""
    bob = yield make_ua(None)
    bob.auto_answer = True
    alice = yield make_ua(account("alice", None))
    host, port = bob.local_address
    call = yield within(reactor, alice.call(f"sip:bob@{host}:{port}"))
    assert call.media_params is not None
    assert alice.wire.statuses_received("INVITE")[-1] == 200
    yield within(reactor, call.hangup())
    yield settled(reactor, alice, bob)


@pytest_twisted.inlineCallbacks
def test_ua_stop_hangs_up_live_calls(reactor: Any, proxy: Proxy, make_ua: Any) -> None:
    """UserAgent.stop() sends BYE for each live call before closing the socket."""
    alice, bob, callee = yield registered_pair(reactor, proxy, make_ua)
    call = yield within(reactor, alice.call("sip:bob@example.com"))
    incoming = yield within(reactor, callee.arrived)
    yield within(reactor, incoming.call.confirmed)
    yield within(reactor, alice.stop())
    assert call.ended.called
    reason = yield within(reactor, incoming.call.ended)
    assert reason == "bye"
    yield settled(reactor, bob)
