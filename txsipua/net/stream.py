"""SIP over TCP and TLS (RFC 3261 §18, RFC 5626 §3.5.1 keepalives) for a sans-IO core.

Theory of operation: :class:`StreamDriver` is a :class:`~txsipua.net.driver.CoreDriver`
whose bytes travel on connections.  It keeps one connection per remote
``(host, port)``: accepted connections are known by the peer's address (so
responses, which go back to the request's source over reliable transports,
find them) and connections it opens are known by the destination.  A message
for an address without a connection opens one (TCP or TLS) and waits in a
queue until it is up; a failed connection ends the affected transactions with
a transport error (§18.4).

Each connection frames its byte stream with
:class:`~txsipua.sip.stream.StreamFramer`: a framing defect (missing
Content-Length, oversized message) closes the connection; a framed message
that does not parse goes to the core, which answers a request with 400.
Double-CRLF pings are answered with a single CRLF pong.

The core must be built with ``reliable=True`` and ``transport="TCP"`` or
``"TLS"`` (Via and Contact then name it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.internet.endpoints import SSL4ClientEndpoint, TCP4ClientEndpoint
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure

from txsipua.core.transport import Address
from txsipua.errors import ParseError
from txsipua.net.driver import CoreDriver, TraceCallback
from txsipua.sip.stream import StreamFramer

MAX_QUEUED = 64
"""Messages held per destination while its connection is being opened."""


class SIPStreamProtocol(Protocol):
    """One TCP/TLS connection carrying SIP for a :class:`StreamDriver`."""

    def __init__(self, driver: StreamDriver, outbound: bool, destination: Address | None = None,
                 server_name: str | None = None) -> None:
        self.driver = driver
        self.framer = StreamFramer(outbound=outbound)
        self.peer: Address | None = None
        self.destination = destination
        self.server_name = server_name
        """For a TLS connection we opened: the name its certificate was verified against."""

    def connectionMade(self) -> None:  # noqa: N802
        """Register the connection under the peer's address."""
        transport: Any = self.transport
        p = transport.getPeer()
        self.peer = (str(getattr(p, "host", "")), int(getattr(p, "port", 0)))
        self.driver._connected(self.peer, self)

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        """Frame the bytes and feed each message to the core."""
        assert self.peer is not None
        transport: Any = self.transport
        try:
            frames = self.framer.feed_frames(data)
        except ParseError as e:
            self.driver.log.warn("closing SIP connection from {peer}: {err}", peer=self.peer, err=e.detail)
            transport.loseConnection()
            return
        pongs = self.framer.take_pongs()
        if pongs:
            transport.write(pongs)
        for frame in frames:
            self.driver._received(frame, self.peer)

    def connectionLost(self, reason: Failure | None = None) -> None:  # noqa: N802
        """Forget the connection; a connection lost abnormally (TLS handshake refused,
        reset) fails what was waiting on it at once (RFC 3261 §18.4)."""
        if self.peer is not None:
            self.driver._disconnected(self.peer, self)
        if reason is not None and not reason.check(ConnectionDone):
            where = self.destination or self.peer
            if where is not None:
                self.driver.log.warn("SIP connection to {dest} lost: {err}", dest=where,
                                     err=reason.getErrorMessage())
                self.driver._connection_failed(where)

    def write(self, data: bytes) -> None:
        """Write one message."""
        transport: Any = self.transport
        transport.write(data)


class _ServerFactory(Factory):
    def __init__(self, driver: StreamDriver) -> None:
        self.driver = driver

    def buildProtocol(self, addr: Any) -> SIPStreamProtocol:  # noqa: N802
        return SIPStreamProtocol(self.driver, outbound=False)


class StreamDriver(CoreDriver):
    """Drives a sans-IO core over TCP or TLS connections.

    Args:
        reactor: provides ``IReactorTCP`` (``IReactorSSL`` for TLS) and ``IReactorTime``.
        core: the core (``reliable=True``).
        on_event: called with every core event.
        trace: optional; called with every message sent and received.
        tls_client: a ``twisted.internet.ssl`` client context factory
            (e.g. ``optionsForClientTLS(hostname, trustRoot)``), or a callable
            ``(host) -> context factory``; ``None`` for plain TCP.
        connect_timeout: seconds to wait for a connection to open.
    """

    def __init__(
        self,
        reactor: Any,
        core: Any,
        on_event: Callable[[Any], None],
        trace: TraceCallback | None = None,
        *,
        tls_client: Any = None,
        connect_timeout: float = 10.0,
    ) -> None:
        super().__init__(reactor, core, on_event, trace)
        self.tls_client = tls_client
        self.connect_timeout = connect_timeout
        self.connections: dict[Address, SIPStreamProtocol] = {}
        self.server_names: dict[Address, str] = {}
        """Address -> the host name a TLS connection to it must verify (RFC 5922 §7);
        filled by whoever located the address from a name."""
        self._pending: dict[tuple[Address, str | None], list[bytes]] = {}
        self._by_name: dict[tuple[Address, str | None], SIPStreamProtocol] = {}
        self._ports: list[Any] = []

    # listening
    def listen_tcp(self, port: int = 0, interface: str = "127.0.0.1") -> Any:
        """Accept TCP connections; returns the listening port (``getHost().port``)."""
        p = self.reactor.listenTCP(port, _ServerFactory(self), interface=interface)
        self._ports.append(p)
        return p

    def listen_tls(self, context_factory: Any, port: int = 0, interface: str = "127.0.0.1") -> Any:
        """Accept TLS connections with a server context factory (``twisted.internet.ssl``)."""
        p = self.reactor.listenSSL(port, _ServerFactory(self), context_factory, interface=interface)
        self._ports.append(p)
        return p

    def stop(self) -> defer.Deferred[Any]:
        """Stop listening, close every connection and the timer."""
        self.stop_driving()
        for conn in list(self.connections.values()):
            transport: Any = conn.transport
            if transport is not None:
                transport.loseConnection()
        waits = [defer.maybeDeferred(p.stopListening) for p in self._ports]
        self._ports = []
        return defer.DeferredList(waits)

    # plumbing from connections
    def _connected(self, peer: Address, conn: SIPStreamProtocol) -> None:
        self.connections[peer] = conn

    def _disconnected(self, peer: Address, conn: SIPStreamProtocol) -> None:
        for table in (self.connections, self._by_name):
            for key in [k for k, c in table.items() if c is conn]:
                del table[key]  # type: ignore[arg-type]

    def _received(self, data: bytes, peer: Address) -> None:
        if self.trace is not None:
            self.trace("recv", data, peer)
        self.core.receive(data, peer, self.reactor.seconds())
        self.pump()

    def _connection_failed(self, destination: Address) -> None:
        for key in [k for k in self._pending if k[0] == destination]:
            del self._pending[key]
        self._transport_error(destination)
        self.pump()

    # sending
    def _write(self, data: bytes, destination: Address) -> None:
        # A TLS connection we opened is reused only for the name its certificate
        # was verified against (two names may share an address); connections
        # peers opened to us carry their own requests' responses.
        name = self.server_names.get(destination, destination[0]) if self.tls_client is not None else None
        conn = self.connections.get(destination)
        if conn is not None and conn.transport is not None and conn.server_name in (None, name):
            conn.write(data)
            return
        conn = self._by_name.get((destination, name))
        if conn is not None and conn.transport is not None:
            conn.write(data)
            return
        key = (destination, name)
        queue = self._pending.get(key)
        if queue is not None:
            if len(queue) < MAX_QUEUED:
                queue.append(data)
            return
        self._pending[key] = [data]
        self._connect(destination, name)

    def _connect(self, destination: Address, name: str | None = None) -> None:
        host, port = destination
        endpoint: Any
        if self.tls_client is not None:
            name = name or host
            ctx = self.tls_client(name) if callable(self.tls_client) else self.tls_client
            endpoint = SSL4ClientEndpoint(self.reactor, host, port, ctx, timeout=self.connect_timeout)
        else:
            endpoint = TCP4ClientEndpoint(self.reactor, host, port, timeout=self.connect_timeout)
        tls_name = name if self.tls_client is not None else None
        factory = Factory.forProtocol(
            lambda: SIPStreamProtocol(self, outbound=True, destination=destination, server_name=tls_name)
        )
        d = endpoint.connect(factory)

        def up(conn: SIPStreamProtocol) -> None:
            # registered under its peer address by connectionMade; also under
            # the destination we dialled (what the core names) and its TLS name
            self.connections[destination] = conn
            self._by_name[(destination, tls_name)] = conn
            for data in self._pending.pop((destination, tls_name), []):
                conn.write(data)

        def failed(f: Failure) -> None:
            self.log.warn("cannot connect to {dest}: {err}", dest=destination, err=f.getErrorMessage())
            self._connection_failed(destination)

        d.addCallbacks(up, failed)
