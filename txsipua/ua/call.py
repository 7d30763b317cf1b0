"""Calls: :class:`Call` (either side), :class:`IncomingCall` (a decision pending) and :class:`Responder`.

A :class:`Call` wraps one core :class:`~txsipua.core.useragent.InviteSession`
(RFC 3261 §13-§15) and its :class:`~txsipua.ua.media.CallMedia`.  The session
owns the call's state: :meth:`Call.hangup` asks it to end the call and it
sends CANCEL, BYE or nothing as the state requires, so callers never branch
on state.  The user agent tells the call what the core reported through the
``session_*`` methods; the call turns that into its Deferreds
(``answered``, ``confirmed``, ``ended``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from txsipua.core.transaction import ServerTransaction
from txsipua.core.useragent import InviteSession, SessionState
from txsipua.errors import CallFailed, LocalProtocolError, SIPError
from txsipua.media.offer_answer import MediaParams
from txsipua.sip.message import Request, Response
from txsipua.sip.values import NameAddr
from txsipua.ua.audio import CallAudio
from txsipua.ua.interfaces import ICall
from txsipua.ua.media import CallMedia

if TYPE_CHECKING:
    from txsipua.ua.useragent import UserAgent

log = Logger()


def _cancelled() -> CallFailed:
    return CallFailed(Response(487), "call (cancelled)")


@implementer(ICall)
class Call:
    """A call, on either side, with its media.

    Args:
        ua: the user agent.
        session: the core session, or ``None`` while the callee is still
            being located (see :meth:`attach`).
        call_id: the Call-ID the INVITE will carry, for a call made before
            its session exists (``None`` takes the session's).

    Attributes:
        session: the core :class:`~txsipua.core.useragent.InviteSession`,
            or ``None`` while the callee is being located (``state`` is
            ``SessionState.LOCATING``).
        call_media: the :class:`~txsipua.ua.media.CallMedia`, or ``None``
            when the user agent's configuration has media off.
        answered: Deferred fired with the call once answered (2xx; the ACK
            is sent), or failed with :class:`~txsipua.errors.CallFailed`...
        confirmed: Deferred fired with the call once the ACK arrived (UAS).
        ended: Deferred fired with the end reason (``"bye"``, ``"hangup"``,
            ``"cancelled"``, ``"no-ack"``, ``"failed"``, ``"rejected"``) when
            the call ends.
        on_progress: optional callable taking each provisional response.
        bye_error: after we hung up, why our BYE was not confirmed (timeout,
            transport error, a final response other than 2xx/481), else ``None``.
        abandoned: True once hung up before the INVITE was sent.
    """

    def __init__(self, ua: UserAgent, session: InviteSession | None, call_id: str | None = None) -> None:
        self.ua = ua
        self.session: InviteSession = session  # type: ignore[assignment]  # attach() sets it for UAC calls
        self._call_id = call_id
        if session is not None:
            session.user_data = self
        self.call_media: CallMedia | None = (
            CallMedia(ua.reactor, ua.config, ua.media_host, on_timeout=self.hangup,
                      srtp=ua.account is not None and ua.account.requires_srtp)
            if ua.config.media
            else None
        )
        self.ended: defer.Deferred[str] = defer.Deferred()
        self.answered: defer.Deferred[Call] = defer.Deferred()
        self.confirmed: defer.Deferred[Call] = defer.Deferred()
        self.on_progress: Callable[[Response], object] | None = None
        self.abandoned = False
        self.bye_error: Exception | None = None
        self._reinvite_d: defer.Deferred[Response] | None = None

    # ------------------------------------------------------------ properties
    @property
    def state(self) -> SessionState:
        """The session state (:class:`~txsipua.core.useragent.SessionState`).

        ``LOCATING`` while the callee's host name is being resolved (no
        session yet), ``TERMINATED`` if the call ended before that.
        """
        if self.session is None:
            return SessionState.TERMINATED if self.ended.called else SessionState.LOCATING
        return self.session.state

    @property
    def call_id(self) -> str:
        """The Call-ID (decided before the INVITE is sent, so known while locating)."""
        if self.session is None:
            return self._call_id or ""
        return self.session.call_id

    @property
    def media(self) -> Any:
        """The RTP :class:`~txsipua.net.rtp.MediaStream`, or ``None``."""
        return self.call_media.stream if self.call_media is not None else None

    @property
    def audio(self) -> CallAudio | None:
        """The call's :class:`~txsipua.ua.audio.CallAudio` (prompts, frames, digits), or ``None`` without media."""
        return self.call_media.audio if self.call_media is not None else None

    @property
    def media_params(self) -> MediaParams | None:
        """The negotiated :class:`~txsipua.media.offer_answer.MediaParams`, or ``None``."""
        return self.call_media.params if self.call_media is not None else None

    def attach(self, session: InviteSession) -> None:
        """Bind the core session once the INVITE is sent (UAC)."""
        self.session = session
        session.user_data = self

    # --------------------------------------------------------------- orders
    def hangup(self) -> defer.Deferred[str]:
        """End the call the SIP way: CANCEL while ringing, BYE once connected (RFC 3261 §15).

        The session decides what to send (nothing yet before a provisional
        response, §9.1).  Fires with the end reason once the call has ended.
        Hung up before the answer, :attr:`answered` fails with
        :class:`~txsipua.errors.CallFailed` (487): whoever holds ``answered``
        handles that (awaiting it raises; ``place_call`` users add an
        errback), as Twisted logs a failure nobody handled.
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
                self.answered.errback(_cancelled())
            self.ended.callback("cancelled")
            return d
        session = self.session
        located = self.ua.when_located(session, session.hangup)
        # the next hop of the BYE cannot be located: hang up anyway; the core
        # cannot send the BYE and ends the call with that error as bye_error
        located.addErrback(lambda _: self.ua.drive(session.hangup))
        return d

    def hold(self) -> defer.Deferred[Response]:
        """Put the call on hold: re-INVITE with a sendonly offer (RFC 3264 §8.4)."""
        return self._reoffer("sendonly")

    def resume(self) -> defer.Deferred[Response]:
        """Take the call off hold: re-INVITE with a sendrecv offer."""
        return self._reoffer("sendrecv")

    def _reoffer(self, direction: str) -> defer.Deferred[Response]:
        # check first, change nothing on refusal: the pending re-INVITE keeps its Deferred
        media = self.call_media
        if media is None:
            return defer.fail(LocalProtocolError("no media to re-offer"))
        if self._reinvite_d is not None:
            return defer.fail(LocalProtocolError("a re-INVITE is already in progress"))
        if self.session is None:
            return defer.fail(LocalProtocolError("re-INVITE needs a confirmed call"))
        try:
            offer = media.reoffer(direction)
        except LocalProtocolError as e:
            return defer.fail(e)
        d: defer.Deferred[Response] = defer.Deferred()
        self._reinvite_d = d

        def failed(f: Any) -> None:
            # the re-INVITE was never sent (not confirmed, next hop unknown): the offer is dropped
            if self._reinvite_d is d:
                self._reinvite_d = None
                media.reoffer_settled(False)
            if not d.called:
                d.errback(f)

        session = self.session
        self.ua.when_located(session, lambda now: session.reinvite(now, offer)).addErrback(failed)
        return d

    def send_dtmf(self, digits: str) -> defer.Deferred[bool]:
        """Send DTMF digits as RFC 4733 events on the media stream.

        Errbacks with :class:`~txsipua.errors.LocalProtocolError` when the call has no media.
        """
        if self.call_media is None:
            return defer.fail(LocalProtocolError("the call has no media"))
        try:
            return self.call_media.send_dtmf(digits)
        except LocalProtocolError as e:
            return defer.fail(e)

    def request(self, method: str, body: bytes = b"", content_type: str | None = None,
                headers: Iterable[tuple[str, str]] = ()) -> defer.Deferred[Response]:
        """Send an in-dialog request (INFO, MESSAGE...); fires with the final response (RFC 3261 §12.2.1)."""
        d: defer.Deferred[Response] = defer.Deferred()
        session = self.session
        if session is None:
            return defer.fail(LocalProtocolError("no dialog yet: the callee is still being located"))

        def go(now: float) -> None:
            op = session.request(method, now, headers=headers, body=body, content_type=content_type)
            op.user_data = d

        def failed(f: Any) -> None:
            if not d.called:
                d.errback(f)

        self.ua.when_located(session, go).addErrback(failed)
        return d

    # ------------------------------------------------------ what the core said
    def offer(self) -> bytes:
        """The SDP body of our INVITE (empty without media)."""
        return self.call_media.offer() if self.call_media is not None else b""

    def session_progress(self, response: Response) -> None:
        """A provisional response arrived (UAC): tell ``on_progress``."""
        if self.on_progress is not None:
            self.on_progress(response)

    def session_answered(self, response: Response) -> None:
        """The 2xx arrived and the ACK went out: take the peer's SDP, fire ``answered``."""
        if self.call_media is not None:
            self.call_media.remote(response.body)
        if not self.answered.called:
            self.answered.callback(self)

    def session_failed(self, error: Exception) -> None:
        """The INVITE failed (final non-2xx, timeout...): errback ``answered``, end with ``"failed"``."""
        self.ua.calls.discard(self)
        self.stop_media()
        if not self.answered.called:
            self.answered.errback(error)
        if not self.ended.called:
            self.ended.callback("failed")

    def session_confirmed(self) -> None:
        """The ACK for our 2xx arrived (UAS): fire ``confirmed``."""
        if not self.confirmed.called:
            self.confirmed.callback(self)

    def session_ended(self, reason: str, bye_error: Exception | None) -> None:
        """The call ended (BYE either way, CANCEL, no ACK): fire ``ended`` with ``reason``."""
        self.bye_error = bye_error
        self.ua.calls.discard(self)
        self.stop_media()
        if not self.answered.called and reason == "cancelled" and self.session.is_uac:
            self.answered.errback(_cancelled())
        if not self.ended.called:
            self.ended.callback(reason)

    def reinvite_completed(self, response: Response | None, error: Exception | None) -> None:
        """Our re-INVITE got its final response (or failed): take its SDP, fire hold()/resume()'s Deferred."""
        d, self._reinvite_d = self._reinvite_d, None
        if self.call_media is not None:
            accepted = error is None and response is not None and 200 <= response.status < 300
            self.call_media.reoffer_settled(accepted, response.body if response is not None else None)
        if d is not None:
            if error is not None:
                d.errback(error)
            else:
                assert response is not None
                d.callback(response)

    def reinvite_received(self, request: Request, transaction: ServerTransaction) -> None:
        """The peer re-INVITEd (RFC 3261 §14.2): answer its offer, or 488 when unusable."""
        session = self.session
        body = b""
        if self.call_media is not None:
            try:
                body = self.call_media.answer_reoffer(request.body or None)
            except SIPError as err:
                status = getattr(err, "status", 488)
                code = status if isinstance(status, int) else 488
                self.ua.drive(lambda now: session.answer_reinvite(transaction, request, now, status=code))
                return
        self.ua.drive(lambda now: session.answer_reinvite(transaction, request, now, body=body))

    def stop_media(self) -> None:
        """Close the RTP stream, if any."""
        if self.call_media is not None:
            self.call_media.stop()

    def __repr__(self) -> str:
        if self.session is None:
            return f"<Call {self.state.value} {self.call_id}>"
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

        self.ua.drive(go)


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
        session = self.call.session
        self.ua.drive(lambda now: session.ring(now))

    @property
    def pending(self) -> bool:
        """True while the call awaits the decision: no final response yet, not cancelled."""
        return not self.call.ended.called and self.call.state in (SessionState.RECEIVED, SessionState.RINGING)

    def answer(self) -> Call:
        """Accept with 200 OK and our SDP answer; returns the :class:`Call`.

        An offer we cannot accept is rejected (488, or the status its error names).

        Raises:
            LocalProtocolError: the call no longer awaits an answer (the caller
                cancelled it, or it was answered or rejected already); no
                media is opened.
        """
        call = self.call
        if not self.pending:
            raise LocalProtocolError(f"cannot answer a call in state {call.state.value}")
        body = b""
        if call.call_media is not None:
            try:
                body = call.call_media.answer(self.request.body or None)
            except SIPError as e:  # a bad offer (488...), or no media socket (MediaUnavailable: 503)
                status = getattr(e, "status", 488)
                self.reject(status if isinstance(status, int) else 488,
                            headers=getattr(e, "headers", ()))
                return call
            except Exception:
                log.failure("cannot answer the call")
                self.reject(500)
                return call
        try:
            self.ua.drive(lambda now: call.session.accept(now, body=body))
        except BaseException:
            call.stop_media()  # never leave the RTP socket open for a call not answered
            raise
        return call

    def reject(self, status: int = 486, reason: str | None = None,
               headers: Iterable[tuple[str, str]] = ()) -> None:
        """Decline with a final non-2xx response (486 Busy Here by default), adding ``headers``."""
        call = self.call
        self.ua.drive(lambda now: call.session.reject(now, status, reason, headers=headers))
        self.ua.calls.discard(call)
        call.stop_media()
        if not call.ended.called:
            call.ended.callback("rejected")
