"""SIP over WebSocket (RFC 7118) with autobahn's Twisted API, for a sans-IO core.

Theory of operation: :class:`WSDriver` is a
:class:`~txsipua.net.stream.StreamDriver` whose connections are WebSocket
connections (``ws://``, or ``wss://`` over TLS) instead of byte streams.
Everything about connections is the stream driver's: one connection per
remote address, messages queued while a connection opens, responses sent back
over the connection their request came on, a failed connection failing its
transactions (RFC 3261 §18.4), and the same caps on accepted connections
(``max_connections``, ``max_connections_per_source``, ``first_message_timeout``,
``idle_timeout``, ``max_message_size``).  What changes is the framing:

* the opening handshake must agree on the ``sip`` subprotocol (RFC 7118 §4):
  a client that does not offer it is refused (400), a server that does not
  select it is closed;
* one SIP message is one WebSocket message, text or binary (§5.1), so there
  is no Content-Length framing and no CRLF keepalive (WebSocket pings serve);
* a message larger than ``max_message_size`` is refused by autobahn with close
  code 1009 (message too big) before it is buffered whole; a message that is
  not SIP at all (binary garbage, no SIP start line) closes the connection with
  :data:`CLOSE_NOT_SIP` (4003, "not a SIP message") and a log line; a SIP message that does not parse
  goes to the core, which answers a request 400 as over any transport;
* the opening handshake must finish within ``handshake_timeout`` seconds.

The core is built with ``reliable=True`` and ``transport="WS"`` or ``"WSS"``,
so Via says ``SIP/2.0/WS`` (``WSS``) and Contact ``transport=ws`` (``wss``).
This module imports autobahn: import it only when WebSocket is used (the
factories of :mod:`txsipua.ua.wstransports` do).
"""

from __future__ import annotations

from typing import Any

from autobahn.twisted.websocket import (
    WebSocketClientFactory,
    WebSocketClientProtocol,
    WebSocketServerFactory,
    WebSocketServerProtocol,
)
from autobahn.websocket.types import ConnectionDeny
from twisted.internet.endpoints import SSL4ClientEndpoint, TCP4ClientEndpoint
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure

from txsipua.core.transport import Address
from txsipua.net.stream import StreamDriver

SUBPROTOCOL = "sip"
"""The WebSocket subprotocol of SIP (RFC 7118 §4)."""
CLOSE_NOT_SIP = 4003
"""Close code for a message that is not SIP: RFC 6455's 1003 (unsupported data)
in the private-use range (§7.4.2), since an application may send only 1000
and 3000-4999 (autobahn enforces it)."""


def is_sip_message(payload: bytes) -> bool:
    """Whether ``payload`` starts with a SIP start line (RFC 3261 §7.1, §7.2).

    A request line ends with ``SIP/2.0``, a status line begins with it; the
    rest is the parser's business.  Leading CRLFs are allowed (§7.5).
    """
    head = payload.lstrip(b"\r\n")
    first = head.split(b"\n", 1)[0].rstrip(b"\r")
    return first.startswith(b"SIP/2.0 ") or (first.endswith(b" SIP/2.0") and b" " in first[:-8])


class _SIPWebSocket:
    """What both ends of a SIP WebSocket share: what the driver calls, and message handling.

    Mixed into autobahn's protocol classes; ``self.factory.driver`` is the
    :class:`WSDriver`.
    """

    factory: Any
    transport: Any
    outbound = False
    destination: Address | None = None
    server_name: str | None = None
    sip_peer: Address | None = None
    """The peer's address once the handshake is done (autobahn's ``peer`` is its own text)."""
    counted = False
    source_host = ""
    _opened = False
    _timers: dict[str, Any]

    @property
    def driver(self) -> WSDriver:
        return self.factory.driver

    def write(self, data: bytes) -> None:
        """Send one SIP message as one WebSocket message (text when it is UTF-8, RFC 7118 §5.1)."""
        try:
            data.decode("utf-8")
            binary = False
        except UnicodeDecodeError:
            binary = True
        self._touch()
        self.sendMessage(data, isBinary=binary)  # type: ignore[attr-defined]

    def _peer(self) -> Address:
        p = self.transport.getPeer()
        return (str(getattr(p, "host", "")), int(getattr(p, "port", 0)))

    def _later(self, name: str, delay: float | None, fire: Any) -> None:
        if not hasattr(self, "_timers"):
            self._timers = {}
        self._cancel(name)
        if delay is not None:
            self._timers[name] = self.driver.reactor.callLater(delay, fire)

    def _cancel(self, name: str) -> None:
        timer = getattr(self, "_timers", {}).pop(name, None)
        if timer is not None and timer.active():
            timer.cancel()

    def _touch(self) -> None:
        self._last = self.driver.reactor.seconds()

    def _idle_check(self) -> None:
        timeout = self.driver.idle_timeout
        assert timeout is not None
        left = getattr(self, "_last", 0.0) + timeout - self.driver.reactor.seconds()
        if left > 0:
            self._later("idle", left, self._idle_check)
            return
        self.driver.log.info("SIP WebSocket from {peer} idle for {t} s: closing", peer=self.sip_peer, t=timeout)
        self.transport.abortConnection()

    def _first_expired(self) -> None:
        self.driver.log.warn("SIP WebSocket from {peer}: no complete message {t} s after it was accepted: "
                             "closing", peer=self.sip_peer, t=self.driver.first_message_timeout)
        self.transport.abortConnection()

    def _sip_opened(self) -> None:
        self._opened = True
        self.sip_peer = self._peer()
        self._touch()
        self.driver.connection_opened(self.sip_peer, self)  # type: ignore[arg-type]

    def onMessage(self, payload: bytes, isBinary: bool) -> None:  # noqa: N802, N803 - autobahn's names
        """One WebSocket message: one SIP message for the core (RFC 7118 §5.1)."""
        if self.sip_peer is None:
            return
        self._touch()
        if not payload.strip(b"\r\n"):
            return  # an empty message (or CRLFs): nothing to parse, nothing to answer
        if not is_sip_message(payload):
            self.driver.log.warn("SIP WebSocket from {peer}: a {kind} message of {n} bytes that is not SIP: "
                                 "closing (4003)", peer=self.sip_peer, kind="binary" if isBinary else "text",
                                 n=len(payload))
            self.sendClose(CLOSE_NOT_SIP, "not a SIP message (RFC 7118 section 5)")  # type: ignore[attr-defined]
            return
        self._cancel("first")
        self.driver.message_received(payload, self.sip_peer)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:  # noqa: N802, N803
        """The WebSocket is closed: forget it; an abnormal end fails what waited on it (§18.4)."""
        for name in list(getattr(self, "_timers", {})):
            self._cancel(name)
        if self.counted:
            self.counted = False
            self.driver.release(self)  # type: ignore[arg-type]
        if self.sip_peer is not None:
            self.driver.connection_closed(self.sip_peer, self)  # type: ignore[arg-type]
        if self.outbound and self.destination is not None and (not wasClean or not self._opened):
            self.driver.log.warn("SIP WebSocket to {dest} closed: {code} {reason}", dest=self.destination,
                                 code=code, reason=reason or "")
            self.driver.connection_failed(self.destination)


class SIPWebSocketServerProtocol(_SIPWebSocket, WebSocketServerProtocol):  # type: ignore[misc, unused-ignore]
    """An accepted SIP WebSocket: the ``sip`` subprotocol or nothing; the driver's caps apply."""

    def connectionMade(self) -> None:  # noqa: N802
        """Count the connection against the caps; refuse it past them."""
        super().connectionMade()
        if not self.driver.admit(self, self._peer()):  # type: ignore[arg-type]
            self.transport.abortConnection()
            return
        self._touch()
        self._later("first", self.driver.first_message_timeout, self._first_expired)
        if self.driver.idle_timeout is not None:
            self._later("idle", self.driver.idle_timeout, self._idle_check)

    def onConnect(self, request: Any) -> str:  # noqa: N802
        """Accept the opening handshake only for the ``sip`` subprotocol (RFC 7118 §4.1)."""
        if SUBPROTOCOL not in (request.protocols or []):
            self.driver.log.warn("WebSocket from {peer} without the sip subprotocol: refused",
                                 peer=request.peer)
            raise ConnectionDeny(ConnectionDeny.BAD_REQUEST, "the sip subprotocol is required (RFC 7118)")
        return SUBPROTOCOL

    def onOpen(self) -> None:  # noqa: N802
        """Handshake done: the connection carries SIP."""
        self._sip_opened()


class SIPWebSocketClientProtocol(_SIPWebSocket, WebSocketClientProtocol):  # type: ignore[misc, unused-ignore]
    """A SIP WebSocket we opened; queued messages go once the handshake is done."""

    outbound = True

    def onConnect(self, response: Any) -> None:  # noqa: N802
        """The server must have selected ``sip`` (RFC 7118 §4.1)."""
        if response.protocol != SUBPROTOCOL:
            self.driver.log.warn("WebSocket server {peer} did not select the sip subprotocol: closing",
                                 peer=response.peer)
            self.dropConnection(abort=True)

    def onOpen(self) -> None:  # noqa: N802
        """Handshake done: route messages for the destination here and flush the queue."""
        self._sip_opened()
        self.driver.ws_opened(self)


class WSDriver(StreamDriver):
    """Drives a sans-IO core over SIP WebSocket connections (RFC 7118).

    Args:
        reactor: provides ``IReactorTCP`` (``IReactorSSL`` for WSS) and ``IReactorTime``.
        core: the core (``reliable=True``, transport ``"WS"`` or ``"WSS"``).
        on_event: called with every core event.
        trace: optional; called with every message sent and received.
        path: the resource path of the WebSocket URLs we open (``ws://host:port/path``).
        **options: the keyword arguments of :class:`~txsipua.net.stream.StreamDriver`
            (``tls_client`` makes it WSS; the caps and timeouts).
    """

    def __init__(self, reactor: Any, core: Any, on_event: Any, trace: Any = None, *, path: str = "/",
                 **options: Any) -> None:
        super().__init__(reactor, core, on_event, trace, **options)
        self.path = path if path.startswith("/") else "/" + path

    @property
    def scheme(self) -> str:
        """``"wss"`` with TLS, else ``"ws"``."""
        return "wss" if self.tls_client is not None else "ws"

    def _options(self, factory: Any) -> Any:
        factory.driver = self
        factory.setProtocolOptions(
            maxMessagePayloadSize=self.max_message_size,
            maxFramePayloadSize=self.max_message_size,
            openHandshakeTimeout=self.handshake_timeout or 0,
            closeHandshakeTimeout=5,
            failByDrop=False,  # a protocol failure (1009 too big...) sends its close frame first
        )
        return factory

    def server_factory(self) -> Factory:
        """The WebSocket server factory of accepted connections (``listen_tcp``/``listen_tls`` use it)."""
        factory = WebSocketServerFactory(protocols=[SUBPROTOCOL])
        factory.protocol = SIPWebSocketServerProtocol
        return self._options(factory)

    def _connect(self, destination: Address, name: str | None = None) -> None:
        host, port = destination
        tls_name = (name or host) if self.tls_client is not None else None
        shown = f"[{host}]" if ":" in host else host
        url = f"{self.scheme}://{tls_name or shown}:{port}{self.path}"
        factory = self._options(WebSocketClientFactory(url, protocols=[SUBPROTOCOL]))
        factory.protocol = SIPWebSocketClientProtocol
        endpoint: Any
        if self.tls_client is not None:
            assert tls_name is not None
            ctx = self.tls_client(tls_name) if callable(self.tls_client) else self.tls_client
            endpoint = SSL4ClientEndpoint(self.reactor, host, port, ctx, timeout=self.connect_timeout)
        else:
            endpoint = TCP4ClientEndpoint(self.reactor, host, port, timeout=self.connect_timeout)
        built: list[Any] = []
        plain_build = factory.buildProtocol

        def build(addr: Any) -> Any:
            conn = plain_build(addr)
            conn.destination = destination
            conn.server_name = tls_name
            built.append(conn)
            return conn

        factory.buildProtocol = build

        def failed(f: Failure) -> None:
            self.log.warn("cannot connect to {url}: {err}", url=url, err=f.getErrorMessage())
            self.connection_failed(destination)

        endpoint.connect(factory).addErrback(failed)

    def ws_opened(self, conn: Any) -> None:
        """A WebSocket we opened finished its handshake: send what waited for it."""
        destination = conn.destination
        self.connections[destination] = conn
        self._by_name[(destination, conn.server_name)] = conn
        for data in self._pending.pop((destination, conn.server_name), []):
            conn.write(data)


__all__ = [
    "CLOSE_NOT_SIP",
    "SUBPROTOCOL",
    "SIPWebSocketClientProtocol",
    "SIPWebSocketServerProtocol",
    "WSDriver",
    "is_sip_message",
]
