"""A call's offer/answer plumbing: which message carries which SDP (RFC 3264; RFC 3261 §13.2.1, §14; RFC 3262 §5; RFC 3311).

:class:`CallOffers` is mixed into :class:`~txsipua.ua.call.Call` (the dialog
lifecycle lives there); the SDP itself is the call's
:class:`~txsipua.ua.media.CallMedia`, one declared machine
(:mod:`txsipua.media.negotiation`).  This part only says which message
carried what:

- caller: the INVITE's offer (:meth:`CallOffers.offer`; none with
  ``delayed_offer``: then the 2xx's offer is answered in the ACK through the
  session's ``ack_body`` hook, and a reliable 1xx's offer in its PRACK
  through its ``answer_offer`` hook; :meth:`~txsipua.ua.call.Call.attach`
  sets both);
- callee: without an offer in the INVITE our 2xx offers and the ACK's answer
  (:meth:`CallOffers.ack_received`) starts the media; an SDP in the PRACK of
  our reliable 1xx answers its offer (:meth:`CallOffers.provisional_acknowledged`);
- either side, later: :meth:`CallOffers.hold`, :meth:`CallOffers.resume`,
  :meth:`CallOffers.change_codecs` and :meth:`CallOffers.update` re-offer; a
  2xx puts the offer in force, any other final response withdraws it (the
  session stays as it was) and errs with
  :class:`~txsipua.errors.ReinviteFailed`, except a 491, sent again after the
  RFC 3261 §14.1 back-off (:func:`glare_backoff`) while
  ``Configuration.glare_retries`` last.  A peer's re-INVITE or UPDATE is
  answered (or, without an offer, offered to in our 2xx).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger

from txsipua.core.transaction import ServerTransaction
from txsipua.errors import LocalProtocolError, MediaNegotiationFailed, ReinviteFailed, SIPError
from txsipua.media.negotiation import OfferAnswerState
from txsipua.media.offer_answer import MediaParams
from txsipua.sip.message import Request, Response
from txsipua.ua.audio import CallAudio
from txsipua.ua.media import CallMedia

if TYPE_CHECKING:
    from txsipua.core.useragent import InviteSession
    from txsipua.ua.useragent import UserAgent

log = Logger(namespace="txsipua.ua.call")  # the namespace calls have always logged under


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


class CallOffers:
    """The offer/answer methods of a :class:`~txsipua.ua.call.Call` (a mixin; see the module docstring).

    The attributes declared first are the call's, set by ``Call.__init__``;
    :meth:`ack_answer`, :meth:`prack_answer` and :meth:`hold_changed` are the
    hooks the call hands its session and its media.
    """

    ua: UserAgent
    session: InviteSession
    call_media: CallMedia | None
    delayed_offer: bool
    ended: defer.Deferred[str]
    on_hold_change: Callable[[bool, bool], object] | None
    media_error: MediaNegotiationFailed | None

    if TYPE_CHECKING:  # pragma: no cover - what Call provides, declared for the type checker
        def media_failed(self, error: MediaNegotiationFailed) -> None: ...

    # this part's own state: the re-INVITE (hold, resume, codecs) in progress, none at first
    _reinvite_d: defer.Deferred[Response] | None = None
    _reinvite_order: tuple[str | None, tuple[Any, ...] | None] | None = None
    _glare_tries: int = 0
    _glare_timer: Any = None

    # ----------------------------------------------------------------- media
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

    # -------------------------------------------------- offers and answers
    def offer(self) -> bytes:
        """The SDP body of our INVITE (empty without media, or for a delayed offer)."""
        if self.call_media is None or self.delayed_offer:
            return b""
        return self.call_media.offer()

    def ack_answer(self, response: Response) -> tuple[bytes, str]:
        """Our answer to the offer in the 2xx of our offerless INVITE, for the ACK (§13.2.1).

        An offer we cannot use is still answered, as the ACK must be (RFC
        3261 §13.2.2.4): every stream refused with port 0 (RFC 3264 §6), or
        no body when the SDP cannot even be parsed; the defect is kept in
        :attr:`media_error` and the call sends BYE once the 2xx is reported.
        """
        media = self.call_media
        if media is None or not response.body or media.state is not OfferAnswerState.NO_SESSION:
            return b"", ""  # no offer, or the offer/answer was done already (a reliable 1xx and its PRACK)
        try:
            return media.answer(response.body), "application/sdp"
        except SIPError as e:
            log.warn("cannot answer the offer in the 2xx: {err}; the call is hung up", err=e)
            self.media_error = MediaNegotiationFailed(f"the offer in the 2xx is unusable ({e})", response)
            refusal = media.refuse_offer(response.body)
            return refusal, "application/sdp" if refusal else ""

    def prack_answer(self, offer: bytes) -> bytes:
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

    def ack_received(self, request: Request) -> None:
        """The ACK of our 2xx arrived: when our 2xx made an offer, the ACK's body is the answer (§13.2.1, §14.2).

        An ACK without an answer withdraws that offer (what was in force
        stays).  The answer to the first offer (an offerless INVITE) that
        cannot be used (garbage, nothing in common) ends the call: BYE at
        once (RFC 3261 §13.3.1.4), ``confirmed`` fails with
        :class:`~txsipua.errors.MediaNegotiationFailed` and ``ended`` fires
        with ``"media"``.
        """
        media = self.call_media
        if media is None or not media.negotiation.our_offer_outstanding:
            return
        first = media.negotiation.state is OfferAnswerState.OFFER_SENT
        if first and request.body:
            defect = media.take_final_answer(request.body)
            if defect is not None:
                self.media_failed(MediaNegotiationFailed(f"the answer in the ACK is unusable ({defect})", request))
            return
        media.take_answer(request.body or None)

    # ------------------------------------------------------------ re-offers
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

    def reoffer_ended(self, reason: str) -> None:
        """The call ended (``reason``): stop a 491 back-off and fail the re-INVITE's Deferred still waiting."""
        if self._glare_timer is not None and self._glare_timer.active():
            self._glare_timer.cancel()
        self._glare_timer = None
        pending, self._reinvite_d = self._reinvite_d, None
        if pending is not None and not pending.called:  # ended during a 491 back-off
            pending.errback(LocalProtocolError(f"the call ended ({reason}) before the re-INVITE could be retried"))

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
        self._answer_offer(request, transaction, self.session.answer_reinvite)

    def hold_changed(self, local: bool, remote: bool) -> None:
        """Our media's hold state changed (RFC 3264 §8.4): to :attr:`on_hold_change
        <txsipua.ua.call.Call.on_hold_change>`, when set."""
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
        self._answer_offer(request, transaction, self.session.answer_update)

    def _answer_offer(self, request: Request, transaction: ServerTransaction, respond: Any) -> None:
        """Answer the offer of a re-INVITE or UPDATE through ``respond`` (the session's
        ``answer_reinvite`` or ``answer_update``): the SDP answer, or the error's status (488)."""
        body = b""
        if self.call_media is not None:
            try:
                body = self.call_media.answer_reoffer(request.body or None)
            except SIPError as err:
                status = getattr(err, "status", 488)
                code = status if isinstance(status, int) else 488
                self.ua.drive(lambda now: respond(transaction, request, now, status=code))
                return
        self.ua.drive(lambda now: respond(transaction, request, now, body=body))

    def provisional_acknowledged(self, prack: Request) -> None:
        """The PRACK of our reliable 1xx arrived (UAS): an SDP in it answers the offer our 1xx carried."""
        if prack.body and self.call_media is not None:
            self.call_media.remote(prack.body)

    def stop_media(self) -> None:
        """Close the RTP stream, if any."""
        if self.call_media is not None:
            self.call_media.stop()


__all__ = ["CallOffers", "glare_backoff"]
