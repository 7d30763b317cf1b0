"""The registration lifecycle as a declared table, and the values it reports (RFC 3261 §10.2, RFC 5626 §4.4-§4.5).

Theory of operation
-------------------
A :class:`~txsipua.ua.registration.Registration` (the Twisted driver: timers,
back-off, the REGISTER itself) moves only through :data:`REGISTRATION_TABLE`,
``{(RegistrationState, RegistrationInput): (RegistrationAction, next
RegistrationState)}``, drawn above the table.  Inputs are the application's
orders (``start``, ``stop``, ``abandon``), the outcome of the REGISTER in
flight (``granted``, ``cleared``, ``failed``, ``rejected``; :func:`is_refusal`
tells a refusal from a transient failure), the flow's keep-alive
(``flow_failed``) and three timers (``refresh_due``, ``retry_due``,
``expired``).  An input absent from the table is ignored.

The values a registration reports live here too: the :class:`Binding` list
and :class:`RegistrationResult` of a 2xx to REGISTER (:func:`parse_bindings`,
§10.2.4; :func:`same_contact`, §19.1.4) and the
:class:`RegistrationStateChanged` given to ``on_state_change``.

Pure: no Twisted, no clock, no I/O.
"""

from __future__ import annotations

import enum

import attrs

from txsipua.errors import AuthenticationError, ParseError, RegistrationFailed
from txsipua.sip.message import Response
from txsipua.sip.uri import SipURI


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


@attrs.frozen
class RegistrationStateChanged:
    """One change of a :class:`Registration`'s state, as reported to ``on_state_change``.

    Attributes:
        previous: the :class:`RegistrationState` left.
        state: the :class:`RegistrationState` entered.
        input: the :class:`RegistrationInput` that caused it.
        error: the failure behind a ``failed``/``rejected`` input, else ``None``.
        registered: :attr:`Registration.registered` after the change.
        next_attempt: when the next REGISTER is due (seconds, absolute), or ``None``.
    """

    previous: RegistrationState
    state: RegistrationState
    input: RegistrationInput
    error: Exception | None
    registered: bool
    next_attempt: float | None


def is_refusal(error: Exception) -> bool:
    """True when ``error`` refuses a REGISTER for good (a first REGISTER is then not retried).

    Refusals: digest authentication not overcome, and final responses other
    than 408, 423, 429, 480, 5xx and 6xx (RFC 5626 §4.5 retries those, and
    timeouts and transport errors, with its back-off).
    """
    if isinstance(error, AuthenticationError):
        return True
    if isinstance(error, RegistrationFailed):
        status = error.status
        return 400 <= status < 500 and status not in (408, 423, 429, 480)
    return False


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
    FAILED = "failed"  # a transient failure: timeout, transport error, 408, 480, 429, 5xx, 6xx...
    REJECTED = "rejected"  # a refusal (403, 404, authentication failed): the first REGISTER is not retried
    FLOW_FAILED = "flow-failed"  # the flow to the registrar died (no keep-alive pong, connection lost)
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
    RECOVER = "recover"  # cancel every timer, REGISTER again at once (a new flow, RFC 5626 §4.4.1)

    __hash__ = object.__hash__


S = RegistrationState
In = RegistrationInput
A = RegistrationAction

#                  start                 rejected, cleared, stop, abandon
#  unregistered ----------> registering ---------------------------> unregistered
#                               |  |  \ stop              failed, cleared, abandon  ^
#                               |  |   +---------> stop-pending ---------------------+
#                               |  |                    | granted: REGISTER Expires: 0
#                               |  | failed             v
#                               |  +--------+     unregistering
#                               | granted   |
#                               v           |
#              +----------> registered <----|----------------+
#              | granted        | refresh_due (expired too)  | granted
#              |                v           |                |
#              +----------- refreshing -----|-- expired --> retrying <--+
#                             |    ^        |                 |    ^   | flow_failed (from
#                      failed |    | retry_ v          failed |    |   |  registered: REGISTER
#                             v    |  due                     v    |   |  again at once)
#                           backing-off ----- expired -----> lapsed
#
#  failed and rejected: any failure of the REGISTER in flight.  "rejected" is a
#        refusal (403, 404, 401/407 not overcome); it ends a first REGISTER
#        (nothing is retried) and is a failure like any other on a refresh.
#  flow_failed: registered --> retrying (REGISTER at once on a new flow; after
#        flow failures in a row with no sign of life between them, the
#        REGISTER waits Registration.flow_retry_delay(), RFC 5626 §4.5);
#        backing-off --> lapsed (the retry timer stands); elsewhere ignored
#        (a REGISTER in flight fails on its own).
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
    (S.REGISTERING, In.FAILED): (A.BACK_OFF, S.LAPSED),
    (S.REGISTERING, In.REJECTED): (A.NONE, S.UNREGISTERED),
    (S.REGISTERING, In.STOP): (A.NONE, S.STOP_PENDING),
    (S.REGISTERING, In.ABANDON): (A.NONE, S.UNREGISTERED),
    (S.REGISTERED, In.REFRESH_DUE): (A.SEND, S.REFRESHING),
    (S.REGISTERED, In.EXPIRED): (A.SEND, S.RETRYING),
    (S.REGISTERED, In.STOP): (A.UNREGISTER, S.UNREGISTERING),
    (S.REGISTERED, In.ABANDON): (A.DISARM, S.UNREGISTERED),
    (S.REGISTERED, In.FLOW_FAILED): (A.RECOVER, S.RETRYING),
    (S.REFRESHING, In.GRANTED): (A.ARM, S.REGISTERED),
    (S.REFRESHING, In.CLEARED): (A.DISARM, S.UNREGISTERED),
    (S.REFRESHING, In.FAILED): (A.BACK_OFF, S.BACKING_OFF),
    (S.REFRESHING, In.REJECTED): (A.BACK_OFF, S.BACKING_OFF),
    (S.REFRESHING, In.EXPIRED): (A.NONE, S.RETRYING),
    (S.REFRESHING, In.STOP): (A.UNREGISTER, S.UNREGISTERING),
    (S.REFRESHING, In.ABANDON): (A.DISARM, S.UNREGISTERED),
    (S.BACKING_OFF, In.RETRY_DUE): (A.SEND, S.REFRESHING),
    (S.BACKING_OFF, In.EXPIRED): (A.NONE, S.LAPSED),
    (S.BACKING_OFF, In.STOP): (A.UNREGISTER, S.UNREGISTERING),
    (S.BACKING_OFF, In.ABANDON): (A.DISARM, S.UNREGISTERED),
    (S.BACKING_OFF, In.FLOW_FAILED): (A.NONE, S.LAPSED),
    (S.LAPSED, In.RETRY_DUE): (A.SEND, S.RETRYING),
    (S.LAPSED, In.STOP): (A.DISARM, S.UNREGISTERED),
    (S.LAPSED, In.ABANDON): (A.DISARM, S.UNREGISTERED),
    (S.RETRYING, In.GRANTED): (A.ARM, S.REGISTERED),
    (S.RETRYING, In.RETRY_DUE): (A.SEND, S.RETRYING),
    (S.RETRYING, In.CLEARED): (A.DISARM, S.UNREGISTERED),
    (S.RETRYING, In.FAILED): (A.BACK_OFF, S.LAPSED),
    (S.RETRYING, In.REJECTED): (A.BACK_OFF, S.LAPSED),
    (S.RETRYING, In.STOP): (A.UNREGISTER, S.UNREGISTERING),
    (S.RETRYING, In.ABANDON): (A.DISARM, S.UNREGISTERED),
    (S.STOP_PENDING, In.GRANTED): (A.UNREGISTER, S.UNREGISTERING),
    (S.STOP_PENDING, In.CLEARED): (A.NONE, S.UNREGISTERED),
    (S.STOP_PENDING, In.FAILED): (A.NONE, S.UNREGISTERED),
    (S.STOP_PENDING, In.REJECTED): (A.NONE, S.UNREGISTERED),
    (S.STOP_PENDING, In.STOP): (A.NONE, S.STOP_PENDING),
    (S.STOP_PENDING, In.ABANDON): (A.NONE, S.UNREGISTERED),
    (S.UNREGISTERING, In.CLEARED): (A.NONE, S.UNREGISTERED),
    (S.UNREGISTERING, In.GRANTED): (A.NONE, S.UNREGISTERED),
    (S.UNREGISTERING, In.FAILED): (A.NONE, S.UNREGISTERED),
    (S.UNREGISTERING, In.REJECTED): (A.NONE, S.UNREGISTERED),
    (S.UNREGISTERING, In.ABANDON): (A.NONE, S.UNREGISTERED),
}


__all__ = [
    "REGISTRATION_TABLE",
    "Binding",
    "RegistrationAction",
    "RegistrationInput",
    "RegistrationResult",
    "RegistrationState",
    "RegistrationStateChanged",
    "is_refusal",
    "parse_bindings",
    "same_contact",
]
