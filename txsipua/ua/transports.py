"""Transport factories: how a user agent listens and reaches peers (RFC 3261 §18).

One class per transport, in the manner of Twisted's ``internet/endpoints.py``:
each takes the reactor first and knows how to build the driver that moves the
core's messages (:mod:`txsipua.net.driver`, :mod:`txsipua.net.stream`) and how
to listen.  A :class:`~txsipua.ua.useragent.UserAgent` is given one and never
looks at a transport name to decide what to do::

    UDPTransport(reactor, "192.0.2.10", 5060)
    TCPTransport(reactor, "127.0.0.1", 0)
    TLSTransport(reactor, "127.0.0.1", 5061, cert=server_options, ca=root_certificate)

:func:`transport_for` maps the command line's ``udp``/``tcp``/``tls`` words to
these classes.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any, Protocol

import attrs
from twisted.logger import Logger
from zope.interface import implementer

from txsipua.core.transport import Address
from txsipua.net.driver import MAX_DATAGRAM, CoreDriver, SIPDatagramProtocol, TraceCallback
from txsipua.ua.interfaces import ISIPTransportFactory

log = Logger()

EventCallback = Callable[[Any], None]


@attrs.frozen
class Listening:
    """A transport that listens (or, for a TLS client without certificate, is ready).

    Attributes:
        address: our ``(host, port)`` as Via and Contact name it.
        close: stops listening and closes connections; returns a Deferred
            (or None when there was nothing to wait for).
    """

    address: Address
    close: Callable[[], Any]


class SIPTransportFactory(Protocol):
    """The static type of an :class:`~txsipua.ua.interfaces.ISIPTransportFactory` (for type checkers).

    :class:`UDPTransport`, :class:`TCPTransport` and :class:`TLSTransport`
    match it; the user agent still checks ``ISIPTransportFactory.providedBy``
    at run time.
    """

    @property
    def name(self) -> str:
        """``"UDP"``, ``"TCP"`` or ``"TLS"``."""

    @property
    def reliable(self) -> bool:
        """True for stream transports."""

    @property
    def host(self) -> str:
        """The host to bind."""

    @property
    def port(self) -> int:
        """The port to bind, 0 for any."""

    def driver(self, core: Any, on_event: EventCallback, trace: TraceCallback | None) -> CoreDriver:
        """The driver moving the core's messages over this transport."""

    def listen(self, driver: Any, socket_buffer: int | None = None) -> Listening:
        """Start listening."""


def set_socket_buffers(port: Any, size: int) -> None:
    """Ask for ``size``-byte kernel buffers on a listening UDP port (best effort).

    A burst (or a pause of the process) larger than the receive buffer is
    dropped by the kernel before SIP sees it; servers under load want a few MB.
    The kernel caps the value at ``net.core.rmem_max``/``wmem_max``; a refusal
    is logged, not raised.
    """
    sock = port.getHandle() if hasattr(port, "getHandle") else getattr(port, "socket", None)
    if sock is None:
        return
    for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, size)
        except OSError as e:
            log.warn("cannot set socket buffer to {size}: {err}", size=size, err=e)


def _host(host: str) -> str:
    return host or "127.0.0.1"


@implementer(ISIPTransportFactory)
class UDPTransport:
    """SIP over UDP (RFC 3261 §18): one socket, datagrams up to 64 KiB.

    Args:
        reactor: provides ``IReactorUDP`` and ``IReactorTime``.
        host: the address to bind (``"127.0.0.1"``, ``"::1"``, ``"0.0.0.0"``...).
        port: the port to bind, 0 for any free one.
    """

    name = "UDP"
    reliable = False

    def __init__(self, reactor: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.reactor = reactor
        self.host = host
        self.port = port

    def driver(self, core: Any, on_event: EventCallback, trace: TraceCallback | None) -> CoreDriver:
        """A :class:`~txsipua.net.driver.SIPDatagramProtocol` for ``core``."""
        return SIPDatagramProtocol(self.reactor, core, on_event, trace)

    def listen(self, driver: Any, socket_buffer: int | None = None) -> Listening:
        """Bind the socket.

        Args:
            driver: what :meth:`driver` returned.
            socket_buffer: ``SO_RCVBUF``/``SO_SNDBUF`` size in bytes, or None.

        Raises:
            twisted.internet.error.CannotListenError: the port is taken.
        """
        port = self.reactor.listenUDP(self.port, driver, interface=self.host, maxPacketSize=MAX_DATAGRAM)
        if socket_buffer:
            set_socket_buffers(port, socket_buffer)
        return Listening((_host(self.host), port.getHost().port), port.stopListening)

    def __repr__(self) -> str:
        return f"UDPTransport({self.host!r}, {self.port})"


@implementer(ISIPTransportFactory)
class TCPTransport:
    """SIP over TCP (RFC 3261 §18.3): connections opened on demand and reused.

    Args:
        reactor: provides ``IReactorTCP`` and ``IReactorTime``.
        host: the address to bind.
        port: the port to bind, 0 for any free one.
    """

    name = "TCP"
    reliable = True

    def __init__(self, reactor: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.reactor = reactor
        self.host = host
        self.port = port

    def driver(self, core: Any, on_event: EventCallback, trace: TraceCallback | None) -> CoreDriver:
        """A :class:`~txsipua.net.stream.StreamDriver` for ``core``."""
        from txsipua.net.stream import StreamDriver

        return StreamDriver(self.reactor, core, on_event, trace)

    def listen(self, driver: Any, socket_buffer: int | None = None) -> Listening:
        """Accept connections (``socket_buffer`` applies to UDP only and is ignored).

        Raises:
            twisted.internet.error.CannotListenError: the port is taken.
        """
        port = driver.listen_tcp(self.port, self.host)
        return Listening((_host(self.host), port.getHost().port), driver.stop)

    def __repr__(self) -> str:
        return f"TCPTransport({self.host!r}, {self.port})"


@implementer(ISIPTransportFactory)
class TLSTransport:
    """SIP over TLS (RFC 3261 §26.2, RFC 5922 for the names a certificate must show).

    Args:
        reactor: provides ``IReactorSSL``, ``IReactorTCP`` and ``IReactorTime``.
        host: the address to bind.
        port: the port to bind, 0 for any free one.
        cert: our certificate as a ``twisted.internet.ssl`` server connection
            creator (e.g. ``PrivateCertificate.loadPEM(pem).options()``);
            needed to listen.  Without it the user agent only uses the
            connections it opens, and Via and Contact name ``port`` (5061
            when it is 0).
        ca: how peers are verified: a ``twisted.internet.ssl.Certificate``
            trust root, a client connection creator, or a callable ``(host)
            -> client connection creator``; ``None`` uses the system's trust
            roots (``optionsForClientTLS(host)``).  The host name is always
            verified.
    """

    name = "TLS"
    reliable = True

    def __init__(self, reactor: Any, host: str = "127.0.0.1", port: int = 0, *,
                 cert: Any = None, ca: Any = None) -> None:
        self.reactor = reactor
        self.host = host
        self.port = port
        self.cert = cert
        self.ca = ca

    def client_creator(self) -> Any:
        """What the stream driver is given to open connections: a creator or ``(host) -> creator``."""
        if self.ca is not None and not _is_certificate(self.ca):
            return self.ca
        from twisted.internet.ssl import optionsForClientTLS

        root = self.ca

        def for_host(host: str) -> Any:
            return optionsForClientTLS(host) if root is None else optionsForClientTLS(host, trustRoot=root)

        return for_host

    def driver(self, core: Any, on_event: EventCallback, trace: TraceCallback | None) -> CoreDriver:
        """A :class:`~txsipua.net.stream.StreamDriver` with TLS for ``core``."""
        from txsipua.net.stream import StreamDriver

        return StreamDriver(self.reactor, core, on_event, trace, tls_client=self.client_creator())

    def listen(self, driver: Any, socket_buffer: int | None = None) -> Listening:
        """Accept TLS connections when :attr:`cert` is set; else only get ready to connect.

        Raises:
            twisted.internet.error.CannotListenError: the port is taken.
        """
        if self.cert is None:
            # A TLS client without a certificate cannot listen: requests from
            # the peer must come back over the connection we opened (as with
            # RFC 5626 flows).
            return Listening((_host(self.host), self.port or 5061), driver.stop)
        port = driver.listen_tls(self.cert, self.port, self.host)
        return Listening((_host(self.host), port.getHost().port), driver.stop)

    def __repr__(self) -> str:
        return f"TLSTransport({self.host!r}, {self.port})"


def _is_certificate(value: Any) -> bool:
    try:
        from twisted.internet.ssl import Certificate
    except ImportError:  # pragma: no cover - pyOpenSSL missing
        return False
    return isinstance(value, Certificate)


def transport_for(name: str, reactor: Any, host: str = "127.0.0.1", port: int = 0, *,
                  cert: Any = None, ca: Any = None) -> UDPTransport | TCPTransport | TLSTransport:
    """The factory for a transport named on the command line (``udp``, ``tcp``, ``tls``, any case).

    Raises:
        ValueError: an unknown name.
    """
    kind = name.upper()
    if kind == "UDP":
        return UDPTransport(reactor, host, port)
    if kind == "TCP":
        return TCPTransport(reactor, host, port)
    if kind == "TLS":
        return TLSTransport(reactor, host, port, cert=cert, ca=ca)
    raise ValueError(f"transport must be UDP, TCP or TLS, not {name!r}")

