"""WebSocket transport factories (RFC 7118), in the manner of :mod:`txsipua.ua.transports`.

::

    WSTransport(reactor, "127.0.0.1", 0)                     # ws://, Via SIP/2.0/WS
    WSSTransport(reactor, "127.0.0.1", 0, cert=server_options, ca=root_certificate)  # wss://

Both need autobahn (``pip install txsipua[ws]``); it is imported only when a
driver is built, and a missing autobahn is an ``ImportError`` naming the extra.
Requests reach a WebSocket server named by a ``transport=ws`` (``wss``) URI
with a port, e.g. ``sip:203.0.113.5:8080;transport=ws``; the WebSocket URL
opened is ``ws://HOST:PORT/`` (``path`` changes the ``/``).
"""

from __future__ import annotations

from typing import Any

from zope.interface import implementer

from txsipua.net.driver import CoreDriver, TraceCallback
from txsipua.ua.interfaces import ISIPTransportFactory
from txsipua.ua.transports import EventCallback, Listening, TLSTransport


def _ws_driver(reactor: Any, core: Any, on_event: EventCallback, trace: TraceCallback | None,
               path: str, tls_client: Any = None) -> CoreDriver:
    try:
        from txsipua.net.websocket import WSDriver
    except ImportError as e:  # pragma: no cover - autobahn missing
        raise ImportError(f"SIP over WebSocket needs autobahn: pip install 'txsipua[ws]' ({e})") from None
    return WSDriver(reactor, core, on_event, trace, path=path, tls_client=tls_client)


def _host(host: str) -> str:
    return host or "127.0.0.1"


@implementer(ISIPTransportFactory)
class WSTransport:
    """SIP over WebSocket (RFC 7118): accepts ``ws://`` connections and opens them on demand.

    Args:
        reactor: provides ``IReactorTCP`` and ``IReactorTime``.
        host: the address to bind.
        port: the port to bind, 0 for any free one.
        path: the resource path of the WebSocket URLs opened.
    """

    name = "WS"
    reliable = True

    def __init__(self, reactor: Any, host: str = "127.0.0.1", port: int = 0, *, path: str = "/") -> None:
        self.reactor = reactor
        self.host = host
        self.port = port
        self.path = path

    def driver(self, core: Any, on_event: EventCallback, trace: TraceCallback | None) -> CoreDriver:
        """A :class:`~txsipua.net.websocket.WSDriver` for ``core``."""
        return _ws_driver(self.reactor, core, on_event, trace, self.path)

    def listen(self, driver: Any, socket_buffer: int | None = None) -> Listening:
        """Accept WebSocket connections (``socket_buffer`` is for UDP and ignored).

        Raises:
            twisted.internet.error.CannotListenError: the port is taken.
        """
        port = driver.listen_tcp(self.port, self.host)
        return Listening((_host(self.host), port.getHost().port), driver.stop)

    def __repr__(self) -> str:
        return f"WSTransport({self.host!r}, {self.port})"


@implementer(ISIPTransportFactory)
class WSSTransport(TLSTransport):
    """SIP over secure WebSocket (RFC 7118, ``wss://``): TLS as :class:`~txsipua.ua.transports.TLSTransport`.

    Args:
        reactor: provides ``IReactorSSL``, ``IReactorTCP`` and ``IReactorTime``.
        host: the address to bind.
        port: the port to bind, 0 for any free one.
        cert: our certificate (a server connection creator), needed to listen.
        ca: how servers are verified (see :class:`~txsipua.ua.transports.TLSTransport`).
        path: the resource path of the WebSocket URLs opened.
    """

    name = "WSS"
    reliable = True

    def __init__(self, reactor: Any, host: str = "127.0.0.1", port: int = 0, *,
                 cert: Any = None, ca: Any = None, path: str = "/") -> None:
        super().__init__(reactor, host, port, cert=cert, ca=ca)
        self.path = path

    def driver(self, core: Any, on_event: EventCallback, trace: TraceCallback | None) -> CoreDriver:
        """A :class:`~txsipua.net.websocket.WSDriver` with TLS for ``core``."""
        return _ws_driver(self.reactor, core, on_event, trace, self.path, tls_client=self.client_creator())

    def __repr__(self) -> str:
        return f"WSSTransport({self.host!r}, {self.port})"


__all__ = ["WSSTransport", "WSTransport"]
