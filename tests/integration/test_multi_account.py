"""Two accounts on one UserAgent and one port, against the test registrar/proxy on loopback."""

from __future__ import annotations

from typing import Any

import pytest_twisted
from loopback import Callee, Proxy, account, within
from twisted.internet import defer

from txsipua.auth.challenge import parse_authorization
from txsipua.ua.call import IncomingCall


@pytest_twisted.inlineCallbacks
def test_two_accounts_register_and_receive_their_own_calls(reactor: Any, proxy: Proxy, make_ua: Any) -> None:
    """alice and carol share one UA: each registers with its own credentials; bob's calls reach the right one."""
    ua = yield make_ua(account("alice", proxy))
    carol = ua.add_account(account("carol", proxy))
    alice_reg = ua.registration(600)
    carol_reg = carol.registration(600)
    yield within(reactor, alice_reg.start())
    yield within(reactor, carol_reg.start())
    regs = ua.wire.requests_sent("REGISTER")
    users = [parse_authorization(r.headers.get("Authorization") or "").username
             for r in regs if r.headers.get("Authorization")]
    assert users == ["alice-auth", "carol-auth"]
    now = reactor.seconds()
    port = ua.local_address[1]
    assert [(b.contact.uri.user, b.contact.uri.port) for b in proxy.core.bindings("sip:carol@example.com", now)] == [
        ("carol", port)]
    assert [(b.contact.uri.user, b.contact.uri.port) for b in proxy.core.bindings("sip:alice@example.com", now)] == [
        ("alice", port)]
    assert carol_reg.registered and alice_reg.registered

    own = Callee(ua)   # the UA's own handler: alice's calls
    for_carol: defer.Deferred[IncomingCall] = defer.Deferred()

    def carol_rings(incoming: IncomingCall) -> None:
        incoming.answer()
        for_carol.callback(incoming)

    carol.on_incoming_call = carol_rings
    bob = yield make_ua(account("bob", proxy))
    call = yield within(reactor, bob.call("sip:carol@example.com"))
    incoming = yield within(reactor, for_carol)
    assert incoming.request.uri.user == "carol" and own.incoming == []
    assert call.session.dialog.remote_target.user == "carol"  # her 2xx carried her Contact
    yield within(reactor, call.hangup())
    call = yield within(reactor, bob.call("sip:alice@example.com"))
    assert len(own.incoming) == 1 and own.incoming[0].request.uri.user == "alice"
    yield within(reactor, call.hangup())
    # carol calls bob through the proxy as herself (From carol, her credentials)
    yield within(reactor, bob.register(600))
    Callee(bob)
    out = yield within(reactor, carol.call("sip:bob@example.com"))
    invites = [r for r in ua.wire.requests_sent("INVITE") if r.from_.uri.user == "carol"]
    assert invites and all(r.headers.get("Contact") == f"<sip:carol@127.0.0.1:{port}>" for r in invites)
    proxy_auth = [r.headers.get("Proxy-Authorization") for r in invites if r.headers.get("Proxy-Authorization")]
    assert proxy_auth and all('username="carol-auth"' in (a or "") for a in proxy_auth)
    yield within(reactor, out.hangup())
    yield within(reactor, carol_reg.stop())
    assert proxy.core.bindings("sip:carol@example.com", reactor.seconds()) == []
    assert len(proxy.core.bindings("sip:alice@example.com", reactor.seconds())) == 1
