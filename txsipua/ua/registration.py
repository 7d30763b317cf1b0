"""Registration: a binding at a registrar, kept alive (RFC 3261 §10.2).

Theory of operation
-------------------
A :class:`Registration` sends REGISTER for the account's address of record
with our Contact, refreshes it before the granted expiry runs out, backs off
and retries when a refresh fails, and unregisters (``Expires: 0``, §10.2.2)
when stopped.  Every REGISTER of one registration shares its Call-ID and From
tag and the CSeq grows by one (§10.2.4); the account's digest client answers
401/407 and reuses the last credentials pre-emptively (§22.3).

The lifecycle is one table, ``{(RegistrationState, RegistrationInput):
(RegistrationAction, next RegistrationState)}``, drawn below.  Inputs are the
application's orders (``start``, ``stop``, ``abandon``), the outcome of the
REGISTER in flight (``granted``, ``cleared``, ``failed``) and three timers:
``refresh_due`` (:meth:`Registration.refresh_delay` after a grant),
``expired`` (the grant has run out) and ``retry_due`` (after a failed
refresh, :meth:`Registration.retry_delay`: ``retry_after`` doubling with each
consecutive failure, capped at :attr:`Registration.max_retry`, jittered to
50-100 % as RFC 5626 §4.5 does, reset by a grant).  An input absent from the table is ignored
(a late timer); the outcome of a REGISTER that is no longer the latest one
sent (a refresh overtaken by ``stop``) is ignored as well.

:attr:`Registration.registered` is derived from the state: True in
``registered``, ``refreshing`` and ``backing-off`` (the binding holds), False
once the binding has lapsed without a successful refresh.
"""

from __future__ import annotations

import enum
import random as _random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from txsipua.errors import LocalProtocolError, ParseError, RegistrationFailed
from txsipua.sip.message import Response
from txsipua.sip.uri import SipURI
from txsipua.ua.interfaces import IRegistration

if TYPE_CHECKING:
    from txsipua.ua.useragent import UserAgent

log = Logger()


@attrs.frozen
class Binding:
    """One contact bound to an address of record (RFC 3261 §10.3).

    Attributes:
        contact: the Contact URI.
        expires: seconds left, as the registrar granted it.
        ours: True when this is our own Contact.
    """

    contact: SipURI
    expires: int
    ours: bool


@attrs.frozen
class RegistrationResult:
    """The outcome of a successful REGISTER.

    Attributes:
        response: the 2xx response.
        bindings: every binding the registrar listed.
        expires: the expiry granted to our Contact, seconds (0 when unregistered).
    """

    response: Response
    bindings: tuple[Binding, ...]
    expires: int


def parse_bindings(response: Response, ours: SipURI, default_expires: int) -> tuple[tuple[Binding, ...], int]:
    """The bindings a 2xx to REGISTER lists, and the expiry granted to ``ours`` (RFC 3261 §10.2.4).

    A Contact's ``expires`` parameter wins over the Expires header, which wins
    over ``default_expires``.  Unparsable Contact or Expires headers count as
    absent (a registrar's formatting slip must not lose the registration).

    Returns:
        ``(bindings, granted)``; ``granted`` is 0 when our Contact is not listed.
    """
    header_expires = default_expires
    try:
        if response.expires is not None:
            header_expires = response.expires
    except ParseError:
        pass
    out = []
    granted = 0
    try:
        contacts = response.contact
    except ParseError:
        contacts = []
    for na in contacts:
        if na.wildcard:
            continue
        exp = na.expires if na.expires is not None else header_expires
        mine = same_contact(na.uri, ours)
        if mine:
            granted = exp
        out.append(Binding(na.uri, exp, mine))
    return tuple(out), granted


def same_contact(a: SipURI, b: SipURI) -> bool:
    """RFC 3261 §19.1.4 URI comparison, reduced to what registrars keep (scheme, user, host, port)."""
    return (
        a.scheme == b.scheme
        and (a.user or "") == (b.user or "")
        and a.host.lower() == b.host.lower()
        and (a.port or 5060) == (b.port or 5060)
    )


class RegistrationState(enum.Enum):
    """Where a :class:`Registration` is in its lifecycle (see the module docstring)."""

    UNREGISTERED = "unregistered"  # no binding, nothing in flight
    REGISTERING = "registering"  # first REGISTER in flight
    REGISTERED = "registered"  # bound; refresh timer armed
    REFRESHING = "refreshing"  # bound; refresh in flight
    BACKING_OFF = "backing-off"  # bound; a refresh failed, retry timer armed
    LAPSED = "lapsed"  # the grant ran out unrefreshed; retry timer armed
    RETRYING = "retrying"  # lapsed; REGISTER in flight
    UNREGISTERING = "unregistering"  # Expires: 0 in flight
    STOP_PENDING = "stop-pending"  # stopped while the first REGISTER is in flight: unregister if granted

    __hash__ = object.__hash__  # members are singletons: identity hash, fast table lookups


class RegistrationInput(enum.Enum):
    """What can happen to a :class:`Registration`."""

    START = "start"
    STOP = "stop"
    ABANDON = "abandon"
    GRANTED = "granted"  # 2xx granting our Contact a non-zero expiry
    CLEARED = "cleared"  # 2xx leaving us unbound (to Expires: 0, or nothing granted)
    FAILED = "failed"  # non-2xx, timeout, transport or authentication error
    REFRESH_DUE = "refresh-due"
    RETRY_DUE = "retry-due"
    EXPIRED = "expired"

    __hash__ = object.__hash__


class RegistrationAction(enum.Enum):
    """What a transition does before entering its next state."""

    NONE = "none"
    SEND = "send"  # REGISTER with the asked expiry
    ARM = "arm"  # a grant: arm refresh_due and expired timers
    BACK_OFF = "back-off"  # report the failure, arm retry_due
    DISARM = "disarm"  # cancel every timer
    UNREGISTER = "unregister"  # cancel every timer, REGISTER with Expires: 0

    __hash__ = object.__hash__


S = RegistrationState
In = RegistrationInput
A = RegistrationAction

#                  start                 failed, cleared, stop, abandon
#  unregistered ----------> registering ---------------------------> unregistered
#                               |     \ stop              failed, cleared, abandon  ^
#                               |      +---------> stop-pending ---------------------+
#                               |                       | granted: REGISTER Expires: 0
#                               |                       v
#                               |                 unregistering
#                               | granted
#                               v
#              +----------> registered <---------------------+
#              | granted        | refresh_due (expired too)  | granted
#              |                v                            |
#              +----------- refreshing ----- expired -----> retrying
#                             |    ^                          |    ^
#                      failed |    | retry_due         failed |    | retry_due
#                             v    |                          v    |
#                           backing-off ----- expired -----> lapsed
#
#  stop: registered, refreshing, backing-off, retrying --> unregistering
#        (REGISTER with Expires: 0) --cleared, granted, failed--> unregistered;
#        registering --> stop-pending (the grant, if one comes, is undone);
#        lapsed --> unregistered, nothing sent.
#  abandon: any state --> unregistered, nothing sent, every timer cancelled.

REGISTRATION_TABLE: dict[tuple[RegistrationState, RegistrationInput], tuple[RegistrationAction, RegistrationState]] = {
    (S.UNREGISTERED, In.START): (A.SEND, S.REGISTERING),
    (S.UNREGISTERED, In.STOP): (A.NONE, S.UNREGISTERED),
    (S.UNREGISTERED, In.ABANDON): (A.NONE, S.UNREGISTERED),
    (S.REGISTERING, In.GRANTED): (A.ARM, S.REGISTERED),
    (S.REGISTERING, In.CLEARED): (A.NONE, S.UNREGISTERED),
    (S.REGISTERING, In.FAILED): (A.NONE, S.UNREGISTERED),
    (S.REGISTERING, In.STOP): (A.NONE, S.STOP_PENDING),
    (S.REGISTERING, In.ABANDON): (A.NONE, S.UNREGISTERED),
    (S.REGISTERED, In.REFRESH_DUE): (A.SEND, S.REFRESHING),
    (S.REGISTERED, In.EXPIRED): (A.SEND, S.RETRYING),
    (S.REGISTERED, In.STOP): (A.UNREGISTER, S.UNREGISTERING),
    (S.REGISTERED, In.ABANDON): (A.DISARM, S.UNREGISTERED),
    (S.REFRESHING, In.GRANTED): (A.ARM, S.REGISTERED),
    (S.REFRESHING, In.CLEARED): (A.DISARM, S.UNREGISTERED),
    (S.REFRESHING, In.FAILED): (A.BACK_OFF, S.BACKING_OFF),
    (S.REFRESHING, In.EXPIRED): (A.NONE, S.RETRYING),
    (S.REFRESHING, In.STOP): (A.UNREGISTER, S.UNREGISTERING),
    (S.REFRESHING, In.ABANDON): (A.DISARM, S.UNREGISTERED),
    (S.BACKING_OFF, In.RETRY_DUE): (A.SEND, S.REFRESHING),
    (S.BACKING_OFF, In.EXPIRED): (A.NONE, S.LAPSED),
    (S.BACKING_OFF, In.STOP): (A.UNREGISTER, S.UNREGISTERING),
    (S.BACKING_OFF, In.ABANDON): (A.DISARM, S.UNREGISTERED),
    (S.LAPSED, In.RETRY_DUE): (A.SEND, S.RETRYING),
    (S.LAPSED, In.STOP): (A.DISARM, S.UNREGISTERED),
    (S.LAPSED, In.ABANDON): (A.DISARM, S.UNREGISTERED),
    (S.RETRYING, In.GRANTED): (A.ARM, S.REGISTERED),
    (S.RETRYING, In.CLEARED): (A.DISARM, S.UNREGISTERED),
    (S.RETRYING, In.FAILED): (A.BACK_OFF, S.LAPSED),
    (S.RETRYING, In.STOP): (A.UNREGISTER, S.UNREGISTERING),
    (S.RETRYING, In.ABANDON): (A.DISARM, S.UNREGISTERED),
    (S.STOP_PENDING, In.GRANTED): (A.UNREGISTER, S.UNREGISTERING),
    (S.STOP_PENDING, In.CLEARED): (A.NONE, S.UNREGISTERED),
    (S.STOP_PENDING, In.FAILED): (A.NONE, S.UNREGISTERED),
    (S.STOP_PENDING, In.STOP): (A.NONE, S.STOP_PENDING),
    (S.STOP_PENDING, In.ABANDON): (A.NONE, S.UNREGISTERED),
    (S.UNREGISTERING, In.CLEARED): (A.NONE, S.UNREGISTERED),
    (S.UNREGISTERING, In.GRANTED): (A.NONE, S.UNREGISTERED),
    (S.UNREGISTERING, In.FAILED): (A.NONE, S.UNREGISTERED),
    (S.UNREGISTERING, In.ABANDON): (A.NONE, S.UNREGISTERED),
}

_BOUND = frozenset({S.REGISTERED, S.REFRESHING, S.BACKING_OFF})
_TIMER_INPUTS = (In.REFRESH_DUE, In.RETRY_DUE, In.EXPIRED)


@implementer(IRegistration)
class Registration:
    """A registration kept alive: REGISTER, refresh before expiry, unregister (RFC 3261 §10.2).

    Get one from :meth:`UserAgent.registration <txsipua.ua.useragent.UserAgent.registration>`.

    Args:
        ua: the user agent (its account, core and reactor).
        expires: the expiry to ask for, seconds.
        retry_after: the base of the back-off after a failed refresh,
            seconds; ``None`` takes the user agent's
            :attr:`Configuration.registration_retry <txsipua.ua.config.Configuration.registration_retry>`.
        random: a callable returning a float in ``[0, 1)`` for the jitter of
            the back-off (``random.random`` by default; inject one in tests).

    Attributes:
        state: the :class:`RegistrationState`.
        expires: the expiry asked for, seconds (raised by a 423's Min-Expires).
        retry_after: the base of the back-off after a failed refresh, seconds.
        max_retry: the cap of the back-off, seconds (30 minutes).
        failures: consecutive failed refreshes or retries since the last grant.
        result: the last :class:`RegistrationResult`, or ``None``.
        on_refresh_failed: optional callable taking the error when a refresh
            fails (the registration retries after :meth:`retry_delay` seconds).
    """

    max_retry: float = 1800.0

    def __init__(self, ua: UserAgent, expires: int = 3600, retry_after: float | None = None,
                 *, random: Callable[[], float] | None = None) -> None:
        self.ua = ua
        self.expires = expires
        self.retry_after = ua.config.registration_retry if retry_after is None else retry_after
        self.random: Callable[[], float] = random if random is not None else _random.random
        self.failures = 0
        self.state = RegistrationState.UNREGISTERED
        self.result: RegistrationResult | None = None
        self.on_refresh_failed: Callable[[Exception], object] | None = None
        core = ua.core
        self._call_id = core.ids.call_id(core.local[0])
        self._from_tag = core.ids.tag()
        self._cseq = 0
        self._attempt = 0
        self._outcome: defer.Deferred[RegistrationResult] | None = None
        self._timers: dict[RegistrationInput, Any] = {}  # input -> IDelayedCall
        self._stop_waiters: list[defer.Deferred[RegistrationResult | None]] = []

    # ---------------------------------------------------------------- public
    @property
    def registered(self) -> bool:
        """True while our binding holds: granted and neither lapsed nor given up."""
        return self.state in _BOUND

    @property
    def next_attempt(self) -> float | None:
        """When the next refresh or retry is due (seconds, absolute, the reactor's clock), or ``None``."""
        for which in (In.REFRESH_DUE, In.RETRY_DUE):
            timer = self._timers.get(which)
            if timer is not None and timer.active():
                return float(timer.getTime())
        return None

    def start(self) -> defer.Deferred[RegistrationResult]:
        """Register now and keep refreshing; fires with the first result.

        Errbacks with :class:`~txsipua.errors.RegistrationFailed`,
        :class:`~txsipua.errors.AuthenticationError`,
        :class:`~txsipua.errors.TransactionTimeout`, or
        :class:`~txsipua.errors.LocalProtocolError` when already started.
        """
        if self.state is not RegistrationState.UNREGISTERED:
            return defer.fail(LocalProtocolError(f"the registration is already {self.state.value}"))
        self._handle(In.START)
        assert self._outcome is not None
        return self._outcome

    def stop(self) -> defer.Deferred[RegistrationResult | None]:
        """Stop refreshing and unregister (REGISTER with Expires: 0, §10.2.2).

        Fires with the :class:`RegistrationResult` of the un-REGISTER, or with
        ``None`` when no binding was held (nothing is sent).  Stopped while
        the first REGISTER is in flight, it waits for that REGISTER's answer:
        a grant is undone at once (Expires: 0) and the Deferred fires with
        that un-REGISTER's result; a failure fires it with ``None``.
        """
        before = self._attempt
        self._handle(In.STOP)
        if self.state is S.STOP_PENDING:
            waiter: defer.Deferred[RegistrationResult | None] = defer.Deferred()
            self._stop_waiters.append(waiter)
            return waiter
        if self._attempt == before or self._outcome is None:
            return defer.succeed(None)
        return self._outcome  # type: ignore[return-value]

    def abandon(self) -> None:
        """Stop refreshing without unregistering: the binding runs out at the registrar."""
        self._handle(In.ABANDON)

    @staticmethod
    def refresh_delay(granted: int) -> float:
        """Seconds after which to refresh a binding granted for ``granted`` seconds.

        Refreshes at half the interval for short ones and 32 s before expiry
        for long ones, so a lost REGISTER still has retransmission time
        (Timer F is 32 s) before the binding runs out; never under 1 s.
        """
        if granted <= 64:
            return max(1.0, granted / 2)
        return float(granted - 32)

    def retry_delay(self) -> float:
        """Seconds to wait before the next attempt after :attr:`failures` consecutive failures.

        RFC 5626 §4.5 style: ``min(max_retry, retry_after * 2 ** (failures - 1))``
        scaled by a random 50-100 %, so that many user agents cut off by one
        outage do not come back in step.
        """
        exponent = min(max(self.failures - 1, 0), 32)
        ceiling = min(self.max_retry, self.retry_after * 2**exponent)
        return float(ceiling * (0.5 + 0.5 * self.random()))

    def register_once(self, expires: int) -> defer.Deferred[RegistrationResult]:
        """One REGISTER asking for ``expires`` seconds, outside the lifecycle (no refresh).

        Errbacks as :meth:`start` does.
        """
        return self._transact(expires)

    def __repr__(self) -> str:
        return f"<Registration {self.state.value} expires={self.expires}>"

    # ------------------------------------------------------------ machinery
    def _handle(self, event: RegistrationInput, *, result: RegistrationResult | None = None,
                error: Exception | None = None) -> None:
        entry = REGISTRATION_TABLE.get((self.state, event))
        if entry is None:
            return  # a late timer: ignored
        action, next_state = entry
        previous, self.state = self.state, next_state
        if next_state is S.UNREGISTERED:
            self.ua.registrations.discard(self)
        elif previous is S.UNREGISTERED:
            self.ua.registrations.add(self)
        if action is A.SEND:
            self._send(self.expires)
        elif action is A.ARM:
            assert result is not None
            self._arm(result.expires)
        elif action is A.BACK_OFF:
            assert error is not None
            self._back_off(error)
        elif action is A.DISARM:
            self._disarm()
        elif action is A.UNREGISTER:
            self._disarm()
            self._send(0)
        if previous is S.STOP_PENDING and next_state is not S.STOP_PENDING:
            self._release_stop_waiters(self._outcome if action is A.UNREGISTER else None)

    def _release_stop_waiters(self, unregister: defer.Deferred[RegistrationResult] | None) -> None:
        waiters, self._stop_waiters = self._stop_waiters, []

        def fan_out(value: Any) -> None:
            for waiter in waiters:
                if isinstance(value, Failure):
                    waiter.errback(value)
                else:
                    waiter.callback(value)

        if unregister is None:
            fan_out(None)
        else:
            unregister.addBoth(fan_out)

    def _send(self, expires: int) -> None:
        self._attempt += 1
        attempt = self._attempt
        outcome: defer.Deferred[RegistrationResult] = defer.Deferred()
        self._outcome = outcome

        def settled(value: RegistrationResult | Failure) -> None:
            current = attempt == self._attempt
            if isinstance(value, Failure):
                if current:
                    self._handle(In.FAILED, error=value.value)  # type: ignore[arg-type]
                outcome.errback(value)
            else:
                if current:
                    self.result = value
                    self._handle(In.GRANTED if value.expires > 0 else In.CLEARED, result=value)
                outcome.callback(value)

        defer.maybeDeferred(self._transact, expires).addBoth(settled)

    def _arm(self, granted: int) -> None:
        self._disarm()
        self.failures = 0
        self._later(In.REFRESH_DUE, self.refresh_delay(granted))
        self._later(In.EXPIRED, float(granted))

    def _back_off(self, error: Exception) -> None:
        log.warn("registration refresh failed: {err}", err=error)
        if self.on_refresh_failed is not None:
            self.on_refresh_failed(error)
        self.failures += 1
        self._later(In.RETRY_DUE, self.retry_delay())

    def _later(self, which: RegistrationInput, delay: float) -> None:
        old = self._timers.pop(which, None)
        if old is not None and old.active():
            old.cancel()
        self._timers[which] = self.ua.reactor.callLater(delay, self._fire, which)

    def _fire(self, which: RegistrationInput) -> None:
        self._timers.pop(which, None)
        before = self._attempt
        self._handle(which)
        if self._attempt != before and self._outcome is not None:
            # nobody waits on a refresh: its failure went to on_refresh_failed
            self._outcome.addErrback(lambda _: None)

    def _disarm(self) -> None:
        for timer in self._timers.values():
            if timer.active():
                timer.cancel()
        self._timers.clear()

    def _transact(self, expires: int) -> defer.Deferred[RegistrationResult]:
        ua = self.ua
        account = ua.require_account()
        self._cseq += 1
        req = ua.core.new_request(
            "REGISTER",
            account.registrar_uri,
            account.identity.with_tag(self._from_tag),
            account.identity,
            call_id=self._call_id,
            cseq=self._cseq,
            route=ua.outbound_route(),
            headers=[("Expires", str(expires))],
        )

        def done(response: Response) -> RegistrationResult | defer.Deferred[RegistrationResult]:
            self._cseq = max(self._cseq, response.cseq.seq)
            if response.status == 423 and expires:
                # Interval Too Brief: retry with the registrar's minimum (§10.2.8)
                try:
                    minimum = int((response.headers.get("Min-Expires") or "").strip())
                except ValueError:
                    raise RegistrationFailed(response, "registration") from None
                if minimum > expires:
                    self.expires = minimum
                    return self._transact(minimum)
            if not 200 <= response.status < 300:
                raise RegistrationFailed(response, "registration")
            bindings, granted = parse_bindings(response, ua.core.contact_uri(), expires)
            if expires and not granted and not any(b.ours for b in bindings):
                granted = expires  # registrar did not list us back: assume what we asked for
            return RegistrationResult(response, bindings, granted if expires else 0)

        return ua.send(req).addCallback(done)
