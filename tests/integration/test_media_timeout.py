"""The media timeout (Configuration.media_timeout): a call whose peer sends nothing is ended with BYE."""

from __future__ import annotations

from typing import Any

import pytest_twisted
from loopback import Callee, Proxy, account, eventually, settled, within


@pytest_twisted.inlineCallbacks
def test_silent_peer_is_hung_up_after_media_timeout(reactor: Any, proxy: Proxy, make_ua: Any) -> None:
    """alice's media_timeout is 1 s and bob never sends RTP: alice sends BYE, bob's call ends "bye"."""
    alice = yield make_ua(account("alice", proxy), media_timeout=1.0)
    bob = yield make_ua(account("bob", proxy))
    yield within(reactor, alice.register(600))
    yield within(reactor, bob.register(600))
    callee = Callee(bob)
    call = yield within(reactor, alice.call("sip:bob@example.com"))
    incoming = yield within(reactor, callee.arrived)
    reason = yield within(reactor, incoming.call.ended, 4.0)
    assert reason == "bye"
    yield eventually(reactor, lambda: len(alice.wire.requests_sent("BYE")) == 1, 1.0, "alice's BYE")
    ours = yield within(reactor, call.ended)
    assert ours == "hangup"
    yield settled(reactor, alice, bob)
