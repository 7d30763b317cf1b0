"""The user API: :class:`UserAgent`, :class:`Registration`, :class:`Call`.

Everything here returns Deferreds; failures arrive as Failures wrapping the
errors of :mod:`txsipua.errors`.  Example::

    ua = UserAgent(reactor, Account.from_toml("alice.toml"))
    yield ua.start()
    result = yield ua.register(expires=600)     # RegistrationResult
    call = yield ua.call("sip:bob@example.com")  # answered Call
    yield call.hangup()
    yield ua.stop()

The reactor is always injected; the sans-IO core underneath is driven by
:class:`~txsipua.net.driver.SIPDatagramProtocol`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from typing import Any

import attrs
from twisted.internet import defer
from twisted.logger import Logger

from txsipua.core import events as ev
from txsipua.core.ids import IdGenerator
from txsipua.core.transaction import ServerTransaction, Timers
from txsipua.core.transport import Address
from txsipua.core.useragent import (
    InviteSession,
    SessionState,
    UserAgentCore,
    hop_host_of,
    numeric_locate,
)
from txsipua.errors import (
    LocalProtocolError,
    ParseError,
    RegistrationFailed,
    ResolutionError,
    SIPError,
    TransportError,
)
from txsipua.media.offer_answer import (
    MediaParams,
    hold_offer,
    make_answer,
    make_offer,
    negotiate,
    resume_offer,
)
from txsipua.media.sdp import SessionDescription
from txsipua.net.driver import MAX_DATAGRAM, SIPDatagramProtocol, TraceCallback
from txsipua.sip.message import Request, Response
from txsipua.sip.uri import SipURI
from txsipua.sip.values import NameAddr
from txsipua.ua.account import Account

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


def _parse_bindings(response: Response, ours: SipURI, default_expires: int) -> tuple[tuple[Binding, ...], int]:
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
        mine = _same_contact(na.uri, ours)
        if mine:
            granted = exp
        out.append(Binding(na.uri, exp, mine))
    return tuple(out), granted


def _same_contact(a: SipURI, b: SipURI) -> bool:
    # RFC 3261 §19.1.4 comparison, reduced to what registrars keep
    return (
        a.scheme == b.scheme
        and (a.user or "") == (b.user or "")
        and a.host.lower() == b.host.lower()
        and (a.port or 5060) == (b.port or 5060)
    )


class Registration:
    """A registration kept alive: REGISTER, refresh before expiry, unregister (RFC 3261 §10.2).

    The same Call-ID is used for every refresh and the CSeq grows by one
    (§10.2.4); credentials of the last success are reused pre-emptively.

    Attributes:
        expires: the expiry asked for, seconds.
        result: the last :class:`RegistrationResult`, or ``None``.
        registered: True while a binding is held.
        on_refresh_failed: optional callable taking the error when a refresh
            fails (the registration retries after ``retry_after`` seconds).
    """

    def __init__(self, ua: UserAgent, expires: int = 3600, retry_after: float = 30.0) -> None:
        self.ua = ua
        self.expires = expires
        self.retry_after = retry_after
        self.result: RegistrationResult | None = None
        self.registered = False
        self.on_refresh_failed: Callable[[Exception], object] | None = None
        self._call_id = ua.core.ids.call_id(ua.core.local[0])
        self._cseq = 0
        self._from_tag = ua.core.ids.tag()
        self._refresh: Any = None
        self._stopped = False

    def _register(self, expires: int) -> defer.Deferred[RegistrationResult]:
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
        d = ua.send(req)

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
                    return self._register(minimum)
            if not 200 <= response.status < 300:
                raise RegistrationFailed(response, "registration")
            bindings, granted = _parse_bindings(response, ua.core.contact_uri(), expires)
            if expires and not granted and not any(b.ours for b in bindings):
                granted = expires  # registrar did not list us back: assume what we asked for
            return RegistrationResult(response, bindings, granted if expires else 0)

        return d.addCallback(done)

    def start(self) -> defer.Deferred[RegistrationResult]:
        """Register now and keep refreshing; fires with the first result.

        Errbacks with :class:`~txsipua.errors.RegistrationFailed`,
        :class:`~txsipua.errors.AuthenticationError` or
        :class:`~txsipua.errors.TransactionTimeout`.
        """
        self._stopped = False
        d = self._register(self.expires)
        d.addCallback(self._registered)
        return d

    def _registered(self, result: RegistrationResult) -> RegistrationResult:
        self.result = result
        self.registered = result.expires > 0
        if not self._stopped and result.expires > 0:
            self._schedule(self.refresh_delay(result.expires))
        return result

    @staticmethod
    def refresh_delay(granted: int) -> float:
        """Seconds after which to refresh a binding granted for ``granted`` seconds.

        Refreshes at half the interval for short ones and 30 s before expiry
        for long ones, so a lost REGISTER still has retransmission time
        (Timer F is 32 s) before the binding runs out.
        """
        if granted <= 64:
            return max(1.0, granted / 2)
        return float(granted - 32)

    def _schedule(self, delay: float) -> None:
        self._cancel()
        self._refresh = self.ua.reactor.callLater(delay, self._do_refresh)

    def _do_refresh(self) -> None:
        self._refresh = None
        d = self._register(self.expires)
        d.addCallback(self._registered)

        def failed(f: Any) -> None:
            err = f.value
            log.warn("registration refresh failed: {err}", err=err)
            if self.on_refresh_failed is not None:
                self.on_refresh_failed(err)
            if not self._stopped:
                self._schedule(self.retry_after)

        d.addErrback(failed)

    def _cancel(self) -> None:
        if self._refresh is not None and self._refresh.active():
            self._refresh.cancel()
        self._refresh = None

    def stop(self) -> defer.Deferred[RegistrationResult | None]:
        """Stop refreshing and unregister (REGISTER with Expires: 0, §10.2.2)."""
        self._stopped = True
        self._cancel()
        if not self.registered:
            return defer.succeed(None)
        d = self._register(0)

        def done(result: RegistrationResult) -> RegistrationResult:
            self.registered = False
            self.result = result
            return result

        d.addCallback(done)
        return d  # type: ignore[return-value]


class Call:
    """A call, on either side, with its media.

    Attributes:
        session: the core :class:`~txsipua.core.useragent.InviteSession`.
        media: the RTP :class:`~txsipua.net.rtp.MediaStream`, or ``None``.
        media_params: the negotiated :class:`~txsipua.media.offer_answer.MediaParams`.
        ended: Deferred fired with the end reason (``"bye"``, ``"hangup"``,
            ``"cancelled"``, ``"no-ack"``) when the call ends.
        on_progress: optional callable taking each provisional response.
        bye_error: after we hung up, why our BYE was not confirmed (timeout,
            transport error, a final response other than 2xx/481), else ``None``.
    """

    def __init__(self, ua: UserAgent, session: InviteSession | None) -> None:
        self.ua = ua
        self.session: InviteSession = session  # type: ignore[assignment]  # set at once by place_call
        if session is not None:
            session.user_data = self
        self.media: Any = None
        self.media_params: MediaParams | None = None
        self.ended: defer.Deferred[str] = defer.Deferred()
        self.answered: defer.Deferred[Call] = defer.Deferred()
        self.confirmed: defer.Deferred[Call] = defer.Deferred()
        self.on_progress: Callable[[Response], object] | None = None
        self._local_sdp: SessionDescription | None = None
        self._session_id = secrets.randbits(31)
        self._hangup_d: defer.Deferred[str] | None = None
        self.abandoned = False
        self.bye_error: Exception | None = None
        self._reinvite_d: defer.Deferred[Response] | None = None

    @property
    def state(self) -> SessionState:
        """The session state."""
        return self.session.state

    @property
    def call_id(self) -> str:
        """The Call-ID."""
        return self.session.call_id

    def hangup(self) -> defer.Deferred[str]:
        """End the call the SIP way: CANCEL while ringing, BYE once connected (RFC 3261 §15).

        Fires with the end reason once the call has ended.
        """
        if self.ended.called:
            return defer.succeed("ended")
        d: defer.Deferred[str] = defer.Deferred()

        def relay(reason: Any) -> Any:
            d.callback(reason if isinstance(reason, str) else "ended")
            return reason

        self.ended.addBoth(relay)
        if self.session is None:
            # still locating the callee: nothing was sent, nothing to cancel
            self.abandoned = True
            self.ua.calls.discard(self)
            if not self.answered.called:
                from txsipua.errors import CallFailed as CallFailedError

                self.answered.errback(CallFailedError(Response(487), "call (cancelled)"))
            self.ended.callback("cancelled")
            return d
        located = self.ua._located_then(self.session, lambda now: self.session.hangup(now))
        located.addErrback(self._hangup_failed)
        return d

    def _hangup_failed(self, failure: Any) -> None:
        # the next hop of the BYE cannot be located: hang up anyway; the core
        # cannot send the BYE and ends the call with that error as bye_error
        self.ua._run(lambda now: self.session.hangup(now))

    def hold(self) -> defer.Deferred[Response]:
        """Put the call on hold: re-INVITE with a sendonly offer (RFC 3264 §8.4)."""
        return self._reoffer("sendonly")

    def resume(self) -> defer.Deferred[Response]:
        """Take the call off hold: re-INVITE with a sendrecv offer."""
        return self._reoffer("sendrecv")

    def _reoffer(self, direction: str) -> defer.Deferred[Response]:
        if self._local_sdp is None or self.media is None:
            return defer.fail(LocalProtocolError("no media to re-offer"))
        prev = self._local_sdp
        # same m-lines, version + 1 (RFC 3264 §8)
        offer = hold_offer(prev) if direction == "sendonly" else resume_offer(prev)
        d: defer.Deferred[Response] = defer.Deferred()
        self._reinvite_d = d
        def failed(f: Any) -> None:
            self._reinvite_d = None
            if not d.called:
                d.errback(f)

        self.ua._located_then(self.session, lambda now: self.session.reinvite(now, offer.to_bytes())).addErrback(failed)
        self._local_sdp = offer
        return d

    def send_dtmf(self, digits: str) -> defer.Deferred[bool]:
        """Send DTMF digits as RFC 4733 events on the media stream."""
        if self.media is None:
            return defer.fail(LocalProtocolError("the call has no media"))
        return self.media.send_dtmf(digits)

    def request(self, method: str, body: bytes = b"", content_type: str | None = None,
                headers: Iterable[tuple[str, str]] = ()) -> defer.Deferred[Response]:
        """Send an in-dialog request (INFO, MESSAGE...); fires with the final response."""
        d: defer.Deferred[Response] = defer.Deferred()

        def go(now: float) -> None:
            op = self.session.request(method, now, headers=headers, body=body, content_type=content_type)
            op.user_data = d

        def failed(f: Any) -> None:
            if not d.called:
                d.errback(f)

        self.ua._located_then(self.session, go).addErrback(failed)
        return d

    # media plumbing
    def _start_media_offer(self) -> bytes:
        if not self.ua.media_enabled:
            return b""
        self.media = self.ua.new_media_stream()
        offer = make_offer(self.ua.media_host, self.media.port, session_id=self._session_id)
        self._local_sdp = offer
        return offer.to_bytes()

    def _media_answer(self, offer_body: bytes | None) -> bytes:
        if not self.ua.media_enabled:
            return b""
        self.media = self.ua.new_media_stream()
        if offer_body:
            try:
                offer = SessionDescription.parse(offer_body)
                answer = make_answer(offer, self.ua.media_host, self.media.port, session_id=self._session_id)
            except SIPError:
                self._stop_media()
                self.media = None
                raise
            self._local_sdp = answer
            self._configure(answer, offer)
        else:
            answer = make_offer(self.ua.media_host, self.media.port, session_id=self._session_id)
            self._local_sdp = answer
        return answer.to_bytes()

    def _remote_sdp(self, body: bytes | None) -> None:
        if not body or self._local_sdp is None or self.media is None:
            return
        try:
            remote = SessionDescription.parse(body)
            self._configure(self._local_sdp, remote)
        except SIPError as e:
            log.warn("cannot use the peer's SDP: {err}", err=e)

    def _configure(self, local: SessionDescription, remote: SessionDescription) -> None:
        try:
            self.media_params = negotiate(local, remote)
        except SIPError as e:
            log.warn("media negotiation failed: {err}", err=e)
            return
        if self.media is not None:
            self.media.configure(self.media_params)

    def _stop_media(self) -> None:
        if self.media is not None:
            self.media.stop()

    def __repr__(self) -> str:
        return f"<Call {self.session!r}>"


class Responder:
    """Answers one incoming request: ``respond(status, reason=None, headers=(), body=b"")``.

    Attributes:
        request: the request.
        identity: the authenticated username (the UA's authenticator and
            portal accepted it), or ``None`` when the request was not authenticated.
        session: the call an in-dialog request belongs to, or ``None``.
    """

    def __init__(self, ua: UserAgent, request: Request, transaction: ServerTransaction,
                 identity: str | None, session: InviteSession | None) -> None:
        self.ua = ua
        self.request = request
        self.transaction = transaction
        self.identity = identity
        self.session = session

    def __call__(self, status: int, reason: str | None = None, headers: Iterable[tuple[str, str]] = (),
                 body: bytes = b"") -> None:
        """Send the response (RFC 3261 §8.2.6)."""
        core = self.ua.core

        def go(now: float) -> None:
            resp = core.make_response(self.request, status, reason, body=body, headers=headers)
            core.layer.respond(self.transaction, resp, now)

        self.ua._run(go)


class IncomingCall:
    """An incoming INVITE waiting for the application's decision.

    Attributes:
        call: the :class:`Call` (its ``answered`` fires on accept).
        request: the INVITE.
        caller: the From name-addr.
        identity: the authenticated username, if the UA authenticates.
    """

    def __init__(self, ua: UserAgent, call: Call, request: Request) -> None:
        self.ua = ua
        self.call = call
        self.request = request
        self.caller: NameAddr = request.from_
        self.identity = call.session.identity

    def ring(self) -> None:
        """Send 180 Ringing."""
        self.ua._run(lambda now: self.call.session.ring(now))

    def answer(self) -> Call:
        """Accept with 200 OK and our SDP answer; returns the :class:`Call`."""
        try:
            body = self.call._media_answer(self.request.body or None)
        except SIPError as e:
            status = getattr(e, "status", 488)
            self.reject(status if isinstance(status, int) else 488)
            return self.call
        self.ua._run(lambda now: self.call.session.accept(now, body=body))
        return self.call

    def reject(self, status: int = 486, reason: str | None = None) -> None:
        """Decline with a final non-2xx response (486 Busy Here by default)."""
        self.ua._run(lambda now: self.call.session.reject(now, status, reason))
        self.ua.calls.discard(self.call)
        self.call._stop_media()
        if not self.call.ended.called:
            self.call.ended.callback("rejected")


def set_socket_buffers(port: Any, size: int) -> None:
    """Ask for ``size``-byte kernel buffers on a listening UDP port (best effort).

    A burst (or a pause of the process) larger than the receive buffer is
    dropped by the kernel before SIP sees it; servers under load want a few MB.
    The kernel caps the value at ``net.core.rmem_max``/``wmem_max``.
    """
    import socket

    sock = port.getHandle() if hasattr(port, "getHandle") else getattr(port, "socket", None)
    if sock is None:
        return
    for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, size)
        except OSError as e:
            log.warn("cannot set socket buffer to {size}: {err}", size=size, err=e)


class UserAgent:
    """A SIP user agent bound to one UDP address.

    Args:
        reactor: the reactor (``IReactorUDP``, ``IReactorTime``).
        account: the :class:`~txsipua.ua.account.Account`, or ``None`` for a
            UA that only answers.
        bind: ``(host, port)`` to listen on; port 0 picks a free one.
        authenticator: a :class:`~txsipua.auth.server.DigestServer` that
            challenges incoming requests (UAS/registrar role), or ``None``.
        register_authenticator: challenges REGISTER instead of
            ``authenticator`` (401 even when calls get 407 in the proxy role).
        portal: a ``twisted.cred`` Portal checking credentials the
            authenticator accepted (see :mod:`txsipua.ua.cred`); required with
            ``authenticator``.
        trace: called with every datagram sent and received (``-v``, ladders).
        media: create RTP streams and SDP for calls.
        ids, timers: injected identifier generator and RFC 3261 timers.
        user_agent: the User-Agent/Server header value.
        locate: next-hop URI -> address; by default numeric hosts, and names
            already located through ``resolver``.
        transport: ``"UDP"`` (default), ``"TCP"`` or ``"TLS"`` (RFC 3261 §18).
        tls_server: a ``twisted.internet.ssl`` server context factory (our
            certificate), needed to listen for TLS; without it a TLS UA only
            uses the connections it opens.
        tls_client: a client context factory, or a callable ``(host) ->
            context factory``; default: ``optionsForClientTLS(host)`` (the
            system's trust roots, the host name verified).
        resolver: a :class:`~txsipua.net.resolve.SIPResolver` for host names
            (RFC 3263); without one only IP addresses can be reached.
        socket_buffer: UDP receive/send buffer size in bytes (``SO_RCVBUF``,
            ``SO_SNDBUF``), for servers under load; ``None`` keeps the OS default.

    Attributes:
        on_incoming_call: callable taking an :class:`IncomingCall`; when
            ``None`` incoming calls are answered if ``auto_answer`` is set,
            else rejected with 480.
        on_request: callable ``(request, respond)`` for MESSAGE, INFO,
            NOTIFY, REFER, REGISTER...; ``respond`` is a :class:`Responder`:
            ``respond(status, reason=None, headers=(), body=b"")``, and
            ``respond.identity`` is the authenticated username or ``None``.  Without it MESSAGE/INFO/NOTIFY get 200,
            REGISTER 405 and others 501.
        auto_answer: answer incoming calls automatically.
        calls: the live calls.
    """

    def __init__(
        self,
        reactor: Any,
        account: Account | None = None,
        *,
        bind: Address = ("127.0.0.1", 0),
        authenticator: Any = None,
        portal: Any = None,
        register_authenticator: Any = None,
        trace: TraceCallback | None = None,
        media: bool = True,
        ids: IdGenerator | None = None,
        timers: Timers | None = None,
        user_agent: str = "txsipua/0.1",
        locate: Callable[[SipURI], Address] | None = None,
        socket_buffer: int | None = None,
        transport: str = "UDP",
        tls_server: Any = None,
        tls_client: Any = None,
        resolver: Any = None,
    ) -> None:
        self.reactor = reactor
        self.socket_buffer = socket_buffer
        self.transport = transport.upper()
        if self.transport not in ("UDP", "TCP", "TLS"):
            raise ValueError(f"transport must be UDP, TCP or TLS, not {transport!r}")
        self.tls_server = tls_server
        self.tls_client = tls_client
        self.resolver = resolver
        self._located: dict[tuple[str, int | None], Address] = {}
        self.account = account
        self.bind = bind
        self.media_enabled = media
        self.media_host = bind[0] if bind[0] not in ("", "0.0.0.0", "::") else "127.0.0.1"
        self.portal = portal
        self.core = UserAgentCore(
            local=bind,
            ids=ids,
            timers=timers,
            digest=account.digest_client() if account is not None else None,
            authenticator=authenticator,
            register_authenticator=register_authenticator,
            user_agent=user_agent,
            contact_user=account.user if account is not None else None,
            locate=locate or self._locate,
            transport=self.transport,
            reliable=self.transport != "UDP",
        )
        self.protocol: Any
        if self.transport == "UDP":
            self.protocol = SIPDatagramProtocol(reactor, self.core, self._on_event, trace)
        else:
            from txsipua.net.stream import StreamDriver

            if self.transport == "TLS" and tls_client is None:
                from twisted.internet.ssl import optionsForClientTLS

                def tls_for(host: str) -> Any:
                    return optionsForClientTLS(host)

                tls_client = tls_for
            self.protocol = StreamDriver(reactor, self.core, self._on_event, trace,
                                         tls_client=tls_client if self.transport == "TLS" else None)
        self.on_incoming_call: Callable[[IncomingCall], object] | None = None
        self.on_request: Callable[[Request, Callable[..., None]], object] | None = None
        self.auto_answer = False
        self.calls: set[Call] = set()
        self._port: Any = None

    # lifecycle
    def start(self) -> defer.Deferred[Address]:
        """Listen on the bind address; fires with the bound ``(host, port)``.

        Errbacks with ``twisted.internet.error.CannotListenError`` when the
        port is taken.
        """
        try:
            if self.transport == "UDP":
                self._port = self.reactor.listenUDP(
                    self.bind[1], self.protocol, interface=self.bind[0], maxPacketSize=MAX_DATAGRAM
                )
            elif self.transport == "TCP":
                self._port = self.protocol.listen_tcp(self.bind[1], self.bind[0])
            elif self.tls_server is not None:
                self._port = self.protocol.listen_tls(self.tls_server, self.bind[1], self.bind[0])
            else:
                # A TLS client without a certificate cannot listen: requests
                # from the peer must come back over the connection we opened
                # (as with RFC 5626 flows); Via and Contact name the bind port
                # (5061 when it is 0).
                host = self.bind[0] or "127.0.0.1"
                self.core.local = (host, self.bind[1] or 5061)
                return defer.succeed(self.core.local)
        except Exception as e:
            return defer.fail(e)
        if self.socket_buffer and self.transport == "UDP":
            set_socket_buffers(self._port, self.socket_buffer)
        host = self.bind[0] or "127.0.0.1"
        port = self._port.getHost().port
        self.core.local = (host, port)
        return defer.succeed((host, port))

    @property
    def local_address(self) -> Address:
        """Our ``(host, port)``."""
        return self.core.local

    def stop(self, grace: float = 8.0) -> defer.Deferred[None]:
        """Hang up live calls, then close the socket.

        Args:
            grace: seconds to wait for the hang-ups (BYE or CANCEL) to be
                confirmed before closing anyway; a peer that vanished would
                otherwise hold the stop for Timer F/B (32 s).
        """
        waits = [c.hangup() for c in list(self.calls)]
        d: defer.Deferred[Any] = defer.Deferred()
        if waits:

            def settled(_: Any = None) -> None:
                if timer.active():
                    timer.cancel()
                if not d.called:
                    d.callback(None)

            timer = self.reactor.callLater(grace, settled)
            defer.DeferredList(waits, consumeErrors=True).addBoth(settled)
        else:
            d.callback(None)

        def close(_: Any) -> Any:
            for c in list(self.calls):
                c._stop_media()
                if c.session is not None and not c.ended.called:
                    # the grace ran out: give the call up, its Deferreds still fire
                    self._abort(c.session)
            if self.transport != "UDP":
                self._port = None
                return self.protocol.stop()
            if self._port is not None:
                p, self._port = self._port, None
                return p.stopListening()
            return None

        d.addCallback(close)
        d.addCallback(lambda _: None)
        return d

    def _abort(self, session: InviteSession) -> None:
        error = TransportError("the user agent stopped before the hang-up was confirmed")

        def go(now: float) -> None:
            self.core.abort(session, now, error)

        self._run(go)

    def require_account(self) -> Account:
        """The account. Raises LocalProtocolError when the UA has none."""
        if self.account is None:
            raise LocalProtocolError("this user agent has no account")
        return self.account

    def _run(self, fn: Callable[[float], Any]) -> Any:
        result = fn(self.reactor.seconds())
        self.protocol.pump()
        return result

    # routing
    def outbound_route(self) -> list[SipURI]:
        """The pre-loaded Route set: the outbound proxy with ``lr`` (RFC 3261 §8.1.2)."""
        acct = self.account
        if acct is None or acct.outbound_proxy is None:
            return []
        proxy = acct.outbound_proxy
        return [proxy if proxy.lr else proxy.with_params(lr=None)]

    def next_hop(self, request_uri: SipURI) -> SipURI:
        """Where an out-of-dialog request goes: the outbound proxy, else the Request-URI."""
        route = self.outbound_route()
        return route[0] if route else request_uri

    # requests
    def send(self, request: Request, *, authenticate: bool = True) -> defer.Deferred[Response]:
        """Send an out-of-dialog non-INVITE request; fires with the final response.

        401/407 are answered with the account's credentials.  Errbacks with
        :class:`~txsipua.errors.AuthenticationError`,
        :class:`~txsipua.errors.TransactionTimeout`,
        :class:`~txsipua.errors.TransportError` or
        :class:`~txsipua.errors.ResolutionError`.
        """
        hop = self.next_hop(request.uri)
        d: defer.Deferred[Response] = defer.Deferred()

        def located(dest: Address) -> defer.Deferred[Response]:
            def go(now: float) -> None:
                op = self.core.send_request(request, dest, now, authenticate=authenticate, hop_host=hop_host_of(hop))
                op.user_data = d

            self._run(go)
            return d

        return self.resolve(hop).addCallback(located)

    def register(self, expires: int = 3600) -> defer.Deferred[RegistrationResult]:
        """Register once (no refresh); see :class:`Registration` for a kept registration."""
        return Registration(self, expires)._register(expires)

    def registration(self, expires: int = 3600) -> Registration:
        """A :class:`Registration` to ``start()`` and ``stop()``."""
        return Registration(self, expires)

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

    def call(self, target: str | SipURI) -> defer.Deferred[Call]:
        """Call ``target`` (a SIP URI or a user of the account's domain).

        Fires with the :class:`Call` once answered (2xx, ACK sent).  Errbacks
        with :class:`~txsipua.errors.CallFailed` (the final response),
        :class:`~txsipua.errors.AuthenticationError`,
        :class:`~txsipua.errors.TransactionTimeout` or
        :class:`~txsipua.errors.ResolutionError`.  Use :meth:`place_call` to
        get the :class:`Call` before it is answered (to hang up while ringing).
        """
        try:
            call = self.place_call(target)
        except SIPError as e:
            return defer.fail(e)
        return call.answered

    def place_call(self, target: str | SipURI) -> Call:
        """Start a call and return its :class:`Call` at once (see :meth:`call`).

        Raises:
            ResolutionError: the next hop cannot be located.
            ParseError: ``target`` is not a SIP URI.
        """
        acct = self.require_account()
        if isinstance(target, SipURI):
            uri = target
        elif ":" in target and target.split(":", 1)[0].lower() in ("sip", "sips", "tel"):
            uri = SipURI.parse(target)
        else:
            uri = SipURI(user=target, host=acct.domain)
        hop = self.next_hop(uri)
        call = Call(self, None)
        try:
            dest = self.core.locate(hop)
        except ResolutionError:
            if self.resolver is None:
                raise
            # a host name: locate it (RFC 3263) first, then send the INVITE
            self.calls.add(call)

            def located(address: Address) -> None:
                if call.abandoned:
                    return
                self._start_invite(call, acct, uri, hop, address)

            def not_located(f: Any) -> None:
                self.calls.discard(call)
                if not call.answered.called:
                    call.answered.errback(f.value)
                if not call.ended.called:
                    call.ended.callback("failed")

            self.resolve(hop).addCallbacks(located, not_located)
            return call
        self._start_invite(call, acct, uri, hop, dest)
        return call

    def _start_invite(self, call: Call, acct: Account, uri: SipURI, hop: SipURI, dest: Address) -> None:
        body = call._start_media_offer()

        def go(now: float) -> None:
            req = self.core.new_request("INVITE", uri, acct.identity, NameAddr(uri), route=self.outbound_route())
            if body:
                req.body = body
                req.headers.add("Content-Type", "application/sdp")
            # events are drained after go() returns, so the Call is attached in time
            session = self.core.invite(req, dest, now, hop_host=hop_host_of(hop))
            call.session = session
            session.user_data = call

        self._run(go)
        self.calls.add(call)

    # server location
    def resolve(self, uri: SipURI) -> defer.Deferred[Address]:
        """Locate ``uri`` (RFC 3263) for this UA's transport; fires with ``(ip, port)``.

        Numeric hosts need no lookup.  Names go through the injected
        :class:`~txsipua.net.resolve.SIPResolver`; the answer is cached so
        that later requests (and in-dialog requests through the same hosts)
        find it at once.  Errbacks with :class:`~txsipua.errors.ResolutionError`.
        """
        try:
            return defer.succeed(self.core.locate(uri))
        except ResolutionError as e:
            if self.resolver is None:
                return defer.fail(e)
        d = self.resolver.locate(uri)

        def pick(targets: list[Any]) -> Address:
            mine = [t for t in targets if t.transport == self.transport] or targets
            first = mine[0]
            address = (first.host, first.port)
            self._located[(uri.host.lower(), uri.port)] = address
            names = getattr(self.protocol, "server_names", None)
            if names is not None:
                # TLS verifies the certificate against the name, not the address (RFC 5922 §7)
                names[address] = uri.host
            return address

        return d.addCallback(pick)

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

    def _located_then(self, session: InviteSession | None, fn: Callable[[float], Any]) -> defer.Deferred[Any]:
        """Run ``fn(now)`` once the session's in-dialog next hop is located (RFC 3263).

        Numeric next hops (and names located before) run at once.
        """
        dialog = session.dialog if session is not None else None
        if dialog is None:
            return defer.maybeDeferred(self._run, fn)
        d = self.resolve(dialog.next_hop())
        return d.addCallback(lambda _: self._run(fn))

    # events
    def _log_auth_notes(self, op: Any) -> None:
        attempt = getattr(op, "attempt", None)
        notes = getattr(attempt, "notes", None)
        if notes:
            for note in notes:
                log.info("digest: {note} ({method})", note=note, method=op.method)
            notes.clear()

    def _on_event(self, e: ev.Event) -> None:
        if isinstance(e, ev.RequestCompleted | ev.RequestFailed):
            self._log_auth_notes(e.operation)
        elif isinstance(e, ev.CallAnswered | ev.CallAttemptFailed):
            self._log_auth_notes(e.session._invite_op)
        if isinstance(e, ev.RequestCompleted | ev.RequestFailed):
            d = e.operation.user_data
            if isinstance(d, defer.Deferred) and not d.called:
                if isinstance(e, ev.RequestCompleted):
                    d.callback(e.response)
                else:
                    d.errback(e.error)
        elif isinstance(e, ev.ProvisionalResponse):
            owner = e.operation
            if isinstance(owner, InviteSession) and isinstance(owner.user_data, Call):
                call = owner.user_data
                if call.on_progress is not None:
                    call.on_progress(e.response)
        elif isinstance(e, ev.CallAnswered):
            call = e.session.user_data
            if isinstance(call, Call):
                call._remote_sdp(e.response.body)
                if not call.answered.called:
                    call.answered.callback(call)
        elif isinstance(e, ev.CallAttemptFailed):
            call = e.session.user_data
            if isinstance(call, Call):
                self.calls.discard(call)
                call._stop_media()
                if not call.answered.called:
                    call.answered.errback(e.error)
                if not call.ended.called:
                    call.ended.callback("failed")
        elif isinstance(e, ev.CallEnded):
            call = e.session.user_data
            if isinstance(call, Call):
                call.bye_error = e.bye_error
                self.calls.discard(call)
                call._stop_media()
                if not call.answered.called and e.reason == "cancelled" and call.session.is_uac:
                    from txsipua.errors import CallFailed as CallFailedError

                    call.answered.errback(CallFailedError(Response(487), "call (cancelled)"))
                if not call.ended.called:
                    call.ended.callback(e.reason)
        elif isinstance(e, ev.CallConfirmed):
            call = e.session.user_data
            if isinstance(call, Call) and not call.confirmed.called:
                call.confirmed.callback(call)
        elif isinstance(e, ev.IncomingCall):
            self._incoming_call(e)
        elif isinstance(e, ev.IncomingRequest):
            self._incoming_request(e)
        elif isinstance(e, ev.AuthenticationNeeded):
            self._authenticate(e)
        elif isinstance(e, ev.ReinviteCompleted):
            call = e.session.user_data
            if isinstance(call, Call):
                d2, call._reinvite_d = call._reinvite_d, None
                if e.response is not None:
                    call._remote_sdp(e.response.body)
                if d2 is not None:
                    if e.error is not None:
                        d2.errback(e.error)
                    else:
                        assert e.response is not None
                        d2.callback(e.response)

    def _incoming_call(self, e: ev.IncomingCall) -> None:
        call = Call(self, e.session)
        self.calls.add(call)
        incoming = IncomingCall(self, call, e.request)
        if self.on_incoming_call is not None:
            self.on_incoming_call(incoming)
        elif self.auto_answer:
            incoming.ring()
            incoming.answer()
        else:
            incoming.reject(480)

    def _incoming_request(self, e: ev.IncomingRequest) -> None:
        req = e.request
        txn = e.transaction
        session = e.session

        respond = Responder(self, req, txn, e.identity, session)

        if req.method == "INVITE" and session is not None:
            self._reinvite(session, req, txn)
            return
        if self.on_request is not None:
            self.on_request(req, respond)
            return
        if req.method in ("MESSAGE", "INFO", "NOTIFY"):
            respond(200)
        elif req.method == "REGISTER":
            respond(405, headers=[("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, INFO")])
        else:
            respond(501)

    def _reinvite(self, session: InviteSession, req: Request, txn: ServerTransaction) -> None:
        call = session.user_data
        body = b""
        if isinstance(call, Call) and call.media is not None and req.body:
            try:
                offer = SessionDescription.parse(req.body)
                prev = call._local_sdp
                answer = make_answer(
                    offer, self.media_host, call.media.port,
                    session_id=prev.session_id if prev else call._session_id,
                    session_version=(prev.session_version + 1) if prev else 1,
                )
                call._local_sdp = answer
                call._configure(answer, offer)
                body = answer.to_bytes()
            except SIPError as err:
                status = getattr(err, "status", 488)
                self._run(lambda now: session.answer_reinvite(txn, req, now, status=status if isinstance(status, int) else 488))
                return
        self._run(lambda now: session.answer_reinvite(txn, req, now, body=body))

    def _authenticate(self, e: ev.AuthenticationNeeded) -> None:
        if self.portal is None:
            self._run(lambda now: self.core.authentication_result(e, False, None, now))
            return
        from txsipua.ua.cred import ISIPUser

        d = defer.maybeDeferred(self.portal.login, e.credentials, None, ISIPUser)

        def ok(result: Any) -> None:
            _iface, avatar, _logout = result
            self._run(lambda now: self.core.authentication_result(e, True, str(avatar), now))

        def bad(_: Any) -> None:
            self._run(lambda now: self.core.authentication_result(e, False, None, now))

        d.addCallbacks(ok, bad)

    # media
    def new_media_stream(self) -> Any:
        """A started :class:`~txsipua.net.rtp.MediaStream` on the media host."""
        from txsipua.net.rtp import MediaStream

        stream = MediaStream(self.reactor, local_host=self.media_host)
        stream.start()
        return stream
