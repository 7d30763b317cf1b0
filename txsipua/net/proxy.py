"""The test registrar/proxy on a real UDP port (Twisted side of :mod:`txsipua.testing.registrar`).

Theory of operation: :class:`ProxyProtocol` feeds each datagram to the sans-IO
:class:`~txsipua.testing.registrar.ProxyRegistrar` with ``reactor.seconds()``
as ``now``, then writes the core's outbox, hands its events to ``on_event``
(or logs them), and keeps one ``IDelayedCall`` armed for ``core.get_timer()``
(binding expiry).  The reactor is injected, never imported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from txsipua.testing.registrar import BindingExpired, Dropped, Event, Handled, ProxyRegistrar

__all__ = ["ProxyProtocol", "listen_proxy"]


class ProxyProtocol(DatagramProtocol):
    """Runs a :class:`~txsipua.testing.registrar.ProxyRegistrar` over UDP.

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

    log = Logger()

    def __init__(
        self,
        core: ProxyRegistrar,
        reactor: Any,
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        self.core = core
        self.reactor = reactor
        self.on_event = on_event
        self._timer: Any = None  # IDelayedCall
        self._stopped = False

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:  # noqa: N802
        """Feed one datagram to the core, then flush."""
        self.core.receive(datagram, (addr[0], addr[1]), self.reactor.seconds())
        self.flush()

    def stopProtocol(self) -> None:  # noqa: N802
        """Cancel the timer when the port closes."""
        self._stopped = True
        self._cancel_timer()

    def flush(self) -> None:
        """Write the outbox, deliver the events, re-arm the timer."""
        for item in self.core.outbox():
            if self.transport is None:
                break
            try:
                self.transport.write(item.data, item.destination)  # type: ignore[misc,arg-type,call-arg]
            except OSError as e:
                self.log.warn("proxy could not send to {dest}: {err}", dest=item.destination, err=e)
        while (event := self.core.next_event()) is not None:
            if self.on_event is not None:
                try:
                    self.on_event(event)
                except Exception:
                    self.log.failure("proxy event handler failed for {event!r}", event=event)
            else:
                self._log_event(event)
        self._arm()

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

    def _arm(self) -> None:
        self._cancel_timer()
        if self._stopped:
            return
        deadline = self.core.get_timer()
        if deadline is None:
            return
        self._timer = self.reactor.callLater(max(0.0, deadline - self.reactor.seconds()), self._fire)

    def _fire(self) -> None:
        self._timer = None
        self.core.handle_timer(self.reactor.seconds())
        self.flush()

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None


def listen_proxy(
    reactor: Any,
    core: ProxyRegistrar,
    host: str = "127.0.0.1",
    port: int = 0,
    on_event: Callable[[Event], None] | None = None,
) -> tuple[ProxyProtocol, Any]:
    """Listen on UDP ``host:port`` with a :class:`ProxyProtocol` around ``core``.

    The core's :attr:`~txsipua.testing.registrar.ProxyRegistrar.address` is set
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
    listening = reactor.listenUDP(port, protocol, interface=host)
    core.address = (host, listening.getHost().port)
    return protocol, listening
