"""RFC 3263 failover on loopback, through a real in-process DNS server on 127.0.0.1 (twisted.names).

The zone names the test domain, ``example.com`` (so that the test registrar
knows the name as its own); its SRV records point at servers on 127.0.0.1: one
that never answers, one that answers 503 with Retry-After, and the test
registrar.  Nothing is asked of any outside DNS server.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
from loopback import Proxy, Zone, account, within
from twisted.internet.protocol import DatagramProtocol
from twisted.names import client, dns, server

from txsipua.core.builders import make_response
from txsipua.net.resolve import SIPResolver
from txsipua.sip.message import Request, parse_message

NAME = "example.com"


class CountingZone(Zone):
    """The loopback zone, counting the questions that reach it."""

    def __init__(self, records: dict[tuple[str, int], list[Any]]) -> None:
        super().__init__(records)
        self.questions: list[tuple[str, int]] = []

    def _lookup(self, name: Any, cls: int, type: int, timeout: Any) -> Any:
        self.questions.append((name.decode() if isinstance(name, bytes) else str(name), type))
        return super()._lookup(name, cls, type, timeout)


class Server(DatagramProtocol):
    """A SIP server on 127.0.0.1 that drops every request, or answers each with ``status``."""

    def __init__(self, status: int | None = None, retry_after: int | None = None) -> None:
        self.status = status
        self.retry_after = retry_after
        self.received: list[Request] = []

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:  # noqa: N802
        msg = parse_message(datagram)
        if not isinstance(msg, Request):
            return
        self.received.append(msg)
        if self.status is not None and msg.method != "ACK":
            extra = [("Retry-After", str(self.retry_after))] if self.retry_after is not None else []
            response = make_response(msg, self.status, to_tag="s503", headers=extra)
            assert self.transport is not None
            self.transport.write(response.to_bytes(), addr)  # type: ignore[call-arg]


@pytest.fixture
def listen(reactor: Any) -> Iterator[Any]:
    """``listen(protocol) -> port number`` on 127.0.0.1 UDP; closed at teardown."""
    ports: list[Any] = []

    def go(protocol: Any) -> int:
        port = reactor.listenUDP(0, protocol, interface="127.0.0.1")
        ports.append(port)
        return int(port.getHost().port)

    yield go
    for port in ports:
        pytest_twisted.blockon(port.stopListening() or _done())


def _done() -> Any:
    from twisted.internet import defer

    return defer.succeed(None)


def _dns(reactor: Any, listen: Any, records: dict[tuple[str, int], list[Any]]) -> tuple[CountingZone, SIPResolver]:
    zone = CountingZone(records)
    factory = server.DNSServerFactory(clients=[zone])
    port = listen(dns.DNSDatagramProtocol(factory))
    resolver = client.Resolver(servers=[("127.0.0.1", port)], reactor=reactor)
    return zone, SIPResolver(resolver, clock=reactor.seconds, random=lambda: 0.5)


def _srv(*targets: tuple[int, int, str]) -> list[Any]:
    return [dns.Record_SRV(priority, 0, port, name) for priority, port, name in targets]


@pytest_twisted.inlineCallbacks
def test_register_fails_over_from_a_silent_server_to_the_registrar(reactor: Any, proxy: Proxy,
                                                                    make_ua: Any, listen: Any) -> None:
    """SRV priority 10 never answers: after Timer F the REGISTER goes to priority 20 (a new branch), and succeeds."""
    silent = Server()
    dead = listen(silent)
    zone, resolver = _dns(reactor, listen, {
        (f"_sip._udp.{NAME}", dns.SRV): _srv((10, dead, f"a.{NAME}"), (20, proxy.address[1], f"b.{NAME}")),
        (f"a.{NAME}", dns.A): [dns.Record_A("127.0.0.1")],
        (f"b.{NAME}", dns.A): [dns.Record_A("127.0.0.1")],
    })
    ua = yield make_ua(account("alice", None, registrar=f"sip:{NAME}"), resolver=resolver)
    result = yield within(reactor, ua.register(600), 6.0)
    assert result.response.status == 200 and result.expires == 600
    assert silent.received, "the first target was tried first"
    first_branch = silent.received[0].top_via.branch
    at_registrar = proxy.wire.requests_received("REGISTER")
    assert at_registrar and all(m.top_via.branch != first_branch for m in at_registrar)
    # the guard trusted the registrar's name where location put it: the retry carried credentials
    assert any(m.headers.get("Authorization") for m in at_registrar)
    assert (f"_sip._udp.{NAME}", dns.SRV) in zone.questions
    # the silent server is remembered as failed: the next REGISTER (a refresh) goes to the registrar first
    tried = len(silent.received)
    result = yield within(reactor, ua.register(600), 2.0)
    assert result.response.status == 200 and len(silent.received) == tried


@pytest_twisted.inlineCallbacks
def test_503_retry_after_skips_that_server_for_later_requests(reactor: Any, proxy: Proxy,
                                                              make_ua: Any, listen: Any) -> None:
    """A 503 Retry-After: 60 moves the REGISTER on at once; the next REGISTER goes straight to the registrar.

    The location is cached for its TTL: the second REGISTER asks the DNS server nothing.
    """
    busy = Server(503, retry_after=60)
    port503 = listen(busy)
    zone, resolver = _dns(reactor, listen, {
        (f"_sip._udp.{NAME}", dns.SRV): _srv((10, port503, f"a.{NAME}"), (20, proxy.address[1], f"b.{NAME}")),
        (f"a.{NAME}", dns.A): [dns.Record_A("127.0.0.1")],
        (f"b.{NAME}", dns.A): [dns.Record_A("127.0.0.1")],
    })
    ua = yield make_ua(account("alice", None, registrar=f"sip:{NAME}"), resolver=resolver)
    start = reactor.seconds()
    result = yield within(reactor, ua.register(600))
    assert result.response.status == 200
    assert reactor.seconds() - start < 1.0, "failover on 503 does not wait for a timer"
    assert len(busy.received) == 1
    until = ua.unavailable.until(("127.0.0.1", port503), reactor.seconds())
    assert until is not None and 59 < until - reactor.seconds() <= 60
    asked = len(zone.questions)
    result = yield within(reactor, ua.register(600))
    assert result.response.status == 200
    assert len(busy.received) == 1, "the 503 server is skipped while its Retry-After lasts"
    assert len(zone.questions) == asked, "the location came from the cache (TTL 60 s)"


@pytest_twisted.inlineCallbacks
def test_invite_fails_over_and_the_call_is_answered(reactor: Any, proxy: Proxy, make_ua: Any, listen: Any) -> None:
    """An INVITE through an outbound proxy name: the first server answers 503, the call goes through the second."""
    from loopback import Callee

    busy = Server(503)
    port503 = listen(busy)
    _, resolver = _dns(reactor, listen, {
        (f"_sip._udp.{NAME}", dns.SRV): _srv((10, port503, f"a.{NAME}"), (20, proxy.address[1], f"b.{NAME}")),
        (f"a.{NAME}", dns.A): [dns.Record_A("127.0.0.1")],
        (f"b.{NAME}", dns.A): [dns.Record_A("127.0.0.1")],
    })
    alice = yield make_ua(account("alice", None, registrar=f"sip:{NAME}", outbound_proxy=f"sip:{NAME}"),
                          resolver=resolver)
    bob = yield make_ua(account("bob", proxy))
    yield within(reactor, bob.register(600))
    Callee(bob)
    call = yield within(reactor, alice.call("sip:bob@example.com"), 5.0)
    assert [m.method for m in busy.received] == ["INVITE", "ACK"]  # the 503 was ACKed (§17.1.1.3)
    yield within(reactor, call.hangup())


@pytest_twisted.inlineCallbacks
def test_tcp_connection_refused_fails_over_at_once(reactor: Any, listen: Any) -> None:
    """Over TCP, a refused connection to the first SRV target is a transport error: the next is tried at once."""
    import socket

    from loopback import FAST

    from txsipua.ua.config import Configuration
    from txsipua.ua.registrar import Registrar
    from txsipua.ua.transports import TCPTransport
    from txsipua.ua.useragent import UserAgent

    registrar_ua = UserAgent(reactor, Configuration(timers=FAST, media=False), None, TCPTransport(reactor))
    registrar = Registrar(registrar_ua, min_expires=1)
    registrar_ua.on_request = registrar.handle
    _, good = yield registrar_ua.start()
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        refused = s.getsockname()[1]
    _, resolver = _dns(reactor, listen, {
        (f"_sip._tcp.{NAME}", dns.SRV): _srv((10, refused, f"a.{NAME}"), (20, good, f"b.{NAME}")),
        (f"a.{NAME}", dns.A): [dns.Record_A("127.0.0.1")],
        (f"b.{NAME}", dns.A): [dns.Record_A("127.0.0.1")],
    })
    resolver.transports = ("TCP",)
    tried: list[int] = []
    alice = UserAgent(reactor, Configuration(timers=FAST, media=False), account("alice", None), TCPTransport(reactor),
                      resolver=resolver, trace=lambda way, data, peer: tried.append(peer[1]) if way == "send" else None)
    yield alice.start()
    try:
        start = reactor.seconds()
        result = yield within(reactor, alice.register(600))
        assert result.response.status == 200 and reactor.seconds() - start < 1.0
        assert list(registrar.bindings) == ["sip:alice@example.com"]
        assert tried[0] == refused and good in tried
    finally:
        yield alice.stop()
        yield registrar_ua.stop()
