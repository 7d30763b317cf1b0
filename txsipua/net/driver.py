"""The Twisted driver of a sans-IO user agent core, and its UDP transport.

Theory of operation: :class:`SIPDatagramProtocol` owns one
:class:`~txsipua.core.useragent.UserAgentCore`.  After every input (a
datagram, a timer, a call from the application) it *pumps*: it writes the
core's outbox to the socket, hands every event to the ``on_event`` callback
(where Deferreds fire) and re-arms its single ``IDelayedCall`` for
``core.get_timer()``.  Pumping loops until the core has nothing left, so a
callback that sends a BYE from inside an event is handled.

The reactor is injected (``IReactorUDP`` + ``IReactorTime``); time given to
the core is ``reactor.seconds()``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from txsipua.core.events import Event
from txsipua.core.transport import Address
from txsipua.core.useragent import UserAgentCore

TraceCallback = Callable[[str, bytes, Address], None]
"""``trace(direction, data, peer)``: direction is ``"send"`` or ``"recv"``."""


class SIPDatagramProtocol(DatagramProtocol):
    """Moves a core's datagrams over UDP and keeps its one timer armed.

    Args:
        reactor: provides ``IReactorTime`` (and ``IReactorUDP`` for listening).
        core: the sans-IO core.
        on_event: called with every core event, in order.
        trace: optional; called with every datagram sent and received.
    """

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        core: UserAgentCore,
        on_event: Callable[[Event], None],
        trace: TraceCallback | None = None,
    ) -> None:
        self.reactor = reactor
        self.core = core
        self.on_event = on_event
        self.trace = trace
        self._timer: Any = None  # IDelayedCall
        self._timer_at: float | None = None
        self._pumping = False
        self._stopped = False

    # Twisted protocol methods
    def datagramReceived(self, datagram: bytes, addr: Any) -> None:  # noqa: N802
        """Feed one datagram to the core and pump."""
        source = (addr[0], addr[1])
        if self.trace is not None:
            self.trace("recv", datagram, source)
        self.core.receive(datagram, source, self.reactor.seconds())
        self.pump()

    def stopProtocol(self) -> None:  # noqa: N802
        """Cancel the timer when the port closes."""
        self._stopped = True
        self._cancel_timer()

    # driver
    def pump(self) -> None:
        """Flush the outbox, drain events, re-arm the timer; repeat until idle."""
        if self._pumping:
            return  # re-entrant call from an event callback: the outer loop continues
        self._pumping = True
        try:
            core = self.core
            while True:
                out = core.outbox()
                for item in out:
                    self._write(item.data, item.destination)
                event = core.next_event()
                if event is None and not out:
                    break
                while event is not None:
                    try:
                        self.on_event(event)
                    except Exception:
                        self.log.failure("event handler failed for {event!r}", event=event)
                    for item in core.outbox():
                        self._write(item.data, item.destination)
                    event = core.next_event()
        finally:
            self._pumping = False
        self._arm()

    def _write(self, data: bytes, destination: Address) -> None:
        if self.trace is not None:
            self.trace("send", data, destination)
        transport = self.transport
        if transport is None:
            return
        try:
            transport.write(data, destination)  # type: ignore[misc,arg-type,call-arg]
        except OSError as e:
            self.log.warn("could not send to {dest}: {err}", dest=destination, err=e)
            layer = getattr(self.core, "layer", None)
            if layer is not None:
                layer.transport_error(destination, self.reactor.seconds())

    def _arm(self) -> None:
        if self._stopped:
            return
        deadline = self.core.get_timer()
        if deadline == self._timer_at and self._timer is not None and self._timer.active():
            return
        self._cancel_timer()
        if deadline is None:
            return
        delay = max(0.0, deadline - self.reactor.seconds())
        self._timer_at = deadline
        self._timer = self.reactor.callLater(delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = None
        self.core.handle_timer(self.reactor.seconds())
        self.pump()

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self._timer_at = None
