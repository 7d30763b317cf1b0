"""SIP over WebSocket (RFC 7118) against Kamailio 5.6 with its websocket module, on 127.0.0.1.

txsipua's WSTransport opens ws://127.0.0.1:PORT/ with the sip subprotocol,
registers with digest (401, then the answer), and Kamailio's location table
holds the binding with transport=ws; an OPTIONS over the same WebSocket is
answered; unregistering clears the binding.  Skips (fails under CI) when
Kamailio or its websocket module is missing.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer

from txsipua.auth.credentials import Credential, InMemoryCredentials
from txsipua.ua.account import Account
from txsipua.ua.config import Configuration
from txsipua.ua.useragent import UserAgent

pytestmark = pytest.mark.interop

pytest.importorskip("autobahn", reason="SIP over WebSocket needs autobahn (pip install 'txsipua[ws]')")

from txsipua.ua.wstransports import WSTransport  # noqa: E402


@pytest_twisted.inlineCallbacks
def test_register_over_websocket_with_digest(kamailio_factory: Any) -> Any:
    """REGISTER over ws:// to Kamailio: 401, answered, 200; the binding is ours, over WS."""
    from twisted.internet import reactor

    kam = kamailio_factory(websocket=True)
    alice = kam.users["alice"]
    account = Account(
        user=alice.user, domain=alice.domain, registrar=kam.ws_uri,
        credentials=InMemoryCredentials([Credential(alice.realm, alice.auth_username, alice.password)]),
    )
    sent: list[bytes] = []
    ua = UserAgent(reactor, Configuration(media=False), account, WSTransport(reactor, "127.0.0.1", 0),
                   trace=lambda direction, data, peer: sent.append(data) if direction == "send" else None)
    yield ua.start()
    try:
        result = yield ua.register(60).addTimeout(10, reactor)
        assert result.response.status == 200 and 0 < result.expires <= 60
        assert [b for b in result.bindings if b.ours], "Kamailio lists our Contact back"
        assert all(d.split(b"\r\n", 2)[1].startswith(b"Via: SIP/2.0/WS ") for d in sent)
        contacts = yield _later(reactor, lambda: kam.contacts(alice.user))
        assert len(contacts) == 1 and "transport=ws" in contacts[0].contact
        assert len(kam.received("REGISTER")) == 2  # challenged (401), then answered
        ping = yield ua.options(f"sip:127.0.0.1:{kam.ws_port};transport=ws").addTimeout(10, reactor)
        assert ping.status == 200
        result = yield ua.register(0).addTimeout(10, reactor)
        assert result.response.status == 200
        contacts = yield _later(reactor, lambda: kam.contacts(alice.user))
        assert contacts == []
    finally:
        yield ua.stop()


def _later(reactor: Any, fn: Any) -> defer.Deferred[Any]:
    """``fn()`` run in a thread (the RPC blocks), so the reactor keeps serving the WebSocket."""
    from twisted.internet import threads

    return threads.deferToThread(fn)
