"""The Twisted driver of a sans-IO user agent core, and its UDP transport.

Theory of operation: a :class:`CoreDriver` (here :class:`SIPDatagramProtocol`;
TCP/TLS in :mod:`txsipua.net.stream`) owns one
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

import abc
from collections.abc import Callable
from typing import Any

from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from txsipua.core.transport import Address

MAX_DATAGRAM = 65535
"""Largest UDP datagram read, bytes (pass as ``maxPacketSize``: Twisted's default of
8192 would cut larger SIP messages, e.g. INVITEs with big SDP or many Vias)."""

TraceCallback = Callable[[str, bytes, Address], None]
"""``trace(direction, data, peer)``: direction is ``"send"`` or ``"recv"``."""


class CoreDriver(abc.ABC):
    """Pumps a sans-IO engine: writes its outbox, hands out its events, keeps its one timer armed.

    Subclasses provide :meth:`_write` (how bytes reach a destination).  Any engine
    with ``outbox()``, ``next_event()``, ``get_timer()`` and ``handle_timer(now)``
    can be driven (the UA core, the test registrar/proxy).  An engine that also
    has ``take_notices()`` (lines worth logging: a cap reached) has them logged
    as warnings after every pump.

    Args:
        reactor: provides ``IReactorTime``.
        core: the sans-IO engine.
        on_event: called with every event, in order.
        trace: optional; called with every message sent and received.
    """

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        core: Any,
        on_event: Callable[[Any], None],
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
        self._notices = getattr(core, "take_notices", None)
        """The core's lines worth logging (a cap reached), drained after every pump; optional."""

    def pump(self) -> None:
        """Flush the outbox, drain events, re-arm the timer; repeat until idle.

        The core may hold part of its outbox back until its events are
        drained (a 100 Trying the application can make needless by answering
        at once), so the loop asks for the outbox again after the events.
        """
        if self._pumping:
            return  # re-entrant call from an event callback: the outer loop continues
        self._pumping = True
        try:
            core = self.core
            while True:
                out = core.outbox()
                for item in out:
                    self._send(item.data, item.destination)
                event = core.next_event()
                if event is None and not out:
                    break
                while event is not None:
                    try:
                        self.on_event(event)
                    except Exception:
                        self.log.failure("event handler failed for {event!r}", event=event)
                    for item in core.outbox():
                        self._send(item.data, item.destination)
                    event = core.next_event()
        finally:
            self._pumping = False
        if self._notices is not None:
            for notice in self._notices():
                self.log.warn("{notice}", notice=notice)
        self._arm()

    def _send(self, data: bytes, destination: Address) -> None:
        if self.trace is not None:
            self.trace("send", data, destination)
        self._write(data, destination)

    @abc.abstractmethod
    def _write(self, data: bytes, destination: Address) -> None:
        """Put ``data`` on the wire towards ``destination`` (each transport's own way)."""

    def _transport_error(self, destination: Address) -> None:
        report = getattr(self.core, "transport_error", None)
        if report is not None:
            report(destination, self.reactor.seconds())

    def _arm(self) -> None:
        if self._stopped:
            return
        deadline = self.core.get_timer()
        armed = self._timer_at
        if armed is not None and (deadline == armed or (deadline is not None and armed < deadline)):
            # Already armed at or before the deadline (a timer was stopped or
            # fired, the next one is later): keep it.  An early call finds
            # nothing due and re-arms here, one wake-up instead of a cancel and
            # a new IDelayedCall per datagram on a busy UAS.
            timer = self._timer
            if timer is not None and timer.active():
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

    def stop_driving(self) -> None:
        """Stop arming the timer (the transport is going away)."""
        self._stopped = True
        self._cancel_timer()


class SIPDatagramProtocol(CoreDriver, DatagramProtocol):
    """Moves a core's datagrams over UDP and keeps its one timer armed.

    Args:
        reactor: provides ``IReactorTime`` (and ``IReactorUDP`` for listening).
        core: the sans-IO core.
        on_event: called with every core event, in order.
        trace: optional; called with every datagram sent and received.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._numeric: set[str] = set()
        self.dropped_sends = 0
        self.stun_listeners: list[Callable[[bytes, Address], None]] = []
        """Called with STUN messages arriving on the SIP socket (keep-alive answers)."""

    def send_keepalive(self, data: bytes, destination: Address) -> None:
        """Send a keep-alive (a CRLF pair or a STUN request, RFC 5626 §4.4) to ``destination``."""
        self._write(data, destination)

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:  # noqa: N802
        """Feed one datagram to the core and pump (STUN messages go to :attr:`stun_listeners` instead)."""
        source = (addr[0], addr[1])
        if self.stun_listeners and datagram[:1] in (b"\x00", b"\x01"):
            for listener in list(self.stun_listeners):
                listener(datagram, source)  # STUN shares the socket (RFC 5626 §4.4.2)
            return
        if self.trace is not None:
            self.trace("recv", datagram, source)
        self.core.receive(datagram, source, self.reactor.seconds())
        self.pump()

    def stopProtocol(self) -> None:  # noqa: N802
        """Cancel the timer when the port closes."""
        self.stop_driving()

    def _write(self, data: bytes, destination: Address) -> None:
        # The socket's sendto directly: Twisted's Port.write re-validates the
        # address three times per datagram, a measurable share of a busy UAS.
        # Addresses are checked once here (a host name would make sendto
        # block on a DNS lookup), then remembered.
        host = destination[0]
        if not 0 < destination[1] <= 65535:  # e.g. a peer's Via rport=99999: sendto would raise
            self.log.warn("cannot send to {dest}: port out of range", dest=destination)
            self._transport_error(destination)
            return
        if host not in self._numeric:
            if not (isIPAddress(host) or isIPv6Address(host)):
                self.log.warn("cannot send to {dest}: not an IP address", dest=destination)
                self._transport_error(destination)
                return
            if len(self._numeric) < 65536:
                self._numeric.add(host)
        sock = getattr(self.transport, "socket", None)
        if sock is None:
            transport: Any = self.transport
            if transport is not None:  # a test transport without a socket
                transport.write(data, destination)
            return
        while True:
            try:
                sock.sendto(data, destination)
                return
            except InterruptedError:
                continue
            except BlockingIOError:
                self.dropped_sends += 1  # kernel buffer full: UDP is lossy, retransmissions recover
                return
            except OSError as e:
                self.log.warn("could not send to {dest}: {err}", dest=destination, err=e)
                self._transport_error(destination)
                return
