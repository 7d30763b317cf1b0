"""StreamDriver keep-alive hooks on real loopback TCP (RFC 5626 §3.5.1): ping, pong counted, flow closed."""

from __future__ import annotations

from typing import Any

import pytest_twisted
from twisted.internet import defer, reactor, task

from txsipua.core.transaction import Timers
from txsipua.core.useragent import UserAgentCore
from txsipua.net.stream import StreamDriver
from txsipua.sip.uri import SipURI
from txsipua.sip.values import NameAddr

FAST = Timers(t1=0.05, t2=0.4, t4=0.5)


def core(user: str) -> UserAgentCore:
    return UserAgentCore(local=("127.0.0.1", 0), transport="TCP", reliable=True, timers=FAST, contact_user=user)


def options(client_core: UserAgentCore, port: int) -> None:
    """Send an OPTIONS to the server (opening a connection when there is none)."""
    req = client_core.new_request("OPTIONS", SipURI.parse(f"sip:bob@127.0.0.1:{port};transport=tcp"),
                                  NameAddr(SipURI.parse("sip:alice@example.com")),
                                  NameAddr(SipURI.parse("sip:bob@example.com")))
    client_core.send_request(req, ("127.0.0.1", port), reactor.seconds())


@defer.inlineCallbacks
def until(predicate: Any, what: str, timeout: float = 3.0) -> Any:
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        yield task.deferLater(reactor, 0.01, lambda: None)
    raise AssertionError(f"timed out waiting for {what}")


@pytest_twisted.inlineCallbacks
def test_ping_pong_and_a_closed_flow_are_seen_by_the_client() -> Any:
    """A double-CRLF ping on the connection we opened gets a CRLF pong (counted); the server closing
    it tells the flow listeners; drop_flow forgets a connection at once."""
    server_core, client_core = core("bob"), core("alice")
    server = StreamDriver(reactor, server_core, lambda e: None)
    client = StreamDriver(reactor, client_core, lambda e: None)
    port = server.listen_tcp(0, "127.0.0.1").getHost().port
    dest = ("127.0.0.1", port)
    closed: list[Any] = []
    client.flow_listeners.append(closed.append)
    try:
        assert client.send_keepalive(dest) is False and client.pongs_received(dest) is None
        options(client_core, port)
        client.pump()
        yield until(lambda: client.pongs_received(dest) is not None, "the connection")
        assert client.pongs_received(dest) == 0
        assert client.send_keepalive(dest) is True
        yield until(lambda: client.pongs_received(dest) == 1, "the pong")
        # the server closes its side: the client's flow listeners hear the destination
        for conn in list(server.connections.values()):
            conn.transport.loseConnection()
        yield until(lambda: closed == [dest], "the flow listener")
        assert client.send_keepalive(dest) is False
        # a new connection, then dropped on our side: forgotten at once, no listener call for it
        options(client_core, port)
        client.pump()
        yield until(lambda: client.pongs_received(dest) is not None, "the second connection")
        client.drop_flow(dest)
        assert client.pongs_received(dest) is None
        yield task.deferLater(reactor, 0.1, lambda: None)
        assert closed == [dest]
    finally:
        yield client.stop()
        yield server.stop()
