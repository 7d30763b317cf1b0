"""The registrar/proxy on a real UDP port (Twisted side of :mod:`txsipua.server.proxy`).

Theory of operation: :class:`ProxyProtocol` feeds each datagram to the sans-IO
:class:`~txsipua.server.proxy.ProxyRegistrar` with ``reactor.seconds()``
as ``now``, then writes the core's outbox, hands its events to ``on_event``
(or logs them), and keeps one ``IDelayedCall`` armed for ``core.get_timer()``
(binding expiry).  The reactor is injected, never imported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from txsipua.net.driver import MAX_DATAGRAM, SIPDatagramProtocol
from txsipua.server.events import BindingExpired, Dropped, Event, Handled
from txsipua.server.proxy import ProxyRegistrar

__all__ = ["ProxyProtocol", "listen_proxy"]


class ProxyProtocol(SIPDatagramProtocol):
    """Runs a :class:`~txsipua.server.proxy.ProxyRegistrar` over UDP.

    Args:
        core: the sans-IO registrar/proxy.
        reactor: provides ``IReactorTime`` (``seconds``, ``callLater``).
        on_event: called with every core event in order (``Handled``,
            ``Dropped``, ``BindingExpired``); when ``None`` they are logged
            through :mod:`twisted.logger`.

    Attributes:
        core: the core.
        reactor: the reactor.
    """

    def __init__(
        self,
        core: ProxyRegistrar,
        reactor: Any,
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        super().__init__(reactor, core, on_event or self._log_event)

    def flush(self) -> None:
        """Write the outbox, deliver the events, re-arm the timer (same as ``pump``)."""
        self.pump()

    def _log_event(self, event: Event) -> None:
        if isinstance(event, Handled):
            arrow = "<-" if event.direction == "in" else "->"
            creds = ", ".join(str(c) for c in event.credentials)
            self.log.info(
                "proxy {arrow} {peer}: {summary}{creds}{note}",
                arrow=arrow, peer=f"{event.peer[0]}:{event.peer[1]}", summary=event.summary,
                creds=f" [{creds}]" if creds else "", note=f" ({event.note})" if event.note else "",
            )
        elif isinstance(event, Dropped):
            self.log.warn("proxy dropped a datagram from {source}: {reason}",
                          source=event.source, reason=event.reason)
        elif isinstance(event, BindingExpired):
            self.log.info("proxy: binding {contact} of {aor} expired",
                          contact=str(event.binding.contact.uri), aor=event.binding.aor)


def listen_proxy(
    reactor: Any,
    core: ProxyRegistrar,
    host: str = "127.0.0.1",
    port: int = 0,
    on_event: Callable[[Event], None] | None = None,
) -> tuple[ProxyProtocol, Any]:
    """Listen on UDP ``host:port`` with a :class:`ProxyProtocol` around ``core``.

    The core's :attr:`~txsipua.server.proxy.ProxyRegistrar.address` is set
    to the address actually bound (so port 0 works), since it is the sent-by of
    the Via and the URI of the Record-Route the proxy adds.

    Args:
        reactor: provides ``IReactorUDP`` and ``IReactorTime``.
        core: the registrar/proxy.
        host: the local address; 127.0.0.1 or ::1 in tests.
        port: the UDP port; 0 for any free port.
        on_event: see :class:`ProxyProtocol`.

    Returns:
        ``(protocol, listening_port)``; stop with ``listening_port.stopListening()``.

    Raises:
        twisted.internet.error.CannotListenError: the port is taken.
    """
    protocol = ProxyProtocol(core, reactor, on_event)
    listening = reactor.listenUDP(port, protocol, interface=host, maxPacketSize=MAX_DATAGRAM)
    core.address = (host, listening.getHost().port)
    return protocol, listening
