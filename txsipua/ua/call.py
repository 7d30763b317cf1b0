"""Calls: :class:`Call` (either side), :class:`IncomingCall` (a decision pending) and :class:`Responder`.

A :class:`Call` wraps one core :class:`~txsipua.core.useragent.InviteSession`
(RFC 3261 §13-§15) and its :class:`~txsipua.ua.media.CallMedia`.  The session
owns the call's state: :meth:`Call.hangup` asks it to end the call and it
sends CANCEL, BYE or nothing as the state requires, so callers never branch
on state.  The user agent tells the call what the core reported through the
``session_*`` methods; the call turns that into its Deferreds
(``answered``, ``confirmed``, ``ended``).

Offer/answer (RFC 3264) lives in the call's :class:`~txsipua.ua.media.CallMedia`,
one declared machine (:mod:`txsipua.media.negotiation`); the call only says
which message carried what:

- caller: the INVITE's offer (none with ``delayed_offer``: then the 2xx's
  offer is answered in the ACK through the session's ``ack_body`` hook); a
  18x with SDP is the early answer of its dialog (its To tag), heard at once;
  the 2xx's answer, or without one the early answer of its dialog, decides;
- callee: the INVITE's offer is answered in the 2xx (or first in a 183,
  :meth:`IncomingCall.early_media`); without one our 2xx offers and the
  ACK's answer (:meth:`Call.ack_received`) starts the media;
- either side, later: :meth:`Call.hold`, :meth:`Call.resume` and
  :meth:`Call.change_codecs` re-offer; a 2xx puts the offer in force, any
  other final response withdraws it (the session stays as it was) and errs
  with :class:`~txsipua.errors.ReinviteFailed`, except a 491, sent again
  after the RFC 3261 §14.1 back-off (:func:`glare_backoff`) while
  ``Configuration.glare_retries`` last.  A peer's re-INVITE is answered (or,
  without an offer, offered to in our 2xx).

A call we place and nobody answers within ``Configuration.no_answer_timeout``
is cancelled and fails with :class:`~txsipua.errors.CallNotAnswered`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from txsipua.core.reliable import rseq_of
from txsipua.core.transaction import ServerTransaction
from txsipua.core.useragent import InviteSession, SessionState
from txsipua.errors import CallFailed, CallNotAnswered, LocalProtocolError, ReinviteFailed, SIPError
from txsipua.media.negotiation import OfferAnswerState
from txsipua.media.offer_answer import MediaParams
from txsipua.sip.message import Request, Response
from txsipua.sip.uri import SipURI
from txsipua.sip.values import NameAddr
from txsipua.ua.audio import CallAudio
from txsipua.ua.interfaces import ICall
from txsipua.ua.media import CallMedia
from txsipua.ua.transfer import Transfer, transfer_target

if TYPE_CHECKING:
    from txsipua.ua.useragent import UserAgent

log = Logger()


def _cancelled() -> CallFailed:
    return CallFailed(Response(487), "call (cancelled)")


def glare_backoff(owner: bool, draw: Callable[[], float]) -> float:
    """The wait before a re-INVITE answered 491 is sent again (RFC 3261 §14.1), seconds.

    In units of 10 ms: 2.1 to 4 s when we own the dialog's Call-ID (we placed
    the call), else 0 to 2 s.

    Args:
        owner: True when we generated the Call-ID.
        draw: returns a float in ``[0, 1)`` (the user agent's injected ``random``).
    """
    r = min(max(draw(), 0.0), 1.0)
    return (210 + round(r * 190)) / 100 if owner else round(r * 200) / 100


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
        confirmed: Deferred fired with the call once the dialog is confirmed
            both ways: as caller (UAC) when the 2xx arrived and our ACK was
            sent (right after ``answered``, RFC 3261 §13.2.2.4); as callee
            (UAS) when the peer's ACK for our 2xx arrived (§13.3.1.4).
        ended: Deferred fired with the end reason (``"bye"``, ``"hangup"``,
            ``"cancelled"``, ``"no-ack"``, ``"failed"``, ``"rejected"``) when
            the call ends.
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
        self.answered: defer.Deferred[Call] = defer.Deferred()
        self.confirmed: defer.Deferred[Call] = defer.Deferred()
        self.on_progress: Callable[[Response], object] | None = None
        self.on_hold_change: Callable[[bool, bool], object] | None = None
        self.abandoned = False
        self.bye_error: Exception | None = None
        self._reinvite_d: defer.Deferred[Response] | None = None
        self._reinvite_order: tuple[str | None, tuple[Any, ...] | None] | None = None
        self._glare_tries = 0
        self._glare_timer: Any = None
        self._no_answer_timer: Any = None
        self._no_answer: CallNotAnswered | None = None
        if self.call_media is not None:
            self.call_media.on_hold_change = self._hold_changed
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

    @property
    def held_locally(self) -> bool:
        """True while we hold the peer (our accepted offer is sendonly or inactive)."""
        return self.call_media is not None and self.call_media.held_locally

    @property
    def held_remotely(self) -> bool:
        """True while the peer holds us (its offer or answer is sendonly, inactive, or c=0.0.0.0)."""
        return self.call_media is not None and self.call_media.held_remotely

    def attach(self, session: InviteSession) -> None:
        """Bind the core session once the INVITE is sent (UAC); arm the no-answer timeout."""
        self.session = session
        session.user_data = self
        if self.delayed_offer:
            session.ack_body = self._ack_answer
            session.answer_offer = self._prack_answer
        timeout = self.ua.config.no_answer_timeout
        if timeout is not None and not self.ended.called:
            self._no_answer_timer = self.ua.reactor.callLater(timeout, self._not_answered, timeout)

    def _media_silent(self) -> None:
        """The stream heard nothing for its media timeout: BYE once answered; while still ringing
        (early media that stays silent), the call is left to ring (the no-answer timeout ends it)."""
        if self.state in (SessionState.ACCEPTED, SessionState.CONFIRMED):
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

    def _ack_answer(self, response: Response) -> tuple[bytes, str]:
        """Our answer to the offer in the 2xx of our offerless INVITE, for the ACK (§13.2.1)."""
        media = self.call_media
        if media is None or not response.body or media.state is not OfferAnswerState.NO_SESSION:
            return b"", ""  # no offer, or the offer/answer was done already (a reliable 1xx and its PRACK)
        try:
            return media.answer(response.body), "application/sdp"
        except SIPError as e:
            log.warn("cannot answer the offer in the 2xx: {err}; the call has no media", err=e)
            return b"", ""

    def _prack_answer(self, offer: bytes) -> bytes:
        """Our answer to the offer in a reliable 1xx to our offerless INVITE, for the PRACK (RFC 3262 §5).

        The media starts at once (early media).  An offer we cannot use is
        logged and the PRACK goes without an answer (``b""``).
        """
        media = self.call_media
        if media is None:
            return b""
        try:
            return media.take_offer(offer)
        except SIPError as e:
            log.warn("cannot answer the offer in the reliable provisional: {err}; no media", err=e)
            return b""

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
        """Put the call on hold: re-INVITE with a sendonly offer (RFC 3264 §8.4).

        Fires with the 2xx once the peer accepted (then :attr:`held_locally`
        is True).  A 491 (the peer re-INVITEd at the same time) is retried
        after the RFC 3261 §14.1 back-off, up to ``Configuration.glare_retries``
        times.  Errbacks with :class:`~txsipua.errors.ReinviteFailed` on a
        final non-2xx response (the session stays as it was),
        :class:`~txsipua.errors.LocalProtocolError` when no re-INVITE can be
        sent now, or the transaction's error.
        """
        return self._reoffer("sendonly")

    def resume(self) -> defer.Deferred[Response]:
        """Take the call off hold: re-INVITE with a sendrecv offer (as :meth:`hold`)."""
        return self._reoffer("sendrecv")

    def change_codecs(self, codecs: Iterable[Any]) -> defer.Deferred[Response]:
        """Re-INVITE offering only ``codecs`` (``Codec`` values or names such as ``"PCMA"``), as :meth:`hold`.

        Raises:
            ValueError: a codec is not one of the known G.711 codecs.
        """
        from txsipua.ua.config import Configuration

        chosen = Configuration(codecs=tuple(codecs)).codecs  # checked and converted as the configuration does
        return self._reoffer(None, chosen)

    def _reoffer(self, direction: str | None, codecs: tuple[Any, ...] | None = None) -> defer.Deferred[Response]:
        # check first, change nothing on refusal: the pending re-INVITE keeps its Deferred
        if self.call_media is None:
            return defer.fail(LocalProtocolError("no media to re-offer"))
        if self._reinvite_d is not None:
            return defer.fail(LocalProtocolError("a re-INVITE is already in progress"))
        if self.session is None:
            return defer.fail(LocalProtocolError("re-INVITE needs a confirmed call"))
        d: defer.Deferred[Response] = defer.Deferred()
        self._reinvite_order = (direction, codecs)
        self._glare_tries = 0
        error = self._send_reoffer(d)
        if error is not None:
            self._reinvite_order = None
            return defer.fail(error)
        self._reinvite_d = d
        return d

    def _send_reoffer(self, d: defer.Deferred[Response]) -> Exception | None:
        """Make the offer and send the re-INVITE; the error when no offer can be made now."""
        media = self.call_media
        assert media is not None and self._reinvite_order is not None
        direction, codecs = self._reinvite_order
        try:
            if media.local is None or media.stream is None:
                raise LocalProtocolError("no media to re-offer")
            if media.negotiation.state.offer_outstanding:
                raise LocalProtocolError("a re-offer is already pending")
            offer = media.create_offer(direction, codecs)
        except LocalProtocolError as e:
            return e

        def failed(f: Any) -> None:
            # the re-INVITE was never sent (not confirmed, next hop unknown): the offer is dropped
            if self._reinvite_d is d:
                self._reinvite_d = None
                self._reinvite_order = None
                media.rollback()
            if not d.called:
                d.errback(f)

        session = self.session
        self.ua.when_located(session, lambda now: session.reinvite(now, offer)).addErrback(failed)
        return None

    def _retry_reoffer(self) -> None:
        self._glare_timer = None
        d = self._reinvite_d
        if d is None or self.ended.called:
            return
        error = self._send_reoffer(d)
        if error is not None:
            self._reinvite_d = None
            self._reinvite_order = None
            d.errback(error)

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
    def offer(self) -> bytes:
        """The SDP body of our INVITE (empty without media, or for a delayed offer)."""
        if self.call_media is None or self.delayed_offer:
            return b""
        return self.call_media.offer()

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
            media.take_answer(response.body, response.to_tag)
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

    def ack_received(self, request: Request) -> None:
        """The ACK of our 2xx arrived: when our 2xx made an offer, the ACK's body is the answer (§13.2.1, §14.2).

        An ACK without an answer withdraws that offer (what was in force stays).
        """
        media = self.call_media
        if media is not None and media.negotiation.our_offer_outstanding:
            media.take_answer(request.body or None)

    def session_confirmed(self) -> None:
        """The ACK for our 2xx arrived (UAS): fire ``confirmed`` (the UAC's fires in :meth:`session_answered`)."""
        if not self.confirmed.called:
            self.confirmed.callback(self)

    def session_ended(self, reason: str, bye_error: Exception | None) -> None:
        """The call ended (BYE either way, CANCEL, no ACK): fire ``ended`` with ``reason``."""
        self.bye_error = bye_error
        self._stop_no_answer()
        if self._glare_timer is not None and self._glare_timer.active():
            self._glare_timer.cancel()
        self._glare_timer = None
        pending, self._reinvite_d = self._reinvite_d, None
        if pending is not None and not pending.called:  # ended during a 491 back-off
            pending.errback(LocalProtocolError(f"the call ended ({reason}) before the re-INVITE could be retried"))
        self.ua.calls.discard(self)
        self.stop_media()
        if self.transfer_in_progress is not None:
            self.transfer_in_progress.call_ended()
        if not self.answered.called and reason == "cancelled" and self.session.is_uac:
            self.answered.errback(self._no_answer or _cancelled())
        if not self.ended.called:
            self.ended.callback(reason)

    def reinvite_completed(self, response: Response | None, error: Exception | None) -> None:
        """Our re-INVITE got its final response (or failed): take its SDP, settle hold()/resume()'s Deferred.

        A 2xx puts the offer in force and fires the Deferred.  A 491 is sent
        again after the §14.1 back-off while ``glare_retries`` last.  Anything
        else withdraws the offer (RFC 3264 §8) and errbacks:
        :class:`~txsipua.errors.ReinviteFailed` for a final response, else
        ``error``.
        """
        media = self.call_media
        accepted = error is None and response is not None and 200 <= response.status < 300
        if media is not None:
            media.reoffer_settled(accepted, response.body if response is not None else None)
        d = self._reinvite_d
        if d is None:
            return
        if (response is not None and response.status == 491 and error is None
                and self._glare_tries < self.ua.config.glare_retries and not self.ended.called):
            self._glare_tries += 1
            delay = glare_backoff(self.session.is_uac, self.ua.random or random.random)
            log.info("491 to our re-INVITE: again in {delay} s", delay=delay)
            self._glare_timer = self.ua.reactor.callLater(delay, self._retry_reoffer)
            return
        self._reinvite_d = None
        self._reinvite_order = None
        if error is not None:
            d.errback(error)
        elif not accepted:
            assert response is not None
            d.errback(ReinviteFailed(response, "re-INVITE"))
        else:
            assert response is not None
            d.callback(response)

    def reinvite_received(self, request: Request, transaction: ServerTransaction) -> None:
        """The peer re-INVITEd (RFC 3261 §14.2): answer its offer (or offer in our 2xx when it has none).

        An unusable offer gets 488 (491 when it crosses an offer of ours).
        """
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

    def _hold_changed(self, local: bool, remote: bool) -> None:
        if self.on_hold_change is not None:
            self.on_hold_change(local, remote)

    def update(self, direction: str | None = "sendrecv") -> defer.Deferred[Response]:
        """Send an UPDATE (RFC 3311) in the early or confirmed dialog; fires with its final response.

        With media and a ``direction`` (``"sendrecv"``, ``"sendonly"``), it
        carries a new offer from :meth:`CallMedia.reoffer` that takes effect
        when answered 2xx (a refusal leaves the session as it was);
        ``direction=None`` (or no media) sends it without a body, a session
        refresh (RFC 4028).  Errbacks with
        :class:`~txsipua.errors.LocalProtocolError` when no dialog exists yet or
        an offer is already outstanding.
        """
        session = self.session
        if session is None:
            return defer.fail(LocalProtocolError("no dialog yet: the callee is still being located"))
        media = self.call_media if direction is not None else None
        offer = b""
        if media is not None and media.negotiation.state in (OfferAnswerState.OFFER_SENT, OfferAnswerState.EARLY):
            return defer.fail(LocalProtocolError(
                "our INVITE's offer is not answered yet (no reliable answer): an UPDATE cannot offer now (RFC 3311 §5.1)"))
        if media is not None:
            try:
                offer = media.reoffer(direction or "sendrecv")
            except LocalProtocolError as e:
                return defer.fail(e)
        d: defer.Deferred[Response] = defer.Deferred()

        def go(now: float) -> None:
            op = session.update(now, body=offer)
            op.user_data = d

        def settle(response: Response) -> Response:
            if media is not None:
                media.reoffer_settled(200 <= response.status < 300, response.body)
            return response

        def failed(f: Any) -> Any:
            if media is not None and media.pending is not None:
                media.reoffer_settled(False)
            if not d.called:
                d.errback(f)
                return None
            return f

        d.addCallbacks(settle, failed)
        self.ua.when_located(session, go).addErrback(failed)
        return d

    def update_received(self, request: Request, transaction: ServerTransaction) -> None:
        """The peer sent an UPDATE with an offer (RFC 3311 §5.2): answer it, or 488 when unusable."""
        session = self.session
        body = b""
        if self.call_media is not None:
            try:
                body = self.call_media.answer_reoffer(request.body or None)
            except SIPError as err:
                status = getattr(err, "status", 488)
                code = status if isinstance(status, int) else 488
                self.ua.drive(lambda now: session.answer_update(transaction, request, now, status=code))
                return
        self.ua.drive(lambda now: session.answer_update(transaction, request, now, body=body))

    def provisional_acknowledged(self, prack: Request) -> None:
        """The PRACK of our reliable 1xx arrived (UAS): an SDP in it answers the offer our 1xx carried."""
        if prack.body and self.call_media is not None:
            self.call_media.remote(prack.body)

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
        replaces: the :class:`Call` this one replaces (an INVITE with
            Replaces, RFC 3891), ended with BYE once this one is confirmed;
            ``None`` for an ordinary call.
    """

    def __init__(self, ua: UserAgent, call: Call, request: Request, replaces: Call | None = None) -> None:
        self.ua = ua
        self.call = call
        self.replaces = replaces
        self.request = request
        self.caller: NameAddr = request.from_
        self.identity = call.session.identity

    def ring(self) -> None:
        """Send 180 Ringing."""
        session = self.call.session
        self.ua.drive(lambda now: session.ring(now))

    def early_media(self, status: int = 183) -> Call:
        """Send 183 Session Progress with our SDP answer and start the media before answering (RFC 3261 §13.2.1).

        ``play()`` and recording work at once (announcements, ringback); a
        later :meth:`answer` repeats the same answer in its 2xx.  An INVITE
        without an offer gets a plain provisional response (our offer must
        wait for the 2xx).  An offer we cannot accept is rejected as in
        :meth:`answer`.

        Raises:
            LocalProtocolError: the call no longer awaits an answer.
        """
        call = self.call
        if not self.pending:
            raise LocalProtocolError(f"cannot send early media in state {call.state.value}")
        media = call.call_media
        body = b""
        if media is not None and self.request.body:
            if media.local is not None:
                body = media.local.to_bytes()
            else:
                try:
                    body = media.answer(self.request.body)
                except SIPError as e:
                    status_ = getattr(e, "status", 488)
                    self.reject(status_ if isinstance(status_, int) else 488, headers=getattr(e, "headers", ()))
                    return call
        session = call.session
        self.ua.drive(lambda now: session.ring(now, body=body, status=status))
        return call

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
        if call.call_media is not None and call.call_media.local is not None and self.request.body:
            body = call.call_media.local.to_bytes()  # the answer our early media sent already
        elif call.call_media is not None:
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
