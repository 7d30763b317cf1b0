"""SIP over WebSocket (RFC 7118) on loopback: REGISTER to the test registrar over ws:// and wss://, bad frames."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from loopback import FAST, Wire, within
from twisted.internet import defer

from txsipua.sip.message import Request
from txsipua.ua.account import Account
from txsipua.ua.config import Configuration
from txsipua.ua.registrar import Registrar
from txsipua.ua.useragent import UserAgent

pytest.importorskip("autobahn", reason="SIP over WebSocket needs autobahn (pip install 'txsipua[ws]')")

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol  # noqa: E402
from twisted.internet.endpoints import TCP4ClientEndpoint  # noqa: E402

from txsipua.ua.wstransports import WSSTransport, WSTransport  # noqa: E402


@defer.inlineCallbacks
def _registrar(reactor: Any, transport: Any) -> Any:
    ua = UserAgent(reactor, Configuration(timers=FAST, media=False), None, transport)
    registrar = Registrar(ua, min_expires=1)
    ua.on_request = registrar.handle
    address = yield ua.start()
    return ua, registrar, address


@pytest_twisted.inlineCallbacks
def test_register_over_ws(reactor: Any) -> Any:
    """alice registers over ws:// with the sip subprotocol; Via says SIP/2.0/WS, Contact transport=ws."""
    server, registrar, (host, port) = yield _registrar(reactor, WSTransport(reactor, "127.0.0.1", 0))
    wire = Wire()
    alice = UserAgent(reactor, Configuration(timers=FAST, media=False),
                      Account(user="alice", domain="example.com", registrar=f"sip:{host}:{port};transport=ws"),
                      WSTransport(reactor, "127.0.0.1", 0), trace=wire.trace)
    yield alice.start()
    try:
        result = yield within(reactor, alice.register(300))
        assert result.response.status == 200 and result.expires == 300
        (sent,) = wire.requests_sent("REGISTER")
        assert sent.top_via.transport == "WS"
        assert (sent.headers.get("Contact") or "").endswith(";transport=ws>")
        (contact,) = registrar.bindings["sip:alice@example.com"]
        assert contact.endswith(";transport=ws")
        response = yield within(reactor, alice.options(f"sip:{host}:{port};transport=ws"))
        assert response.status == 200
        assert server.protocol.connections_from("127.0.0.1") == 1  # both requests on one WebSocket
    finally:
        yield alice.stop()
        yield server.stop()


@pytest_twisted.inlineCallbacks
def test_register_over_wss(reactor: Any) -> Any:
    """The same over wss:// with a certificate the client verifies; Via says SIP/2.0/WSS."""
    pytest.importorskip("OpenSSL")
    pytest.importorskip("service_identity")
    from txsipua.testing.tls import self_signed

    server_ctx, client_ctx = self_signed()
    server, registrar, (host, port) = yield _registrar(
        reactor, WSSTransport(reactor, "127.0.0.1", 0, cert=server_ctx, ca=client_ctx))
    wire = Wire()
    alice = UserAgent(reactor, Configuration(timers=FAST, media=False),
                      Account(user="alice", domain="example.com", registrar=f"sip:{host}:{port};transport=wss"),
                      WSSTransport(reactor, "127.0.0.1", 0, ca=client_ctx), trace=wire.trace)
    yield alice.start()
    try:
        result = yield within(reactor, alice.register(300))
        assert result.response.status == 200
        assert wire.requests_sent("REGISTER")[0].top_via.transport == "WSS"
        assert list(registrar.bindings) == ["sip:alice@example.com"]
    finally:
        yield alice.stop()
        yield server.stop()


class Probe(WebSocketClientProtocol):
    """A raw WebSocket client: sends the factory's payloads once open, records how it was closed."""

    def onOpen(self) -> None:  # noqa: N802
        for payload, binary in self.factory.payloads:
            self.sendMessage(payload, isBinary=binary)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:  # noqa: N802, N803
        self.factory.received.append(payload)

    def onClose(self, wasClean: bool, code: Any, reason: Any) -> None:  # noqa: N802, N803
        if not self.factory.closed.called:  # what the server said, else what we saw
            remote = getattr(self, "remoteCloseCode", None)
            self.factory.closed.callback((remote, self.remoteCloseReason) if remote else (code, reason))


def _probe(reactor: Any, port: int, payloads: list[tuple[bytes, bool]], protocols: list[str] | None = None) -> Any:
    factory = WebSocketClientFactory(f"ws://127.0.0.1:{port}/", protocols=protocols if protocols is not None else ["sip"])
    factory.protocol = Probe
    factory.payloads = payloads
    factory.received = []
    factory.closed = defer.Deferred()
    TCP4ClientEndpoint(reactor, "127.0.0.1", port).connect(factory)
    return factory


def _options(port: int) -> bytes:
    return (
        f"OPTIONS sip:127.0.0.1:{port};transport=ws SIP/2.0\r\n"
        "Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bKprobe1\r\nMax-Forwards: 70\r\n"
        "From: <sip:probe@example.com>;tag=p1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: probe-1\r\n"
        "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()


@pytest_twisted.inlineCallbacks
def test_bad_frames_get_a_clear_close_and_the_server_goes_on(reactor: Any) -> Any:
    """Binary garbage: close 4003 "not a SIP message"; oversized: 1009; no sip subprotocol: refused; then a good OPTIONS gets 200."""
    server, _, (_, port) = yield _registrar(reactor, WSTransport(reactor, "127.0.0.1", 0))
    try:
        garbage = _probe(reactor, port, [(bytes(range(256)) * 4, True)])
        code, reason = yield within(reactor, garbage.closed)
        assert (code, reason) == (4003, "not a SIP message (RFC 7118 section 5)")
        big = _probe(reactor, port, [(b"OPTIONS sip:x SIP/2.0\r\n" + b"X: " + b"a" * 70_000, False)])
        code, _ = yield within(reactor, big.closed)
        assert code == 1009
        nosip = _probe(reactor, port, [(_options(port), False)], protocols=[])
        yield within(reactor, nosip.closed)
        assert nosip.received == []
        good = _probe(reactor, port, [(_options(port), False)])
        yield within(reactor, _until(reactor, lambda: bool(good.received)))
        assert good.received[0].startswith(b"SIP/2.0 200 ")
        # a SIP message that does not parse is answered 400 on the same WebSocket, not closed
        bad = _options(port).replace(b"CSeq: 1 OPTIONS", b"CSeq: x OPTIONS")
        garbled = _probe(reactor, port, [(bad, False)])
        yield within(reactor, _until(reactor, lambda: bool(garbled.received)))
        assert garbled.received[0].startswith(b"SIP/2.0 400 ")
        assert not garbled.closed.called
    finally:
        yield server.stop()


@defer.inlineCallbacks
def _until(reactor: Any, predicate: Any) -> Any:
    from loopback import eventually

    yield eventually(reactor, predicate)


def test_request_over_ws_names_ws() -> None:
    """The core of a WS user agent writes SIP/2.0/WS in Via and transport=ws in Contact (RFC 7118 §5.2)."""
    from twisted.internet.testing import MemoryReactorClock

    reactor = MemoryReactorClock()
    ua = UserAgent(reactor, None, Account(user="alice", domain="example.com"), WSTransport(reactor, "192.0.2.1", 8080))
    req: Request = ua.core.new_request("OPTIONS", "sip:bob@example.com", ua.require_account().identity,
                                       ua.require_account().identity)
    assert req.headers.get("Via", "").startswith("SIP/2.0/WS 192.0.2.1:8080")
    assert req.headers.get("Contact") == "<sip:alice@192.0.2.1:8080;transport=ws>"


@pytest_twisted.inlineCallbacks
def test_per_source_cap_applies_to_websockets(reactor: Any) -> Any:
    """The stream driver's per-source cap holds for WebSockets: a second one from 127.0.0.1 is closed at once."""
    server, _, (_, port) = yield _registrar(reactor, WSTransport(reactor, "127.0.0.1", 0))
    server.protocol.max_connections_per_source = 1
    try:
        first = _probe(reactor, port, [(_options(port), False)])
        yield within(reactor, _until(reactor, lambda: bool(first.received)))
        second = _probe(reactor, port, [(_options(port), False)])
        yield within(reactor, second.closed)
        assert second.received == [] and server.protocol.refused_connections == 1
        assert server.protocol.connections_from("127.0.0.1") == 1
    finally:
        yield server.stop()
