"""The sans-IO user agent core: the transaction user over the transaction layer (RFC 3261 §8, §13, §17).

Theory of operation
-------------------
:class:`UserAgentCore` is fed datagrams and told the time
(``receive(data, source, now)``, ``handle_timer(now)``,
``transport_error(destination, now)``), and answers with bytes to send
(``outbox()``), one deadline (``get_timer()``) and events (``next_event()``,
see :mod:`txsipua.core.events`).  Every method takes ``now``; nothing caches
the time.

It ties small modules together, each one RFC role:

=======================================  ==========================================
:mod:`~txsipua.core.transaction`          transactions (§17), the layer under us
:mod:`~txsipua.core.builders`             one builder per message kind
:mod:`~txsipua.core.uac`                  a request with its digest retries (§22.2)
:mod:`~txsipua.core.invite_client`        the call we place (§13.2), a table
:mod:`~txsipua.core.invite_server`        the call we receive (§13.3), a table
:mod:`~txsipua.core.invite`               what both share: the dialog phase
:mod:`~txsipua.core.dialogs`              sessions by dialog id and by transaction
:mod:`~txsipua.core.uas`                  UAS checks and method dispatch (§8.2)
:mod:`~txsipua.core.subscription`         the subscriber (RFC 6665), a table
:mod:`~txsipua.core.replaces`             an INVITE replacing a dialog (RFC 3891)
:mod:`~txsipua.core.refer`                transfer by REFER, both roles (RFC 3515)
:mod:`~txsipua.core.capabilities`         Allow, Supported, Accept in one place
:mod:`~txsipua.core.context`              the one seam the usages talk through
=======================================  ==========================================

After every input the core drains the transaction layer's events: a response
goes to the :class:`~txsipua.core.uac.ClientOperation` of its transaction; a
request to :class:`~txsipua.core.uas.UasCore`; a timeout to the operation
(client transaction) or, for Timer L, to the session found by its
transaction in the dialog table; a stray 2xx (its transaction gone) is
re-ACKed from its dialog, or ACKed and BYEd when it answers an INVITE given
up after its CANCEL (§9.1, kept 64*T1).

Timers: ``get_timer()`` is the earliest of the transaction layer's deadline
and the context's named deadlines (a CANCEL's 64*T1 give-up, the memory of a
given-up INVITE, the ``max_call_duration`` of confirmed calls); there is no
other timer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from txsipua.core import builders
from txsipua.core import events as ev
from txsipua.core.builders import format_host
from txsipua.core.context import MAX_CALLS, CoreContext
from txsipua.core.ids import IdGenerator
from txsipua.core.invite import InviteSession, SessionState, hop_host_of
from txsipua.core.invite_client import InviteClientSession, ack_and_bye
from txsipua.core.invite_server import InviteServerSession
from txsipua.core.subscription import SubscriptionClient
from txsipua.core.transaction import (
    ClientTransaction,
    RequestReceived,
    ResponseReceived,
    ServerTransaction,
    StrayResponse,
    Timers,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimedOut,
)
from txsipua.core.transport import Address, Outgoing
from txsipua.core.uac import HOST_DIGEST, Alternatives, ClientOperation
from txsipua.core.uas import UasCore
from txsipua.errors import (
    LocalProtocolError,
    ParseError,
    ResolutionError,
    TransactionTimeout,
    TransportError,
)
from txsipua.sip.message import Request, Response
from txsipua.sip.uri import SipURI
from txsipua.sip.values import NameAddr

if TYPE_CHECKING:  # pragma: no cover
    from txsipua.auth.client import DigestClient
    from txsipua.auth.server import DigestServer


def numeric_locate(uri: SipURI) -> Address:
    """Default next-hop location: the URI's host must be an IP address (no DNS).

    Honours ``maddr`` and the default port 5060 (5061 for sips), RFC 3263 §4.2
    without the DNS steps.

    Raises:
        ResolutionError: the host is a name; resolve it first (``txsipua.net.resolve``).
    """
    import ipaddress

    host = uri.params.get("maddr") or uri.host
    bare = host[1:-1] if host.startswith("[") else host
    try:
        ipaddress.ip_address(bare)
    except ValueError:
        raise ResolutionError(f"{host!r} is not an IP address and no resolver is configured") from None
    port = uri.port or (5061 if uri.scheme == "sips" or uri.transport == "tls" else 5060)
    return (bare, port)


class UserAgentCore:
    """The sans-IO user agent: UAC and UAS cores over the transaction layer.

    Args:
        local: our ``(host, port)`` as seen in Via and Contact.
        transport: ``"UDP"``, ``"TCP"`` or ``"TLS"`` for Via and Contact.
        ids: the identifier generator (branches, tags, Call-IDs).
        timers: RFC 3261 T1/T2/T4 (seconds).
        digest: the digest client answering 401/407 challenges, or ``None``.
        authenticator: a :class:`~txsipua.auth.server.DigestServer` that
            challenges incoming out-of-dialog requests (INVITE, REGISTER,
            MESSAGE...; never ACK or CANCEL), or ``None``.
        register_authenticator: challenges REGISTER instead of
            ``authenticator`` (a registrar answers 401 even where the rest is
            challenged with 407 in the proxy role, RFC 3261 §22.3), or ``None``.
        user_agent: the User-Agent/Server header value ("" for none).
        contact_user: the user part of our Contact URI.
        locate: maps a next-hop URI to an address (default: numeric hosts only).
        reliable: True when the transport is reliable (TCP/TLS: no retransmissions).
        max_calls: live INVITE sessions (either side) at most; a new incoming
            INVITE past it is answered 503 with Retry-After (RFC 3261
            §21.5.4) and reported with :class:`~txsipua.core.events.CallRefused`.
        max_call_duration: seconds a confirmed call may last; then we send
            BYE and the call ends with reason ``"max-duration"``.  ``None``
            (the default): no limit.
        use_100rel: send reliable provisional responses (RFC 3262) to callers
            that support 100rel; to callers that require it we always do.
        session_expires: the session interval we ask for in our INVITEs and
            offer as UAS (RFC 4028), seconds, or ``None``.
        min_se: the smallest session interval we accept (RFC 4028 §4);
            smaller requests get 422 with Min-SE.

    Attributes:
        context: the shared state and the seam the usages talk through.
        layer: the transaction layer.
    """

    def __init__(
        self,
        *,
        local: Address,
        transport: str = "UDP",
        ids: IdGenerator | None = None,
        timers: Timers | None = None,
        digest: DigestClient | None = None,
        authenticator: DigestServer | None = None,
        register_authenticator: DigestServer | None = None,
        user_agent: str = "txsipua/0.1",
        contact_user: str | None = None,
        locate: Callable[[SipURI], Address] = numeric_locate,
        reliable: bool = False,
        max_calls: int = MAX_CALLS,
        max_call_duration: float | None = None,
        use_100rel: bool = False,
        session_expires: int | None = None,
        min_se: int = 90,
    ) -> None:
        if max_calls < 0:
            raise ValueError(f"max_calls must be >= 0, not {max_calls!r}")
        if max_call_duration is not None and max_call_duration <= 0:
            raise ValueError(f"max_call_duration must be positive or None, not {max_call_duration!r}")
        self.context = CoreContext(
            local=local, transport=transport.upper(), ids=ids or IdGenerator(), timers=timers or Timers(),
            digest=digest, user_agent=user_agent, contact_user=contact_user, locate=locate, reliable=reliable,
            max_calls=max_calls, max_call_duration=max_call_duration,
            use_100rel=use_100rel, session_expires=session_expires, min_se=min_se,
        )
        self.layer: TransactionLayer = self.context.layer
        self.uas = UasCore(self.context, authenticator, register_authenticator)

    # ---------------------------------------------------- configuration
    @property
    def local(self) -> Address:
        """Our ``(host, port)`` as seen in Via and Contact (settable once the socket is bound)."""
        return self.context.local

    @local.setter
    def local(self, value: Address) -> None:
        self.context.local = value

    @property
    def locate(self) -> Callable[[SipURI], Address]:
        """Maps a next-hop URI to an address (RFC 3263); settable."""
        return self.context.locator

    @locate.setter
    def locate(self, value: Callable[[SipURI], Address]) -> None:
        self.context.locator = value

    @property
    def transport(self) -> str:
        """``"UDP"``, ``"TCP"`` or ``"TLS"``; settable (upper case)."""
        return self.context.transport

    @transport.setter
    def transport(self, value: str) -> None:
        self.context.transport = value.upper()

    @property
    def ids(self) -> IdGenerator:
        """The identifier generator."""
        return self.context.ids

    @property
    def digest(self) -> DigestClient | None:
        """The digest client, or ``None``."""
        return self.context.digest

    @digest.setter
    def digest(self, value: DigestClient | None) -> None:
        self.context.digest = value

    @property
    def user_agent(self) -> str:
        """The User-Agent/Server value."""
        return self.context.user_agent

    @user_agent.setter
    def user_agent(self, value: str) -> None:
        self.context.user_agent = value

    @property
    def contact_user(self) -> str | None:
        """The user part of our Contact URI."""
        return self.context.contact_user

    @contact_user.setter
    def contact_user(self, value: str | None) -> None:
        self.context.contact_user = value

    @property
    def reliable(self) -> bool:
        """True over TCP/TLS."""
        return self.context.reliable

    @reliable.setter
    def reliable(self, value: bool) -> None:
        self.context.reliable = value

    @property
    def max_calls(self) -> int:
        """Live INVITE sessions at most before new INVITEs get 503; settable."""
        return self.context.max_calls

    @max_calls.setter
    def max_calls(self, value: int) -> None:
        self.context.max_calls = value

    @property
    def max_call_duration(self) -> float | None:
        """Seconds a confirmed call may last before our BYE (``None``: no limit); settable,
        for calls confirmed afterwards."""
        return self.context.max_call_duration

    @max_call_duration.setter
    def max_call_duration(self, value: float | None) -> None:
        self.context.max_call_duration = value

    @property
    def authenticator(self) -> DigestServer | None:
        """The digest server challenging incoming requests, or ``None``."""
        return self.uas.authenticator

    @authenticator.setter
    def authenticator(self, value: DigestServer | None) -> None:
        self.uas.authenticator = value

    @property
    def register_authenticator(self) -> DigestServer | None:
        """The digest server challenging REGISTER, or ``None``."""
        return self.uas.register_authenticator

    @register_authenticator.setter
    def register_authenticator(self, value: DigestServer | None) -> None:
        self.uas.register_authenticator = value

    # ----------------------------------------------------------- contract
    def receive(self, data: bytes, source: Address, now: float) -> None:
        """Feed one datagram (or framed stream message) received from ``source``.

        Never raises on bad input: malformed requests are answered with 400
        (or the status the defect calls for) by the transaction layer.
        """
        self.layer.receive(data, source, now, reliable=self.context.reliable)
        self._drain(now)

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at ``now`` (seconds, absolute)."""
        self.layer.handle_timer(now)
        self._drain(now)
        while self.context.fire_due(now):
            self._drain(now)

    def get_timer(self) -> float | None:
        """The next absolute deadline (seconds), or ``None``."""
        t = self.layer.get_timer()
        own = self.context.next_deadline()
        if own is None:
            return t
        return own if t is None or own < t else t

    def transport_error(self, destination: Address, now: float) -> None:
        """Report that nothing can be sent to ``destination`` (RFC 3261 §18.4).

        Requests in progress there fail with
        :class:`~txsipua.errors.TransportError` at once instead of timing out.
        """
        self.layer.transport_error(destination, now)
        self._drain(now)

    def outbox(self) -> list[Outgoing]:
        """Everything to send now, in order; the list is drained.

        While events wait for the application, a new INVITE's 100 Trying is
        held back: the application may answer it when it takes its event
        (RFC 3261 §17.2.1), and a later call sends the 100 if it did not.
        """
        return self.layer.outbox(trying=not self.context.events)

    def take_notices(self) -> list[str]:
        """Lines worth logging since the last call (a cap reached); see ``TransactionLayer.take_notices``."""
        return self.layer.take_notices()

    def next_event(self) -> ev.Event | None:
        """The next event for the application, or ``None``."""
        events = self.context.events
        return events.popleft() if events else None

    # ------------------------------------------------------- construction
    def contact_uri(self, secure: bool | None = None, user: str | None = None) -> SipURI:
        """Our Contact URI (RFC 3261 §8.1.1.8; see :meth:`CoreContext.contact_uri
        <txsipua.core.context.CoreContext.contact_uri>`)."""
        return self.context.contact_uri(secure, user)

    def contact_value(self) -> str:
        """Our Contact header value, ``<sip:user@host:port>``."""
        return self.context.contact_value()

    def new_request(
        self,
        method: str,
        request_uri: SipURI | str,
        from_: NameAddr,
        to: NameAddr,
        *,
        call_id: str | None = None,
        cseq: int = 1,
        contact: bool = True,
        route: Iterable[SipURI] = (),
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
        contact_user: str | None = None,
    ) -> Request:
        """Build an out-of-dialog request (RFC 3261 §8.1.1, :func:`~txsipua.core.builders.new_request`).

        A From tag is added when ``from_`` has none; the Via is stamped with a
        fresh branch when the request is sent.  Over TLS the Contact is
        ``sips:`` when the Request-URI or the first Route is (§8.1.1.8), else
        as :attr:`CoreContext.sips_contact <txsipua.core.context.CoreContext.sips_contact>`
        says (RFC 5630).  ``contact_user`` names another account's Contact user.
        """
        ctx = self.context
        if from_.tag is None:
            from_ = from_.with_tag(ctx.ids.tag())
        route = list(route)
        first = route[0] if route else request_uri
        sips = (first.scheme if isinstance(first, SipURI) else first.split(":", 1)[0]).lower() == "sips"
        contact_text = ctx.contact_value(True if sips else None, contact_user) if contact else None
        return builders.new_request(
            method, request_uri, from_, to, via=ctx.via(""), call_id=call_id or ctx.ids.call_id(ctx.local[0]),
            cseq=cseq, contact=contact_text, route=route, user_agent=ctx.user_agent,
            headers=headers, body=body, content_type=content_type,
        )

    def make_response(
        self,
        request: Request,
        status: int,
        reason: str | None = None,
        *,
        to_tag: str | None = None,
        body: bytes = b"",
        headers: Iterable[tuple[str, str]] = (),
    ) -> Response:
        """Build a response to ``request`` (RFC 3261 §8.2.6, :func:`~txsipua.core.builders.make_response`)."""
        return self.context.make_response(request, status, reason, to_tag=to_tag, body=body, headers=headers)

    def respond(self, transaction: ServerTransaction, response: Response, now: float) -> None:
        """Send a response on a server transaction (RFC 3261 §17.2)."""
        self.layer.respond(transaction, response, now)
        self._drain(now)

    # ---------------------------------------------------------------- UAC
    def send_request(
        self,
        request: Request,
        destination: Address,
        now: float,
        *,
        authenticate: bool = True,
        hop_host: str = "",
        alternatives: Alternatives | None = None,
        digest: DigestClient | None = HOST_DIGEST,
    ) -> ClientOperation:
        """Send an out-of-dialog non-INVITE request (REGISTER, OPTIONS, MESSAGE...).

        A 401/407 is answered with credentials from the digest client and the
        request resent (RFC 3261 §22.2).  The outcome is a
        :class:`~txsipua.core.events.RequestCompleted` or
        :class:`~txsipua.core.events.RequestFailed` event.

        Args:
            request: from :meth:`new_request`.
            destination: the next hop's address.
            now: seconds, absolute.
            authenticate: False to report 401/407 as the final response.
            hop_host: the next hop's host as named in the URI (digest-leak guard).
            alternatives: the other targets to fail over to (RFC 3263 §4.3,
                :class:`~txsipua.net.locate.Failover`), or ``None``.
            digest: the digest client of the account sending (another
                account's); the core's by default.

        Raises:
            LocalProtocolError: for INVITE (use :meth:`invite`) or ACK.
        """
        if request.method in ("INVITE", "ACK"):
            raise LocalProtocolError(f"use invite() for INVITE; ACK is sent by the core ({request.method})")
        op = ClientOperation(self.context, request, destination, authenticate=authenticate, hop_host=hop_host,
                             alternatives=alternatives, digest=digest)
        op.start(now)
        self._drain(now)
        return op

    def invite(self, request: Request, destination: Address, now: float, *, hop_host: str = "",
               alternatives: Alternatives | None = None, digest: DigestClient | None = HOST_DIGEST) -> InviteSession:
        """Start a call with an INVITE from :meth:`new_request` (RFC 3261 §13.2).

        Outcome events: ProvisionalResponse*, then CallAnswered or
        CallAttemptFailed; later CallEnded.  ``alternatives`` and ``digest``
        as for :meth:`send_request` (the INVITE fails over on timeout,
        transport error or 503 before the call is hung up).

        Raises:
            LocalProtocolError: the request is not an INVITE.
        """
        if request.method != "INVITE":
            raise LocalProtocolError("invite() sends INVITE requests only")
        session = InviteClientSession(self.context, request, destination, hop_host)
        op = session.invite_operation
        op.alternatives = alternatives
        if digest is not HOST_DIGEST:
            session.digest = op.digest = digest
            op.attempt = digest.start() if digest is not None else None
        session.start(now)
        self._drain(now)
        return session

    def subscribe(self, request: Request, destination: Address, now: float, *,
                  hop_host: str = "") -> SubscriptionClient:
        """Start a subscription with a SUBSCRIBE from :meth:`new_request` (RFC 6665 §4.1).

        The request must carry Event and Expires.  Outcome events:
        SubscriptionAccepted, NotifyReceived*, SubscriptionEnded
        (:mod:`txsipua.core.subscription`).

        Raises:
            LocalProtocolError: not a SUBSCRIBE, or without Event or Expires.
        """
        if request.method != "SUBSCRIBE" or "Event" not in request.headers or "Expires" not in request.headers:
            raise LocalProtocolError("subscribe() sends SUBSCRIBE requests with Event and Expires")
        subscription = SubscriptionClient(self.context, request, destination, hop_host)
        subscription.start(now)
        self._drain(now)
        return subscription

    def unsubscribe(self, subscription: SubscriptionClient, now: float) -> None:
        """End ``subscription``: SUBSCRIBE with Expires: 0, then its final NOTIFY (RFC 6665 §4.1.2.3)."""
        subscription.unsubscribe(now)
        self._drain(now)

    def abort(self, session: InviteSession, now: float, error: Exception) -> None:
        """Give up a call at once: its client transactions are destroyed, nothing more is sent.

        For a UA shutting down with hang-ups still unconfirmed.  A
        :class:`~txsipua.core.events.CallEnded` (reason ``"hangup"``, or
        ``"cancelled"`` before the answer; ``bye_error=error``) follows
        unless the call had ended already.  A challenge that was racing the
        abort finds no transaction: nothing is retried.
        """
        ctx = self.context
        for op in [op for op in ctx.operations.values() if op.owner is session]:
            ctx.abandon(op, now)
        session.abort(error, now)
        self._drain(now)

    # ---------------------------------------------------------------- UAS
    def authentication_result(self, event: ev.AuthenticationNeeded, ok: bool, identity: str | None, now: float) -> None:
        """Continue a request parked by :class:`~txsipua.core.events.AuthenticationNeeded`.

        Args:
            event: the event.
            ok: True when the credentials were verified.
            identity: the authenticated username.
            now: seconds, absolute.
        """
        self.uas.authentication_result(event, ok, identity, now)
        self._drain(now)

    @property
    def session_count(self) -> int:
        """The number of calls with a live dialog (for leak checks and memory figures)."""
        return len(self.context.dialogs)

    @property
    def live_calls(self) -> int:
        """INVITE sessions (either side) not yet terminated: what ``max_calls`` caps."""
        return self.context.live_calls

    # ------------------------------------------------------------- internals
    def _drain(self, now: float) -> None:
        layer = self.layer
        while True:
            e = layer.next_event()
            if e is None:
                return
            try:
                self._dispatch(e, now)
            except ParseError:
                # a typed accessor found a malformed header late in a response or a
                # timer's work: drop, never crash (a request's own ParseError is
                # answered by UasCore.on_request)
                continue

    def _dispatch(self, e: object, now: float) -> None:
        ctx = self.context
        if isinstance(e, ResponseReceived):
            op = ctx.operations.get(e.transaction)
            if op is not None:
                op.on_response(e.response, now)
        elif isinstance(e, RequestReceived):
            self.uas.on_request(e.request, e.transaction, e.source, now)
        elif isinstance(e, TransactionTerminated):
            txn = e.transaction
            if isinstance(txn, ClientTransaction):
                ctx.operations.pop(txn, None)
            elif isinstance(txn, ServerTransaction):
                ctx.dialogs.pop_unanswered(txn)
                ctx.dialogs.pop_awaiting_ack(txn)
        elif isinstance(e, StrayResponse):
            self._on_stray(e.response, now)
        elif isinstance(e, TransactionTimedOut):
            txn = e.transaction
            if isinstance(txn, ClientTransaction):
                op = ctx.operations.pop(txn, None)
                if op is not None:
                    if e.timer == "transport":
                        op.on_failure(TransportError(f"could not send {op.method} to {op.destination}"), now)
                    else:
                        op.on_failure(TransactionTimeout(e.timer, op.method), now)
            elif isinstance(txn, ServerTransaction):
                session = ctx.dialogs.pop_awaiting_ack(txn)
                if session is not None:
                    session.on_ack_timeout(txn, now)

    def _on_stray(self, response: Response, now: float) -> None:
        # a 2xx retransmission for an INVITE whose transaction is gone: re-ACK
        try:
            if not (200 <= response.status < 300) or response.cseq.method != "INVITE":
                return
            call_id, from_tag = response.call_id, response.from_tag or ""
            session = self.context.dialogs.get((call_id, from_tag, response.to_tag or ""))
        except ParseError:
            return
        if session is not None and session.resend_ack(response, now):
            return
        # a 2xx for an INVITE given up after its CANCEL (§9.1): ACK it, then BYE (§13.2.2.4)
        given_up = self.context.given_up.pop((call_id, from_tag), None)
        if given_up is not None and session is None:
            ack_and_bye(self.context, given_up, response, now)


__all__ = [
    "ClientOperation",
    "InviteClientSession",
    "InviteServerSession",
    "InviteSession",
    "SessionState",
    "UserAgentCore",
    "format_host",
    "hop_host_of",
    "numeric_locate",
]
