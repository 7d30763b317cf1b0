"""Keep-alives on the flow to the registrar, and dead-flow detection (RFC 5626 §3.5, §4.4).

Theory of operation
-------------------
A NAT forgets a UDP mapping after tens of seconds of silence and a stateful
firewall forgets an idle TCP connection after minutes; then the registrar's
requests for us (incoming calls) no longer reach us although our binding
still holds.  While a :class:`~txsipua.ua.registration.Registration` is
registered and keep-alives are on
(:meth:`UserAgent.keepalive_interval <txsipua.ua.useragent.UserAgent.keepalive_interval>`),
a :class:`FlowKeepAlive` sends one keep-alive on the flow every interval
(a random 80-100 % of it, RFC 5626 §4.4.1, so that many agents do not ping
in step):

- TCP/TLS: a double CRLF "ping"; the registrar answers with a CRLF "pong"
  (§3.5.1), which the connection's framer counts;
- UDP: a STUN Binding request (RFC 8489, :mod:`txsipua.net.stun`) when
  :attr:`Configuration.keepalive_stun <txsipua.ua.config.Configuration.keepalive_stun>`
  is on, answered by a Binding response on the same socket (§4.4.2);
  otherwise a CRLF pair, which keeps the NAT mapping open but gets no answer.

A STUN answer naming another public address than the one our Contact
names (the NAT's mapping was flushed or expired and a new one made) is
handled as a dead flow too, so the Contact is corrected at once.

A keep-alive is expected to be answered (a pong, a STUN answer) only when
the registrar signalled Outbound support: ``outbound`` in the ``Require``
of its 2xx to our REGISTER, or a ``Flow-Timer`` (§4.4.1,
:func:`registrar_supports_outbound`).  Otherwise keep-alives are still sent
but silence is not taken for a dead flow (many servers answer neither STUN
nor CRLF pings).  A keep-alive that expects an answer and gets none within
``timeout`` (10 s, §4.4.1), and a connection that closes, make the flow dead: the
registration is told (:meth:`Registration.flow_failed
<txsipua.ua.registration.Registration.flow_failed>`) and registers again at
once on a new flow, backing off if that fails (§4.5).

The machine is small enough to be drawn::

      start     interval (80-100 %, from the last ping)  answer seen / none expected
    -------> waiting --------------------> pinging ---------------------------> waiting
                ^                            |  no answer within timeout,
                |                            |  or no connection to ping on
                +----------------------------+-----------------------> dead (told once)
    stop: any state -> stopped; connection lost: waiting/pinging -> dead
"""

from __future__ import annotations

import enum
import os
import random as _random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from txsipua.core.transport import Address
from txsipua.errors import ParseError
from txsipua.net import stun

if TYPE_CHECKING:
    from txsipua.sip.message import Response
    from txsipua.ua.config import Configuration
    from txsipua.ua.registration import Registration, RegistrationResult
    from txsipua.ua.useragent import UserAgent

log = Logger()

UDP_CRLF = b"\r\n\r\n"
"""The UDP keep-alive without STUN: a CRLF pair, which a SIP parser skips (RFC 3261 §7.5)."""


class FlowState(enum.Enum):
    """Where a :class:`FlowKeepAlive` is (see the module docstring)."""

    WAITING = "waiting"
    PINGING = "pinging"
    DEAD = "dead"
    STOPPED = "stopped"


class FlowInput(enum.Enum):
    """What can happen to a :class:`FlowKeepAlive`."""

    PING_DUE = "ping-due"
    NOT_SENT = "not-sent"  # no connection to ping on
    ANSWERED = "answered"  # the check found an answer, or none is expected
    SILENT = "silent"  # the check found no answer
    LOST = "lost"  # the connection closed
    STOP = "stop"


class FlowAction(enum.Enum):
    """What a transition does."""

    NONE = "none"
    PING = "ping"  # send a keep-alive, arm the check (or the next ping when no answer is expected)
    NEXT = "next"  # arm the next ping
    DEAD = "dead"  # cancel timers, tell the registration
    CANCEL = "cancel"  # cancel timers


F = FlowState
FI = FlowInput
FA = FlowAction

FLOW_TABLE: dict[tuple[FlowState, FlowInput], tuple[FlowAction, FlowState]] = {
    (F.WAITING, FI.PING_DUE): (FA.PING, F.PINGING),
    (F.WAITING, FI.LOST): (FA.DEAD, F.DEAD),
    (F.WAITING, FI.STOP): (FA.CANCEL, F.STOPPED),
    (F.PINGING, FI.ANSWERED): (FA.NEXT, F.WAITING),
    (F.PINGING, FI.SILENT): (FA.DEAD, F.DEAD),
    (F.PINGING, FI.NOT_SENT): (FA.DEAD, F.DEAD),
    (F.PINGING, FI.LOST): (FA.DEAD, F.DEAD),
    (F.PINGING, FI.STOP): (FA.CANCEL, F.STOPPED),
    (F.DEAD, FI.STOP): (FA.NONE, F.STOPPED),
}
"""``{(state, input): (action, next state)}``; an input absent from it is ignored (a late timer)."""


class StreamFlow:
    """A TCP/TLS flow: double-CRLF pings, CRLF pongs counted (RFC 5626 §3.5.1)."""

    def __init__(self, driver: Any, destination: Address, *, expect_answer: bool = True) -> None:
        self.driver = driver
        self.destination = destination
        self.expect_answer = expect_answer
        self.on_lost: Callable[[], None] | None = None
        driver.flow_listeners.append(self._closed)

    def ping(self) -> bool:
        """Send a ping; False when no connection to the destination is open."""
        return bool(self.driver.send_keepalive(self.destination))

    def answers(self) -> int | None:
        """Pongs received so far (None: no connection)."""
        found: int | None = self.driver.pongs_received(self.destination)
        return found

    def expects_answer(self) -> bool:
        """Pings are answered over TCP/TLS by a registrar supporting Outbound."""
        return self.expect_answer

    def kill(self) -> None:
        """Close the connection: the next request opens a new flow."""
        self.driver.drop_flow(self.destination)

    def close(self) -> None:
        """Stop listening for the connection's end."""
        if self._closed in self.driver.flow_listeners:
            self.driver.flow_listeners.remove(self._closed)

    def _closed(self, destination: Address) -> None:
        if destination == self.destination and self.on_lost is not None:
            self.on_lost()


class DatagramFlow:
    """A UDP flow: STUN Binding requests answered on the SIP socket, or unanswered CRLF pairs."""

    def __init__(self, driver: Any, destination: Address, use_stun: bool,
                 token: Callable[[int], bytes] = os.urandom, *, expect_answer: bool = True) -> None:
        self.driver = driver
        self.destination = destination
        self.use_stun = use_stun
        self.expect_answer = expect_answer
        self.on_lost: Callable[[], None] | None = None
        self.mapped: Address | None = None
        """Our address as the STUN server saw it (XOR-MAPPED-ADDRESS), once answered."""
        self.on_mapped: Callable[[Address], None] | None = None
        """Called with the mapped address of every answer (the NAT may have moved us)."""
        self._token = token
        self._pending: set[bytes] = set()
        self._answered = 0
        if use_stun:
            driver.stun_listeners.append(self._stun)

    def ping(self) -> bool:
        """Send a STUN Binding request or a CRLF pair."""
        if self.use_stun:
            tid = self._token(12)
            self._pending = {tid}  # an answer to an older request is late: it does not count
            self.driver.send_keepalive(stun.binding_request(tid), self.destination)
        else:
            self.driver.send_keepalive(UDP_CRLF, self.destination)
        return True

    def answers(self) -> int | None:
        """STUN answers received so far."""
        return self._answered

    def expects_answer(self) -> bool:
        """Only STUN requests are answered (and counted on only from an Outbound registrar)."""
        return self.use_stun and self.expect_answer

    def kill(self) -> None:
        """Nothing to close on UDP."""

    def close(self) -> None:
        """Stop listening for STUN answers."""
        if self._stun in self.driver.stun_listeners:
            self.driver.stun_listeners.remove(self._stun)

    def _stun(self, data: bytes, source: Address) -> None:
        try:
            response = stun.parse_binding_response(data)
        except ParseError:
            return
        if response.transaction_id in self._pending:
            self._pending.discard(response.transaction_id)
            self._answered += 1
            self.mapped = response.mapped
            if response.mapped is not None and self.on_mapped is not None:
                self.on_mapped(response.mapped)


class FlowKeepAlive:
    """Pings one flow every ``interval`` and reports it dead (RFC 5626 §4.4.1).

    Args:
        reactor: provides ``IReactorTime``.
        flow: a :class:`StreamFlow` or :class:`DatagramFlow`.
        interval: seconds between keep-alives (each wait is a random 80-100 % of it).
        timeout: seconds to wait for an answer.
        on_dead: called once with a reason when the flow is found dead.
        random: a callable returning a float in ``[0, 1)``.

    Attributes:
        state: the :class:`FlowState`.
        sent: keep-alives sent.
        on_alive: optional callable, called when the flow proves alive (an
            answer seen, or a keep-alive sent when none is expected).
    """

    def __init__(self, reactor: Any, flow: Any, interval: float, timeout: float,
                 on_dead: Callable[[str], object], random: Callable[[], float] | None = None) -> None:
        self.reactor = reactor
        self.flow = flow
        self.interval = interval
        self.timeout = timeout
        self.on_dead = on_dead
        self.random = random or _random.random
        self.state = FlowState.WAITING
        self.sent = 0
        self.on_alive: Callable[[], object] | None = None
        self._timer: Any = None
        self._before: int | None = None
        self._next_at = 0.0
        self._reason = ""
        flow.on_lost = lambda: self._handle(FI.LOST, "connection lost")
        self._arm(self._wait(), FI.PING_DUE)

    def stop(self) -> None:
        """Stop pinging (the registration ended or moved on)."""
        self._handle(FI.STOP)
        self.flow.close()

    def _wait(self) -> float:
        return self.interval * (0.8 + 0.2 * self.random())

    def _arm(self, delay: float, which: FlowInput) -> None:
        self._cancel()
        self._timer = self.reactor.callLater(delay, self._fired, which)

    def _cancel(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _fired(self, which: FlowInput) -> None:
        self._timer = None
        if which is FI.PING_DUE:
            self._handle(FI.PING_DUE)
            return
        # the check: an answer since the ping?
        now = self.flow.answers()
        if now is not None and self._before is not None and now > self._before:
            self._alive()
            self._handle(FI.ANSWERED)
        else:
            self._handle(FI.SILENT, f"no answer to a keep-alive within {self.timeout:g} s")

    def _handle(self, event: FlowInput, reason: str = "") -> None:
        entry = FLOW_TABLE.get((self.state, event))
        if entry is None:
            return
        action, self.state = entry
        if action is FA.PING:
            # the next ping is due an interval after this one, whenever the answer comes
            self._next_at = self.reactor.seconds() + self._wait()
            self._before = self.flow.answers()
            if not self.flow.ping():
                self._handle(FI.NOT_SENT, "no connection to the registrar")
                return
            self.sent += 1
            if self.flow.expects_answer():
                self._arm(self.timeout, FI.ANSWERED)  # the check
            else:
                self._alive()
                self._handle(FI.ANSWERED)
        elif action is FA.NEXT:
            self._arm(max(0.0, self._next_at - self.reactor.seconds()), FI.PING_DUE)
        elif action is FA.DEAD:
            self._cancel()
            self.flow.kill()
            log.warn("keep-alive: the flow is dead ({reason})", reason=reason)
            self.on_dead(reason)
        elif action is FA.CANCEL:
            self._cancel()

    def _alive(self) -> None:
        if self.on_alive is not None:
            self.on_alive()


def registrar_supports_outbound(response: Response | None) -> bool:
    """True when a REGISTER 2xx signals Outbound support (RFC 5626 §4.4.1, §6).

    Args:
        response: the 2xx to our REGISTER, or ``None``.

    Returns:
        True when its ``Require`` lists ``outbound`` or it carries a
        ``Flow-Timer``; only then is a keep-alive expected to be answered.
    """
    if response is None:
        return False
    if response.headers.get("Flow-Timer") is not None:
        return True
    tokens = {t.strip().lower() for value in response.headers.get_all("Require") for t in value.split(",")}
    return "outbound" in tokens


def interval(config: Configuration, reliable: bool, response: Response | None) -> float | None:
    """Seconds between keep-alives on a registration's flow, or ``None`` for none (RFC 5626 §4.4.1).

    Args:
        config: ``keepalive_interval`` and ``outbound``.
        reliable: True over TCP/TLS.
        response: the 2xx to the REGISTER (its ``Flow-Timer``), or ``None``.

    Returns:
        ``keepalive_interval`` when set; with Outbound the registrar's
        ``Flow-Timer``, else 25 s on UDP and 100 s on TCP/TLS; otherwise ``None``.
    """
    if config.keepalive_interval is not None:
        return config.keepalive_interval
    if not config.outbound:
        return None
    if response is not None:
        try:
            timer = int((response.headers.get("Flow-Timer") or "").strip())
        except ValueError:
            timer = 0
        if timer > 0:
            return float(timer)
    return 100.0 if reliable else 25.0


def start_flow_keepalive(ua: UserAgent, registration: Registration,
                         result: RegistrationResult | None) -> FlowKeepAlive | None:
    """Keep the flow of ``registration`` to its registrar alive; ``None`` when it cannot be located.

    The flow's destination is where the REGISTER went (the outbound proxy, or
    the registrar), located as the request was (RFC 3263).
    """
    interval = ua.keepalive_interval(result)
    if interval is None:
        return None
    try:
        route = ua.outbound_route()  # the account's outbound proxy, else its registrar
        destination = ua.core.locate(route[0] if route else ua.require_account().registrar_uri)
    except Exception:  # noqa: BLE001 - ResolutionError: not located (yet); no keep-alive this time
        return None
    driver = ua.protocol
    expect = registrar_supports_outbound(result.response if result is not None else None)
    flow: Any
    if ua.transport.reliable:
        flow = StreamFlow(driver, destination, expect_answer=expect)
    else:
        flow = DatagramFlow(driver, destination, ua.config.keepalive_stun, expect_answer=expect)
        config = ua.config
        if config.nat_contact and not config.public_host and not config.outbound:

            def moved(mapped: Address) -> None:
                # the NAT gave us another public address (its mapping was flushed or timed
                # out): the registrar's binding points at the old one; register again now,
                # and the answer's received/rport correct the Contact (RFC 3581)
                if mapped != ua.core.local:
                    registration.flow_failed(f"the NAT now maps us to {mapped[0]}:{mapped[1]}")

            flow.on_mapped = moved
    keepalive = FlowKeepAlive(ua.reactor, flow, interval, ua.config.keepalive_timeout, registration.flow_failed,
                              random=registration.random)
    keepalive.on_alive = registration.flow_alive
    return keepalive
