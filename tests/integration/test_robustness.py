"""Calls and registrations in the awkward cases: crossed hangups, several calls, lost ACK, lost registrar.

Loopback, real reactor, :data:`loopback.FAST` timers; every test ends with
the leak check (no session, no transaction left once the timers ran).
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest
import pytest_twisted
from loopback import (
    Callee,
    Proxy,
    RawPeer,
    account,
    eventually,
    registered_pair,
    request_bytes,
    settled,
    tone,
    within,
)
from twisted.internet import defer

from txsipua.errors import CallFailed, TransactionTimeout
from txsipua.sip.message import Request, Response


@pytest.fixture
def raw_peer(reactor: Any) -> Any:
    """A bare UDP socket on 127.0.0.1 (see :class:`test_requests.RawPeer`)."""
    peer = RawPeer()
    port = reactor.listenUDP(0, peer, interface="127.0.0.1")
    peer.address = ("127.0.0.1", port.getHost().port)  # type: ignore[attr-defined]
    yield peer
    pytest_twisted.blockon(defer.maybeDeferred(port.stopListening))


@pytest_twisted.inlineCallbacks
def test_hangup_right_after_place_call(reactor: Any, proxy: Proxy, make_ua: Any) -> None:
    """hangup() before any response: the CANCEL waits for a 1xx (§9.1); whatever crosses, both sides end."""
    alice, bob, callee = yield registered_pair(reactor, proxy, make_ua)
    call = alice.place_call("sip:bob@example.com")
    reason = yield within(reactor, call.hangup())
    assert reason in ("cancelled", "hangup")
    # bob answers at once, so the 200 may cross the CANCEL: then alice ACKs and sends BYE
    yield eventually(reactor, lambda: all(c.call.ended.called for c in callee.incoming), 2.0, "bob's side to end")
    assert alice.calls == set()
    yield settled(reactor, alice, bob)


@pytest_twisted.inlineCallbacks
def test_two_calls_at_once(reactor: Any, proxy: Proxy, make_ua: Any) -> None:
    """Two concurrent calls between the same UAs: separate dialogs, both hung up cleanly."""
    alice, bob, callee = yield registered_pair(reactor, proxy, make_ua)
    calls = yield within(reactor, defer.gatherResults([alice.call("sip:bob@example.com"),
                                                       alice.call("sip:bob@example.com")]))
    assert calls[0].call_id != calls[1].call_id
    assert calls[0].media.port != calls[1].media.port
    assert alice.core.session_count == 2
    yield eventually(reactor, lambda: bob.core.session_count == 2, 1.0, "bob's two dialogs")
    yield within(reactor, defer.gatherResults([c.hangup() for c in calls]))
    yield settled(reactor, alice, bob)


@pytest_twisted.inlineCallbacks
def test_callee_hangs_up_while_ringing(reactor: Any, proxy: Proxy, make_ua: Any) -> None:
    """The callee gives up before answering: 603 Decline reaches the caller as CallFailed."""
    alice, bob, callee = yield registered_pair(reactor, proxy, make_ua, mode="ring")
    answered = alice.call("sip:bob@example.com")
    incoming = yield within(reactor, callee.arrived)
    yield within(reactor, incoming.call.hangup())
    with pytest.raises(CallFailed) as info:
        yield within(reactor, answered)
    assert info.value.status == 603
    yield settled(reactor, alice, bob)


@pytest_twisted.inlineCallbacks
def test_held_callee_does_not_send_audio(reactor: Any, proxy: Proxy, make_ua: Any) -> None:
    """While held (we offered sendonly, bob answered recvonly) bob's queued audio waits; resume sends it."""
    alice, bob, callee = yield registered_pair(reactor, proxy, make_ua)
    call = yield within(reactor, alice.call("sip:bob@example.com"))
    incoming = yield within(reactor, callee.arrived)
    bob_call = incoming.call
    yield within(reactor, bob_call.confirmed)
    yield within(reactor, call.hold())
    played = bob_call.media.play(tone(0.1))
    sent_before = bob_call.media.stats.packets_sent
    yield within(reactor, call.media.play(tone(0.1)))  # 100 ms of alice's own audio goes out meanwhile
    assert bob_call.media.stats.packets_sent == sent_before
    assert not played.called
    yield within(reactor, call.resume())
    assert (yield within(reactor, played)) is True
    assert bob_call.media.stats.packets_sent >= sent_before + 5
    yield within(reactor, call.hangup())
    yield settled(reactor, alice, bob)


@pytest_twisted.inlineCallbacks
def test_answered_call_without_ack_ends_with_bye(reactor: Any, make_ua: Any, raw_peer: Any) -> None:
    """The 2xx is retransmitted, no ACK ever comes: Timer H, then the UAS sends BYE (§13.3.1.4)."""
    bob = yield make_ua(None)
    callee = Callee(bob, "answer")
    body = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n"
    raw_peer.send(request_bytes("INVITE", bob.local_address, raw_peer.address, body=body,
                                call_id=f"noack-{secrets.token_hex(4)}@192.0.2.1"), bob.local_address)
    incoming = yield within(reactor, callee.arrived)
    reason = yield within(reactor, incoming.call.ended, 3.0)
    assert reason == "no-ack"
    oks = [m for m, _ in raw_peer.wire.received if isinstance(m, Response) and m.status == 200]
    assert len(oks) >= 2, "the 2xx is retransmitted while no ACK comes"
    yield eventually(reactor, lambda: bool(raw_peer.wire.requests_received("BYE")), 1.0, "the BYE")
    bye = raw_peer.wire.requests_received("BYE")[0]
    assert bye.to.tag == "f1" and bye.uri.port == raw_peer.address[1]
    # nobody answers the BYE: it times out (Timer F) and then nothing is left
    yield settled(reactor, bob, timeout=3.5)


@pytest_twisted.inlineCallbacks
def test_refresh_failure_is_reported_and_retried(reactor: Any, proxy: Proxy, make_ua: Any) -> None:
    """The registrar goes away: the refresh times out, on_refresh_failed hears it, a retry is scheduled."""
    ua = yield make_ua(account("alice", proxy))
    reg = ua.registration(2)
    reg.retry_after = 30.0
    reg.random = lambda: 1.0  # the top of the 50-100 % jitter: the first retry after exactly 30 * 2^1 s
    yield within(reactor, reg.start())
    failures: list[Exception] = []
    reg.on_refresh_failed = failures.append
    yield proxy.port.stopListening()
    yield eventually(reactor, lambda: bool(failures), 4.0, "the refresh to fail")
    assert isinstance(failures[0], TransactionTimeout)
    assert reg.next_attempt is not None, "a retry is scheduled"
    assert reg.next_attempt == pytest.approx(reactor.seconds() + 60.0, abs=1.0)
    reg.abandon()
    yield settled(reactor, ua)


@pytest_twisted.inlineCallbacks
def test_in_dialog_message_and_info(reactor: Any, proxy: Proxy, make_ua: Any) -> None:
    """Call.request() sends INFO/MESSAGE inside the dialog; the peer's on_request answers them."""
    alice, bob, callee = yield registered_pair(reactor, proxy, make_ua)
    call = yield within(reactor, alice.call("sip:bob@example.com"))
    incoming = yield within(reactor, callee.arrived)
    yield within(reactor, incoming.call.confirmed)
    got: list[Request] = []

    def on_request(request: Request, respond: Any) -> None:
        got.append(request)
        respond(200)

    bob.on_request = on_request
    response = yield within(reactor, call.request("INFO", b"Signal=5\r\n", "application/dtmf-relay"))
    assert response.status == 200
    response = yield within(reactor, call.request("MESSAGE", b"in dialog", "text/plain"))
    assert response.status == 200
    assert [r.method for r in got] == ["INFO", "MESSAGE"]
    assert all(r.to.tag for r in got)
    assert got[0].body == b"Signal=5\r\n"
    yield within(reactor, call.hangup())
    yield settled(reactor, alice, bob)


