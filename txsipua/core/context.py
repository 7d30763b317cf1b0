"""The one seam between the user agent core and its usages (requests, calls).

Theory of operation
-------------------
:class:`~txsipua.core.useragent.UserAgentCore` owns the shared parts of a
user agent: the configuration, the transaction layer, the dialog table, the
event queue and the named deadlines.  It hands them to every usage it
creates (:class:`~txsipua.core.uac.ClientOperation`, the INVITE sessions, the
UAS dispatcher) as one :class:`CoreContext`, whose methods are all a usage
may do: build a Via, Contact or response, ``send`` a request in a client
transaction, ``respond`` on a server transaction, ``send_stateless`` (the 2xx
ACK), ``emit`` an event, ``schedule`` a named deadline, ``locate`` a next hop,
and enter or leave the dialog table.  :class:`SessionHost` is that interface
as a :class:`typing.Protocol`; usages are typed against it, never against the
core, and read no private attribute on either side.

Timers: the context keeps *named deadlines* (aioquic style): a usage
schedules ``(name, deadline, fire)``; scheduling a name again replaces it.
Deadlines that all lie one fixed delay after the moment they are set (the
``max_call_duration`` of every confirmed call) are kept apart in arrival
order behind a single named deadline, so that setting and cancelling one
costs O(1) however many calls are up (:meth:`CoreContext.schedule_in_order`).
The core's :meth:`~txsipua.core.useragent.UserAgentCore.get_timer` is the
earliest of these and the transaction layer's own deadline; nothing caches
the time: every method takes ``now``.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Hashable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from txsipua.auth.guard import HopAddress
from txsipua.core import builders
from txsipua.core import events as ev
from txsipua.core.dialogs import DialogTable
from txsipua.core.ids import IdGenerator
from txsipua.core.transaction import ClientTransaction, ServerTransaction, Timers, TransactionLayer
from txsipua.core.transport import Address
from txsipua.core.uac import HOST_DIGEST
from txsipua.errors import ParseError
from txsipua.sip.message import Request, Response
from txsipua.sip.uri import SipURI

if TYPE_CHECKING:  # pragma: no cover
    from txsipua.auth.client import DigestClient
    from txsipua.core.invite import InviteSession
    from txsipua.core.uac import ClientOperation

Fire = Callable[[float], None]

_IN_ORDER = ("in-order deadlines",)
"""The named deadline standing for every :meth:`CoreContext.schedule_in_order` one."""

MAX_CALLS = 10_000
"""Default cap on live INVITE sessions (:attr:`CoreContext.max_calls`)."""


class SessionHost(Protocol):
    """What a usage (request, call) may ask of the core: the whole seam.

    Attributes:
        ids: the identifier generator.
        timers: the RFC 3261 timer values.
        user_agent: the User-Agent/Server value (``""`` for none).
        digest: the digest client answering challenges, or ``None``.
        transport: ``"UDP"``, ``"TCP"`` or ``"TLS"``: how requests are sent.
        dialogs: the dialog table (values are the INVITE sessions).
        stats: counters (``ignored``: inputs absent from a usage's table;
            ``calls_refused``: INVITEs answered 503 past ``max_calls``;
            ``max_duration``: calls ended by ``max_call_duration``).
        live_calls: INVITE sessions (either side) not yet terminated; each
            session counts itself in when made and out when its table
            reaches TERMINATED.
        max_calls: new INVITEs are answered 503 once ``live_calls`` reaches it.
        max_call_duration: seconds a confirmed call may last before we send
            BYE, or ``None`` (no limit).
        use_100rel: send reliable provisional responses when the caller
            supports 100rel, not only when it requires it (RFC 3262 §3).
        session_expires: the session interval we ask for (RFC 4028), seconds,
            or ``None`` (none asked; a peer's request is still honoured).
        min_se: the smallest session interval we accept (RFC 4028 §4), seconds.
        subscriptions: our SUBSCRIBE usages by ``(Call-ID, our From tag)``.
    """

    ids: IdGenerator
    timers: Timers
    user_agent: str
    digest: DigestClient | None
    transport: str
    dialogs: DialogTable[InviteSession]
    stats: collections.Counter[str]
    live_calls: int
    max_calls: int
    max_call_duration: float | None
    use_100rel: bool
    session_expires: int | None
    min_se: int
    subscriptions: dict[tuple[str, str], Any]

    def via(self, branch: str) -> str:
        """Our Via value with ``branch`` (``""``: stamped when sent)."""

    def contact_value(self, secure: bool | None = None) -> str:
        """Our Contact value (``secure``: a SIPS Contact over TLS; ``None``: the default)."""

    def make_response(self, request: Request, status: int, reason: str | None = None, *,
                      to_tag: str | None = None, body: bytes = b"",
                      headers: Iterable[tuple[str, str]] = ()) -> Response:
        """A response to ``request`` (§8.2.6) with our Contact and Server."""

    def send(self, operation: ClientOperation, stamp_via: bool, now: float) -> ClientTransaction:
        """Send ``operation.request`` in a new client transaction; its responses go to the operation."""

    def abandon(self, operation: ClientOperation, now: float, remember: bool = False) -> None:
        """Destroy the operation's transaction (§9.1); ``remember`` keeps a given-up INVITE 64*T1."""

    def send_stateless(self, message: Request | Response, destination: Address, now: float) -> None:
        """Send outside any transaction (the ACK of a 2xx)."""

    def respond(self, transaction: ServerTransaction, response: Response, now: float) -> None:
        """Send a response on a server transaction."""

    def ack_received(self, transaction: ServerTransaction, now: float) -> None:
        """Stop the 2xx retransmissions of an INVITE server transaction."""

    def emit(self, event: ev.Event) -> None:
        """Queue an event for the application."""

    def schedule(self, name: Hashable, deadline: float, fire: Fire) -> None:
        """Call ``fire(now)`` at ``deadline``; replaces a deadline of the same name."""

    def cancel(self, name: Hashable) -> None:
        """Forget the deadline ``name``."""

    def schedule_in_order(self, name: Hashable, deadline: float, fire: Fire) -> None:
        """Like :meth:`schedule`, O(1), for deadlines that come in time order (one fixed delay)."""

    def cancel_in_order(self, name: Hashable) -> None:
        """Forget a deadline set with :meth:`schedule_in_order`."""

    def locate(self, uri: SipURI) -> Address:
        """The transport address of the next hop ``uri`` (raises ResolutionError)."""

    def ack_credentials(self, owner: object, invite: Request, hop_host: str,
                        destination: Address) -> list[tuple[str, str]]:
        """The INVITE's credentials its 2xx ACK to ``destination`` may repeat (digest-leak guard)."""


class CoreContext:
    """The shared state of one user agent core and the :class:`SessionHost` seam over it.

    Args:
        local: our ``(host, port)`` as seen in Via and Contact.
        transport: ``"UDP"``, ``"TCP"`` or ``"TLS"``.
        ids: the identifier generator.
        timers: RFC 3261 T1/T2/T4.
        digest: the digest client, or ``None``.
        user_agent: the User-Agent/Server value.
        contact_user: the user part of our Contact URI.
        locate: maps a next-hop URI to an address.
        reliable: True over TCP/TLS.
        max_calls: live INVITE sessions at most; a new INVITE past it gets
            503 with the transaction layer's ``overload_retry_after``
            (:data:`MAX_CALLS` by default).
        max_call_duration: seconds after which a confirmed call is ended
            with BYE, or ``None`` (the default: no limit).
        use_100rel: reliable provisionals to callers that merely support them (RFC 3262).
        session_expires: the session interval we ask for, or ``None`` (RFC 4028).
        min_se: the smallest session interval we accept (default 90 s, RFC 4028 §4).
    """

    def __init__(
        self,
        *,
        local: Address,
        transport: str,
        ids: IdGenerator,
        timers: Timers,
        digest: DigestClient | None,
        user_agent: str,
        contact_user: str | None,
        locate: Callable[[SipURI], Address],
        reliable: bool,
        max_calls: int = MAX_CALLS,
        max_call_duration: float | None = None,
        use_100rel: bool = False,
        session_expires: int | None = None,
        min_se: int = 90,
    ) -> None:
        self.local = local
        self.transport = transport
        self.ids = ids
        self.timers = timers
        self.digest = digest
        self.user_agent = user_agent
        self.contact_user = contact_user
        self.locator = locate
        self.reliable = reliable
        self.max_calls = max_calls
        self.max_call_duration = max_call_duration
        self.use_100rel = use_100rel
        self.session_expires = session_expires
        self.min_se = min_se
        self.live_calls = 0
        self.layer = TransactionLayer(timers=timers)
        self.dialogs: DialogTable[InviteSession] = DialogTable()
        self.operations: dict[ClientTransaction, ClientOperation] = {}
        self.events: collections.deque[ev.Event] = collections.deque()
        self.stats: collections.Counter[str] = collections.Counter()
        self.deadlines: dict[Hashable, tuple[float, Fire]] = {}
        self.in_order: dict[Hashable, tuple[float, Fire]] = {}
        """Deadlines set with :meth:`schedule_in_order`, earliest first."""
        self._in_order_armed = False
        self._earliest: float | None = None
        self._contact: tuple[tuple[Address, str, str | None, bool], str] | None = None
        self.sips_contact = True
        self.contact_users: set[str] = set()
        """Contact users of the other accounts served here: a dialog-creating request whose
        Request-URI names one is answered with that Contact (several accounts, one port)."""
        """Over TLS, our default Contact is ``sips:`` (True) or ``sip:...;transport=tls`` (RFC 5630)."""
        self.given_up: dict[tuple[str, str], ClientOperation] = {}
        self.subscriptions: dict[tuple[str, str], Any] = {}
        """Our subscriptions (:mod:`~txsipua.core.subscription`) by ``(Call-ID, our tag)``: where NOTIFYs go."""

    # ------------------------------------------------------------ building
    def via(self, branch: str) -> str:
        """Our Via value with ``branch`` (``""``: stamped when the request is sent)."""
        return builders.via_value(self.local, self.transport, branch)

    def contact_uri(self, secure: bool | None = None, user: str | None = None) -> SipURI:
        """Our Contact URI (RFC 3261 §8.1.1.8).

        Args:
            secure: over TLS, a ``sips:`` Contact (True) or
                ``sip:...;transport=tls`` (False); ``None`` takes
                :attr:`sips_contact` (RFC 5630).
            user: the Contact's user part; ``None`` takes :attr:`contact_user`
                (another account's Contact on the same user agent).
        """
        return builders.contact_uri(self.local, self.transport, user if user is not None else self.contact_user,
                                    self.sips_contact if secure is None else secure)

    def contact_value(self, secure: bool | None = None, user: str | None = None) -> str:
        """Our Contact header value, ``<sip:user@host:port>`` (kept until ``local`` changes)."""
        if user is not None or (secure is not None and secure != self.sips_contact):
            return f"<{self.contact_uri(secure, user)}>"
        key = (self.local, self.transport, self.contact_user, self.sips_contact)
        cached = self._contact
        if cached is None or cached[0] != key:
            cached = self._contact = (key, f"<{self.contact_uri()}>")
        return cached[1]

    def make_response(self, request: Request, status: int, reason: str | None = None, *,
                      to_tag: str | None = None, body: bytes = b"",
                      headers: Iterable[tuple[str, str]] = ()) -> Response:
        """A response to ``request`` with our Contact and Server (:func:`~txsipua.core.builders.make_response`)."""
        contact = ""
        if 100 < status < 300 and request.method in ("INVITE", "SUBSCRIBE"):
            # a SIPS Request-URI gets a SIPS Contact (RFC 3261 §12.1.1, RFC 5630 §4.1)
            sips = request.uri_text[:5].lower() == "sips:"
            user = self._account_user(request)
            if user is not None:
                contact = self.contact_value(True if sips else None, user)
            else:
                contact = self.contact_value(True) if sips else self.contact_value()
        return builders.make_response(request, status, reason, to_tag=to_tag, new_tag=self.ids.tag,
                                      contact=contact, server=self.user_agent, body=body, headers=headers)

    def _account_user(self, request: Request) -> str | None:
        if not self.contact_users:
            return None
        try:
            user = request.uri.user
        except ParseError:
            return None
        return user if user in self.contact_users else None

    # ------------------------------------------------------------- sending
    def send(self, operation: ClientOperation, stamp_via: bool, now: float) -> ClientTransaction:
        """Send ``operation.request`` in a new client transaction and route its responses back.

        Args:
            operation: the operation; its responses reach it through the core.
            stamp_via: give the request our Via with a fresh branch first
                (False for a CANCEL, which reuses its INVITE's, §9.1).
            now: seconds, absolute.

        Raises:
            TransportError: the request cannot be sent.
        """
        request = operation.request
        if stamp_via:
            request.headers.set("Via", self.via(self.ids.branch()))
        txn = self.layer.send_request(request, operation.destination, now, reliable=self.reliable)
        self.operations[txn] = operation
        return txn

    def abandon(self, operation: ClientOperation, now: float, remember: bool = False) -> None:
        """Destroy the operation's client transaction; it sends and reports nothing more (§9.1).

        Args:
            operation: the operation.
            now: seconds, absolute.
            remember: keep an INVITE in :attr:`given_up` for 64*T1, so that a
                late 2xx is still ACKed and BYEd (§13.2.2.4).
        """
        txn = operation.transaction
        if txn is not None:
            self.operations.pop(txn, None)
            self.layer.abandon(txn, now)
        if not remember:
            return
        try:
            key = (operation.request.call_id, operation.request.from_tag or "")
        except ParseError:
            return
        given_up = self.given_up
        given_up[key] = operation

        def forget(_now: float) -> None:
            given_up.pop(key, None)

        self.schedule(("given-up", key), now + self.timers.t64, forget)

    def send_stateless(self, message: Request | Response, destination: Address, now: float) -> None:
        """Send outside any transaction (the ACK of a 2xx, §13.2.2.4)."""
        self.layer.send_stateless(message, destination, now)

    def respond(self, transaction: ServerTransaction, response: Response, now: float) -> None:
        """Send a response on a server transaction (§17.2)."""
        self.layer.respond(transaction, response, now)

    def ack_received(self, transaction: ServerTransaction, now: float) -> None:
        """Stop the 2xx retransmissions of an INVITE server transaction (§13.3.1.4)."""
        self.layer.ack_received(transaction, now)

    # ------------------------------------------------------ events, timers
    def emit(self, event: ev.Event) -> None:
        """Queue an event for the application."""
        self.events.append(event)

    def schedule(self, name: Hashable, deadline: float, fire: Fire) -> None:
        """Call ``fire(now)`` once at ``deadline`` (seconds, absolute); replaces the same ``name``."""
        old = self.deadlines.get(name)
        self.deadlines[name] = (deadline, fire)
        earliest = self._earliest
        if old is not None and earliest is not None and old[0] <= earliest:
            self._earliest = None  # the earliest may have moved later: recompute on demand
        elif earliest is not None and deadline < earliest:
            self._earliest = deadline

    def cancel(self, name: Hashable) -> None:
        """Forget the deadline ``name``, if any."""
        old = self.deadlines.pop(name, None)
        if old is not None and self._earliest is not None and old[0] <= self._earliest:
            self._earliest = None

    def schedule_in_order(self, name: Hashable, deadline: float, fire: Fire) -> None:
        """Call ``fire(now)`` once at ``deadline``, in O(1), for deadlines set in time order.

        Meant for one deadline per call a fixed delay ahead (so each is no
        earlier than the ones set before it): they wait in arrival order
        behind one named deadline for the earliest.  One that would come
        before the latest already waiting (the delay was shortened) is an
        ordinary :meth:`schedule` instead.  ``name`` must not be in use.
        """
        queue = self.in_order
        if queue and deadline < next(reversed(queue.values()))[0]:
            self.schedule(name, deadline, fire)
            return
        queue[name] = (deadline, fire)
        if not self._in_order_armed:
            self._in_order_armed = True
            self.schedule(_IN_ORDER, deadline, self._fire_in_order)

    def cancel_in_order(self, name: Hashable) -> None:
        """Forget a deadline set with :meth:`schedule_in_order`, if any (O(1)).

        The shared deadline is left as it is: if it fires with nothing due, it
        moves on to the earliest left.
        """
        if self.in_order.pop(name, None) is None:
            self.cancel(name)

    def _fire_in_order(self, now: float) -> None:
        self._in_order_armed = False
        queue = self.in_order
        while queue:
            name = next(iter(queue))
            deadline, fire = queue[name]
            if deadline > now:
                self._in_order_armed = True
                self.schedule(_IN_ORDER, deadline, self._fire_in_order)
                return
            del queue[name]
            fire(now)

    def next_deadline(self) -> float | None:
        """The earliest named deadline, or ``None`` (cached: O(1) between changes)."""
        if not self.deadlines:
            return None
        earliest = self._earliest
        if earliest is None:
            earliest = self._earliest = min(d for d, _ in self.deadlines.values())
        return earliest

    def fire_due(self, now: float) -> bool:
        """Fire every named deadline due at ``now``, earliest first; False when none was due.

        A deadline scheduled or cancelled by a callback takes effect at once
        (a cancelled one does not fire).
        """
        earliest = self.next_deadline()
        if earliest is None or earliest > now:
            return False
        deadlines = self.deadlines
        due = sorted((d, i, name) for i, (name, (d, _)) in enumerate(deadlines.items()) if d <= now)
        for deadline, _, name in due:
            entry = deadlines.get(name)
            if entry is None or entry[0] != deadline:
                continue  # cancelled or moved by an earlier callback
            del deadlines[name]
            self._earliest = None
            entry[1](now)
        return True

    def locate(self, uri: SipURI) -> Address:
        """The transport address of the next hop ``uri`` (RFC 3263).

        Raises:
            ResolutionError: it cannot be located.
        """
        return self.locator(uri)

    def ack_credentials(self, owner: object, invite: Request, hop_host: str,
                        destination: Address) -> list[tuple[str, str]]:
        """The INVITE's credentials its 2xx ACK may repeat (RFC 3261 §13.2.2.4, §22.4).

        Only the Authorization/Proxy-Authorization values of realms the ACK's
        next hop (``hop_host`` as named, located at ``destination``) is trusted
        for are kept; the digest-leak guard leaves the others out and a
        :class:`~txsipua.core.events.CredentialsWithheld` warning is emitted.

        Args:
            owner: the session (or operation) the ACK belongs to, for the event.
            invite: the INVITE as last sent.
            hop_host: the next hop's ``host`` or ``host:port`` as written.
            destination: the transport address the ACK goes to.

        Returns:
            The ``(name, value)`` credential fields to put in the ACK.
        """
        fields = [(n, v) for n, v in invite.headers.items() if n in builders.AUTH_HEADERS]
        client = self.digest
        own = getattr(owner, "digest", HOST_DIGEST)  # a call of another account: its own guard judges
        if own is not HOST_DIGEST:
            client = own
        if client is None or not fields:
            return fields
        hop = HopAddress.located(hop_host, destination, self.transport)
        kept, withheld = client.credentials_for_hop(fields, hop)
        if withheld is not None:
            self.emit(ev.CredentialsWithheld(owner, "ACK", withheld))
        return kept


__all__ = ["MAX_CALLS", "CoreContext", "SessionHost"]
