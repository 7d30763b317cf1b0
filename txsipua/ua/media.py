"""The media of one call: SDP offer/answer (RFC 3264) and its RTP stream.

A :class:`CallMedia` owns everything a call knows about media: our last
session description, the negotiated :class:`~txsipua.media.offer_answer.MediaParams`
and the :class:`~txsipua.net.rtp.MediaStream` carrying the audio.  The call
hands it the SDP bodies it sends and receives and never looks inside them:

- caller: :meth:`~CallMedia.offer` for the INVITE, :meth:`~CallMedia.remote`
  with the 2xx body;
- callee: :meth:`~CallMedia.answer` with the INVITE body (an offer, or none:
  then our 2xx carries the offer and the ACK the answer, §13.2.1);
- either side: :meth:`~CallMedia.reoffer` for hold/resume (§8.4) and
  :meth:`~CallMedia.answer_reoffer` for a peer's re-INVITE.

:class:`WavSource`, :class:`PCMSource` and :class:`WavSink` (from
:mod:`txsipua.media.audio`, re-exported here) are the
:class:`~txsipua.ua.interfaces.IAudioSource`/:class:`~txsipua.ua.interfaces.IAudioSink`
providers for files and memory.  :attr:`CallMedia.audio` is the call's
:class:`~txsipua.ua.audio.CallAudio` (frames, prompts, digits).
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet import defer
from twisted.logger import Logger

from txsipua.errors import LocalProtocolError, SIPError
from txsipua.media.audio import IAudioSink, IAudioSource, PCMSource, WavSink, WavSource
from txsipua.media.negotiation import Negotiation, OfferAnswerState
from txsipua.media.offer_answer import (
    Codec,
    MediaParams,
    hold_offer,
    make_answer,
    make_offer,
    negotiate,
    reject_offer,
    resume_offer,
)
from txsipua.media.sdes import KEY_LENGTH, SUITES, CryptoAttribute
from txsipua.media.sdp import SessionDescription
from txsipua.media.srtp import available as srtp_available
from txsipua.ua.audio import CallAudio
from txsipua.ua.config import Configuration

__all__ = ["CallMedia", "PCMSource", "WavSink", "WavSource"]

log = Logger()


def _active_audio(description: SessionDescription | None) -> tuple[str, str | None] | None:
    """``(direction, connection address)`` of the first active audio stream, or ``None``."""
    if description is None:
        return None
    for index, m in enumerate(description.media):
        if m.media == "audio" and m.port:
            return m.direction, description.media_connection(index)
    return None


_HOLDING = ("sendonly", "inactive")


class CallMedia:
    """SDP offer/answer and the RTP stream of one call (RFC 3264).

    The offer/answer state is one :class:`~txsipua.media.negotiation.Negotiation`
    (:attr:`negotiation`, a declared machine: no session, offer sent, early,
    offer received, stable, re-offer sent, re-offer received).  Usages
    (INVITE, and PRACK/UPDATE) speak to it through five methods, each one
    input of that machine:

    - :meth:`create_offer`: an offer to send (first, or a re-offer);
    - :meth:`take_offer`: the peer's offer; returns our answer to send;
    - :meth:`take_answer`: the peer's answer to our outstanding offer;
    - :meth:`take_early_answer`: an answer in a provisional response of one
      early dialog (media starts at once; the final answer decides);
    - :meth:`rollback`: the outstanding offer (either side's) was refused or
      its request failed: what was in force stays (RFC 3264 §8).

    The older names (:meth:`offer`, :meth:`answer`, :meth:`remote`,
    :meth:`reoffer`, :meth:`reoffer_settled`, :meth:`answer_reoffer`) are
    these, as the INVITE usage uses them.

    Hold (RFC 3264 §8.4) is reported both ways: :attr:`held_locally` (our
    accepted offer is sendonly or inactive: we hold the peer; our answers to
    the peer's later offers keep holding) and :attr:`held_remotely` (the
    peer's offer, or its answer, puts us on hold: sendonly, inactive, or the
    RFC 2543 address 0.0.0.0; an inactive answer to our inactive offer says
    nothing and keeps it as it was, see :func:`_answer_holds`);
    :attr:`on_hold_change` is called with both whenever either changes.

    Args:
        reactor: provides ``listenUDP`` and ``IReactorTime`` for the RTP stream.
        config: the user agent's :class:`~txsipua.ua.config.Configuration`
            (codecs, telephone-event).
        host: the RTP address to bind (and advertise, unless ``advertise`` is given).
        advertise: the RTP address SDP names in ``c=`` and ``o=`` (a NAT's
            public side, or the routed interface of a wildcard bind).
        session_id: the ``o=`` sess-id; random (31 bits) when ``None``.
        stream_factory: ``(reactor, host) -> stream`` building the RTP stream
            (a started :class:`~txsipua.net.rtp.MediaStream` by default, with
            RTCP every ``config.rtcp_interval`` seconds and its media timeout).
            Whatever builds it, with ``config.idle_silence`` the stream sends
            silence while nothing plays (``send_silence_when_idle``, when the
            stream has it).
        on_timeout: called when the stream hears nothing for its media timeout.
        srtp: require SRTP (RFC 3711 with SDES keys, RFC 4568): our offers are
            RTP/SAVP with ``a=crypto`` and plain RTP/AVP offers are refused
            (488).  Without it an RTP/SAVP offer is still accepted when
            pylibsrtp is installed.

    Attributes:
        stream: the RTP stream once an offer or answer was made, else ``None``.
        params: the negotiated :class:`~txsipua.media.offer_answer.MediaParams`
            (those of an early answer while early), or ``None``.
        local: our last :class:`~txsipua.media.sdp.SessionDescription` in
            force (a re-offer replaces it only once accepted), or ``None``.
        pending: our re-offer awaiting its answer, or ``None``.
        negotiation: the :class:`~txsipua.media.negotiation.Negotiation`.
        held_locally: True while we hold the peer.
        held_remotely: True while the peer holds us.
        on_hold_change: ``(held_locally, held_remotely) -> None``, or ``None``.
        audio: the call's :class:`~txsipua.ua.audio.CallAudio` (prompts,
            frames, digits, recordings), attached to the stream once it opens.
    """

    def __init__(self, reactor: Any, config: Configuration, host: str, session_id: int | None = None,
                 stream_factory: Any = None, on_timeout: Callable[[], object] | None = None,
                 srtp: bool = False, advertise: str | None = None) -> None:
        self.reactor = reactor
        self.on_timeout = on_timeout
        self.config = config
        self.host = host
        self.advertise = advertise or host
        self.session_id = secrets.randbits(31) if session_id is None else session_id
        self.stream: Any = None
        self.params: MediaParams | None = None
        self.negotiation = Negotiation()
        self.held_locally = False
        self.held_remotely = False
        self.on_hold_change: Callable[[bool, bool], object] | None = None
        self._stream_factory = stream_factory or functools.partial(
            _start_stream, rtcp_interval=config.rtcp_interval, media_timeout=config.media_timeout)
        self._sink: Any = None
        self.audio = CallAudio(reactor)
        self.srtp = srtp
        self._srtp_keys: tuple[CryptoAttribute, ...] = ()  # offered, kept for re-offers
        self._answer_key: bytes | None = None

    # ------------------------------------------------------------ views
    @property
    def state(self) -> OfferAnswerState:
        """The :class:`~txsipua.media.negotiation.OfferAnswerState`."""
        return self.negotiation.state

    @property
    def local(self) -> SessionDescription | None:
        """Our :class:`~txsipua.media.sdp.SessionDescription` in force (a re-offer replaces it only once accepted)."""
        return self.negotiation.local

    @property
    def pending(self) -> SessionDescription | None:
        """Our offer awaiting its answer, or ``None``."""
        n = self.negotiation
        return n.offer if n.our_offer_outstanding else None

    # ------------------------------------------------- offer/answer (generic)
    def create_offer(self, direction: str | None = None, codecs: tuple[Codec, ...] | None = None) -> bytes:
        """An offer to send: the first one (RTP stream opened), or a re-offer (RFC 3264 §5, §8).

        A re-offer keeps the sess-id with version + 1.  By default it repeats
        the codecs of the configuration and our current direction (sendonly
        while we hold); ``direction`` (``"sendonly"`` holds, ``"sendrecv"``
        resumes) and ``codecs`` (a codec change) override them.

        Returns:
            The SDP body.

        Raises:
            LocalProtocolError: an offer is outstanding (either side), or the
                stream is gone (the call ended).
        """
        n = self.negotiation
        if n.state.offer_outstanding:
            raise LocalProtocolError(f"cannot make an offer: {n.state.value}")
        prev = n.local
        if prev is None:
            self._open()
        elif self.stream is None:
            raise LocalProtocolError("no media to re-offer")
        if direction is None:
            direction = "sendonly" if self.held_locally else "sendrecv"
        if prev is not None and codecs is None:
            offer = hold_offer(prev) if direction == "sendonly" else resume_offer(prev)
            if direction not in ("sendonly", "sendrecv"):
                offer = attrs.evolve(offer, media=tuple(attrs.evolve(m, direction=direction) if m.port else m
                                                        for m in offer.media))
        else:
            offer = make_offer(self.advertise, self.stream.port, codecs=codecs or self.config.codecs,
                               dtmf=self.config.dtmf, session_id=self.session_id, direction=direction,
                               session_version=prev.session_version + 1 if prev is not None else 1,
                               **self._offer_options())
        n.send_offer(offer)
        return offer.to_bytes()

    def take_offer(self, body: bytes) -> bytes:
        """Answer the peer's offer ``body`` (RFC 3264 §6); the answer is in force at once.

        Opens the RTP stream for a first offer.  While we hold the peer, the
        answer keeps holding.

        Returns:
            Our answer, the SDP body to send.

        Raises:
            SIPError: the offer cannot be parsed or has nothing acceptable
                (``status`` 488), or crosses ours (491); nothing changes (a
                stream opened for it is closed again).
        """
        n = self.negotiation
        opened = self.stream is None
        try:
            offer = SessionDescription.parse(body)
            n.receive_offer(offer)
        except SIPError:
            if opened:
                self.stop()
                self.stream = None
            raise
        try:
            self._open()
            prev = n.local
            answer = make_answer(
                offer, self.advertise, self.stream.port, codecs=self.config.codecs, dtmf=self.config.dtmf,
                session_id=prev.session_id if prev else self.session_id,
                session_version=(prev.session_version + 1) if prev else 1, hold=self.held_locally,
                **self._answer_options(),
            )
        except SIPError:
            n.rollback()
            if opened:
                self.stop()
                self.stream = None
            raise
        n.send_answer(answer)
        self._negotiate(answer, offer)
        self._hold_state(self.held_locally, _holds(offer))
        return answer.to_bytes()

    def take_answer(self, body: bytes | None, tag: str | None = None) -> bool:
        """The peer answered our outstanding offer (2xx, ACK...); True when it is in force.

        With no body, the early answer of the dialog ``tag`` (a 18x's SDP, RFC
        3261 §13.2.1) becomes final.  An unusable answer (no body, bad SDP)
        is logged and the offer rolled back (RFC 3264 §8: what was in force
        stays); so is any answer when no offer of ours is outstanding.
        """
        return self._take_answer(body, tag)[0]

    def take_final_answer(self, body: bytes, tag: str | None = None) -> str | None:
        """As :meth:`take_answer`, for an answer that must be usable (the 2xx's or the ACK's, RFC 3261 §13.2.1).

        Returns:
            ``None`` when the answer is in force and its media negotiated,
            else what is wrong with it, in words (SDP that cannot be parsed,
            no stream or codec in common with our offer); the caller ends
            the call (§13.2.2.4, §13.3.1.4).
        """
        in_force, defect = self._take_answer(body, tag)
        if defect is None and not in_force:
            defect = "no usable answer to our offer"
        return defect

    def _take_answer(self, body: bytes | None, tag: str | None) -> tuple[bool, str | None]:
        """:meth:`take_answer`: whether the answer is in force, and what is wrong with it, if anything."""
        n = self.negotiation
        if not n.our_offer_outstanding:
            if body:
                log.warn("an answer without an offer of ours outstanding ({state}) is ignored", state=n.state.value)
            return False, None
        answer: SessionDescription | None = None
        defect: str | None = None
        if body:
            try:
                answer = SessionDescription.parse(body)
            except SIPError as e:
                log.warn("cannot use the peer's SDP: {err}", err=e)
                defect = f"the SDP answer cannot be parsed ({e})"
        elif tag is not None or n.early_tag is not None:
            answer = n.early_answer(tag)
        if answer is None:
            if body is not None or n.early:
                log.warn("no usable answer to our offer; it is withdrawn")
            n.rollback()
            return False, defect
        offer = n.offer
        assert offer is not None
        n.receive_answer(answer)
        defect = self._negotiate(offer, answer)
        ours = _active_audio(offer)
        held = ours is not None and ours[0] in _HOLDING
        self._hold_state(held, _answer_holds(answer, ours[0] if ours is not None else None, self.held_remotely))
        return True, defect

    def take_early_answer(self, body: bytes, tag: str) -> bool:
        """A provisional response of the early dialog ``tag`` carried SDP: early media (RFC 3261 §13.2.1).

        The stream is configured at once (ringback, announcements; ``play()``
        and recording work); the latest early dialog that sent SDP is the one
        heard.  Returns True when it is in use; bad SDP, or SDP when our
        first offer is not outstanding, is logged and ignored.
        """
        n = self.negotiation
        try:
            answer = SessionDescription.parse(body)
            n.receive_early_answer(answer, tag)
        except SIPError as e:
            log.warn("early SDP not used: {err}", err=e)
            return False
        assert n.offer is not None
        self._negotiate(n.offer, answer)
        return True

    def refuse_offer(self, body: bytes) -> bytes:
        """The answer refusing every stream of the peer's unusable offer ``body`` (RFC 3264 §6: port 0).

        For an offer that must be answered although nothing in it can be used
        (the 2xx's offer, answered in the ACK, RFC 3261 §13.2.2.4).  Nothing
        is negotiated and the offer/answer state does not change.

        Returns:
            The SDP body, or ``b""`` when ``body`` cannot even be parsed
            (there is no stream to refuse).
        """
        try:
            offer = SessionDescription.parse(body)
        except SIPError:
            return b""
        return reject_offer(offer, self.advertise, session_id=self.session_id).to_bytes()

    def rollback(self) -> None:
        """The outstanding offer (ours or the peer's) was refused or failed: drop it (RFC 3264 §8).

        Idempotent: nothing outstanding, nothing changes.  A first offer of
        ours refused closes nothing (the call's failure stops the stream).
        """
        if self.negotiation.state.offer_outstanding:
            self.negotiation.rollback()

    # ---------------------------------------------- the INVITE usage's names
    def offer(self) -> bytes:
        """Open the RTP stream and build our initial offer (RFC 3264 §5); the SDP body.

        Asked again while that offer is outstanding, the same offer.
        """
        n = self.negotiation
        if n.state is OfferAnswerState.OFFER_SENT and n.offer is not None:
            return n.offer.to_bytes()
        return self.create_offer()

    def _offer_options(self) -> dict[str, Any]:
        """RTCP mux and, when SRTP is required, one SDES key per suite (RFC 4568 §6.1).

        Raises:
            LocalProtocolError: SRTP is required but pylibsrtp is missing.
        """
        if self.srtp and not self._srtp_keys:
            if not srtp_available():
                raise LocalProtocolError("SRTP is required but pylibsrtp is missing: pip install 'txsipua[srtp]'")
            self._srtp_keys = tuple(CryptoAttribute(tag, suite, secrets.token_bytes(KEY_LENGTH))
                                    for tag, suite in enumerate(SUITES, 1))
        return {"rtcp_mux": self.config.rtcp_mux, "crypto": self._srtp_keys if self.srtp else ()}

    def _answer_options(self) -> dict[str, Any]:
        """RTCP mux, our SDES key when SRTP can be done, and whether it is required."""
        if self._answer_key is None and (self.srtp or srtp_available()):
            self._answer_key = secrets.token_bytes(KEY_LENGTH)
        return {"rtcp_mux": self.config.rtcp_mux, "srtp_key": self._answer_key, "srtp_required": self.srtp}

    def answer(self, offer_body: bytes | None) -> bytes:
        """Open the RTP stream and answer ``offer_body`` (§6); with no offer, make one (§13.2.1).

        Without an offer (an offerless INVITE) our 2xx carries the offer and
        the ACK the answer (:meth:`take_answer`).

        Raises:
            SIPError: the offer cannot be parsed or has nothing acceptable; its
                ``status`` (488 by default) is the response to send.  The
                stream is closed again.
        """
        if not offer_body:
            return self.create_offer()
        return self.take_offer(offer_body)

    def remote(self, body: bytes | None, tag: str | None = None) -> None:
        """Take the peer's answer to our offer (the 2xx's, or the ACK's); bad SDP is logged."""
        self.take_answer(body, tag)

    def reoffer(self, direction: str) -> bytes:
        """A re-offer with the same m-lines and version + 1 (RFC 3264 §8): ``"sendonly"`` holds, ``"sendrecv"`` resumes.

        The re-offer is :attr:`pending`: :attr:`local` changes only when
        :meth:`reoffer_settled` reports it accepted, so a refused or failed
        re-INVITE leaves the session description (and its version) as it was.

        Raises:
            LocalProtocolError: the call has no media to re-offer, or an
                offer is already outstanding (nothing changes).
        """
        if self.local is None or self.stream is None:
            raise LocalProtocolError("no media to re-offer")
        if self.negotiation.state.offer_outstanding:
            raise LocalProtocolError("a re-offer is already pending")
        return self.create_offer(direction)

    def reoffer_settled(self, accepted: bool, answer: bytes | None = None) -> None:
        """The re-INVITE carrying :attr:`pending` ended: accepted (2xx, with ``answer``) or not.

        Accepted, the re-offer becomes :attr:`local` and ``answer`` is
        negotiated against it; otherwise it is dropped (RFC 3264 §8: the
        previous description stays in force).
        """
        if not self.negotiation.our_offer_outstanding:
            return
        if accepted:
            self.take_answer(answer)
        else:
            self.rollback()

    def answer_reoffer(self, body: bytes | None) -> bytes:
        """Answer a peer's re-INVITE (§8); without an offer in it, our offer for its 2xx (§14.2).

        ``b""`` when the call has no media.  An offer of ours in the 2xx is
        answered in the ACK (:meth:`take_answer`).

        Raises:
            SIPError: the offer is unusable; ``status`` (488 by default, 491
                when it crosses ours) is the response.
        """
        if self.stream is None:
            return b""
        if not body:
            return self.create_offer()
        return self.take_offer(body)

    # ------------------------------------------------------------------ audio
    def play(self, source: Any) -> defer.Deferred[bool]:
        """Send audio from an :class:`~txsipua.ua.interfaces.IAudioSource`, PCM bytes or a WAV path.

        The source is pulled one 20 ms frame at a time; an object with only
        the ``pcm()`` of older sources is read whole.

        Returns:
            The stream's Deferred (True once sent, False if the call ended
            first); cancelling it stops the audio.

        Raises:
            LocalProtocolError: no RTP stream.
            txsipua.media.wav.WavError: a WAV file cannot be read.
        """
        if self.stream is None:
            raise LocalProtocolError("the call has no media")
        if not IAudioSource.providedBy(source) and callable(getattr(source, "pcm", None)):
            source = PCMSource(source.pcm())
        played: defer.Deferred[bool] = self.stream.play(source)
        return played

    def record(self, sink: Any) -> None:
        """Push the received audio to an :class:`~txsipua.ua.interfaces.IAudioSink` as it comes.

        Recording is opt-in: nothing received is kept until this is called (or
        the stream's ``start_recording()``/``record_to()``).  The sink is
        closed when the media stops; a :class:`WavSink` thus streams the call
        to its file with flat memory.
        """
        self._sink = IAudioSink(sink)
        self.audio.add_sink(self._sink)

    def send_dtmf(self, digits: str) -> defer.Deferred[bool]:
        """Send DTMF digits as RFC 4733 events.

        Raises:
            LocalProtocolError: no RTP stream.
        """
        if self.stream is None:
            raise LocalProtocolError("the call has no media")
        sent: defer.Deferred[bool] = self.stream.send_dtmf(digits)
        return sent

    def stop(self) -> None:
        """Close the RTP stream (idempotent); the recording goes to the sink, if any."""
        self.audio.end()  # prompts, collections and recordings end with the media
        if self.stream is None:
            return
        self.stream.stop()
        self._sink = None

    # -------------------------------------------------------------- internals
    def _open(self) -> None:
        if self.stream is None:
            self.stream = self._stream_factory(self.reactor, self.host)
            if self.on_timeout is not None:
                self.stream.on_timeout = self.on_timeout  # no RTP for media_timeout s: BYE
            keep_sending = getattr(self.stream, "send_silence_when_idle", None)
            if self.config.idle_silence and keep_sending is not None:
                keep_sending(True)  # the peer keeps getting frames while nothing plays
            self.audio.attach(self.stream)

    def _negotiate(self, local: SessionDescription, peer: SessionDescription) -> str | None:
        """Settle :attr:`params` from both descriptions; the defect (in words) when they cannot be used."""
        try:
            self.params = negotiate(local, peer)
        except SIPError as e:
            log.warn("media negotiation failed: {err}", err=e)
            return str(e)
        if self.stream is not None:
            try:
                self.stream.configure(self.params)
            except LocalProtocolError as e:  # a codec or SRTP library missing after all
                log.warn("cannot use the negotiated media: {err}", err=e)
                return str(e)
        return None

    def _hold_state(self, local: bool, remote: bool) -> None:
        changed = (local, remote) != (self.held_locally, self.held_remotely)
        self.held_locally, self.held_remotely = local, remote
        if changed and self.on_hold_change is not None:
            self.on_hold_change(local, remote)


def _holds(offer: SessionDescription) -> bool:
    """True when the peer's offer puts us on hold (sendonly, inactive, or c=0.0.0.0, RFC 3264 §8.4)."""
    active = _active_audio(offer)
    return active is not None and (active[0] in _HOLDING or active[1] in ("0.0.0.0", "::"))


def _answer_holds(answer: SessionDescription, offered: str | None, before: bool) -> bool:
    """Whether the peer holds us after its ``answer`` to our offer of direction ``offered`` (RFC 3264 §6.1, §8.4).

    The rule: a sendonly answer, or the address 0.0.0.0, holds us; a
    recvonly or sendrecv answer does not.  An inactive answer holds us when
    our offer let the peer send (sendrecv, recvonly), and not when our offer
    was sendonly (inactive is then the peer declining to receive our
    audio).  When our offer was inactive the answer must be inactive
    (§6.1) and says nothing of the peer's wish: the remote hold stays as it
    was (``before``), so a peer that held us is still holding us after we
    hold it too, until it resumes in an offer of its own.
    """
    active = _active_audio(answer)
    if active is None:
        return False
    if offered == "inactive" and active[0] == "inactive":
        return before
    return (active[0] == "sendonly" or (active[0] == "inactive" and offered not in _HOLDING)
            or active[1] in ("0.0.0.0", "::"))


def _start_stream(reactor: Any, host: str, rtcp_interval: float | None = None,
                  media_timeout: float | None = 60.0) -> Any:
    from txsipua.net.rtp import MediaStream

    stream = MediaStream(reactor, local_host=host, rtcp_interval=rtcp_interval, media_timeout=media_timeout)
    stream.start()
    return stream
