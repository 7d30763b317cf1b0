"""Limits on accepted TCP/TLS connections: handshake and idle timeouts, connection cap, buffer cap.

Sans-IO style on a MemoryReactorClock and StringTransports, plus one loopback check that a
silent TLS client is cut off by the handshake timeout.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, task
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import ConnectionAborted, ConnectionDone
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from zope.interface import directlyProvides

from txsipua.core.useragent import UserAgentCore
from txsipua.net.stream import (
    FIRST_MESSAGE_TIMEOUT,
    HANDSHAKE_TIMEOUT,
    IDLE_TIMEOUT,
    MESSAGE_TIMEOUT,
    SIPStreamProtocol,
    StreamDriver,
    source_key,
)

OPTIONS = (
    b"OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.40:5060;branch=z9hG4bK-s1\r\n"
    b"Max-Forwards: 70\r\nFrom: <sip:eve@example.org>;tag=e1\r\nTo: <sip:bob@example.com>\r\n"
    b"Call-ID: s1@192.0.2.40\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
)


def driver(**kwargs: Any) -> tuple[StreamDriver, MemoryReactorClock]:
    reactor = MemoryReactorClock()
    core = UserAgentCore(local=("127.0.0.1", 5060), transport="TCP", reliable=True)
    return StreamDriver(reactor, core, lambda e: None, **kwargs), reactor


class Conn:
    """An accepted connection on a StringTransport; closing it runs connectionLost."""

    def __init__(self, drv: StreamDriver, port: int, tls: bool = False) -> None:
        self.protocol: SIPStreamProtocol = drv.server_factory().buildProtocol(IPv4Address("TCP", "127.0.0.1", port))
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", port))
        if tls:
            directlyProvides(self.transport, ISSLTransport)
        self.protocol.makeConnection(self.transport)

    @property
    def closed(self) -> bool:
        return bool(self.transport.disconnecting)

    def lose(self, reason: Any = ConnectionDone) -> None:
        self.protocol.connectionLost(Failure(reason()))


def test_defaults_are_sensible():
    drv, _ = driver()
    assert drv.handshake_timeout == HANDSHAKE_TIMEOUT == 10.0
    assert drv.idle_timeout == IDLE_TIMEOUT == 300.0
    assert drv.max_connections == 256 and drv.max_message_size == 65535


def test_idle_connection_is_closed_and_traffic_keeps_it_open():
    drv, clock = driver(idle_timeout=30)
    c = Conn(drv, 40001)
    clock.advance(20)
    c.protocol.dataReceived(b"\r\n\r\n")  # a keepalive is traffic
    clock.advance(20)
    assert not c.closed
    c.protocol.dataReceived(OPTIONS)  # the core answers: a write
    clock.advance(29)
    assert not c.closed
    clock.advance(2)
    assert c.closed
    c.lose(ConnectionAborted)
    assert drv.accepted == 0 and not clock.getDelayedCalls()


def test_idle_timeout_none_never_closes():
    drv, clock = driver(idle_timeout=None, first_message_timeout=None)
    c = Conn(drv, 40001)
    clock.advance(100_000)
    assert not c.closed


def test_tls_handshake_timeout():
    drv, clock = driver(handshake_timeout=5, idle_timeout=None)
    slow = Conn(drv, 40001, tls=True)
    quick = Conn(drv, 40002, tls=True)
    plain = Conn(drv, 40003)
    clock.advance(1)
    quick.protocol.handshakeCompleted()
    clock.advance(4.5)
    assert slow.closed and not quick.closed and not plain.closed


def test_connection_cap_closes_new_ones_and_frees_slots():
    drv, _ = driver(max_connections=2)
    a, b = Conn(drv, 40001), Conn(drv, 40002)
    c = Conn(drv, 40003)
    assert c.closed and not a.closed and not b.closed
    assert drv.accepted == 2 and drv.refused_connections == 1
    c.lose(ConnectionAborted)
    assert drv.accepted == 2 and set(drv.connections) == {("127.0.0.1", 40001), ("127.0.0.1", 40002)}
    a.lose()
    d = Conn(drv, 40004)
    assert not d.closed and drv.accepted == 2


def test_outbound_connections_do_not_count():
    drv, clock = driver(max_connections=1, idle_timeout=1)
    out = SIPStreamProtocol(drv, outbound=True, destination=("127.0.0.1", 5070))
    t = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 5070))
    out.makeConnection(t)
    clock.advance(10)
    assert drv.accepted == 0 and not t.disconnecting
    assert not Conn(drv, 40001).closed


@pytest.mark.parametrize("attack", [
    b"OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n" + b"X-Endless: " + b"a" * 70_000,
    OPTIONS.replace(b"Content-Length: 0", b"Content-Length: 999999999"),
])
def test_buffer_cap_disconnects_and_frees(attack):
    drv, _ = driver(max_message_size=65535)
    c = Conn(drv, 40001)
    for i in range(0, len(attack), 4096):
        c.protocol.dataReceived(attack[i:i + 4096])
        if c.closed:
            break
    assert c.closed
    assert c.protocol.framer.buffered == 0
    c.lose(ConnectionAborted)
    assert drv.connections == {} and drv.accepted == 0


def test_smaller_buffer_cap_is_honoured():
    drv, _ = driver(max_message_size=1024)
    c = Conn(drv, 40001)
    c.protocol.dataReceived(OPTIONS.replace(b"Content-Length: 0", b"Content-Length: 2000"))
    assert c.closed


@pytest_twisted.inlineCallbacks
def test_silent_tls_client_is_cut_off_on_loopback():
    """A TCP client that never starts the TLS handshake is closed after handshake_timeout."""
    pytest.importorskip("OpenSSL")
    from twisted.internet import reactor
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

    from txsipua.testing.tls import self_signed

    server_ctx, _ = self_signed()
    core = UserAgentCore(local=("127.0.0.1", 0), transport="TLS", reliable=True)
    drv = StreamDriver(reactor, core, lambda e: None, handshake_timeout=0.3)
    port = drv.listen_tls(server_ctx).getHost().port
    lost: defer.Deferred[None] = defer.Deferred()

    class Silent(Protocol):
        def connectionLost(self, reason: Any = None) -> None:  # noqa: N802
            lost.callback(None)

    try:
        yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), Silent())
        started = reactor.seconds()
        timeout = reactor.callLater(5, lambda: lost.called or lost.errback(TimeoutError("still open")))
        yield lost
        if timeout.active():
            timeout.cancel()
        assert 0.2 < reactor.seconds() - started < 3
        yield task.deferLater(reactor, 0.05, lambda: None)
        assert drv.accepted == 0
    finally:
        yield drv.stop()


@pytest_twisted.inlineCallbacks
def test_connection_cap_on_loopback():
    """Real TCP: with max_connections=2 the third client is closed at once; the first two stay."""
    from twisted.internet import reactor
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

    core = UserAgentCore(local=("127.0.0.1", 0), transport="TCP", reliable=True)
    drv = StreamDriver(reactor, core, lambda e: None, max_connections=2)
    port = drv.listen_tcp().getHost().port
    clients: list[Any] = []

    class Client(Protocol):
        def __init__(self) -> None:
            self.lost = False

        def connectionLost(self, reason: Any = None) -> None:  # noqa: N802
            self.lost = True

    try:
        for _ in range(3):
            c = Client()
            yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), c)
            clients.append(c)
            yield task.deferLater(reactor, 0.05, lambda: None)
        for _ in range(40):
            if clients[2].lost:
                break
            yield task.deferLater(reactor, 0.05, lambda: None)
        assert [c.lost for c in clients] == [False, False, True]
        assert drv.accepted == 2 and drv.refused_connections == 1
    finally:
        for c in clients:
            if c.transport is not None and not c.lost:
                c.transport.loseConnection()
        yield drv.stop()


def test_a_slow_drip_is_cut_off_by_the_message_deadline():
    """One byte every 100 s keeps resetting the idle timeout; the message deadline ends it (review F2)."""
    drv, clock = driver()
    assert drv.message_timeout == MESSAGE_TIMEOUT == 30.0
    c = Conn(drv, 40001)
    for i in range(3):  # a byte at 0, 10 and 20 s: never idle
        c.protocol.dataReceived(OPTIONS[i:i + 1])
        clock.advance(10 if i < 2 else 9.9)
    assert not c.closed
    clock.advance(0.2)
    assert c.closed  # 30 s after the message's first byte
    c.lose(ConnectionAborted)
    assert drv.accepted == 0 and not clock.getDelayedCalls()


def test_complete_messages_and_keepalives_start_no_deadline():
    drv, clock = driver(message_timeout=5, idle_timeout=None)
    c = Conn(drv, 40001)
    for _ in range(4):
        c.protocol.dataReceived(b"\r\n\r\n")
        c.protocol.dataReceived(OPTIONS)
        clock.advance(4)
    assert not c.closed
    # a message split in two, its halves 4 s apart, then the next one started
    c.protocol.dataReceived(OPTIONS[:50])
    clock.advance(4)
    c.protocol.dataReceived(OPTIONS[50:] + OPTIONS[:10])  # completes one, starts another: a new deadline
    clock.advance(4)
    assert not c.closed
    clock.advance(1.5)
    assert c.closed


def test_message_timeout_none_never_closes():
    drv, clock = driver(message_timeout=None, idle_timeout=None, first_message_timeout=None)
    c = Conn(drv, 40001)
    c.protocol.dataReceived(OPTIONS[:5])
    clock.advance(100_000)
    assert not c.closed


def test_connections_per_source_are_capped():
    """One address cannot take every slot (review F2): past the per-source cap, refused and logged."""
    drv, _ = driver(max_connections_per_source=2)
    assert driver()[0].max_connections_per_source == 32
    a, b = Conn(drv, 40001), Conn(drv, 40002)
    c = Conn(drv, 40003)
    assert c.closed and not a.closed and not b.closed
    assert drv.refused_connections == 1 and drv.connections_from("127.0.0.1") == 2
    c.lose(ConnectionAborted)
    assert drv.connections_from("127.0.0.1") == 2
    other = Conn.__new__(Conn)  # another source address takes a slot
    other.protocol = drv.server_factory().buildProtocol(IPv4Address("TCP", "127.0.0.2", 40004))
    other.transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.2", 40004))
    other.protocol.makeConnection(other.transport)
    assert not other.closed and drv.connections_from("127.0.0.2") == 1
    a.lose()
    d = Conn(drv, 40005)
    assert not d.closed and drv.connections_from("127.0.0.1") == 2 and drv.accepted == 3
    for conn in (b, d, other):
        conn.lose()
    assert drv.accepted == 0 and drv.connections_from("127.0.0.1") == 0


def test_a_connection_that_never_sends_a_message_is_closed():
    """Keepalive CRLFs alone do not hold a slot: no complete message 60 s after accept closes it."""
    drv, clock = driver()
    assert drv.first_message_timeout == FIRST_MESSAGE_TIMEOUT == 60.0
    idle, used = Conn(drv, 40001), Conn(drv, 40002)
    used.protocol.dataReceived(OPTIONS)
    for _ in range(5):  # a CRLF every 11 s: never idle, never a message
        clock.advance(11)
        idle.protocol.dataReceived(b"\r\n\r\n")
    clock.advance(4.9)
    assert not idle.closed
    clock.advance(0.2)
    assert idle.closed and not used.closed
    idle.lose(ConnectionAborted)
    used.lose()
    assert drv.accepted == 0 and not clock.getDelayedCalls()


def test_an_ipv6_64_counts_as_one_source():
    """Addresses of one IPv6 /64 share the per-source cap; IPv4-mapped counts as its IPv4 address."""
    assert source_key("2001:db8:1:2:aaaa::1") == source_key("2001:db8:1:2::ffff") == "2001:db8:1:2::/64"
    assert source_key("2001:db8:1:3::1") != source_key("2001:db8:1:2::1")
    assert source_key("::ffff:192.0.2.7") == "192.0.2.7" == source_key("192.0.2.7")
    drv, _ = driver(max_connections_per_source=2)
    conns = []
    for n in range(3):
        c = Conn.__new__(Conn)
        c.protocol = drv.server_factory().buildProtocol(IPv6Address("TCP", f"2001:db8::{n + 1}", 40000 + n))
        c.transport = StringTransport(peerAddress=IPv6Address("TCP", f"2001:db8::{n + 1}", 40000 + n))
        c.protocol.makeConnection(c.transport)
        conns.append(c)
    assert [c.closed for c in conns] == [False, False, True]
    assert drv.connections_from("2001:db8::99") == 2

