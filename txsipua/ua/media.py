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

from twisted.internet import defer
from twisted.logger import Logger

from txsipua.errors import LocalProtocolError, SIPError
from txsipua.media.audio import IAudioSink, IAudioSource, PCMSource, WavSink, WavSource
from txsipua.media.offer_answer import (
    MediaParams,
    hold_offer,
    make_answer,
    make_offer,
    negotiate,
    resume_offer,
)
from txsipua.media.sdes import KEY_LENGTH, SUITES, CryptoAttribute
from txsipua.media.sdp import SessionDescription
from txsipua.media.srtp import available as srtp_available
from txsipua.ua.audio import CallAudio
from txsipua.ua.config import Configuration

__all__ = ["CallMedia", "PCMSource", "WavSink", "WavSource"]

log = Logger()


class CallMedia:
    """SDP offer/answer and the RTP stream of one call (RFC 3264).

    Args:
        reactor: provides ``listenUDP`` and ``IReactorTime`` for the RTP stream.
        config: the user agent's :class:`~txsipua.ua.config.Configuration`
            (codecs, telephone-event).
        host: the RTP address to bind and advertise in ``c=`` and ``o=``.
        session_id: the ``o=`` sess-id; random (31 bits) when ``None``.
        stream_factory: ``(reactor, host) -> stream`` building the RTP stream
            (a started :class:`~txsipua.net.rtp.MediaStream` by default, with
            RTCP every ``config.rtcp_interval`` seconds).
        srtp: require SRTP (RFC 3711 with SDES keys, RFC 4568): our offers are
            RTP/SAVP with ``a=crypto`` and plain RTP/AVP offers are refused
            (488).  Without it an RTP/SAVP offer is still accepted when
            pylibsrtp is installed.

    Attributes:
        stream: the RTP stream once an offer or answer was made, else ``None``.
        params: the negotiated :class:`~txsipua.media.offer_answer.MediaParams`, or ``None``.
        local: our last :class:`~txsipua.media.sdp.SessionDescription` in
            force (a re-offer replaces it only once accepted), or ``None``.
        pending: our re-offer awaiting its answer, or ``None``.
        audio: the call's :class:`~txsipua.ua.audio.CallAudio` (prompts,
            frames, digits, recordings), attached to the stream once it opens.
    """

    def __init__(self, reactor: Any, config: Configuration, host: str, session_id: int | None = None,
                 stream_factory: Any = None, on_timeout: Callable[[], object] | None = None,
                 srtp: bool = False) -> None:
        self.reactor = reactor
        self.on_timeout = on_timeout
        self.config = config
        self.host = host
        self.session_id = secrets.randbits(31) if session_id is None else session_id
        self.stream: Any = None
        self.params: MediaParams | None = None
        self.local: SessionDescription | None = None
        self.pending: SessionDescription | None = None
        self._stream_factory = stream_factory or functools.partial(
            _start_stream, rtcp_interval=config.rtcp_interval, media_timeout=config.media_timeout)
        self._sink: Any = None
        self.audio = CallAudio(reactor)
        self.srtp = srtp
        self._srtp_keys: tuple[CryptoAttribute, ...] = ()  # offered, kept for re-offers
        self._answer_key: bytes | None = None

    # ------------------------------------------------------------ offer/answer
    def offer(self) -> bytes:
        """Open the RTP stream and build our initial offer (RFC 3264 §5); the SDP body."""
        self._open()
        self.local = make_offer(self.host, self.stream.port, codecs=self.config.codecs,
                                dtmf=self.config.dtmf, session_id=self.session_id, **self._offer_options())
        return self.local.to_bytes()

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

        Raises:
            SIPError: the offer cannot be parsed or has nothing acceptable; its
                ``status`` (488 by default) is the response to send.  The
                stream is closed again.
        """
        self._open()
        if not offer_body:
            return self.offer_again()
        try:
            offer = SessionDescription.parse(offer_body)
            answer = make_answer(offer, self.host, self.stream.port, codecs=self.config.codecs,
                                 dtmf=self.config.dtmf, session_id=self.session_id, **self._answer_options())
        except SIPError:
            self.stop()
            self.stream = None
            raise
        self.local = answer
        self._negotiate(answer, offer)
        return answer.to_bytes()

    def offer_again(self) -> bytes:
        """Our offer on the already open stream (an offerless INVITE's 2xx)."""
        self.local = make_offer(self.host, self.stream.port, codecs=self.config.codecs,
                                dtmf=self.config.dtmf, session_id=self.session_id, **self._offer_options())
        return self.local.to_bytes()

    def remote(self, body: bytes | None) -> None:
        """Take the peer's SDP (the answer to our offer, or the ACK's answer); bad SDP is logged."""
        if not body or self.local is None or self.stream is None:
            return
        try:
            peer = SessionDescription.parse(body)
        except SIPError as e:
            log.warn("cannot use the peer's SDP: {err}", err=e)
            return
        self._negotiate(self.local, peer)

    def reoffer(self, direction: str) -> bytes:
        """A re-offer with the same m-lines and version + 1 (RFC 3264 §8): ``"sendonly"`` holds, ``"sendrecv"`` resumes.

        The re-offer is :attr:`pending`: :attr:`local` changes only when
        :meth:`reoffer_settled` reports it accepted, so a refused or failed
        re-INVITE leaves the session description (and its version) as it was.

        Raises:
            LocalProtocolError: the call has no media to re-offer, or a
                re-offer is already pending (nothing changes).
        """
        if self.local is None or self.stream is None:
            raise LocalProtocolError("no media to re-offer")
        if self.pending is not None:
            raise LocalProtocolError("a re-offer is already pending")
        prev = self.local
        self.pending = hold_offer(prev) if direction == "sendonly" else resume_offer(prev)
        return self.pending.to_bytes()

    def reoffer_settled(self, accepted: bool, answer: bytes | None = None) -> None:
        """The re-INVITE carrying :attr:`pending` ended: accepted (2xx, with ``answer``) or not.

        Accepted, the re-offer becomes :attr:`local` and ``answer`` is
        negotiated against it; otherwise it is dropped (RFC 3264 §8: the
        previous description stays in force).
        """
        offer, self.pending = self.pending, None
        if accepted and offer is not None:
            self.local = offer
            self.remote(answer)

    def answer_reoffer(self, body: bytes | None) -> bytes:
        """Answer a peer's re-INVITE (§8); ``b""`` when we have no media or it offers none.

        Raises:
            SIPError: the offer is unusable; ``status`` (488 by default) is the response.
        """
        if self.stream is None or not body:
            return b""
        offer = SessionDescription.parse(body)
        prev = self.local
        answer = make_answer(
            offer, self.host, self.stream.port, codecs=self.config.codecs, dtmf=self.config.dtmf,
            session_id=prev.session_id if prev else self.session_id,
            session_version=(prev.session_version + 1) if prev else 1,
            **self._answer_options(),
        )
        self.local = answer
        self._negotiate(answer, offer)
        return answer.to_bytes()

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
        return self.stream.play(source)

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
        return self.stream.send_dtmf(digits)

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
            self.audio.attach(self.stream)

    def _negotiate(self, local: SessionDescription, peer: SessionDescription) -> None:
        try:
            self.params = negotiate(local, peer)
        except SIPError as e:
            log.warn("media negotiation failed: {err}", err=e)
            return
        if self.stream is not None:
            try:
                self.stream.configure(self.params)
            except LocalProtocolError as e:  # a codec or SRTP library missing after all
                log.warn("cannot use the negotiated media: {err}", err=e)


def _start_stream(reactor: Any, host: str, rtcp_interval: float | None = None,
                  media_timeout: float | None = 60.0) -> Any:
    from txsipua.net.rtp import MediaStream

    stream = MediaStream(reactor, local_host=host, rtcp_interval=rtcp_interval, media_timeout=media_timeout)
    stream.start()
    return stream
