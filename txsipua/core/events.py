"""Events the sans-IO user agent core emits (drained with ``UserAgentCore.next_event()``).

Each event is an immutable ``attrs`` value.  The Twisted layer (``txsipua.ua``)
turns them into Deferred results and callbacks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from txsipua.sip.message import Request, Response

if TYPE_CHECKING:  # pragma: no cover
    from txsipua.core.invite import InviteSession
    from txsipua.core.transaction import ServerTransaction
    from txsipua.core.uac import ClientOperation


@attrs.frozen
class ProvisionalResponse:
    """A 1xx arrived for a request or call (RFC 3261 §8.1.3.2, §13.2.2.1)."""

    operation: ClientOperation | InviteSession
    response: Response


@attrs.frozen
class RequestCompleted:
    """A non-INVITE request got its final response (any status, after authentication).

    Attributes:
        operation: the :class:`~txsipua.core.uac.ClientOperation`.
        response: the final response; 401/407 only when no retry was possible
            is reported as :class:`RequestFailed` instead.
    """

    operation: ClientOperation
    response: Response


@attrs.frozen
class RequestFailed:
    """A request ended without a usable final response.

    Attributes:
        operation: the operation.
        error: a :class:`~txsipua.errors.TransactionTimeout`,
            :class:`~txsipua.errors.TransportError` or
            :class:`~txsipua.errors.AuthenticationError`.
    """

    operation: ClientOperation
    error: Exception


@attrs.frozen
class CallAnswered:
    """Our INVITE got a 2xx: the dialog is confirmed and the ACK sent (RFC 3261 §13.2.2.4)."""

    session: InviteSession
    response: Response


@attrs.frozen
class CallAttemptFailed:
    """Our INVITE ended without a 2xx (the call attempt failed).

    Attributes:
        session: the session.
        error: :class:`~txsipua.errors.CallFailed` (carrying the final response),
            :class:`~txsipua.errors.AuthenticationError`,
            :class:`~txsipua.errors.TransactionTimeout` or
            :class:`~txsipua.errors.TransportError`.
    """

    session: InviteSession
    error: Exception


@attrs.frozen
class IncomingCall:
    """A new INVITE arrived (authenticated when the core has an authenticator).

    The application answers with ``session.ring()``, ``session.accept(sdp)`` or
    ``session.reject(status)``.

    Attributes:
        session: the new call's session.
        request: the INVITE.
        replaces: the session of ours its Replaces header names (RFC 3891),
            to end once the new call is up; ``None`` for an ordinary call.
    """

    session: InviteSession
    request: Request
    replaces: InviteSession | None = None


@attrs.frozen
class CallConfirmed:
    """The ACK for our 2xx arrived: the call is up on the UAS side (RFC 3261 §13.3.1.4)."""

    session: InviteSession


@attrs.frozen
class CallEnded:
    """A call that was set up (or ringing) has ended.

    Attributes:
        session: the session.
        reason: ``"bye"`` (the peer hung up), ``"hangup"`` (we did),
            ``"cancelled"`` (CANCEL before answer, either side),
            ``"no-ack"`` (the ACK for our 2xx never came),
            ``"max-duration"`` (we sent BYE when the call reached the
            core's ``max_call_duration``), ``"session-expired"`` (no
            session refresh in time, RFC 4028 §10: we sent BYE), ``"error"``.
        by_remote: True when the peer ended it.
        bye_error: when we sent the BYE, why it was not confirmed: a
            :class:`~txsipua.errors.SIPStatusError` for a final response
            other than 2xx or 481, a :class:`~txsipua.errors.TransactionTimeout`
            or :class:`~txsipua.errors.TransportError`; ``None`` when confirmed.
            The call is over either way (RFC 3261 §15.1.1).
    """

    session: InviteSession
    reason: str
    by_remote: bool
    bye_error: Exception | None = None


@attrs.frozen
class ReinviteCompleted:
    """A re-INVITE we sent got its final response (RFC 3261 §14.1).

    Attributes:
        session: the session.
        response: the final response, or ``None`` with ``error`` set.
        error: the failure, if any.
    """

    session: InviteSession
    response: Response | None
    error: Exception | None = None


@attrs.frozen
class AckReceived:
    """The ACK of one of our 2xx responses arrived (RFC 3261 §13.3.1.4, §14.2).

    Emitted before :class:`CallConfirmed` (for the INVITE's ACK) so that an
    answer the ACK carries (our 2xx made the offer: an offerless INVITE or
    re-INVITE, §13.2.1) is in force when the call is reported confirmed.

    Attributes:
        session: the session.
        request: the ACK (its body is the answer, or empty).
    """

    session: InviteSession
    request: Request


@attrs.frozen
class IncomingRequest:
    """A request the application must answer with ``core.respond(transaction, response)``.

    Used for MESSAGE, INFO, REFER, NOTIFY, REGISTER (when acting as a registrar),
    re-INVITE, and any other method the core does not answer itself.

    Attributes:
        request: the request.
        transaction: the server transaction to respond on.
        session: the call it belongs to, for in-dialog requests, else ``None``.
        identity: the authenticated username, when the request was authenticated.
    """

    request: Request
    transaction: ServerTransaction
    session: InviteSession | None = None
    identity: str | None = None


@attrs.frozen
class AuthenticationNeeded:
    """A request carries digest credentials that must be checked against a store.

    The application (the Twisted layer, through twisted.cred) checks
    ``credentials`` and calls ``core.authentication_result(event, ok, identity, now)``.

    Attributes:
        request: the request.
        transaction: its server transaction.
        credentials: the :class:`~txsipua.auth.server.DigestCredentials`.
    """

    request: Request
    transaction: ServerTransaction
    credentials: Any


@attrs.frozen
class CredentialsWithheld:
    """The digest-leak guard left credentials out of a request it did not see (a warning).

    The ACK of a 2xx repeats its INVITE's Authorization and
    Proxy-Authorization (RFC 3261 §13.2.2.4) only for the realms its next hop
    is trusted for; the others are left out, and this event says so.

    Attributes:
        session: the :class:`~txsipua.core.useragent.InviteSession` (or operation) concerned.
        method: the request's method (``"ACK"``).
        withheld: a :class:`~txsipua.auth.guard.WithheldCredentials`: what was
            left out and the next hop; ``str()`` of it is the warning text.
    """

    session: Any
    method: str
    withheld: Any


@attrs.frozen
class CallRefused:
    """A new INVITE was answered 503 with Retry-After: ``max_calls`` calls are live.

    Attributes:
        request: the INVITE refused.
        live: the live INVITE sessions at the time (the cap).
        refused: INVITEs refused so far by this core (``stats["calls_refused"]``).
    """

    request: Request
    live: int
    refused: int


@attrs.frozen
class ProvisionalAcknowledged:
    """The PRACK of one of our reliable provisional responses arrived (UAS, RFC 3262 §3).

    Attributes:
        session: the session.
        response: our reliable 1xx.
        prack: the PRACK; its body, if any, answers the offer our 1xx carried.
    """

    session: InviteSession
    response: Response
    prack: Request


@attrs.frozen
class SubscriptionAccepted:
    """Our SUBSCRIBE got a 2xx (RFC 6665 §4.1.2.1): the notifier will send NOTIFYs.

    Attributes:
        subscription: the :class:`~txsipua.core.subscription.SubscriptionClient`.
        response: the 2xx.
    """

    subscription: Any
    response: Response


@attrs.frozen
class NotifyReceived:
    """A NOTIFY of one of our subscriptions arrived and was answered 200 (RFC 6665 §4.1.3).

    Attributes:
        subscription: the :class:`~txsipua.core.subscription.SubscriptionClient`.
        request: the NOTIFY (its body is the event package's document).
        state: its :class:`~txsipua.sip.event_headers.SubscriptionState`.
    """

    subscription: Any
    request: Request
    state: Any


@attrs.frozen
class SubscriptionEnded:
    """A subscription of ours is over (RFC 6665 §4.1.3, §4.1.2.3).

    Attributes:
        subscription: the :class:`~txsipua.core.subscription.SubscriptionClient`.
        reason: the terminating NOTIFY's reason (``"noresource"``,
            ``"deactivated"``, ``"timeout"``...), or ``"rejected"`` (the
            SUBSCRIBE got 3xx-6xx), ``"timeout"`` (it expired without a
            refresh), ``"unsubscribed"``, ``"error"`` (no usable response).
        retry_after: seconds before subscribing again, when given.
        error: the :class:`~txsipua.errors.SubscriptionFailed` or other error, if any.
    """

    subscription: Any
    reason: str
    retry_after: int | None = None
    error: Exception | None = None


Event = (
    ProvisionalResponse
    | RequestCompleted
    | RequestFailed
    | CallAnswered
    | CallAttemptFailed
    | IncomingCall
    | CallConfirmed
    | CallEnded
    | ReinviteCompleted
    | AckReceived
    | IncomingRequest
    | AuthenticationNeeded
    | CredentialsWithheld
    | CallRefused
    | ProvisionalAcknowledged
    | SubscriptionAccepted
    | NotifyReceived
    | SubscriptionEnded
)
