"""What the user agent sends out of any dialog: the UAC role (RFC 3261 §8.1, §10, §11, §13.2; RFC 3428; RFC 6665).

:class:`OutgoingRequests` is mixed into :class:`~txsipua.ua.useragent.UserAgent`
(construction, transport, addresses and server location live there): one
request with its digest retries and failover (:meth:`~OutgoingRequests.send`;
OPTIONS, MESSAGE), a registration (REGISTER, :mod:`txsipua.ua.registration`),
a call (INVITE, :meth:`~OutgoingRequests.place_call`: the Call first, the
INVITE once its next hop is located, RFC 3263) and a subscription
(SUBSCRIBE).  Each locates the next hop (the outbound proxy, else the
Request-URI), re-picks the advertised address of a wildcard bind for it, and
gives the core its order through ``UserAgent.drive``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from twisted.internet import defer

from txsipua.core.builders import format_host
from txsipua.core.transport import Address
from txsipua.core.uac import HOST_DIGEST
from txsipua.core.useragent import UserAgentCore, hop_host_of
from txsipua.errors import ResolutionError, SIPError
from txsipua.net.locate import Failover, Unavailable
from txsipua.sip.message import Request, Response
from txsipua.sip.uri import SipURI
from txsipua.sip.values import NameAddr
from txsipua.ua.account import Account
from txsipua.ua.accounts import AccountLine
from txsipua.ua.call import Call, call_attempt
from txsipua.ua.registration import Registration, RegistrationResult
from txsipua.ua.subscription import DOCUMENT_TYPES, Subscription


class OutgoingRequests:
    """The out-of-dialog requests of a :class:`~txsipua.ua.useragent.UserAgent` (a mixin; see the module docstring).

    Only ever a base of :class:`~txsipua.ua.useragent.UserAgent`: ``self`` is
    the user agent handed to the registrations, calls and subscriptions made
    here (the type checker is told so where it cannot see it).
    """

    if TYPE_CHECKING:  # pragma: no cover - what UserAgent provides, declared for the type checker
        core: UserAgentCore
        account: Account | None
        resolver: Any
        unavailable: Unavailable
        calls: set[Call]
        subscriptions: set[Subscription]
        random: Callable[[], float] | None

        @property
        def media_advertise(self) -> str: ...

        def drive(self, fn: Callable[[float], Any]) -> Any: ...

        def require_account(self) -> Account: ...

        def outbound_route(self, account: Account | None = None) -> list[SipURI]: ...

        def next_hop(self, request_uri: SipURI, account: Account | None = None) -> SipURI: ...

        def advertise_toward(self, toward: str) -> bool: ...

        @staticmethod
        def is_numeric(uri: SipURI) -> bool: ...

        def resolve(self, uri: SipURI) -> defer.Deferred[Address]: ...

        def locate_targets(self, uri: SipURI) -> defer.Deferred[list[Address]]: ...

    def send(self, request: Request, *, authenticate: bool = True,
             line: AccountLine | None = None) -> defer.Deferred[Response]:
        """Send an out-of-dialog non-INVITE request; fires with the final response.

        401/407 are answered with the account's credentials (``line``'s for
        an account added with :meth:`add_account`).  When the next hop was
        located to several servers, a timeout, transport error or 503 moves
        the request to the next (RFC 3263 §4.3).

        Returns:
            A Deferred firing with the final response, whatever its status (a
            3xx-6xx is an answer, not a failure).  It fails with
            :class:`~txsipua.errors.AuthenticationError` (a 401/407 not
            overcome), :class:`~txsipua.errors.TransactionTimeout`,
            :class:`~txsipua.errors.TransportError` (also when every server
            located asked not to be used yet) or
            :class:`~txsipua.errors.ResolutionError` (the next hop cannot be
            located).  Nothing is raised synchronously.
        """
        hop = self.next_hop(request.uri, line.account if line is not None else None)
        d: defer.Deferred[Response] = defer.Deferred()
        digest = line.digest if line is not None else HOST_DIGEST

        def located(targets: list[Address]) -> defer.Deferred[Response]:
            old = self.core.local
            if self.advertise_toward(targets[0][0]):
                _readvertise(request, old, self.core.local, self.core.context.via(""))

            def go(now: float) -> None:
                op = self.core.send_request(request, targets[0], now, authenticate=authenticate,
                                            hop_host=hop_host_of(hop), digest=digest,
                                            alternatives=Failover(targets, self.unavailable))
                op.user_data = d

            self.drive(go)
            return d

        return self.locate_targets(hop).addCallback(located)

    def register(self, expires: int = 3600) -> defer.Deferred[RegistrationResult]:
        """Register once (no refresh); see :meth:`registration` for a kept registration.

        Returns:
            A Deferred firing with the
            :class:`~txsipua.ua.registration.RegistrationResult` of a 2xx.  It
            fails with :class:`~txsipua.errors.RegistrationFailed` (a final
            3xx-6xx, or a 2xx granting our Contact nothing),
            :class:`~txsipua.errors.AuthenticationError`,
            :class:`~txsipua.errors.TransactionTimeout`,
            :class:`~txsipua.errors.TransportError` or
            :class:`~txsipua.errors.ResolutionError`.

        Raises:
            LocalProtocolError: the user agent has no account (synchronously).
        """
        return Registration(self, expires).register_once(expires)  # type: ignore[arg-type]  # self is the UserAgent

    def registration(self, expires: int = 3600) -> Registration:
        """A :class:`~txsipua.ua.registration.Registration` to ``start()`` and ``stop()``.

        Nothing is sent and nothing is raised here; ``start()`` fails its
        Deferred (with :class:`~txsipua.errors.LocalProtocolError` when the
        user agent has no account, and as :meth:`register` does otherwise).
        """
        return Registration(self, expires, random=self.random)  # type: ignore[arg-type]  # self is the UserAgent

    def options(self, target: str | SipURI) -> defer.Deferred[Response]:
        """Send OPTIONS to ``target``; fires with the final response (RFC 3261 §11).

        Headers of ``target`` (``?Subject=...``) are never sent in the
        Request-URI or To; the harmless ones become header fields
        (:func:`~txsipua.core.builders.new_request`, RFC 3261 §19.1.5).

        Returns:
            A Deferred as :meth:`send`'s: the final response of any status;
            it fails with :class:`~txsipua.errors.AuthenticationError`,
            :class:`~txsipua.errors.TransactionTimeout`,
            :class:`~txsipua.errors.TransportError` or
            :class:`~txsipua.errors.ResolutionError` (the target's host
            cannot be located).

        Raises:
            ParseError: ``target`` is a string that is not a SIP URI
                (synchronously, before anything is sent).
        """
        uri = target if isinstance(target, SipURI) else SipURI.parse(target)
        return self.send(self._request("OPTIONS", uri))

    def message(self, target: str | SipURI, text: str, content_type: str = "text/plain") -> defer.Deferred[Response]:
        """Send a MESSAGE (RFC 3428) to ``target``; fires with the final response.

        ``text`` is sent UTF-8 encoded as ``content_type``.  Headers of
        ``target`` are handled as :meth:`options` says (a ``body=`` header
        does not replace ``text``).

        Returns:
            A Deferred as :meth:`send`'s: the final response of any status;
            it fails with :class:`~txsipua.errors.AuthenticationError`,
            :class:`~txsipua.errors.TransactionTimeout`,
            :class:`~txsipua.errors.TransportError` or
            :class:`~txsipua.errors.ResolutionError`.

        Raises:
            ParseError: ``target`` is a string that is not a SIP URI
                (synchronously, before anything is sent).
        """
        uri = target if isinstance(target, SipURI) else SipURI.parse(target)
        return self.send(self._request("MESSAGE", uri, body=text.encode("utf-8"), content_type=content_type))

    def _request(self, method: str, uri: SipURI, body: bytes = b"", content_type: str | None = None) -> Request:
        acct = self.account
        from_ = acct.identity if acct else NameAddr(SipURI(host=self.core.local[0], port=self.core.local[1]))
        return self.core.new_request(
            method, uri, from_, NameAddr(uri), route=self.outbound_route(), body=body, content_type=content_type
        )

    def call(self, target: str | SipURI, *, offer: bool = True) -> defer.Deferred[Call]:
        """Call ``target`` (a SIP URI or a user of the account's domain).

        With ``offer=False`` the INVITE carries no SDP (delayed offer): the
        callee offers in its 2xx and our ACK answers (RFC 3261 §13.2.1).

        Fires with the :class:`Call` once answered (2xx, ACK sent).  Errbacks
        with :class:`~txsipua.errors.CallFailed` (the final response),
        :class:`~txsipua.errors.AuthenticationError`,
        :class:`~txsipua.errors.TransactionTimeout` or
        :class:`~txsipua.errors.ResolutionError`; with media on, with
        :class:`~txsipua.errors.MediaNegotiationFailed` when the 2xx's SDP
        cannot be used (the call is hung up with BYE).  Use :meth:`place_call`
        to get the :class:`Call` before it is answered (to hang up while ringing).

        Unlike :meth:`place_call` it raises nothing synchronously: what
        :meth:`place_call` raises (:class:`~txsipua.errors.ParseError`,
        :class:`~txsipua.errors.LocalProtocolError`,
        :class:`~txsipua.errors.ResolutionError`) fails the Deferred
        instead, as do :class:`~txsipua.errors.CallNotAnswered` and
        :class:`~txsipua.errors.TransportError`.

        Cancelling the Deferred hangs up (``d.cancel()``, ``d.addTimeout()``,
        or a cancelled :func:`txsipua.aio.wait` of it): CANCEL while ringing,
        BYE when the 2xx crossed (RFC 3261 §9.1, §15); it fails with
        ``CancelledError`` and the call leaves ``ua.calls`` once it ended.
        """
        try:
            call = self.place_call(target, offer=offer)
        except SIPError as e:
            return defer.fail(e)
        return call_attempt(call)

    def place_call(self, target: str | SipURI, *, offer: bool = True, line: AccountLine | None = None,
                   headers: Iterable[tuple[str, str]] = ()) -> Call:
        """Start a call and return its :class:`Call` at once (see :meth:`call`).

        ``line``: call as an account added with :meth:`add_account`.  When the
        next hop was located to several servers the INVITE fails over to the
        next on timeout, transport error or 503 (RFC 3263 §4.3).  ``headers``
        are added to the INVITE (Referred-By and Replaces when we are
        transferred, RFC 3892, RFC 3891).  With ``offer=False`` the INVITE
        carries no SDP (delayed offer, RFC 3261 §13.2.1).
        Unanswered after ``Configuration.no_answer_timeout`` seconds, the call
        is cancelled and ``answered`` fails with
        :class:`~txsipua.errors.CallNotAnswered`.  Headers of ``target`` are
        handled as :meth:`options` says (never a body: the INVITE's is its SDP).
        Cancelling the call's ``answered`` (or ``confirmed``) Deferred hangs up,
        as :meth:`Call.hangup`.

        The Call's ``answered`` fails with :class:`~txsipua.errors.CallFailed`
        (a final 3xx-6xx; 487 after :meth:`Call.hangup` while ringing),
        :class:`~txsipua.errors.CallNotAnswered`,
        :class:`~txsipua.errors.AuthenticationError`,
        :class:`~txsipua.errors.TransactionTimeout`,
        :class:`~txsipua.errors.TransportError`,
        :class:`~txsipua.errors.ResolutionError` when a host name's lookup
        (RFC 3263, with a resolver) fails, or (media on)
        :class:`~txsipua.errors.MediaNegotiationFailed`.

        Raises:
            LocalProtocolError: no account (nor ``line``).
            ParseError: ``target`` is a ``sip:``/``sips:``/``tel:`` string
                that is not a valid URI (any other string is a user of the
                account's domain).
            ResolutionError: the next hop needs a lookup (a host name, or no
                host at all) and the user agent has no resolver.
        """
        acct = line.account if line is not None else self.require_account()
        if isinstance(target, SipURI):
            uri = target
        elif ":" in target and target.split(":", 1)[0].lower() in ("sip", "sips", "tel"):
            uri = SipURI.parse(target)
        else:
            uri = acct.domain_uri(target)
        hop = self.next_hop(uri, acct)
        extra = list(headers)
        call = Call(self, None, call_id=self.core.ids.call_id(self.core.local[0]), delayed_offer=not offer)  # type: ignore[arg-type]  # self is the UserAgent
        if uri.scheme == "sips" and call.call_media is not None:
            call.call_media.srtp = True  # sips: secure media too (RFC 4568 over TLS signalling)
        try:
            dest = self.core.locate(hop) if self.resolver is None or self.is_numeric(hop) else None
        except ResolutionError:
            if self.resolver is None:
                raise
            dest = None
        if dest is None:
            # a host name: locate it (RFC 3263) first, then send the INVITE
            self.calls.add(call)

            def located(targets: list[Address]) -> None:
                if call.abandoned:
                    return
                self._start_invite(call, acct, uri, hop, targets[0], targets, line, extra)

            def not_located(f: Any) -> None:
                self.calls.discard(call)
                if not call.answered.called:
                    call.answered.errback(f.value)
                if not call.ended.called:
                    call.ended.callback("failed")

            self.locate_targets(hop).addCallbacks(located, not_located)
            return call
        self._start_invite(call, acct, uri, hop, dest, None, line, extra)
        return call

    def _start_invite(self, call: Call, acct: Account, uri: SipURI, hop: SipURI, dest: Address,
                      targets: list[Address] | None = None, line: AccountLine | None = None,
                      headers: Iterable[tuple[str, str]] = ()) -> None:
        if self.advertise_toward(dest[0]) and call.call_media is not None:
            call.call_media.advertise = self.media_advertise  # the SDP names the routed interface too
        body = call.offer()
        alternatives = Failover(targets if targets else [dest], self.unavailable)

        def go(now: float) -> None:
            req = self.core.new_request("INVITE", uri, acct.identity, NameAddr(uri), route=self.outbound_route(acct),
                                        call_id=call.call_id or None,
                                        contact_user=line.contact_user if line is not None else None,
                                        headers=headers)
            if body:
                req.body = body
                req.headers.add("Content-Type", "application/sdp")
            # events are drained after go() returns, so the Call is attached in time
            session = self.core.invite(req, dest, now, hop_host=hop_host_of(hop), alternatives=alternatives,
                                       digest=line.digest if line is not None else HOST_DIGEST)
            call.attach(session)

        self.drive(go)
        if not call.ended.called:  # it can fail at once (a sips target without TLS)
            self.calls.add(call)

    def subscribe(self, target: str | SipURI, event: str, expires: int = 3600) -> Subscription:
        """Subscribe to ``event`` (``"message-summary"``, ``"dialog"``...) at ``target`` (RFC 6665 §4.1).

        Returns the :class:`~txsipua.ua.subscription.Subscription` at once;
        its ``started`` fires with the 2xx, ``on_notify`` hears each NOTIFY,
        ``ended`` fires when it is over; ``stop()`` unsubscribes.  401/407
        are answered with the account's credentials (digest-leak guard applies).

        Headers of ``target`` are handled as :meth:`options` says.  What
        fails once it has returned fails ``started`` (and ends the subscription):
        :class:`~txsipua.errors.SubscriptionFailed` (3xx-6xx),
        :class:`~txsipua.errors.TransactionTimeout`,
        :class:`~txsipua.errors.AuthenticationError`,
        :class:`~txsipua.errors.ResolutionError`.

        Raises:
            LocalProtocolError: the user agent has no account (synchronously).
            ParseError: ``target`` is a string that is not a SIP URI (synchronously).
        """
        acct = self.require_account()
        uri = target if isinstance(target, SipURI) else SipURI.parse(target)
        subscription = Subscription(self, event, uri)  # type: ignore[arg-type]  # self is the UserAgent
        headers = [("Event", event), ("Expires", str(expires))]
        if event in DOCUMENT_TYPES:
            headers.append(("Accept", DOCUMENT_TYPES[event]))
        hop = self.next_hop(uri)

        def located(dest: Address) -> None:
            self.advertise_toward(dest[0])

            def go(now: float) -> None:
                req = self.core.new_request("SUBSCRIBE", uri, acct.identity, NameAddr(uri),
                                            route=self.outbound_route(), headers=headers)
                client = self.core.subscribe(req, dest, now, hop_host=hop_host_of(hop))
                client.user_data = subscription
                subscription.client = client

            self.drive(go)

        def not_located(f: Any) -> None:
            subscription.finished("error", None, f.value)

        self.subscriptions.add(subscription)
        self.resolve(hop).addCallbacks(located, not_located)
        return subscription


def _readvertise(request: Request, old: Address, new: Address, via: str) -> None:
    """Replace the wildcard address built into ``request`` (its Via, our Contact) by the advertised one."""
    request.headers.set("Via", via)
    value = request.headers.get("Contact")
    if value is not None:
        before, after = f"{format_host(old[0])}:{old[1]}", f"{format_host(new[0])}:{new[1]}"
        request.headers.set("Contact", value.replace(before, after, 1))


__all__ = ["OutgoingRequests"]
