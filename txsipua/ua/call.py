"""Calls: :class:`Call`, one call on either side and its dialog lifecycle (RFC 3261 §13-§15).

A :class:`Call` wraps one core :class:`~txsipua.core.useragent.InviteSession`
(RFC 3261 §13-§15) and its :class:`~txsipua.ua.media.CallMedia`.  The session
owns the call's state: :meth:`Call.hangup` asks it to end the call and it
sends CANCEL, BYE or nothing as the state requires, so callers never branch
on state.  The user agent tells the call what the core reported through the
``session_*`` methods; the call turns that into its Deferreds
(``answered``, ``confirmed``, ``ended``).

Offer/answer (RFC 3264) is the part of the call mixed in from
:class:`~txsipua.ua.call_offers.CallOffers` (hold, resume, re-INVITE, UPDATE,
the 491 back-off :func:`glare_backoff`); here only the caller's early
answers stay: a 18x with SDP is the early answer of its dialog (its To tag),
heard at once; the 2xx's answer, or without one the early answer of its
dialog, decides.  The callee's decision on an INVITE is an
:class:`IncomingCall` and other requests get a :class:`Responder`
(:mod:`txsipua.ua.incoming`); both are re-exported here.

A call we place and nobody answers within ``Configuration.no_answer_timeout``
is cancelled and fails with :class:`~txsipua.errors.CallNotAnswered`.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from txsipua.core.reliable import rseq_of
from txsipua.core.useragent import InviteSession, SessionState
from txsipua.errors import CallFailed, CallNotAnswered, LocalProtocolError, MediaNegotiationFailed
from txsipua.sip.message import Response
from txsipua.sip.uri import SipURI
from txsipua.ua.call_offers import CallOffers, glare_backoff
from txsipua.ua.incoming import IncomingCall, Responder
from txsipua.ua.interfaces import ICall
from txsipua.ua.media import CallMedia
from txsipua.ua.transfer import Transfer, transfer_target

if TYPE_CHECKING:
    from txsipua.ua.useragent import UserAgent

log = Logger()


def _cancelled() -> CallFailed:
    return CallFailed(Response(487), "call (cancelled)")


_ATTEMPTS: weakref.WeakSet[defer.Deferred[Any]] = weakref.WeakSet()


def call_attempt(call: Call) -> defer.Deferred[Call]:
    """``call.answered``, handed to whoever placed the call without keeping the :class:`Call` (``ua.call()``).

    Nobody else holds the call, so an await of it that is cancelled
    (:func:`txsipua.aio.wait` under ``asyncio.wait_for``) cancels it too,
    which hangs the call up (see :attr:`Call.answered`).
    """
    _ATTEMPTS.add(call.answered)
    return call.answered


def is_call_attempt(d: defer.Deferred[Any]) -> bool:
    """True when ``d`` came from :func:`call_attempt` (its cancellation is the caller's to make)."""
    return d in _ATTEMPTS


@implementer(ICall)
class Call(CallOffers):
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
        answered: caller (UAC) only: Deferred fired with the call once
            answered (2xx; the ACK is sent; the callee's never fires, it
            waits on ``confirmed``), or failed with :class:`~txsipua.errors.CallFailed`...,
            or with :class:`~txsipua.errors.MediaNegotiationFailed` when the
            2xx's SDP cannot be used (the call is then hung up with BYE).
            Cancelling it hangs up (CANCEL while ringing, BYE once the 2xx
            crossed, as :meth:`hangup`); it then fails with
            :class:`~twisted.internet.defer.CancelledError`.
        confirmed: Deferred fired with the call once the dialog is confirmed
            both ways: as caller (UAC) when the 2xx arrived and our ACK was
            sent (right after ``answered``, RFC 3261 §13.2.2.4); as callee
            (UAS) when the peer's ACK for our 2xx arrived (§13.3.1.4), or
            failed with :class:`~txsipua.errors.MediaNegotiationFailed` when
            that ACK's answer to our offer cannot be used (BYE is sent); a
            caller's call whose ``answered`` failed never fires it.
            Cancelling it hangs up, as for ``answered``.
        ended: Deferred fired with the end reason (``"bye"``, ``"hangup"``,
            ``"cancelled"``, ``"no-ack"``, ``"failed"``, ``"rejected"``,
            ``"media"``: we hung up because the peer's SDP cannot be used,
            ``"media-timeout"``: we hung up because the peer sent no RTP or
            RTCP for :attr:`~txsipua.ua.config.Configuration.media_timeout`,
            ``"max-duration"``, ``"session-expired"``) when the call ends.
        media_error: the :class:`~txsipua.errors.MediaNegotiationFailed`
            that made us hang up, else ``None`` (media on only; with
            ``Configuration(media=False)`` SDP is not looked at).
        on_progress: optional callable taking each provisional response.
        on_hold_change: optional callable ``(held_locally, held_remotely)``,
            called whenever either changes (RFC 3264 §8.4).
        delayed_offer: True when our INVITE carries no offer: the 2xx makes
            it and our ACK answers (RFC 3261 §13.2.1).
        on_dtmf: optional callable taking each DTMF digit received in an
            INFO (application/dtmf-relay or application/dtmf, RFC 6086), one
            call per digit (``"0"``-``"9"``, ``"*"``, ``"#"``, ``"A"``-``"D"``);
            see :meth:`dtmf_received`.
        transfer_in_progress: the :class:`~txsipua.ua.transfer.Transfer`
            we started and that is not done yet, else ``None``.
        bye_error: after we hung up, why our BYE was not confirmed (timeout,
            transport error, a final response other than 2xx/481), else ``None``.
        abandoned: True once hung up before the INVITE was sent.
    """

    def __init__(self, ua: UserAgent, session: InviteSession | None, call_id: str | None = None,
                 delayed_offer: bool = False) -> None:
        self.ua = ua
        self.delayed_offer = delayed_offer
        self.session: InviteSession = session  # type: ignore[assignment]  # attach() sets it for UAC calls
        self._call_id = call_id
        if session is not None:
            session.user_data = self
        self.call_media: CallMedia | None = (
            CallMedia(ua.reactor, ua.config, ua.media_bind_host, on_timeout=self._media_silent,
                      srtp=ua.account is not None and ua.account.requires_srtp,
                      advertise=ua.media_advertise, stream_factory=ua.media_stream_factory())
            if ua.config.media
            else None
        )
        self.ended: defer.Deferred[str] = defer.Deferred()
        self.answered: defer.Deferred[Call] = defer.Deferred(canceller=self._cancelled_by_caller)
        self.confirmed: defer.Deferred[Call] = defer.Deferred(canceller=self._cancelled_by_caller)
        self.media_error: MediaNegotiationFailed | None = None
        self._end_reason: str | None = None
        self.on_progress: Callable[[Response], object] | None = None
        self.on_hold_change: Callable[[bool, bool], object] | None = None
        self.abandoned = False
        self.bye_error: Exception | None = None
        self._no_answer_timer: Any = None
        self._no_answer: CallNotAnswered | None = None
        if self.call_media is not None:
            self.call_media.on_hold_change = self.hold_changed
        self.on_dtmf: Callable[[str], object] | None = None
        self.transfer_in_progress: Transfer | None = None

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

    def attach(self, session: InviteSession) -> None:
        """Bind the core session once the INVITE is sent (UAC); arm the no-answer timeout."""
        self.session = session
        session.user_data = self
        if self.delayed_offer:
            session.ack_body = self.ack_answer
            session.answer_offer = self.prack_answer
        timeout = self.ua.config.no_answer_timeout
        if timeout is not None and not self.ended.called:
            self._no_answer_timer = self.ua.reactor.callLater(timeout, self._not_answered, timeout)

    def _media_silent(self) -> None:
        """The stream heard nothing for its media timeout: BYE once answered; while still ringing
        (early media that stays silent), the call is left to ring (the no-answer timeout ends it)."""
        if self.state in (SessionState.ACCEPTED, SessionState.CONFIRMED):
            self._end_reason = self._end_reason or "media-timeout"
            self.hangup()
        else:
            log.info("no early media heard for the media timeout; {call_id} still rings", call_id=self.call_id)

    def _not_answered(self, timeout: float) -> None:
        """Timer C: nobody answered in time; cancel (RFC 3261 §9.1, §16.6 item 11)."""
        self._no_answer_timer = None
        if self.answered.called or self.ended.called:
            return
        log.info("no answer within {t} s: cancelling {call_id}", t=timeout, call_id=self.call_id)
        self._no_answer = CallNotAnswered(Response(408), timeout)
        self.hangup()

    def _stop_no_answer(self) -> None:
        timer, self._no_answer_timer = self._no_answer_timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def _cancelled_by_caller(self, d: defer.Deferred[Any]) -> None:
        """The canceller of :attr:`answered` and :attr:`confirmed`: whoever waited gave up, so hang up.

        Twisted's convention: cancelling the Deferred stops the operation.
        ``d`` fails with :class:`~twisted.internet.defer.CancelledError`
        (which ``addTimeout`` turns into ``TimeoutError``), then the call is
        hung up as :meth:`hangup` does (CANCEL before the 2xx, BYE once it
        crossed, RFC 3261 §9.1, §15) and leaves ``ua.calls`` when it ends.
        """
        d.errback(defer.CancelledError())
        if not self.ended.called:
            self.hangup()

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

    def transfer(self, target: str | SipURI, *, replaces: Call | None = None,
                 hangup_on_success: bool = True) -> Transfer:
        """Transfer the call to ``target`` with REFER (RFC 3515); ``replaces`` makes it attended.

        Blind: the peer is asked to call ``target``.  Attended: ``replaces``
        is our call with ``target``; its dialog goes in the Refer-To URI as a
        Replaces header (RFC 3891), so the peer's INVITE replaces that call.
        Referred-By names our account (RFC 3892).  Follow it with the
        :class:`~txsipua.ua.transfer.Transfer`'s ``accepted``, ``done`` and
        ``on_progress``; once it succeeded the call is hung up unless
        ``hangup_on_success`` is False.

        Raises:
            LocalProtocolError: the call is not confirmed, a transfer is in
                progress already, or ``replaces`` has no dialog.
            ParseError: ``target`` is not a SIP URI.
        """
        if self.state is not SessionState.CONFIRMED:
            raise LocalProtocolError(f"cannot transfer a call in state {self.state.value}")
        if self.transfer_in_progress is not None:
            raise LocalProtocolError("a transfer is already in progress")
        transfer = Transfer(self, transfer_target(target, replaces), hangup_on_success)
        self.transfer_in_progress = transfer
        transfer.start()
        return transfer

    def attended_transfer(self, other: Call, *, hangup_on_success: bool = True) -> Transfer:
        """Transfer this call's peer to ``other``'s peer, replacing ``other`` (RFC 5589 §7).

        The Refer-To is ``other``'s remote target (its Contact) with the
        Replaces of ``other``'s dialog.  See :meth:`transfer`.
        """
        session = other.session
        dialog = session.dialog if session is not None else None
        if dialog is None:
            raise LocalProtocolError("an attended transfer needs the other call's dialog")
        return self.transfer(dialog.remote_target, replaces=other, hangup_on_success=hangup_on_success)

    def dtmf_received(self, digit: str) -> None:
        """A DTMF digit arrived in an INFO: to :meth:`CallAudio.digit_received
        <txsipua.ua.audio.CallAudio.digit_received>` (``via="info"``: barge-in,
        ``collect_digits``, ``on_digit``, exactly as RFC 4733 digits) when the
        call has media, and to :attr:`on_dtmf` when set; one call per digit.
        """
        audio = self.audio
        if audio is not None:
            audio.digit_received(digit, "info")
        callback = self.on_dtmf
        if callback is not None:
            try:
                callback(digit)
            except Exception:
                log.failure("on_dtmf failed")

    # ------------------------------------------------------ what the core said
    def session_progress(self, response: Response) -> None:
        """A provisional response arrived (UAC): early media if it carries SDP, then ``on_progress``.

        A 18x with SDP and a To tag answers our offer for its early dialog
        (RFC 3261 §13.2.1): RTP starts at once (ringback, announcements);
        with several early dialogs (a forked INVITE) the latest one that sent
        SDP is heard, and the 2xx decides.
        """
        media = self.call_media
        tag = response.to_tag
        if (media is not None and response.body and tag and response.status != 100
                and media.negotiation.our_offer_outstanding
                and (response.content_type or "application/sdp").lower().startswith("application/sdp")):
            if rseq_of(response) is not None:
                media.take_answer(response.body, tag)  # a reliable 1xx's answer completes the exchange (RFC 3262 §5)
            else:
                media.take_early_answer(response.body, tag)
        if self.on_progress is not None:
            self.on_progress(response)

    def session_answered(self, response: Response) -> None:
        """The 2xx arrived and the ACK went out: take the peer's SDP, fire ``answered`` then ``confirmed``.

        A 2xx without SDP confirms the early answer of its own dialog (its To tag).
        """
        self._stop_no_answer()
        media = self.call_media
        if media is not None and media.negotiation.our_offer_outstanding:
            if response.body:  # the answer the 2xx must carry (RFC 3261 §13.2.1)
                defect = media.take_final_answer(response.body, response.to_tag)
                if defect is not None and self.media_error is None:
                    self.media_error = MediaNegotiationFailed(f"the answer in the 2xx is unusable ({defect})",
                                                              response)
            else:
                media.take_answer(None, response.to_tag)
        if self.media_error is not None:  # the answer, or the offer our ACK answered, is unusable
            self.media_failed(self.media_error)
            return
        if not self.answered.called:
            self.answered.callback(self)
        if not self.confirmed.called and not self.ended.called:
            self.confirmed.callback(self)  # our ACK is sent: the caller's call is confirmed

    def session_failed(self, error: Exception) -> None:
        """The INVITE failed (final non-2xx, timeout...): errback ``answered``, end with ``"failed"``."""
        self._stop_no_answer()
        if self._no_answer is not None:
            error = self._no_answer
        self.ua.calls.discard(self)
        self.stop_media()
        if not self.answered.called:
            self.answered.errback(error)
        if not self.ended.called:
            self.ended.callback("failed")

    def session_confirmed(self) -> None:
        """The ACK for our 2xx arrived (UAS): fire ``confirmed`` (the UAC's fires in :meth:`session_answered`).

        When the ACK's answer was unusable (:meth:`ack_received` hung up),
        ``confirmed`` fails with that :class:`~txsipua.errors.MediaNegotiationFailed`.
        """
        if self.confirmed.called:
            return
        if self.media_error is not None:
            self.confirmed.errback(self.media_error)
        else:
            self.confirmed.callback(self)

    def media_failed(self, error: MediaNegotiationFailed) -> None:
        """The peer's SDP of an answered call cannot be used: BYE at once (RFC 3261 §13.2.2.4, §13.3.1.4).

        The 2xx was ACKed (caller) or its ACK arrived (callee).  ``answered``
        fails with ``error`` (caller; the callee's ``confirmed`` does, in
        :meth:`session_confirmed`) and ``ended`` fires with ``"media"``.
        """
        log.warn("{err}: hanging up {call_id}", err=error, call_id=self.call_id)
        self.media_error = error
        self._end_reason = "media"
        if self.session.is_uac and not self.answered.called:
            self.answered.errback(error)
        self.hangup()

    def session_ended(self, reason: str, bye_error: Exception | None) -> None:
        """The call ended (BYE either way, CANCEL, no ACK): fire ``ended`` with ``reason``.

        A call we hung up because of its media ends with ``"media"`` (unusable
        SDP) or ``"media-timeout"`` (no RTP or RTCP for the media timeout).
        """
        reason = self._end_reason or reason
        self.bye_error = bye_error
        self._stop_no_answer()
        self.reoffer_ended(reason)
        self.ua.calls.discard(self)
        self.stop_media()
        if self.transfer_in_progress is not None:
            self.transfer_in_progress.call_ended()
        if not self.answered.called and reason == "cancelled" and self.session.is_uac:
            self.answered.errback(self._no_answer or _cancelled())
        if not self.ended.called:
            self.ended.callback(reason)

    def __repr__(self) -> str:
        if self.session is None:
            return f"<Call {self.state.value} {self.call_id}>"
        return f"<Call {self.session!r}>"


__all__ = ["Call", "IncomingCall", "Responder", "glare_backoff"]
