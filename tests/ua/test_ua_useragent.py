"""UserAgent and Registration on a fake reactor: exact datagrams and timings, no sockets, no sleeping.

:class:`UDPClock` is a ``task.Clock`` that also provides ``listenUDP``: the
protocol gets a transport that records what it writes.  Tests play the
registrar by parsing what the UA wrote and feeding responses back through
``datagramReceived``; time moves only with ``clock.advance``.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from uafakes import REALM, UDPClock, alice, reply, requests, sent

from txsipua.auth.challenge import parse_authorization
from txsipua.auth.server import DigestServer
from txsipua.errors import (
    LocalProtocolError,
    RegistrationFailed,
    ResolutionError,
    TransactionTimeout,
)
from txsipua.sip.message import Request, Response
from txsipua.sip.uri import SipURI
from txsipua.ua.config import Configuration
from txsipua.ua.registration import Registration, parse_bindings
from txsipua.ua.transports import UDPTransport
from txsipua.ua.useragent import UserAgent


def test_refresh_delay() -> None:
    """Half the interval for short bindings, 32 s before expiry for long ones, never under 1 s."""
    assert Registration.refresh_delay(1) == 1.0
    assert Registration.refresh_delay(10) == 5.0
    assert Registration.refresh_delay(64) == 32.0
    assert Registration.refresh_delay(3600) == 3568.0


def test_parse_bindings_marks_ours_and_takes_header_expiry() -> None:
    """Contact expires params win over the Expires header; our Contact is found with port 5060 implied."""
    response = Response(200, None, [
        ("Contact", "<sip:alice@192.0.2.10>;expires=30"),
        ("Contact", "<sip:alice@192.0.2.99:5070>"),
        ("Expires", "120"),
    ])
    bindings, granted = parse_bindings(response, SipURI.parse("sip:alice@192.0.2.10:5060"), 600)
    assert [(str(b.contact), b.expires, b.ours) for b in bindings] == [
        ("sip:alice@192.0.2.10", 30, True),
        ("sip:alice@192.0.2.99:5070", 120, False),
    ]
    assert granted == 30


def test_registration_refreshes_with_preemptive_credentials(clock: UDPClock, ua: UserAgent) -> None:
    """401 -> retry -> 200 (100 s); at 68 s the refresh goes out: same Call-ID, CSeq+1, nc 2, no new 401."""
    server = DigestServer(REALM, secrets.token_bytes(32))
    reg = ua.registration(100)
    results: list[Any] = []
    reg.start().addCallback(results.append)
    first = requests(ua, "REGISTER")[-1]
    assert first.headers.get("Expires") == "100" and "Authorization" not in first.headers
    reply(ua, first, 401, response=server.challenge(first, clock.seconds()))
    retried = requests(ua, "REGISTER")[-1]
    assert retried.cseq.seq == first.cseq.seq + 1 and retried.call_id == first.call_id
    contact = ua.core.contact_uri()
    reply(ua, retried, 200, [("Contact", f"<{contact}>;expires=100")])
    assert results and results[0].expires == 100 and reg.registered
    clock.advance(67.9)
    assert len(requests(ua, "REGISTER")) == 2
    clock.advance(0.2)
    refresh = requests(ua, "REGISTER")[-1]
    assert len(requests(ua, "REGISTER")) == 3
    assert refresh.call_id == first.call_id and refresh.from_.tag == first.from_.tag
    assert refresh.cseq.seq == retried.cseq.seq + 1
    a1 = parse_authorization(retried.headers.get("Authorization") or "")
    a2 = parse_authorization(refresh.headers.get("Authorization") or "")
    assert (a2.realm, a2.nonce, a2.nc) == (REALM, a1.nonce, "00000002")


def test_interval_too_brief(clock: UDPClock, ua: UserAgent) -> None:
    """423 with Min-Expires: registered again with that value, which becomes the asked expiry."""
    reg = ua.registration(30)
    results: list[Any] = []
    reg.start().addCallback(results.append)
    reply(ua, requests(ua, "REGISTER")[-1], 423, [("Min-Expires", "300")])
    again = requests(ua, "REGISTER")[-1]
    assert again.headers.get("Expires") == "300"
    reply(ua, again, 200, [("Contact", f"<{ua.core.contact_uri()}>;expires=300")])
    assert results[0].expires == 300 and reg.expires == 300


def test_423_without_min_expires_fails(clock: UDPClock, ua: UserAgent) -> None:
    """A 423 that names no usable Min-Expires ends as RegistrationFailed(423)."""
    failures: list[Any] = []
    ua.registration(30).start().addErrback(failures.append)
    reply(ua, requests(ua, "REGISTER")[-1], 423)
    assert failures and failures[0].check(RegistrationFailed)
    assert failures[0].value.status == 423


def test_refresh_failure_schedules_a_retry(clock: UDPClock, ua: UserAgent) -> None:
    """A refresh with no answer times out (Timer F, 32 s); on_refresh_failed hears it; retry after 60 s (30 * 2^1)."""
    reg = ua.registration(100)
    reg.start()
    reply(ua, requests(ua, "REGISTER")[-1], 200, [("Contact", f"<{ua.core.contact_uri()}>;expires=100")])
    errors: list[Exception] = []
    reg.on_refresh_failed = errors.append
    clock.advance(68)
    n = len(requests(ua, "REGISTER"))
    for _ in range(31):  # t = 99: Timer F (64*T1 = 32 s) has not fired yet
        clock.advance(1)
    assert errors == []
    clock.advance(1.1)  # t = 100.1
    assert len(errors) == 1 and isinstance(errors[0], TransactionTimeout) and errors[0].timer == "F"
    after_failure = len(requests(ua, "REGISTER"))
    assert after_failure > n  # the refresh was retransmitted before it timed out
    clock.advance(59.8)  # t = 159.9
    assert len({r.top_via.branch for r in requests(ua, "REGISTER")}) == 2
    clock.advance(0.3)  # t = 160.2: RFC 5626 §4.5, min(1800, 30 * 2^1) after the failure (t = 100.1) elapsed
    assert len({r.top_via.branch for r in requests(ua, "REGISTER")}) == 3


def test_stop_unregisters_with_expires_zero(clock: UDPClock, ua: UserAgent) -> None:
    """stop(): no refresh any more, REGISTER with Expires: 0; before registering, stop() sends nothing."""
    idle = ua.registration(100)
    done: list[Any] = []
    idle.stop().addCallback(done.append)
    assert done == [None] and requests(ua, "REGISTER") == []
    reg = ua.registration(100)
    reg.start()
    reply(ua, requests(ua, "REGISTER")[-1], 200, [("Contact", f"<{ua.core.contact_uri()}>;expires=100")])
    reg.stop().addCallback(done.append)
    last = requests(ua, "REGISTER")[-1]
    assert last.headers.get("Expires") == "0"
    reply(ua, last, 200)
    assert done[-1].expires == 0 and not reg.registered
    clock.advance(200)
    assert len(requests(ua, "REGISTER")) == 2


def test_unanswered_incoming_call_is_rejected_and_forgotten(clock: UDPClock, ua: UserAgent) -> None:
    """No on_incoming_call and no auto_answer: 480, and the Call does not stay in ua.calls."""
    invite = Request("INVITE", "sip:alice@192.0.2.10", [
        ("Via", "SIP/2.0/UDP 203.0.113.7:5060;branch=z9hG4bKin1"),
        ("Max-Forwards", "70"), ("From", "<sip:bob@example.com>;tag=b1"), ("To", "<sip:alice@example.com>"),
        ("Call-ID", "in1@203.0.113.7"), ("CSeq", "1 INVITE"), ("Contact", "<sip:bob@203.0.113.7>"),
    ])
    ua.protocol.datagramReceived(invite.to_bytes(), ("203.0.113.7", 5060))
    finals = [m for m in sent(ua) if isinstance(m, Response) and m.status >= 200]
    assert [m.status for m in finals] == [480]
    assert ua.calls == set()
    assert ua.core.session_count == 0


def test_call_errors_arrive_as_failures(clock: UDPClock, ua: UserAgent) -> None:
    """A host name needs a resolver (ResolutionError); a UA without account cannot call."""
    failures: list[Any] = []
    ua.call("sip:bob@bob.example.org").addErrback(failures.append)
    assert failures[0].check(ResolutionError)
    anonymous = UserAgent(clock, Configuration(media=False), None, UDPTransport(clock, "192.0.2.11", 0))
    anonymous.start()
    with pytest.raises(LocalProtocolError):
        anonymous.place_call("sip:bob@192.0.2.12")
    with pytest.raises(LocalProtocolError):
        anonymous.require_account()


def test_stop_unregisters_live_registrations(clock: UDPClock, ua: UserAgent) -> None:
    """ua.stop() sends Expires: 0 for each started registration, waits for the 200, leaves no timer."""
    reg = ua.registration(60)
    reg.start()
    reply(ua, requests(ua, "REGISTER")[-1], 200, [("Contact", f"<{ua.core.contact_uri()}>;expires=60")])
    assert ua.registrations == {reg}
    stopped: list[Any] = []
    ua.stop().addCallback(stopped.append)
    last = requests(ua, "REGISTER")[-1]
    assert last.headers.get("Expires") == "0" and stopped == []
    reply(ua, last, 200)
    assert stopped == [None] and reg.state.value == "unregistered" and not reg.registered
    assert ua.registrations == set()
    clock.advance(10)  # Timer K of the un-REGISTER (UDP)
    assert [c for c in clock.getDelayedCalls() if c.active()] == []


def test_stop_abandons_registrations_the_grace_outlives(clock: UDPClock, ua: UserAgent) -> None:
    """A registrar that never answers the un-REGISTER: stop() gives up after the grace; nothing is left armed."""
    reg = ua.registration(60)
    reg.start()
    reply(ua, requests(ua, "REGISTER")[-1], 200, [("Contact", f"<{ua.core.contact_uri()}>;expires=60")])
    stopped: list[Any] = []
    ua.stop(grace=2.0).addCallback(stopped.append)
    clock.advance(1.9)
    assert stopped == []
    clock.advance(0.2)
    assert stopped == [None] and reg.state.value == "unregistered"
    assert [c for c in clock.getDelayedCalls() if c.active()] == []
    n = len(requests(ua, "REGISTER"))
    clock.advance(100)
    assert len(requests(ua, "REGISTER")) == n  # no refresh, no retransmission on the closed transport
    assert [c for c in clock.getDelayedCalls() if c.active()] == []


class _SlowResolver:
    """A resolver whose answers the test gives by hand."""

    def __init__(self) -> None:
        self.asked: list[Any] = []

    def locate(self, uri: Any) -> Any:
        from twisted.internet import defer

        d: Any = defer.Deferred()
        self.asked.append((uri, d))
        return d


def test_a_call_being_located_has_a_state_and_its_call_id(clock: UDPClock) -> None:
    """While the callee's name resolves: state LOCATING, the Call-ID decided (and then used), ICall verified."""
    from zope.interface.verify import verifyObject

    from txsipua.core.useragent import SessionState
    from txsipua.net.resolve import Target
    from txsipua.ua.config import Configuration
    from txsipua.ua.interfaces import ICall
    from txsipua.ua.transports import UDPTransport

    resolver = _SlowResolver()
    agent = UserAgent(clock, Configuration(media=False), alice(), UDPTransport(clock, "192.0.2.10", 0),
                      resolver=resolver)
    agent.start()
    call = agent.place_call("sip:bob@example.com")
    assert call.state is SessionState.LOCATING and call.call_id and call.media_params is None
    assert verifyObject(ICall, call)
    uri, d = resolver.asked[0]
    d.callback([Target("UDP", "203.0.113.7", 5060)])
    invite = requests(agent, "INVITE")[0]
    assert invite.call_id == call.call_id and call.state is SessionState.CALLING
    other = agent.place_call("sip:carol@example.org")  # not located yet
    reasons: list[Any] = []
    other.answered.addErrback(lambda f: None)
    other.hangup().addCallback(reasons.append)
    assert reasons == ["cancelled"] and other.state is SessionState.TERMINATED


def _ringing_call_hung_up(ua: UserAgent) -> Any:
    """place_call, 180, hangup() -> CANCEL, then 200 to the CANCEL and 487 to the INVITE."""
    call = ua.place_call("sip:bob@198.51.100.5")
    invite = requests(ua, "INVITE")[-1]
    reply(ua, invite, 180)
    return call, invite


def test_hangup_while_ringing_fails_answered_with_487_as_documented(clock: UDPClock, ua: UserAgent) -> None:
    """README: answered fails with CallFailed 487 after hangup() while ringing; the documented errback consumes it."""
    from twisted.python.failure import Failure

    from txsipua.errors import CallFailed

    documented, first = _ringing_call_hung_up(ua)

    def cancelled(failure: Failure) -> Failure | None:  # the README's errback
        return None if isinstance(failure.value, CallFailed) else failure

    documented.answered.addErrback(cancelled)
    reasons: list[Any] = []
    documented.hangup().addCallback(reasons.append)
    cancel = requests(ua, "CANCEL")[-1]
    reply(ua, cancel, 200)
    reply(ua, first, 487)
    assert reasons == ["cancelled"]
    results: list[Any] = []
    documented.answered.addBoth(results.append)
    assert results == [None]  # consumed: nothing left for "Unhandled error in Deferred"
    awaited, invite = _ringing_call_hung_up(ua)
    awaited.hangup()
    reply(ua, requests(ua, "CANCEL")[-1], 200)
    reply(ua, invite, 487)
    later: list[Any] = []
    awaited.answered.addErrback(later.append)  # awaiting answered after hangup() raises CallFailed 487
    assert later[0].check(CallFailed) and later[0].value.status == 487
