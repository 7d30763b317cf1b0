"""Registration: a binding at a registrar, kept alive (RFC 3261 §10.2, RFC 5626 §4.4-§4.5).

Theory of operation
-------------------
A :class:`Registration` sends REGISTER for the account's address of record
with our Contact, refreshes it before the granted expiry runs out, backs off
and retries when a REGISTER fails, and unregisters (``Expires: 0``, §10.2.2)
when stopped.  Every REGISTER of one registration shares its Call-ID and From
tag and the CSeq grows by one (§10.2.4); the account's digest client answers
401/407 and reuses the last credentials pre-emptively (§22.3); a 423 is
answered by registering again with the Min-Expires asked for (§10.2.8).

The lifecycle is one table, ``{(RegistrationState, RegistrationInput):
(RegistrationAction, next RegistrationState)}``, declared and drawn in
:mod:`txsipua.ua.registration_table` with the values a registration reports
(every name of which is re-exported here); this module drives it.  Inputs are the
application's orders (``start``, ``stop``, ``abandon``), the outcome of the
REGISTER in flight (``granted``, ``cleared``, ``failed``, ``rejected``), the
flow's keep-alive (``flow_failed``, :mod:`txsipua.ua.keepalive`) and three
timers: ``refresh_due`` (:meth:`Registration.refresh_delay` after a grant),
``expired`` (the grant has run out) and ``retry_due`` (after a failure,
:meth:`Registration.retry_delay`, RFC 5626 §4.5: ``min(max_retry, base *
2 ** failures)`` scaled by a random 50-100 %, ``base`` 30 s when every flow
failed and 90 s while another flow of the instance is up; reset by a grant;
never sooner than a failure response's ``Retry-After``, RFC 3261 §21.5.4).
A first REGISTER that fails for a transient reason (timeout, transport error,
408, 480, 5xx, 6xx) is retried the same way; one refused (403, 404,
credentials not accepted) ends unregistered.  An input absent from the table
is ignored (a late timer); the outcome of a REGISTER that is no longer the
latest one sent (a refresh overtaken by ``stop``) is ignored as well.

Every change of state is logged and given to
:attr:`Registration.on_state_change` as a :class:`RegistrationStateChanged`.
:attr:`Registration.registered` is derived from the state: True in
``registered``, ``refreshing`` and ``backing-off`` (the binding holds), False
once the binding has lapsed without a successful refresh, and from a flow
failure until the next grant.

Behind a NAT (RFC 3581): when the registrar's answer shows in the top Via's
``received``/``rport`` another address than our Contact names, the user agent
advertises that address from then on (:meth:`UserAgent.advertise
<txsipua.ua.useragent.UserAgent.advertise>`) and registers once more with
the corrected Contact, removing the old one (``expires=0``) in the same
REGISTER; never twice in a row.  With :attr:`Configuration.outbound
<txsipua.ua.config.Configuration.outbound>` the Contact carries
``+sip.instance`` and ``reg-id`` instead (RFC 5626 §4.2) and the registrar
keeps the flow.

Over TCP/TLS without Outbound nothing comes back in ``received``/``rport``
that could correct the Contact; when a flow fails there the local address
may have changed (another network), so before registering again on a new
connection the Contact is re-picked as the interface that now routes to
the registrar (a wildcard bind only) and the old Contact is removed
(``expires=0``) in the same REGISTER, as on UDP.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from txsipua.core.uac import retry_after_seconds
from txsipua.errors import LocalProtocolError, RegistrationFailed
from txsipua.sip.message import Response
from txsipua.sip.uri import SipURI
from txsipua.ua.interfaces import IRegistration
from txsipua.ua.nat import learned_address, outbound_contact, repick_for_new_flow
from txsipua.ua.registration_table import (
    REGISTRATION_TABLE,
    Binding,
    RegistrationAction,
    RegistrationInput,
    RegistrationResult,
    RegistrationState,
    RegistrationStateChanged,
    is_refusal,
    parse_bindings,
    same_contact,
)

if TYPE_CHECKING:
    from txsipua.ua.useragent import UserAgent

log = Logger()


MAX_EXPIRES = 2**32 - 1
"""The largest expiry a registrar may grant or ask for (RFC 3261 §20.19, §20.23: 2**32 - 1 s)."""


MAX_TIMER = float(2**21)
"""The longest timer armed, seconds (about 24 days): an epoll reactor cannot wait much longer (its
timeout is a C int of milliseconds).  A longer grant is refreshed at most this far apart."""


def _lists_contacts(response: Response) -> bool:
    return bool(response.headers.get_all("Contact"))


S = RegistrationState
In = RegistrationInput
A = RegistrationAction


def _retry_after(error: Exception) -> float:
    """Seconds a failure response asked us to wait (Retry-After, RFC 3261 §20.33, §21.5.4), else 0.

    RFC 5626 §4.5 lets the back-off take the larger of the two; the value
    is capped at :data:`MAX_TIMER` so that a silly one cannot overflow a timer.
    """
    response = getattr(error, "response", None)
    if not isinstance(response, Response):
        return 0.0
    try:
        wait = retry_after_seconds(response)
    except ValueError:
        return 0.0
    return min(float(wait), MAX_TIMER) if wait is not None else 0.0


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
        retry_after_some_flows: the base of the back-off while another
            flow of the same instance is registered (RFC 5626 §4.5: 90 s).
        max_retry: the cap of the back-off, seconds (30 minutes by default,
            :attr:`Configuration.registration_max_retry`).
        failures: consecutive failed REGISTERs since the last grant.
        flow_failures: consecutive flow failures with no sign of life of
            the flow between them (a grant does not reset it; an answered
            keep-alive does, :meth:`flow_alive`).
        result: the last :class:`RegistrationResult`, or ``None``.
        unregister_error: why the last un-REGISTER sent by :meth:`stop`
            failed (:class:`~txsipua.errors.TransactionTimeout`,
            :class:`~txsipua.errors.RegistrationFailed`,
            :class:`~txsipua.errors.AuthenticationError`...), or ``None``.
        on_refresh_failed: optional callable taking the error when a refresh
            (or a retry) fails (the registration retries after :meth:`retry_delay` seconds).
        on_state_change: optional callable taking a
            :class:`RegistrationStateChanged` at every change of :attr:`state`.
        reg_id: the RFC 5626 ``reg-id`` of this registration's Contact when
            :attr:`Configuration.outbound` is on.
        flow: the :class:`~txsipua.ua.keepalive.FlowKeepAlive` pinging the
            registrar while registered (keep-alives on), else ``None``.
    """

    def __init__(self, ua: UserAgent, expires: int = 3600, retry_after: float | None = None,
                 *, random: Callable[[], float] | None = None) -> None:
        self.ua = ua
        self.expires = expires
        config = ua.config
        self.retry_after = config.registration_retry if retry_after is None else retry_after
        self.retry_after_some_flows: float = config.registration_retry_some_flows
        self.max_retry: float = config.registration_max_retry
        self.random: Callable[[], float] = random if random is not None else _random.random
        self.failures = 0
        self.flow_failures = 0
        self.state = RegistrationState.UNREGISTERED
        self.result: RegistrationResult | None = None
        self.unregister_error: Exception | None = None
        self.on_refresh_failed: Callable[[Exception], object] | None = None
        self.on_state_change: Callable[[RegistrationStateChanged], object] | None = None
        self.reg_id: int = config.reg_id
        self.flow: Any = None  # the keep-alive of the flow to the registrar (ua.keepalive), or None
        core = ua.core
        self._call_id = core.ids.call_id(core.local[0])
        self._from_tag = core.ids.tag()
        self._cseq = 0
        self._attempt = 0
        self._outcome: defer.Deferred[RegistrationResult] | None = None
        self._timers: dict[RegistrationInput, Any] = {}  # input -> IDelayedCall
        self._stop_waiters: list[defer.Deferred[RegistrationResult | None]] = []
        self._remove_next: SipURI | None = None  # an old Contact the next REGISTER removes (expires=0)

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
        that un-REGISTER's result; a failure of that first REGISTER fires it
        with ``None``.

        It never fails: when the un-REGISTER itself fails (no answer within
        Timer F, a failure response, credentials not accepted) the Deferred
        fires with ``None`` and the error is kept in
        :attr:`unregister_error` (and given to ``on_state_change`` with the
        change to ``unregistered``).  Either way the registration ends
        ``unregistered``; a binding left behind runs out at the registrar.
        """
        before = self._attempt
        self._handle(In.STOP)
        if self.state is S.STOP_PENDING:
            waiter: defer.Deferred[RegistrationResult | None] = defer.Deferred()
            self._stop_waiters.append(waiter)
            return waiter
        if self._attempt == before or self._outcome is None:
            return defer.succeed(None)
        return self._unregistered(self._outcome)

    def abandon(self) -> None:
        """Stop refreshing without unregistering: the binding runs out at the registrar."""
        self._handle(In.ABANDON)

    def flow_failed(self, reason: str = "flow failed") -> None:
        """The flow to the registrar died (no pong, connection lost): register again on a new one.

        RFC 5626 §4.4.1: registered, a REGISTER goes out at once (state
        ``retrying``, :attr:`registered` False until it is granted); backing
        off, the binding is taken as lapsed and the retry timer stands.
        Elsewhere nothing changes (a REGISTER in flight fails on its own).
        """
        if self.state in (S.REGISTERED, S.BACKING_OFF):
            log.warn("registration flow to the registrar failed: {reason}", reason=reason)
        if self.state is S.REGISTERED:
            self.flow_failures += 1
        before = self._attempt
        self._handle(In.FLOW_FAILED)
        if self._attempt != before and self._outcome is not None:
            self._outcome.addErrback(lambda _: None)  # its failure went to on_refresh_failed

    def flow_alive(self) -> None:
        """The flow proved alive (a keep-alive answered, or sent): flow failures start counting anew."""
        self.flow_failures = 0

    def flow_retry_delay(self) -> float:
        """Seconds before the REGISTER after a flow failure (RFC 5626 §4.5).

        The first failure re-registers at once; after ``n`` failures in a row
        (the flow never proved alive between them) the wait is
        ``min(max_retry, retry_after * 2 ** (n - 1))`` scaled by a random
        50-100 %, so a server that drops every flow is not hammered.
        """
        if self.flow_failures <= 1:
            return 0.0
        exponent = min(self.flow_failures - 1, 32)
        return float(min(self.max_retry, self.retry_after * 2**exponent) * (0.5 + 0.5 * self.random()))

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

        RFC 5626 §4.5: ``wait = min(max_retry, base * 2 ** failures)`` scaled
        by a random 50-100 %, so that many user agents cut off by one outage
        do not come back in step.  ``base`` is :attr:`retry_after` (30 s) when
        every flow failed, :attr:`retry_after_some_flows` (90 s) while another
        registration of the same instance (Outbound, another ``reg-id``) is
        registered.
        """
        exponent = min(max(self.failures, 0), 32)
        base = self.retry_after_some_flows if self._other_flow_up() else self.retry_after
        ceiling = min(self.max_retry, base * 2**exponent)
        return float(ceiling * (0.5 + 0.5 * self.random()))

    def _other_flow_up(self) -> bool:
        if not self.ua.config.outbound:
            return False
        return any(r is not self and r.registered for r in list(self.ua.registrations))

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
        if next_state not in _BOUND:
            self._stop_flow()
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
        elif action is A.RECOVER:
            self._disarm()
            self._remove_next = repick_for_new_flow(self.ua) or self._remove_next
            delay = self.flow_retry_delay()
            if delay > 0:
                self._later(In.RETRY_DUE, delay)
            else:
                self._send(self.expires)
        if previous is S.STOP_PENDING and next_state is not S.STOP_PENDING:
            self._release_stop_waiters(self._outcome if action is A.UNREGISTER else None)
        if previous is not next_state:
            self._report(previous, event, error)

    def _report(self, previous: RegistrationState, event: RegistrationInput, error: Exception | None) -> None:
        change = RegistrationStateChanged(previous, self.state, event, error, self.registered, self.next_attempt)
        log.info("registration {previous} -> {state} ({input})", previous=previous.value,
                 state=self.state.value, input=event.value)
        if self.on_state_change is not None:
            try:
                self.on_state_change(change)
            except Exception:
                log.failure("on_state_change failed")

    def _release_stop_waiters(self, unregister: defer.Deferred[RegistrationResult] | None) -> None:
        waiters, self._stop_waiters = self._stop_waiters, []

        def fan_out(value: RegistrationResult | None) -> None:
            for waiter in waiters:
                waiter.callback(value)

        if unregister is None:
            fan_out(None)
        else:
            self._unregistered(unregister).addCallback(fan_out)

    def _unregistered(self, unregister: defer.Deferred[RegistrationResult]) -> defer.Deferred[RegistrationResult | None]:
        """What :meth:`stop` fires with: the un-REGISTER's result, or None when it failed (kept)."""
        self.unregister_error = None
        done: defer.Deferred[RegistrationResult | None] = defer.Deferred()

        def settled(value: RegistrationResult | Failure) -> None:
            if isinstance(value, Failure):
                error: Exception = value.value  # type: ignore[assignment]
                self.unregister_error = error
                log.info("unregistering failed: {err}", err=error)
                done.callback(None)
            else:
                done.callback(value)

        unregister.addBoth(settled)
        return done

    def _send(self, expires: int) -> None:
        self._attempt += 1
        attempt = self._attempt
        outcome: defer.Deferred[RegistrationResult] = defer.Deferred()
        self._outcome = outcome

        def settled(value: RegistrationResult | Failure) -> None:
            current = attempt == self._attempt
            if isinstance(value, Failure):
                if current:
                    error: Exception = value.value  # type: ignore[assignment]
                    self._handle(In.REJECTED if is_refusal(error) else In.FAILED, error=error)
                outcome.errback(value)
            else:
                if current:
                    self.result = value
                    self._handle(In.GRANTED if value.expires > 0 else In.CLEARED, result=value)
                outcome.callback(value)

        remove, self._remove_next = (self._remove_next, None) if expires else (None, self._remove_next)
        defer.maybeDeferred(self._transact, expires, remove=remove).addBoth(settled)


    def _arm(self, granted: int) -> None:
        self._disarm()
        self.failures = 0
        granted = int(min(granted, MAX_TIMER))  # refreshed in time, however long the grant
        self._later(In.REFRESH_DUE, self.refresh_delay(granted))
        self._later(In.EXPIRED, float(granted))
        self._start_flow()

    def _back_off(self, error: Exception) -> None:
        log.warn("registration failed: {err}", err=error)
        self.failures += 1
        self._later(In.RETRY_DUE, max(self.retry_delay(), _retry_after(error)))
        if self.on_refresh_failed is not None:
            self.on_refresh_failed(error)

    def _start_flow(self) -> None:
        """Keep the flow to the registrar alive (RFC 5626 §4.4) when keep-alives are on."""
        if self.flow is not None or self.ua.keepalive_interval(self.result) is None:
            return
        from txsipua.ua.keepalive import start_flow_keepalive

        self.flow = start_flow_keepalive(self.ua, self, self.result)

    def _stop_flow(self) -> None:
        flow, self.flow = self.flow, None
        if flow is not None:
            flow.stop()

    def _later(self, which: RegistrationInput, delay: float) -> None:
        old = self._timers.pop(which, None)
        if old is not None and old.active():
            old.cancel()
        self._timers[which] = self.ua.reactor.callLater(min(max(delay, 0.0), MAX_TIMER), self._fire, which)

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

    def _transact(self, expires: int, *, correct: bool = True,
                  remove: SipURI | None = None) -> defer.Deferred[RegistrationResult]:
        ua = self.ua
        account = ua.require_account()
        self._cseq += 1
        config = ua.config
        headers = [("Expires", str(expires))]
        contact = not config.outbound
        if config.outbound:
            # RFC 5626 §4.2: +sip.instance and reg-id on the Contact; Supported: outbound, path
            headers.append(("Contact", outbound_contact(ua.core.contact_uri(), ua.instance_id, self.reg_id)))
            headers.append(("Supported", "outbound, path"))
        if remove is not None:
            headers.append(("Contact", f"<{remove}>;expires=0"))  # the binding a NAT hid from us
        req = ua.core.new_request(
            "REGISTER",
            account.registrar_uri,
            account.identity.with_tag(self._from_tag),
            account.identity,
            call_id=self._call_id,
            cseq=self._cseq,
            contact=contact,
            route=ua.outbound_route(),
            headers=headers,
        )

        def done(response: Response) -> RegistrationResult | defer.Deferred[RegistrationResult]:
            self._cseq = max(self._cseq, response.cseq.seq)
            if response.status == 423 and expires:
                # Interval Too Brief: retry with the registrar's minimum (§10.2.8)
                try:
                    minimum = int((response.headers.get("Min-Expires") or "").strip())
                except ValueError:
                    raise RegistrationFailed(response, "registration") from None
                minimum = min(minimum, MAX_EXPIRES)
                if minimum > expires:
                    self.expires = minimum
                    return self._transact(minimum, correct=correct)
            if not 200 <= response.status < 300:
                raise RegistrationFailed(response, "registration")
            if expires and correct and config.nat_contact and not config.outbound:
                public = learned_address(response, ua.core.local, ua.core.transport)
                if public is not None:
                    # RFC 3581: the registrar saw us at another address (a NAT): our
                    # Contact names it from now on; register it once, dropping the old one
                    old = ua.core.contact_uri()
                    log.info("NAT detected: the registrar sees us at {public}; re-registering", public=public)
                    ua.advertise(public)
                    return self._transact(expires, correct=False, remove=old)
            bindings, granted = parse_bindings(response, ua.core.contact_uri(), expires)
            if expires and not bindings and not _lists_contacts(response):
                granted = expires  # registrar listed no binding at all: assume what we asked for
            elif expires and granted <= 0:
                # a 2xx that lists bindings but grants ours nothing (absent, or expires=0)
                # did not register us: a failure like any other, backed off (RFC 3261 §10.2.4)
                raise RegistrationFailed(response, "registration (the 2xx granted our Contact no binding)")
            granted = min(granted, MAX_EXPIRES)
            return RegistrationResult(response, bindings, granted if expires else 0)

        return ua.send(req).addCallback(done)


__all__ = [
    "MAX_EXPIRES",
    "MAX_TIMER",
    "REGISTRATION_TABLE",
    "Binding",
    "Registration",
    "RegistrationAction",
    "RegistrationInput",
    "RegistrationResult",
    "RegistrationState",
    "RegistrationStateChanged",
    "is_refusal",
    "parse_bindings",
    "same_contact",
]
