"""The user API: :class:`UserAgent`, one SIP user agent (RFC 3261 §8) bound to one transport.

Everything here returns Deferreds; failures arrive as Failures wrapping the
errors of :mod:`txsipua.errors`.  Example::

    ua = UserAgent(reactor, Configuration(), Account.from_toml("alice.toml"),
                   UDPTransport(reactor, "192.0.2.10", 0))
    yield ua.start()
    result = yield ua.registration(600).start()   # RegistrationResult, kept refreshed
    call = yield ua.call("sip:bob@example.com")    # answered Call
    yield call.hangup()
    yield ua.stop()

The reactor is always injected.  The sans-IO core underneath
(:class:`~txsipua.core.useragent.UserAgentCore`) is driven by the transport's
driver (:mod:`txsipua.net.driver`); every core event goes through one table,
:attr:`UserAgent.EVENT_HANDLERS`, keyed by the event's class, to the :class:`~txsipua.ua.call.Call`
or Deferred waiting for it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from txsipua.core import events as ev
from txsipua.core.builders import format_host
from txsipua.core.capabilities import ALLOW
from txsipua.core.ids import IdGenerator
from txsipua.core.transport import Address
from txsipua.core.uac import HOST_DIGEST
from txsipua.core.useragent import (
    InviteSession,
    UserAgentCore,
    hop_host_of,
    numeric_locate,
)
from txsipua.errors import (
    LocalProtocolError,
    ResolutionError,
    SIPError,
    TransportError,
)
from txsipua.net.driver import TraceCallback
from txsipua.net.locate import Failover, Unavailable
from txsipua.sip.message import Request, Response
from txsipua.sip.message_summary import MessageSummary
from txsipua.sip.uri import SipURI
from txsipua.sip.values import NameAddr
from txsipua.ua import nat
from txsipua.ua.account import Account
from txsipua.ua.accounts import AccountLine, AccountSet
from txsipua.ua.call import Call, IncomingCall, Responder
from txsipua.ua.config import Configuration
from txsipua.ua.interfaces import ISIPTransportFactory, IUserAgent
from txsipua.ua.nat import is_wildcard
from txsipua.ua.registration import Registration, RegistrationResult
from txsipua.ua.subscription import DOCUMENT_TYPES, Subscription, unsolicited_notify
from txsipua.ua.transfer import ReferRequest, handle_in_dialog, incoming_replaces
from txsipua.ua.transports import Listening, SIPTransportFactory, UDPTransport

log = Logger()


@implementer(IUserAgent)
class UserAgent:
    """A SIP user agent (UAC and UAS) on one transport.

    Args:
        reactor: the reactor (``IReactorTime`` and what the transport needs).
        config: the :class:`~txsipua.ua.config.Configuration`; the defaults when ``None``.
        account: the :class:`~txsipua.ua.account.Account`, or ``None`` for a
            UA that only answers.
        transport: an :class:`~txsipua.ua.interfaces.ISIPTransportFactory`
            (:mod:`txsipua.ua.transports`); ``UDPTransport(reactor,
            "127.0.0.1", 0)`` when ``None``.
        authenticator: a :class:`~txsipua.auth.server.DigestServer` that
            challenges incoming requests (UAS/registrar role), or ``None``.
        register_authenticator: challenges REGISTER instead of
            ``authenticator`` (401 even when calls get 407 in the proxy role).
        portal: a ``twisted.cred`` Portal checking credentials the
            authenticator accepted (see :mod:`txsipua.ua.cred`); required with
            ``authenticator``.
        resolver: a :class:`~txsipua.net.resolve.SIPResolver` for host names
            (RFC 3263); without one only IP addresses can be reached.
        trace: called with every message sent and received (``-v``, ladders).
        ids: injected identifier generator (tags, branches, Call-IDs).
        locate: next-hop URI -> address; by default numeric hosts, and names
            already located through ``resolver``.
        random: a callable returning a float in ``[0, 1)``, the jitter of
            registration back-offs (``random.random`` when ``None``).

    Attributes:
        on_incoming_call: callable taking an :class:`~txsipua.ua.call.IncomingCall`;
            when ``None`` incoming calls are answered if ``auto_answer`` is
            set, else rejected with 480.
        on_request: callable ``(request, respond)`` for MESSAGE, INFO,
            NOTIFY, REFER, REGISTER...; ``respond`` is a :class:`~txsipua.ua.call.Responder`:
            ``respond(status, reason=None, headers=(), body=b"")``, and
            ``respond.identity`` is the authenticated username or ``None``.
            Without it MESSAGE/INFO/NOTIFY get 200, REGISTER 405 and others 501.
        auto_answer: answer incoming calls automatically.
        calls: the live :class:`~txsipua.ua.call.Call` objects.
        on_refer: callable taking a :class:`~txsipua.ua.transfer.ReferRequest`
            for each REFER received in a call (we are being transferred); it
            calls ``accept()`` or ``reject(status)``.  When ``None`` every
            REFER is accepted (RFC 3515: 202, then the INVITE to the target).
        on_mwi: callable ``(summary, request)`` for an unsolicited
            message-summary NOTIFY (RFC 3842), with the
            :class:`~txsipua.sip.message_summary.MessageSummary`; the NOTIFY
            is answered 200 either way (400 when its body does not parse).
        subscriptions: the live :class:`~txsipua.ua.subscription.Subscription` objects.
        registrations: the started :class:`~txsipua.ua.registration.Registration`
            objects (not yet back to ``unregistered``); :meth:`stop` ends them.
        core: the sans-IO :class:`~txsipua.core.useragent.UserAgentCore`.
        protocol: the transport's driver (a Twisted protocol feeding the core).
        media_host: the RTP address calls bind and advertise.
        accounts: the :class:`~txsipua.ua.accounts.AccountSet` of the accounts
            added with :meth:`add_account` beside :attr:`account`.
        unavailable: the servers that answered 503 with Retry-After, skipped
            until then (:class:`~txsipua.net.locate.Unavailable`).
        log: the :class:`twisted.logger.Logger` of the user agent's own
            warnings (INVITEs refused past ``max_calls``); the module's
            logger (the global log publisher) unless replaced.
    """

    log: Logger = log

    def __init__(
        self,
        reactor: Any,
        config: Configuration | None = None,
        account: Account | None = None,
        transport: SIPTransportFactory | None = None,
        *,
        authenticator: Any = None,
        register_authenticator: Any = None,
        portal: Any = None,
        resolver: Any = None,
        trace: TraceCallback | None = None,
        ids: IdGenerator | None = None,
        locate: Callable[[SipURI], Address] | None = None,
        random: Callable[[], float] | None = None,
    ) -> None:
        self.reactor = reactor
        self.config = config if config is not None else Configuration()
        self.account = account
        self.transport: SIPTransportFactory = transport if transport is not None else UDPTransport(reactor)
        if not ISIPTransportFactory.providedBy(self.transport):
            raise TypeError(f"transport must provide ISIPTransportFactory, not {self.transport!r}")
        self.resolver = resolver
        self.portal = portal
        self._located: dict[tuple[str, int | None], Address] = {}
        self._custom_locate = locate
        self.unavailable = Unavailable()
        bind = (self.transport.host, self.transport.port)
        self.media_host = self.config.media_host(bind[0])
        self.core = UserAgentCore(
            local=bind,
            ids=ids,
            timers=self.config.timers,
            digest=account.digest_client() if account is not None else None,
            authenticator=authenticator,
            register_authenticator=register_authenticator,
            user_agent=self.config.user_agent,
            contact_user=account.user if account is not None else None,
            locate=locate or self._locate,
            transport=self.transport.name,
            reliable=self.transport.reliable,
            max_calls=self.config.max_calls,
            max_call_duration=self.config.max_call_duration,
            use_100rel=self.config.use_100rel,
            session_expires=self.config.session_expires,
            min_se=self.config.min_se,
        )
        self.core.context.sips_contact = self.config.sips_contact
        self.protocol: Any = self.transport.driver(self.core, self._on_event, trace)
        self.on_incoming_call: Callable[[IncomingCall], object] | None = None
        self.on_request: Callable[[Request, Callable[..., None]], object] | None = None
        self.auto_answer = False
        self.calls: set[Call] = set()
        self.registrations: set[Registration] = set()
        self.random = random
        self.on_refer: Callable[[ReferRequest], object] | None = None
        self.on_mwi: Callable[[MessageSummary, Request], object] | None = None
        self.subscriptions: set[Subscription] = set()
        self._listening: Listening | None = None
        self.instance_id = self.config.instance_id or f"urn:uuid:{uuid.uuid4()}"
        """The RFC 5626 ``+sip.instance`` URN of this user agent (Outbound)."""
        self.accounts = AccountSet(self)

    # lifecycle
    def start(self) -> defer.Deferred[Address]:
        """Listen on the transport's bind address; fires with the bound ``(host, port)``.

        Errbacks with ``twisted.internet.error.CannotListenError`` when the
        port is taken.
        """
        try:
            self._listening = self.transport.listen(self.protocol, self.config.socket_buffer)
        except Exception as e:
            return defer.fail(e)
        self.core.local = self._listening.address
        self._choose_advertised()
        return defer.succeed(self._listening.address)

    # addresses (txsipua.ua.nat) and keep-alives (txsipua.ua.keepalive)
    def _choose_advertised(self, toward: str | None = None) -> None:
        """Via/Contact host: the public host, else for a wildcard bind the interface routing ``toward``."""
        if toward is None and self.account is not None:
            toward = self.next_hop(self.account.registrar_uri).host
        self.core.local = nat.advertised(self.core.local, self.config.public_host, toward)

    def _advertise_toward(self, toward: str) -> bool:
        """For a wildcard bind, re-pick the Via/Contact host for a request to ``toward`` (an address).

        Called after location, before the request (and its SDP offer) is
        built.  Returns True when the advertised address changed.
        """
        if not is_wildcard(self.core.local[0]):
            return False
        old = self.core.local
        self._choose_advertised(toward)
        return self.core.local != old

    def advertise(self, address: Address) -> None:
        """Name ``address`` (``(host, port)``) in Via and Contact from now on (a NAT's public side, RFC 3581)."""
        self.core.local = address

    @property
    def media_bind_host(self) -> str:
        """The address RTP sockets bind (:func:`txsipua.ua.nat.media_addresses`)."""
        return nat.media_addresses(self.config, self.transport.host, self.core.local[0], self.media_host)[0]

    @property
    def media_advertise(self) -> str:
        """The address SDP advertises for RTP, ``c=`` (:func:`txsipua.ua.nat.media_addresses`)."""
        return nat.media_addresses(self.config, self.transport.host, self.core.local[0], self.media_host)[1]

    def media_stream_factory(self) -> Callable[[Any, str], Any] | None:
        """The RTP stream factory for calls (port range, symmetric RTP), or ``None`` for the default."""
        from txsipua.net.rtp_ports import stream_factory

        config = self.config
        return stream_factory(config.rtp_ports, config.symmetric_rtp, rtcp_interval=config.rtcp_interval,
                              media_timeout=config.media_timeout)

    def keepalive_interval(self, result: RegistrationResult | None = None) -> float | None:
        """Seconds between keep-alives on a registration's flow, or ``None`` (:func:`txsipua.ua.keepalive.interval`)."""
        from txsipua.ua.keepalive import interval

        return interval(self.config, self.transport.reliable, result.response if result is not None else None)

    @property
    def local_address(self) -> Address:
        """Our ``(host, port)``."""
        return self.core.local

    def stop(self, grace: float | None = None) -> defer.Deferred[None]:
        """Hang up live calls, unregister live registrations, unsubscribe, then close the transport.

        Args:
            grace: seconds to wait for the hang-ups (BYE or CANCEL) and the
                un-REGISTERs (Expires: 0) to be confirmed before closing
                anyway (a peer that vanished would otherwise hold the stop
                for Timer F/B, 32 s); registrations still unconfirmed then
                are abandoned.  :attr:`Configuration.grace
                <txsipua.ua.config.Configuration.grace>` when ``None``.
        """
        wait = self.config.grace if grace is None else grace
        waits: list[defer.Deferred[Any]] = [c.hangup() for c in list(self.calls)]
        waits += [r.stop() for r in list(self.registrations)]
        waits += [s.stop() for s in list(self.subscriptions)]  # SUBSCRIBE with Expires: 0
        d: defer.Deferred[Any] = defer.Deferred()
        if waits:

            def settled(_: Any = None) -> None:
                if timer.active():
                    timer.cancel()
                if not d.called:
                    d.callback(None)

            timer = self.reactor.callLater(wait, settled)
            defer.DeferredList(waits, consumeErrors=True).addBoth(settled)
        else:
            d.callback(None)

        def close(_: Any) -> Any:
            for r in list(self.registrations):
                r.abandon()  # the grace ran out: the binding runs out at the registrar
            for s in list(self.subscriptions):
                s.abandon()  # likewise the subscription at its notifier
            for c in list(self.calls):
                c.stop_media()
                if c.session is not None and not c.ended.called:
                    # the grace ran out: give the call up, its Deferreds still fire
                    self._abort(c.session)
            listening, self._listening = self._listening, None
            return listening.close() if listening is not None else None

        d.addCallback(close)
        d.addCallback(lambda _: None)
        return d

    def _abort(self, session: InviteSession) -> None:
        error = TransportError("the user agent stopped before the hang-up was confirmed")

        def go(now: float) -> None:
            self.core.abort(session, now, error)

        self.drive(go)

    def require_account(self) -> Account:
        """The account.

        Raises:
            LocalProtocolError: the user agent has no account.
        """
        if self.account is None:
            raise LocalProtocolError("this user agent has no account")
        return self.account

    def add_account(self, account: Account) -> AccountLine:
        """Serve another account on this user agent and port (its own registration,
        credentials and identity); see :mod:`txsipua.ua.accounts`.

        Returns:
            The :class:`~txsipua.ua.accounts.AccountLine` to register, call and
            receive calls with.
        """
        return self.accounts.add(account)

    def drive(self, fn: Callable[[float], Any]) -> Any:
        """Run ``fn(now)`` against the core, then flush what it produced; returns ``fn``'s result.

        ``now`` is the reactor's clock (seconds, absolute).  This is how calls
        and registrations give the core an order; events it emits are handed
        out before this returns.
        """
        result = fn(self.reactor.seconds())
        self.protocol.pump()
        return result

    # routing
    def outbound_route(self, account: Account | None = None) -> list[SipURI]:
        """The pre-loaded Route set: the outbound proxy with ``lr`` (RFC 3261 §8.1.2).

        ``account``: another account's (default: :attr:`account`).
        """
        acct = account if account is not None else self.account
        if acct is None or acct.outbound_proxy is None:
            return []
        proxy = acct.outbound_proxy
        return [proxy if proxy.lr else proxy.with_params(lr=None)]

    def next_hop(self, request_uri: SipURI, account: Account | None = None) -> SipURI:
        """Where an out-of-dialog request goes: the outbound proxy, else the Request-URI."""
        route = self.outbound_route(account)
        return route[0] if route else request_uri

    # requests
    def send(self, request: Request, *, authenticate: bool = True,
             line: AccountLine | None = None) -> defer.Deferred[Response]:
        """Send an out-of-dialog non-INVITE request; fires with the final response.

        401/407 are answered with the account's credentials (``line``'s for
        an account added with :meth:`add_account`).  When the next hop was
        located to several servers, a timeout, transport error or 503 moves
        the request to the next (RFC 3263 §4.3).  Errbacks with
        :class:`~txsipua.errors.AuthenticationError`,
        :class:`~txsipua.errors.TransactionTimeout`,
        :class:`~txsipua.errors.TransportError` or
        :class:`~txsipua.errors.ResolutionError`.
        """
        hop = self.next_hop(request.uri, line.account if line is not None else None)
        d: defer.Deferred[Response] = defer.Deferred()
        digest = line.digest if line is not None else HOST_DIGEST

        def located(targets: list[Address]) -> defer.Deferred[Response]:
            old = self.core.local
            if self._advertise_toward(targets[0][0]):
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

        Raises:
            LocalProtocolError: the user agent has no account.
        """
        return Registration(self, expires).register_once(expires)

    def registration(self, expires: int = 3600) -> Registration:
        """A :class:`~txsipua.ua.registration.Registration` to ``start()`` and ``stop()``."""
        return Registration(self, expires, random=self.random)

    def options(self, target: str | SipURI) -> defer.Deferred[Response]:
        """Send OPTIONS to ``target``; fires with the final response (RFC 3261 §11)."""
        uri = target if isinstance(target, SipURI) else SipURI.parse(target)
        return self.send(self._request("OPTIONS", uri))

    def message(self, target: str | SipURI, text: str, content_type: str = "text/plain") -> defer.Deferred[Response]:
        """Send a MESSAGE (RFC 3428) to ``target``; fires with the final response."""
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
        :class:`~txsipua.errors.ResolutionError`.  Use :meth:`place_call` to
        get the :class:`Call` before it is answered (to hang up while ringing).
        """
        try:
            call = self.place_call(target, offer=offer)
        except SIPError as e:
            return defer.fail(e)
        return call.answered

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
        :class:`~txsipua.errors.CallNotAnswered`.

        Raises:
            ResolutionError: the next hop cannot be located.
            ParseError: ``target`` is not a SIP URI.
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
        call = Call(self, None, call_id=self.core.ids.call_id(self.core.local[0]), delayed_offer=not offer)
        if uri.scheme == "sips" and call.call_media is not None:
            call.call_media.srtp = True  # sips: secure media too (RFC 4568 over TLS signalling)
        try:
            dest = self.core.locate(hop) if self.resolver is None or self._numeric(hop) else None
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
        if self._advertise_toward(dest[0]) and call.call_media is not None:
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

        Raises:
            LocalProtocolError: the user agent has no account.
            ParseError: ``target`` is not a SIP URI.
        """
        acct = self.require_account()
        uri = target if isinstance(target, SipURI) else SipURI.parse(target)
        subscription = Subscription(self, event, uri)
        headers = [("Event", event), ("Expires", str(expires))]
        if event in DOCUMENT_TYPES:
            headers.append(("Accept", DOCUMENT_TYPES[event]))
        hop = self.next_hop(uri)

        def located(dest: Address) -> None:
            self._advertise_toward(dest[0])

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

    # server location
    @staticmethod
    def _numeric(uri: SipURI) -> bool:
        try:
            numeric_locate(uri)
        except ResolutionError:
            return False
        return True

    def resolve(self, uri: SipURI) -> defer.Deferred[Address]:
        """Locate ``uri`` (RFC 3263) for this UA's transport; fires with the first ``(ip, port)``.

        See :meth:`locate_targets`.  Errbacks with
        :class:`~txsipua.errors.ResolutionError`, or
        :class:`~txsipua.errors.TransportError` when every server located
        asked (503 with Retry-After) not to be used yet.
        """
        return self.locate_targets(uri).addCallback(lambda targets: targets[0])

    def locate_targets(self, uri: SipURI) -> defer.Deferred[list[Address]]:
        """Every target ``uri`` was located to (RFC 3263), in the order to try them.

        Numeric hosts need no lookup.  Names go through the injected
        :class:`~txsipua.net.resolve.SIPResolver` (which caches them for
        their TTL); targets on our transport and our socket's address family
        are kept, those still skipped after a 503's Retry-After
        (:attr:`unavailable`) are left out, those a request failed at lately
        (timeout, transport error) come last, and the first is remembered for
        in-dialog requests through the same host.  Every account's digest-leak
        guard learns the addresses a trusted name was located to.

        Errbacks with :class:`~txsipua.errors.ResolutionError`, or
        :class:`~txsipua.errors.TransportError` when every target is still
        unavailable.
        """
        if self.resolver is None or self._numeric(uri) or self._custom_locate is not None:
            try:
                return defer.succeed([self.core.locate(uri)])
            except ResolutionError as e:
                if self.resolver is None:
                    return defer.fail(e)
        if ":" in uri.host and not uri.host.startswith("["):
            # "host:port" in a host field is never a name: never ask the resolver (or DNS) for it
            return defer.fail(ResolutionError(f"{uri.host!r} is not a host name"))
        d = self.resolver.locate(uri)

        def pick(targets: list[Any]) -> list[Address]:
            mine = [t for t in targets if t.transport == self.transport.name] or targets
            for client in self.accounts.digest_clients(self.core.digest):
                client.leak_guard.learn(uri, mine)  # a trusted name is trusted where it was located
            addresses = [(t.host, t.port) for t in mine]
            v6 = ":" in self.core.local[0]
            same_family = [a for a in addresses if (":" in a[0]) == v6]
            if not same_family and not v6:
                raise ResolutionError(f"{uri.host} has only IPv6 (AAAA) addresses and our socket is IPv4 "
                                      f"({format_host(self.core.local[0])}); bind an IPv6 address to reach it")
            addresses = same_family or addresses
            names = getattr(self.protocol, "server_names", None)
            if names is not None:
                # TLS verifies the certificate against the name, not the address (RFC 5922 §7)
                for address in addresses:
                    names[address] = uri.host
            now = self.reactor.seconds()
            usable = self.unavailable.order(self.unavailable.available(addresses, now), now)
            if not usable:
                soonest = min(self.unavailable.until(a, now) or now for a in addresses)
                raise TransportError(f"every server located for {uri.host} asked not to be used "
                                     f"(503 Retry-After) for {soonest - now:.0f} s more")
            self._located[(uri.host.lower(), uri.port)] = usable[0]
            return usable

        located: defer.Deferred[list[Address]] = d.addCallback(pick)
        return located

    def _locate(self, uri: SipURI) -> Address:
        try:
            return numeric_locate(uri)
        except ResolutionError:
            found = self._located.get((uri.host.lower(), uri.port))
            if found is None:
                if self.resolver is None:
                    raise
                raise ResolutionError(f"{uri.host!r} has not been located yet (UserAgent.resolve)") from None
            return found

    def when_located(self, session: InviteSession | None, fn: Callable[[float], Any]) -> defer.Deferred[Any]:
        """Run ``fn(now)`` (see :meth:`drive`) once the session's in-dialog next hop is located (RFC 3263).

        Numeric next hops (and names located before) run at once.  Errbacks
        with :class:`~txsipua.errors.ResolutionError` when the hop cannot be
        located, or with what ``fn`` raised.
        """
        dialog = session.dialog if session is not None else None
        if dialog is None:
            return defer.maybeDeferred(self.drive, fn)
        d = self.resolve(dialog.next_hop())
        return d.addCallback(lambda _: self.drive(fn))

    # events: one handler per event class (EVENT_HANDLERS below)
    def _on_event(self, e: ev.Event) -> None:
        handler = self.EVENT_HANDLERS.get(type(e))
        if handler is not None:
            handler(self, e)

    @staticmethod
    def _log_auth_notes(op: Any) -> None:
        attempt = getattr(op, "attempt", None)
        notes = getattr(attempt, "notes", None)
        if notes:
            for note in notes:
                log.info("digest: {note} ({method})", note=note, method=op.method)
            notes.clear()

    def _request_completed(self, e: ev.RequestCompleted) -> None:
        self._log_auth_notes(e.operation)
        d = e.operation.user_data
        if isinstance(d, defer.Deferred) and not d.called:
            d.callback(e.response)

    def _credentials_withheld(self, e: ev.CredentialsWithheld) -> None:
        # the digest-leak guard left credentials out of a 2xx ACK: a warning
        log.warn("{warning} ({method})", warning=str(e.withheld), method=e.method)

    def _call_refused(self, e: ev.CallRefused) -> None:
        # the first refusal of a flood and every 100th after it, not each one
        if e.refused == 1 or e.refused % 100 == 0:
            self.log.warn("503 to a new INVITE: {live} calls live (max_calls); {n} refused so far",
                     live=e.live, n=e.refused)

    def _request_failed(self, e: ev.RequestFailed) -> None:
        self._log_auth_notes(e.operation)
        d = e.operation.user_data
        if isinstance(d, defer.Deferred) and not d.called:
            d.errback(e.error)

    def _provisional(self, e: ev.ProvisionalResponse) -> None:
        owner = e.operation
        if isinstance(owner, InviteSession) and isinstance(owner.user_data, Call):
            owner.user_data.session_progress(e.response)

    def _call_answered(self, e: ev.CallAnswered) -> None:
        self._log_auth_notes(e.session.invite_operation)
        call = _call_of(e.session)
        if call is not None:
            call.session_answered(e.response)

    def _call_failed(self, e: ev.CallAttemptFailed) -> None:
        self._log_auth_notes(e.session.invite_operation)
        call = _call_of(e.session)
        if call is not None:
            call.session_failed(e.error)

    def _call_ended(self, e: ev.CallEnded) -> None:
        call = _call_of(e.session)
        if call is not None:
            call.session_ended(e.reason, e.bye_error)

    def _call_confirmed(self, e: ev.CallConfirmed) -> None:
        call = _call_of(e.session)
        if call is not None:
            call.session_confirmed()

    def _reinvite_completed(self, e: ev.ReinviteCompleted) -> None:
        call = _call_of(e.session)
        if call is not None:
            call.reinvite_completed(e.response, e.error)

    def _ack_received(self, e: ev.AckReceived) -> None:
        call = _call_of(e.session)
        if call is not None:
            call.ack_received(e.request)

    def _provisional_acknowledged(self, e: ev.ProvisionalAcknowledged) -> None:
        call = _call_of(e.session)
        if call is not None:
            call.provisional_acknowledged(e.prack)

    def _incoming_call(self, e: ev.IncomingCall) -> None:
        if is_wildcard(self.core.local[0]):
            # bound to a wildcard and nothing sent yet: answer from the interface routing to the caller
            try:
                via = e.request.top_via
                self._choose_advertised(via.received or via.host)
            except SIPError:
                pass
        call = Call(self, e.session)
        self.calls.add(call)
        replaced = _call_of(e.replaces) if e.replaces is not None else None
        incoming = IncomingCall(self, call, e.request, replaced)
        line = self.accounts.match(e.request)
        handler, auto = self.on_incoming_call, self.auto_answer
        if line is not None:  # a call for an added account (ua/accounts.py has the rule)
            handler, auto = line.on_incoming_call, line.auto_answer
            line.adopt(e.session)
        if replaced is not None:  # RFC 3891: BYE the replaced call once this one is up
            incoming_replaces(incoming, auto=handler is None)
            if handler is None:
                return
        if handler is not None:
            try:
                handler(incoming)
            except Exception:
                # the application failed: refuse the call rather than leave it unanswered
                log.failure("on_incoming_call failed; the call is refused with 500")
                if incoming.pending:
                    incoming.reject(500)
        elif auto:
            incoming.ring()
            incoming.answer()
        else:
            incoming.reject(480)

    def _incoming_request(self, e: ev.IncomingRequest) -> None:
        req = e.request
        session = e.session
        if req.method == "UPDATE" and session is not None:  # an offer in an UPDATE (RFC 3311)
            call = _call_of(session)
            if call is not None:
                call.update_received(req, e.transaction)
            else:
                self.drive(lambda now: session.answer_update(e.transaction, req, now, status=488))
            return
        if req.method == "INVITE" and session is not None:
            call = _call_of(session)
            if call is not None:
                call.reinvite_received(req, e.transaction)
            else:
                self.drive(lambda now: session.answer_reinvite(e.transaction, req, now, body=b""))
            return
        respond = Responder(self, req, e.transaction, e.identity, session)
        call = _call_of(session) if session is not None else None
        if call is not None and handle_in_dialog(self, call, req, respond):
            return  # REFER, NOTIFY of our transfer, INFO with DTMF (txsipua.ua.transfer)
        if session is None and req.method == "NOTIFY" and unsolicited_notify(self, req, respond):
            return  # message-summary without a subscription (MWI from the registrar)
        line = self.accounts.match(req) if session is None else None
        on_request = line.on_request if line is not None else self.on_request
        if on_request is not None:
            on_request(req, respond)
            return
        if req.method == "NOTIFY" and session is None:
            respond(481, "No Matching Subscription")  # RFC 6665 §4.1.3: no subscription of ours
        elif req.method in ("MESSAGE", "INFO", "NOTIFY"):
            respond(200)
        elif req.method == "REGISTER":
            respond(405, headers=[("Allow", ALLOW)])
        else:
            respond(501)

    def _authenticate(self, e: ev.AuthenticationNeeded) -> None:
        if self.portal is None:
            self.drive(lambda now: self.core.authentication_result(e, False, None, now))
            return
        from txsipua.ua.cred import ISIPUser

        try:  # Portal.login returns a Deferred (failures included); a stand-in might raise
            d = self.portal.login(e.credentials, None, ISIPUser)
        except Exception:
            d = defer.fail()

        def ok(result: Any) -> None:
            _iface, avatar, _logout = result
            self.drive(lambda now: self.core.authentication_result(e, True, str(avatar), now))

        def bad(_: Any) -> None:
            self.drive(lambda now: self.core.authentication_result(e, False, None, now))

        d.addCallbacks(ok, bad)

    def _subscription_accepted(self, e: ev.SubscriptionAccepted) -> None:
        sub = e.subscription.user_data
        if isinstance(sub, Subscription):
            sub.accepted(e.response)

    def _notify_received(self, e: ev.NotifyReceived) -> None:
        sub = e.subscription.user_data
        if isinstance(sub, Subscription):
            sub.notified(e.request, e.state)

    def _subscription_ended(self, e: ev.SubscriptionEnded) -> None:
        sub = e.subscription.user_data
        if isinstance(sub, Subscription):
            sub.finished(e.reason, e.retry_after, e.error)

    # One handler per core event class; an event absent from the table is not ours to handle.
    EVENT_HANDLERS: dict[type, Callable[[Any, Any], None]] = {
        ev.RequestCompleted: _request_completed,
        ev.RequestFailed: _request_failed,
        ev.ProvisionalResponse: _provisional,
        ev.CallAnswered: _call_answered,
        ev.CallAttemptFailed: _call_failed,
        ev.CallEnded: _call_ended,
        ev.CallConfirmed: _call_confirmed,
        ev.ReinviteCompleted: _reinvite_completed,
        ev.AckReceived: _ack_received,
        ev.IncomingCall: _incoming_call,
        ev.IncomingRequest: _incoming_request,
        ev.AuthenticationNeeded: _authenticate,
        ev.CredentialsWithheld: _credentials_withheld,
        ev.CallRefused: _call_refused,
        ev.ProvisionalAcknowledged: _provisional_acknowledged,
        ev.SubscriptionAccepted: _subscription_accepted,
        ev.NotifyReceived: _notify_received,
        ev.SubscriptionEnded: _subscription_ended,
    }
    """Core event class -> the :class:`UserAgent` method that turns it into Deferreds and calls."""


def _readvertise(request: Request, old: Address, new: Address, via: str) -> None:
    """Replace the wildcard address built into ``request`` (its Via, our Contact) by the advertised one."""
    request.headers.set("Via", via)
    value = request.headers.get("Contact")
    if value is not None:
        before, after = f"{format_host(old[0])}:{old[1]}", f"{format_host(new[0])}:{new[1]}"
        request.headers.set("Contact", value.replace(before, after, 1))


def _call_of(session: InviteSession) -> Call | None:
    call = session.user_data
    return call if isinstance(call, Call) else None
