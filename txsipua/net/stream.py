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

Limits on accepted connections (each is a peer's socket and buffer in our
process), all keyword arguments of :class:`StreamDriver`:

- ``max_connections``: accepted connections open at once; one more is closed
  at once (logged, counted in :attr:`StreamDriver.refused_connections`).
- ``max_connections_per_source``: accepted connections open at once from one
  source; one more from it is closed at once (logged, counted the same way),
  so one host cannot take every slot.  A source is an IPv4 address, or an
  IPv6 /64 (one host's usual allocation: its addresses count together).
- ``message_timeout``: once the first byte of a message arrived on an accepted
  connection, the whole message must arrive within that many seconds, or the
  connection is aborted (a slow drip of bytes otherwise keeps resetting the
  idle timeout forever).  Keepalive CRLFs between messages start no deadline.
- ``first_message_timeout``: an accepted connection that has not delivered
  one complete SIP message that many seconds after it was accepted is
  aborted: keepalive CRLFs alone cannot hold a slot (a client uses its
  connection at once, for a REGISTER or a call).
- ``handshake_timeout``: a TLS connection whose handshake has not completed
  by then is aborted.
- ``idle_timeout``: a connection with no byte received or sent for that long
  is aborted (longer than RFC 5626 keepalive intervals of 95-120 s).
- ``max_message_size``: the framer's buffer cap: an endless header section or
  a Content-Length past it closes the connection and frees its buffer.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any
from typing import Protocol as TypingProtocol

from twisted.internet import defer, interfaces
from twisted.internet.endpoints import SSL4ClientEndpoint, TCP4ClientEndpoint
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from txsipua.core.transport import Address
from txsipua.errors import ParseError
from txsipua.net.driver import CoreDriver, TraceCallback
from txsipua.sip.message import MAX_MESSAGE_SIZE
from txsipua.sip.stream import StreamFramer

MAX_QUEUED = 64
"""Messages held per destination while its connection is being opened."""
MAX_CONNECTIONS = 256
"""Default cap on accepted connections open at once."""
HANDSHAKE_TIMEOUT = 10.0
"""Default seconds for an accepted TLS connection to complete its handshake."""
IDLE_TIMEOUT = 300.0
"""Default seconds without traffic before an accepted connection is closed."""
MESSAGE_TIMEOUT = 30.0
#: Default ``first_message_timeout``: seconds for an accepted connection's first complete message.
FIRST_MESSAGE_TIMEOUT = 60.0
"""Default seconds for a message to arrive whole once its first byte arrived."""
MAX_CONNECTIONS_PER_SOURCE = 32
"""Default cap on accepted connections open at once from one source IP address."""


def _abort(transport: Any) -> None:
    abort = getattr(transport, "abortConnection", None)
    if abort is not None:
        abort()
    else:
        transport.loseConnection()


class ConnectionOwner(TypingProtocol):
    """What a :class:`SIPStreamProtocol` needs from the driver that owns it.

    :class:`StreamDriver` is the implementation; the connection calls nothing
    else on it.  Addresses are ``(host, port)`` tuples; ``reactor`` provides
    ``IReactorTime``; ``log`` is a :class:`twisted.logger.Logger`.
    """

    reactor: Any
    log: Any
    handshake_timeout: float | None
    idle_timeout: float | None
    message_timeout: float | None
    first_message_timeout: float | None
    max_message_size: int

    def admit(self, conn: SIPStreamProtocol, peer: Address) -> bool:
        """An accepted connection from ``peer`` is up: count it; False to refuse (close) it."""

    def release(self, conn: SIPStreamProtocol) -> None:
        """A connection :meth:`admit` counted is gone."""

    def connection_opened(self, peer: Address, conn: SIPStreamProtocol) -> None:
        """A connection (accepted or opened by us) to ``peer`` carries SIP from now on."""

    def connection_closed(self, peer: Address, conn: SIPStreamProtocol) -> None:
        """``conn`` is closed: forget every route to it."""

    def message_received(self, data: bytes, peer: Address) -> None:
        """Feed one framed message from ``peer`` to the core and pump its output."""
        """One framed message (bytes) arrived from ``peer``."""

    def connection_failed(self, destination: Address) -> None:
        """The connection to ``destination`` failed or was lost abnormally (RFC 3261 §18.4)."""


@implementer(interfaces.IHandshakeListener)
class SIPStreamProtocol(Protocol):
    """One TCP/TLS connection carrying SIP for a :class:`StreamDriver`."""

    def __init__(self, driver: ConnectionOwner, outbound: bool, destination: Address | None = None,
                 server_name: str | None = None) -> None:
        self.driver = driver
        self.outbound = outbound
        self.framer = StreamFramer(max_size=driver.max_message_size, outbound=outbound)
        self.peer: Address | None = None
        self.destination = destination
        self.server_name = server_name
        """For a TLS connection we opened: the name its certificate was verified against."""
        self.counted = False
        """True for an accepted connection counted against ``max_connections``."""
        self.source_host = ""
        """For a counted connection: the source IP address it is counted under."""
        self._handshake_timer: Any = None
        self._idle_timer: Any = None
        self._message_timer: Any = None
        self._last_activity = 0.0
        self._first_timer: Any = None  # until the first complete message (first_message_timeout)

    def connectionMade(self) -> None:  # noqa: N802
        """Register the connection under the peer's address; on an accepted one, apply the limits."""
        transport: Any = self.transport
        p = transport.getPeer()
        peer = (str(getattr(p, "host", "")), int(getattr(p, "port", 0)))
        if not self.outbound:
            if not self.driver.admit(self, peer):
                _abort(transport)  # self.peer stays None: nothing is read or registered
                return
            reactor = self.driver.reactor
            self._last_activity = reactor.seconds()
            if interfaces.ISSLTransport.providedBy(transport) and self.driver.handshake_timeout is not None:
                self._handshake_timer = reactor.callLater(self.driver.handshake_timeout, self._handshake_expired)
            if self.driver.idle_timeout is not None:
                self._idle_timer = reactor.callLater(self.driver.idle_timeout, self._idle_check)
            if self.driver.first_message_timeout is not None:
                self._first_timer = reactor.callLater(self.driver.first_message_timeout,
                                                      self._first_message_expired)
        self.peer = peer
        self.driver.connection_opened(peer, self)

    def handshakeCompleted(self) -> None:  # noqa: N802 - IHandshakeListener
        """The TLS handshake is done: stop its timer."""
        self._cancel(self._handshake_timer)
        self._handshake_timer = None

    def _handshake_expired(self) -> None:
        self._handshake_timer = None
        self.driver.log.warn("TLS handshake from {peer} not done in {t} s: closing",
                             peer=self.peer, t=self.driver.handshake_timeout)
        _abort(self.transport)

    def _idle_check(self) -> None:
        self._idle_timer = None
        timeout = self.driver.idle_timeout
        assert timeout is not None
        left = self._last_activity + timeout - self.driver.reactor.seconds()
        if left > 0:
            self._idle_timer = self.driver.reactor.callLater(left, self._idle_check)
            return
        self.driver.log.info("SIP connection from {peer} idle for {t} s: closing", peer=self.peer, t=timeout)
        _abort(self.transport)

    def _message_expired(self) -> None:
        self._message_timer = None
        self.driver.log.warn("SIP connection from {peer}: a message not complete {t} s after its first "
                             "byte ({n} bytes so far): closing",
                             peer=self.peer, t=self.driver.message_timeout, n=self.framer.buffered)
        _abort(self.transport)

    def _first_message_expired(self) -> None:
        self._first_timer = None
        self.driver.log.warn("SIP connection from {peer}: no complete message {t} s after it was "
                             "accepted: closing", peer=self.peer, t=self.driver.first_message_timeout)
        _abort(self.transport)

    def _watch_message(self, completed: bool) -> None:
        """Arm the message deadline when a message is under way; stop it when none is.

        The first complete message also ends the deadline set when the
        connection was accepted (``first_message_timeout``).
        """
        if completed and self._first_timer is not None:
            self._cancel(self._first_timer)
            self._first_timer = None
        timeout = self.driver.message_timeout
        if self.outbound or timeout is None:
            return
        if completed or not self.framer.buffered:
            self._cancel(self._message_timer)
            self._message_timer = None
        if self.framer.buffered and self._message_timer is None:
            self._message_timer = self.driver.reactor.callLater(timeout, self._message_expired)

    @staticmethod
    def _cancel(timer: Any) -> None:
        if timer is not None and timer.active():
            timer.cancel()

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        """Frame the bytes and feed each message to the core."""
        if self.peer is None:
            return  # refused in connectionMade
        transport: Any = self.transport
        self._last_activity = self.driver.reactor.seconds()
        try:
            frames = self.framer.feed_frames(data)
        except ParseError as e:
            self.driver.log.warn("closing SIP connection from {peer}: {err}", peer=self.peer, err=e.detail)
            _abort(transport)
            return
        self._watch_message(bool(frames))
        pongs = self.framer.take_pongs()
        if pongs:
            transport.write(pongs)
        for frame in frames:
            self.driver.message_received(frame, self.peer)

    def connectionLost(self, reason: Failure | None = None) -> None:  # noqa: N802
        """Forget the connection; a connection lost abnormally (TLS handshake refused,
        reset) fails what was waiting on it at once (RFC 3261 §18.4)."""
        self._cancel(self._handshake_timer)
        self._cancel(self._idle_timer)
        self._cancel(self._message_timer)
        self._cancel(self._first_timer)
        self._handshake_timer = self._idle_timer = self._message_timer = self._first_timer = None
        if self.counted:
            self.counted = False
            self.driver.release(self)
        if self.peer is None:
            return  # refused at once by the cap: nothing registered, nothing waited on it
        self.driver.connection_closed(self.peer, self)
        if reason is not None and not reason.check(ConnectionDone):
            where = self.destination or self.peer
            if where is not None:
                self.driver.log.warn("SIP connection to {dest} lost: {err}", dest=where,
                                     err=reason.getErrorMessage())
                self.driver.connection_failed(where)

    def write(self, data: bytes) -> None:
        """Write one message."""
        transport: Any = self.transport
        self._last_activity = self.driver.reactor.seconds()
        transport.write(data)


def source_key(host: str) -> str:
    """The source an accepted connection is counted under: the IPv4 address, or the IPv6 /64.

    One host commonly holds a whole IPv6 /64, so its addresses count together
    against ``max_connections_per_source``; IPv4-mapped IPv6 addresses count
    as their IPv4 address.  Text that is not an IP address is its own key.
    """
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


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
        max_connections: accepted connections open at once; past it a new
            one is closed at once and logged.
        max_connections_per_source: accepted connections open at once from
            one source IP address; past it a new one from there is closed at
            once and logged (None: no per-source cap).
        message_timeout: seconds for a message to arrive whole once its
            first byte arrived on an accepted connection; past it the
            connection is aborted and logged (None: no limit).
        first_message_timeout: seconds for an accepted connection to deliver
            its first complete message; past it the connection is aborted and
            logged (None: no limit).
        handshake_timeout: seconds for an accepted TLS connection to finish
            its handshake (None: no limit).
        idle_timeout: seconds without a byte received or sent before an
            accepted connection is closed (None: never).
        max_message_size: the largest message (header section and body) a
            connection may buffer; past it the connection is closed.

    Attributes:
        accepted: accepted connections open now.
        refused_connections: accepted connections closed at once by the cap.
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
        max_connections: int = MAX_CONNECTIONS,
        handshake_timeout: float | None = HANDSHAKE_TIMEOUT,
        idle_timeout: float | None = IDLE_TIMEOUT,
        max_message_size: int = MAX_MESSAGE_SIZE,
        max_connections_per_source: int | None = MAX_CONNECTIONS_PER_SOURCE,
        message_timeout: float | None = MESSAGE_TIMEOUT,
        first_message_timeout: float | None = FIRST_MESSAGE_TIMEOUT,
    ) -> None:
        super().__init__(reactor, core, on_event, trace)
        self.tls_client = tls_client
        self.connect_timeout = connect_timeout
        self.max_connections = max_connections
        self.handshake_timeout = handshake_timeout
        self.idle_timeout = idle_timeout
        self.max_message_size = max_message_size
        self.max_connections_per_source = max_connections_per_source
        self.message_timeout = message_timeout
        self.first_message_timeout = first_message_timeout
        self.accepted = 0
        self._per_source: dict[str, int] = {}
        self.refused_connections = 0
        self.connections: dict[Address, SIPStreamProtocol] = {}
        self.server_names: dict[Address, str] = {}
        """Address -> the host name a TLS connection to it must verify (RFC 5922 §7);
        filled by whoever located the address from a name."""
        self._pending: dict[tuple[Address, str | None], list[bytes]] = {}
        self._by_name: dict[tuple[Address, str | None], SIPStreamProtocol] = {}
        self._ports: list[Any] = []
        self.flow_listeners: list[Callable[[Address], None]] = []
        """Called with a destination whose connection closed (a flow gone, RFC 5626 §4.4.1)."""

    # listening
    def server_factory(self) -> Factory:
        """The factory of accepted connections (for ``listenTCP``/``listenSSL`` or an endpoint)."""
        return _ServerFactory(self)

    def listen_tcp(self, port: int = 0, interface: str = "127.0.0.1") -> Any:
        """Accept TCP connections; returns the listening port (``getHost().port``)."""
        p = self.reactor.listenTCP(port, self.server_factory(), interface=interface)
        self._ports.append(p)
        return p

    def listen_tls(self, context_factory: Any, port: int = 0, interface: str = "127.0.0.1") -> Any:
        """Accept TLS connections with a server context factory (``twisted.internet.ssl``)."""
        p = self.reactor.listenSSL(port, self.server_factory(), context_factory, interface=interface)
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

    # the ConnectionOwner methods, called by connections
    def admit(self, conn: SIPStreamProtocol, peer: Address) -> bool:
        """Count an accepted connection; False (logged) past ``max_connections`` or its source's cap."""
        if self.accepted >= self.max_connections:
            self.refused_connections += 1
            self.log.warn("refusing SIP connection from {peer}: {n} connections open (the cap)",
                          peer=peer, n=self.accepted)
            return False
        host = source_key(peer[0])
        from_there = self._per_source.get(host, 0)
        if self.max_connections_per_source is not None and from_there >= self.max_connections_per_source:
            self.refused_connections += 1
            self.log.warn("refusing SIP connection from {peer}: {n} connections open from {host} "
                          "(the per-source cap)", peer=peer, n=from_there, host=host)
            return False
        self.accepted += 1
        self._per_source[host] = from_there + 1
        conn.counted = True
        conn.source_host = host
        return True

    def release(self, conn: SIPStreamProtocol) -> None:
        """Uncount a connection :meth:`admit` counted."""
        self.accepted -= 1
        host = conn.source_host
        left = self._per_source.get(host, 0) - 1
        if left > 0:
            self._per_source[host] = left
        else:
            self._per_source.pop(host, None)

    def connections_from(self, host: str) -> int:
        """Accepted connections open now from the source of IP address ``host`` (its /64 for IPv6)."""
        return self._per_source.get(source_key(host), 0)

    def connection_opened(self, peer: Address, conn: SIPStreamProtocol) -> None:
        """Route messages for ``peer`` over ``conn``."""
        self.connections[peer] = conn

    def connection_closed(self, peer: Address, conn: SIPStreamProtocol) -> None:
        """Forget every route over ``conn``; tell :attr:`flow_listeners` which destinations it served."""
        lost = [k for k, c in self.connections.items() if c is conn]
        for table in (self.connections, self._by_name):
            for key in [k for k, c in table.items() if c is conn]:
                del table[key]  # type: ignore[arg-type]
        for listener in list(self.flow_listeners):
            for destination in lost:
                listener(destination)

    # keep-alives (RFC 5626 §3.5.1, §4.4.1)
    def send_keepalive(self, destination: Address) -> bool:
        """Write a double-CRLF ping on the connection to ``destination``; False when there is none."""
        conn = self.connections.get(destination)
        if conn is None or conn.transport is None:
            return False
        conn.write(b"\r\n\r\n")
        return True

    def drop_flow(self, destination: Address) -> None:
        """Forget the connection to ``destination`` at once and close it (a flow found dead, RFC 5626 §4.4.1).

        The next message for ``destination`` opens a new connection; the old
        one is closed without failing anything (its transactions time out or
        are answered on the new flow).
        """
        conn = self.connections.get(destination)
        if conn is None:
            return
        for table in (self.connections, self._by_name):
            for key in [k for k, c in table.items() if c is conn]:
                del table[key]  # type: ignore[arg-type]
        transport: Any = conn.transport
        if transport is not None:
            transport.loseConnection()

    def pongs_received(self, destination: Address) -> int | None:
        """CRLF pongs received so far on the connection we opened to ``destination``, or None without one."""
        conn = self.connections.get(destination)
        if conn is None or conn.transport is None or not conn.outbound:
            return None
        return conn.framer.pongs_received

    def message_received(self, data: bytes, peer: Address) -> None:
        """Feed one framed message from ``peer`` to the core and pump its output."""
        if self.trace is not None:
            self.trace("recv", data, peer)
        self.core.receive(data, peer, self.reactor.seconds())
        self.pump()

    def connection_failed(self, destination: Address) -> None:
        """Drop what waits for ``destination`` and fail its transactions (§18.4)."""
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
            self.connection_failed(destination)

        d.addCallbacks(up, failed)
