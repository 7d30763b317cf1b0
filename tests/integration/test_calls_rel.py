"""Two UserAgents on loopback: reliable 180 with PRACK, UPDATE through CallMedia, session timer headers."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor

from txsipua.core.transaction import Timers
from txsipua.sip.message import parse_message
from txsipua.ua.account import Account
from txsipua.ua.config import Configuration
from txsipua.ua.transports import UDPTransport
from txsipua.ua.useragent import UserAgent

FAST = Timers(t1=0.02, t2=0.16, t4=0.2, d=0.2)


def _pair(wire: list[Any], use_100rel: bool = True, **alice_config: Any) -> tuple[UserAgent, UserAgent]:
    bob = UserAgent(reactor, Configuration(timers=FAST, use_100rel=use_100rel), None,
                    UDPTransport(reactor, "127.0.0.1", 0))
    bob.auto_answer = True
    account = Account(user="alice", domain="example.com")
    alice = UserAgent(reactor, Configuration(timers=FAST, **alice_config), account,
                      UDPTransport(reactor, "127.0.0.1", 0),
                      trace=lambda d, data, peer: wire.append((d, parse_message(data))))
    return alice, bob


@pytest_twisted.inlineCallbacks
def test_prack_update_and_session_timer_between_two_user_agents() -> Any:
    """Alice asks a 90 s session timer; Bob's 180 is reliable and PRACKed; the 200 names alice the
    refresher; alice's UPDATE putting Bob on hold is answered through CallMedia (recvonly), and
    resuming by UPDATE restores sendrecv; the call ends with BYE."""
    wire: list[Any] = []
    alice, bob = _pair(wire, session_expires=90)
    _host, port = yield bob.start()
    yield alice.start()
    try:
        call = yield alice.call(f"sip:bob@127.0.0.1:{port}")
        ringing = [m for d, m in wire if d == "recv" and not m.is_request and m.status == 180]
        assert ringing and ringing[0].headers.get("Require") == "100rel"
        pracks = [m for d, m in wire if d == "send" and m.is_request and m.method == "PRACK"]
        assert pracks and pracks[0].headers.get("RAck") == f"{ringing[0].headers.get('RSeq')} 1 INVITE"
        ok = [m for d, m in wire if d == "recv" and not m.is_request and m.status == 200
              and m.cseq.method == "INVITE"][0]
        assert ok.headers.get("Session-Expires") == "90;refresher=uac"
        assert call.session.timer.we_refresh
        response = yield call.update("sendonly")
        assert response.status == 200
        assert call.media_params.direction == "sendonly"
        (bob_call,) = list(bob.calls)
        assert bob_call.media_params.direction == "recvonly"
        response = yield call.update("sendrecv")
        assert response.status == 200 and call.media_params.direction == "sendrecv"
        yield call.hangup()
    finally:
        yield alice.stop()
        yield bob.stop()


@pytest_twisted.inlineCallbacks
def test_without_use_100rel_the_180_is_unreliable() -> Any:
    """A callee with use_100rel off rings with an ordinary 180 to a caller that only supports 100rel."""
    wire: list[Any] = []
    alice, bob = _pair(wire, use_100rel=False)
    _host, port = yield bob.start()
    yield alice.start()
    try:
        call = yield alice.call(f"sip:bob@127.0.0.1:{port}")
        ringing = [m for d, m in wire if d == "recv" and not m.is_request and m.status == 180]
        assert ringing and ringing[0].headers.get("RSeq") is None
        assert not [m for d, m in wire if d == "send" and m.is_request and m.method == "PRACK"]
        yield call.hangup()
    finally:
        yield alice.stop()
        yield bob.stop()


def test_configuration_checks_the_new_fields() -> None:
    """use_100rel is a bool; session_expires and min_se are at least 90 s, session_expires >= min_se."""
    assert Configuration().use_100rel is True and Configuration().session_expires is None
    assert Configuration().min_se == 90
    for bad in ({"use_100rel": 1}, {"session_expires": 60}, {"min_se": 30},
                {"session_expires": 100, "min_se": 200}):
        with pytest.raises((ValueError, TypeError)):
            Configuration(**bad)
