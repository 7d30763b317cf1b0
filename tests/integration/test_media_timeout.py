"""The media timeout (Configuration.media_timeout): a call whose peer sends nothing is ended with BYE."""

from __future__ import annotations

from typing import Any

import pytest_twisted
from loopback import Callee, Proxy, account, eventually, settled, within
from twisted.internet import defer


@pytest_twisted.inlineCallbacks
def test_silent_peer_is_hung_up_after_media_timeout(reactor: Any, proxy: Proxy, make_ua: Any) -> None:
    """alice's media_timeout is 1 s and bob never sends RTP: alice sends BYE, bob's call ends "bye",
    alice's "media-timeout"."""
    alice = yield make_ua(account("alice", proxy), media_timeout=1.0)
    bob = yield make_ua(account("bob", proxy), idle_silence=False)  # sends nothing while idle
    yield within(reactor, alice.register(600))
    yield within(reactor, bob.register(600))
    callee = Callee(bob)
    call = yield within(reactor, alice.call("sip:bob@example.com"))
    incoming = yield within(reactor, callee.arrived)
    reason = yield within(reactor, incoming.call.ended, 4.0)
    assert reason == "bye"
    yield eventually(reactor, lambda: len(alice.wire.requests_sent("BYE")) == 1, 1.0, "alice's BYE")
    ours = yield within(reactor, call.ended)
    assert ours == "media-timeout"
    yield settled(reactor, alice, bob)


@pytest_twisted.inlineCallbacks
def test_an_idle_listening_peer_keeps_sending_silence(reactor: Any, proxy: Proxy, make_ua: Any) -> None:
    """bob plays nothing (a listening bot): his call still sends silence every ptime, so alice's
    frames() keeps yielding and her 1 s media timeout never fires."""
    alice = yield make_ua(account("alice", proxy), media_timeout=1.0)
    bob = yield make_ua(account("bob", proxy))
    yield within(reactor, alice.register(600))
    yield within(reactor, bob.register(600))
    callee = Callee(bob)
    call = yield within(reactor, alice.call("sip:bob@example.com"))
    incoming = yield within(reactor, callee.arrived)
    yield within(reactor, incoming.call.confirmed)
    heard: list[bytes] = []

    async def listen() -> None:
        async for frame in call.audio.frames(rate=8000):
            heard.append(frame)
            if len(heard) >= 75:  # 1.5 s of frames, past alice's media timeout
                break

    yield within(reactor, defer.Deferred.fromCoroutine(listen()), 4.0)
    assert not call.ended.called and not incoming.call.ended.called
    assert all(frame == bytes(320) for frame in heard)  # silence
    yield within(reactor, call.hangup())
    yield within(reactor, incoming.call.ended)
    yield settled(reactor, alice, bob)
