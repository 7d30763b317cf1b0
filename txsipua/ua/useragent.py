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

This module is the user agent's setup and plumbing: construction from a
configuration, an account and a transport factory, listening and stopping,
the advertised addresses (RFC 3581, :mod:`txsipua.ua.nat`), the outbound
route (§8.1.2) and server location (RFC 3263).  What it sends out of dialog
(the UAC role, §8.1) is mixed in from
:class:`~txsipua.ua.outgoing.OutgoingRequests`; what it does with the core's
events (the UAS role, §8.2, and the outcomes of its requests) is the table in
:mod:`txsipua.ua.dispatch`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from txsipua.core import events as ev
from txsipua.core.builders import format_host
from txsipua.core.ids import IdGenerator
from txsipua.core.transport import Address
from txsipua.core.useragent import (
    InviteSession,
    UserAgentCore,
    numeric_locate,
)
from txsipua.errors import (
    LocalProtocolError,
    ResolutionError,
    TransportError,
)
from txsipua.net.driver import TraceCallback
from txsipua.net.locate import Unavailable
from txsipua.sip.message import Request
from txsipua.sip.message_summary import MessageSummary
from txsipua.sip.uri import SipURI
from txsipua.ua import dispatch, nat
from txsipua.ua.account import Account
from txsipua.ua.accounts import AccountLine, AccountSet
from txsipua.ua.call import Call, IncomingCall
from txsipua.ua.config import Configuration
from txsipua.ua.interfaces import ISIPTransportFactory, IUserAgent
from txsipua.ua.nat import is_wildcard
from txsipua.ua.outgoing import OutgoingRequests
from txsipua.ua.registration import Registration, RegistrationResult
from txsipua.ua.subscription import Subscription
from txsipua.ua.transfer import ReferRequest
from txsipua.ua.transports import Listening, SIPTransportFactory, UDPTransport

log = Logger()


@implementer(IUserAgent)
class UserAgent(OutgoingRequests):
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
        port is taken, and with :class:`~txsipua.errors.LocalProtocolError`
        when the user agent is already listening (started and not yet
        stopped: the listener in place is kept).  After :meth:`stop` it may
        be started again.
        """
        if self._listening is not None:
            host, port = self._listening.address
            return defer.fail(LocalProtocolError(
                f"the user agent is already started (listening on {format_host(host)}:{port})"))
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

    def advertise_toward(self, toward: str) -> bool:
        """For a wildcard bind, re-pick the Via/Contact host for a request to or from ``toward`` (an address).

        Called after location, before a request (and its SDP offer) is
        built, and for an incoming call before it is answered.  Returns True
        when the advertised address changed; a bind to one address changes
        nothing.
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


    # server location
    @staticmethod
    def is_numeric(uri: SipURI) -> bool:
        """True when ``uri``'s host is an address: it needs no RFC 3263 lookup."""
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
        if self.resolver is None or self.is_numeric(uri) or self._custom_locate is not None:
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

    EVENT_HANDLERS: dict[type, Callable[[Any, Any], None]] = dispatch.EVENT_HANDLERS
    """Core event class -> the handler ``(ua, event)`` that turns it into Deferreds and calls
    (:data:`txsipua.ua.dispatch.EVENT_HANDLERS`)."""
