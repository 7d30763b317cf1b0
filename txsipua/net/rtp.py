"""An RTP audio stream on a UDP socket: play, record and DTMF for call bots (RFC 3550, RFC 4733).

Theory of operation:

- :class:`MediaStream` is a :class:`~twisted.internet.protocol.DatagramProtocol`
  bound by :meth:`MediaStream.start` (or connected by hand to any datagram
  transport, as the tests do).  The reactor is injected; nothing here reads
  the global one.  On a real POSIX reactor with epoll the socket joins the
  process's :class:`~txsipua.net.rtp_sockets.RtpSockets` (one reactor reader
  for every RTP socket, read in bounded batches); elsewhere it is bound with
  ``reactor.listenUDP``.
- The negotiated parameters (:class:`~txsipua.media.offer_answer.MediaParams`)
  arrive through :meth:`MediaStream.configure`, again on every re-INVITE.
- The stream is three classes by RFC 3550 role, one above the other:
  :class:`~txsipua.net.rtp_send.RtpSender` (paced slots of audio, DTMF and
  idle silence, RTCP out), :class:`~txsipua.net.rtp_receive.RtpReceiver`
  (source filter, loss and jitter, DTMF and audio in, sinks, recording) and
  :class:`MediaStream` here (sockets, negotiation, hold, stop, media
  timeout).  Their modules tell how each works.
- While held (:meth:`MediaStream.hold`) or when the negotiated direction
  forbids sending, queued audio and digits wait; they continue on resume.
- Media timeout: once configured to receive, a stream that hears nothing
  (RTP or RTCP from the accepted source) for ``media_timeout`` seconds calls
  :attr:`MediaStream.on_timeout` once (the call ends it with a BYE).  The
  watch runs only while the negotiated direction is sendrecv and we are not
  held: when either side holds (sendonly, recvonly, inactive, or the RFC 2543
  address 0.0.0.0) a peer may legitimately send nothing.
- Socket budget: :meth:`MediaStream.start` takes a slot from a
  :class:`MediaStreamLimit` shared by default by every stream of the process
  and gives it back on :meth:`MediaStream.stop`; with no slot or no socket
  left it raises :class:`MediaUnavailable` (status 503 with Retry-After).
- RTCP without ``rtcp-mux``: with ``rtcp_interval`` the stream also binds an
  RTCP socket on its RTP port + 1 (:mod:`txsipua.net.rtcp_socket`), closed
  again once ``rtcp-mux`` is negotiated.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet import defer

from txsipua.errors import LocalProtocolError
from txsipua.media.audio import WavSink
from txsipua.media.codecs import AudioCodec, CodecUnavailable, Decoder, Encoder, lookup
from txsipua.media.dtmf import DtmfDetector
from txsipua.media.offer_answer import MediaParams
from txsipua.media.reception import MediaStats, ReceptionStatistics
from txsipua.media.recording import MAX_GAP, Recording
from txsipua.media.rtcp import RtcpSession
from txsipua.media.srtp import SrtpTransform, SrtpUnavailable
from txsipua.net.media_limits import DEFAULT_LIMIT, MediaStreamLimit, MediaUnavailable
from txsipua.net.media_watch import MediaWatch
from txsipua.net.pacer import Pacer, pacer_for
from txsipua.net.playout import Playout
from txsipua.net.reports import StreamReports
from txsipua.net.rtcp_socket import RtcpProtocol, bind_pair
from txsipua.net.rtp_receive import RtpReceiver
from txsipua.net.rtp_send import (
    AUDIO_RATE,
    DTMF_GAP_SLOTS,
    LATE_THRESHOLD,
    MAX_PTIME,
    MIN_PTIME,
    RtpSender,
)
from txsipua.net.rtp_sockets import rtp_sockets_for
from txsipua.net.source import SourceFilter

__all__ = [
    "AUDIO_RATE",
    "DEFAULT_LIMIT",
    "DTMF_GAP_SLOTS",
    "LATE_THRESHOLD",
    "MAX_PTIME",
    "MAX_RECORDING_GAP",
    "MEDIA_TIMEOUT",
    "MIN_PTIME",
    "MediaStats",
    "MediaStream",
    "MediaStreamLimit",
    "MediaUnavailable",
    "RtpReceiver",
    "RtpSender",
]

#: Default for ``max_recording_gap`` (:class:`~txsipua.media.recording.Recording`).
MAX_RECORDING_GAP = MAX_GAP
#: Default for ``media_timeout``: seconds without RTP or RTCP before ``on_timeout``.
MEDIA_TIMEOUT = 60.0


class MediaStream(RtpReceiver):
    """One RTP audio stream for a call: play PCM or WAV, record, send and receive DTMF.

    Args:
        reactor: provides ``listenUDP``, ``callLater`` and ``seconds``.
        local_host: the address to bind (``"127.0.0.1"``, ``"::1"``...).
        port: the UDP port to bind, 0 for any free one.
        ssrc: our SSRC (random when None).
        record: keep received audio in memory (:meth:`recorded`); about
            16 kB per second of call.  Off by default (:meth:`start_recording`
            and :meth:`record_to` turn it on later).
        max_recording_gap: the most silence, in seconds, that one forward
            timestamp jump adds to the recording (a longer jump continues at
            the recording's end); a gap is also never filled past the real
            time elapsed since the last recorded packet.
        latch: accept media from the first source heard when it is not the
            negotiated one, and send there from then on (symmetric RTP,
            RFC 4961: for peers behind NAT whose SDP address is unreachable).
            Off by default: only the negotiated address and port are heard.
        media_timeout: seconds without RTP/RTCP from the peer before
            :attr:`on_timeout` is called (None: never).
        limit: the :class:`MediaStreamLimit` to take a slot from on
            :meth:`start` (default: :data:`DEFAULT_LIMIT`, process-wide; None:
            no cap).
        rng: randomness for the SSRC, first sequence number and timestamp
            (RFC 3550 §5.1); ``random.SystemRandom()`` when None.
        pacer: the :class:`~txsipua.net.pacer.Pacer` that calls the stream at
            each slot; None: the one shared by every stream of ``reactor``.
        rtcp_interval: send RTCP reports (RFC 3550) about every this many
            seconds (at least 5), on the RTP port when ``rtcp-mux`` was
            negotiated (RFC 5761), else from our RTCP socket (RTP port + 1,
            bound with the RTP one by :meth:`start`) to the peer's RTCP port;
            None: no RTCP (and no RTCP socket).
        cname: our RTCP CNAME (RFC 3550 §6.5.1); ``txsipua@<local_host>`` when None.

    Attributes:
        on_dtmf: called with each received digit (``"0"``-``"9"``, ``"*"``,
            ``"#"``, ``"A"``-``"D"``, ``"!"`` for flash), once per event.
        on_audio: called with each received packet's audio as 16-bit LE mono
            PCM at :attr:`sample_rate` (arrival order, no playout), or None
            (the sinks of :meth:`add_sink` get it too, at :data:`AUDIO_RATE`).
        codec: the negotiated :class:`~txsipua.media.codecs.AudioCodec`, or None.
        on_timeout: called (no arguments) once when ``media_timeout`` passes
            without media while the stream expects some, or None.
        latched: the ``(host, port)`` latched to (``latch=True``), or None.
        stats: the :class:`MediaStats` counters.
        params: the :class:`MediaParams` in force, or None before :meth:`configure`.
        ssrc: our SSRC.
    """

    def __init__(
        self,
        reactor: Any,
        *,
        local_host: str = "127.0.0.1",
        port: int = 0,
        ssrc: int | None = None,
        record: bool = False,
        max_recording_gap: float = MAX_RECORDING_GAP,
        latch: bool = False,
        media_timeout: float | None = MEDIA_TIMEOUT,
        limit: MediaStreamLimit | None = DEFAULT_LIMIT,
        rng: random.Random | None = None,
        pacer: Pacer | None = None,
        rtcp_interval: float | None = None,
        cname: str | None = None,
    ) -> None:
        self._reactor = reactor
        self._pacer = pacer if pacer is not None else pacer_for(reactor)
        self.local_host = local_host
        self._wanted_port = port
        rng = rng or random.SystemRandom()
        self.ssrc = ssrc if ssrc is not None else rng.getrandbits(32)
        self._sequence = rng.getrandbits(16)
        self._timestamp_base = rng.getrandbits(32)
        self._epoch: float | None = None
        self.params: MediaParams | None = None
        self.codec: AudioCodec | None = None
        self._encoder: Encoder | None = None
        self._decoders: dict[int, tuple[AudioCodec, Decoder]] = {}
        self.stats = MediaStats()
        self.on_dtmf: Callable[[str], object] | None = None
        self.on_audio: Callable[[bytes], object] | None = None
        self.on_timeout: Callable[[], object] | None = None
        self._sources = SourceFilter(latch)
        self._rtcp_sources = SourceFilter(latch)  # the RTCP socket's sources (without rtcp-mux)
        self._rtcp_listening: Any = None
        self._limit = limit
        self._has_slot = False
        self._media_timeout = media_timeout
        self._media_watch = MediaWatch(reactor, media_timeout, self._expecting_media, self._media_expired)
        self._listening: Any = None
        self._held = False
        self._stopped = False
        # sending
        self._audio = deque()
        self._digits = deque()
        self._pacing = False
        self._burst_start = 0.0
        self._slot_index = 0
        self._timestamp = 0
        self._talkspurt = True
        self._idle_silence = False
        # receiving
        self._detector = DtmfDetector()
        self._reception = ReceptionStatistics(self.stats)
        self._record = record
        self._record_path: str | None = None
        self._recording = Recording(max_recording_gap)
        self._max_recording_gap = max_recording_gap
        self._record_sink: WavSink | None = None
        self._sinks: list[Any] = []
        self._any_rate_sinks: list[Any] = []  # sinks of add_sink(any_rate=True): PCM at the codec's rate
        self._digit_sinks: list[Callable[[str], object]] = []
        self._playout_sink: Callable[[bytes], object] | None = None
        self._rng = rng
        self._rtcp_interval = rtcp_interval
        self._cname = cname or f"txsipua@{local_host}"
        self.reports: StreamReports | None = None
        self._srtp: SrtpTransform | None = None
        self.playout: Playout | None = None

    # --- lifecycle --------------------------------------------------------

    def start(self) -> int:
        """Bind the UDP socket; with ``rtcp_interval``, the RTCP socket on the next port too.

        With RTCP the RTP port is even and RTCP is bound on the odd port after
        it (RFC 3550 §11, :func:`~txsipua.net.rtcp_socket.bind_pair`); the
        pair takes one slot of the :class:`MediaStreamLimit`.  The RTCP socket
        is closed again when ``rtcp-mux`` is negotiated (:meth:`configure`).

        Returns:
            The local RTP port (an even port is not guaranteed with ``port=0``
            and no ``rtcp_interval``).

        Raises:
            MediaUnavailable: the :class:`MediaStreamLimit` has no slot left, or
                the socket cannot be opened (port taken, no file descriptor
                left); the stream holds nothing then.
        """
        if self._listening is not None:
            raise LocalProtocolError("the media stream is already listening")
        if self._limit is not None:
            if not self._limit.acquire():
                self.log.warn("media stream refused: {n} streams open (the cap)", n=self._limit.maximum)
                raise MediaUnavailable(f"too many media streams ({self._limit.maximum} open)")
            self._has_slot = True
        try:
            sockets = rtp_sockets_for(self._reactor)

            def listen(port: int, protocol: Any) -> Any:
                if sockets is not None:  # one reader for every RTP socket of the process, in batches
                    return sockets.listen(port, protocol, interface=self.local_host)
                return self._reactor.listenUDP(port, protocol, interface=self.local_host)

            if self._rtcp_interval is None:
                self._listening = listen(self._wanted_port, self)
            else:
                self._listening, self._rtcp_listening = bind_pair(
                    listen, self._wanted_port, self, RtcpProtocol(self.rtcp_datagram_received))
        except Exception as e:  # CannotListenError (EMFILE, EADDRINUSE...), OSError
            self._release_slot()
            self.log.warn("cannot open an RTP socket: {err}", err=e)
            raise MediaUnavailable(f"cannot open an RTP socket: {e}") from e
        return self.port

    def _release_slot(self) -> None:
        if self._has_slot and self._limit is not None:
            self._has_slot = False
            self._limit.release()

    def startProtocol(self) -> None:  # noqa: N802 - Twisted's name
        """Note the media clock's epoch when the transport is attached."""
        if self._epoch is None:
            self._epoch = self._reactor.seconds()
        self._media_watch.watch()

    def configure(self, params: MediaParams) -> None:
        """Use newly negotiated parameters (initial answer or any re-INVITE).

        Args:
            params: from :func:`txsipua.media.offer_answer.negotiate`.

        Raises:
            LocalProtocolError: the codec is not one of
                :data:`txsipua.media.codecs.CODECS`, or its library is not
                installed (the message names the extra).
        """
        codec = lookup(params.codec.name, params.codec.clock_rate)
        if codec is None:
            raise LocalProtocolError(f"cannot send {params.codec.rtpmap}: not a codec txsipua has")
        old = self.params
        if self.codec is not codec or old is None or old.ptime != params.ptime:
            try:
                self._encoder, decoder = codec.coders(min(max(params.ptime, MIN_PTIME), MAX_PTIME))
            except CodecUnavailable as e:
                raise LocalProtocolError(str(e)) from None
            self._decoders = {params.codec.payload_type: (codec, decoder)}
            self.codec = codec
            if self.playout is not None:
                self.playout.stop()
                self.playout = None  # made again for the new codec by the next packet
        if params.srtp != (old.srtp if old is not None else None):
            try:
                self._srtp = SrtpTransform(params.srtp) if params.srtp is not None else None
            except (SrtpUnavailable, ValueError) as e:
                raise LocalProtocolError(str(e)) from None
        self.params = params
        if self._rtcp_interval is not None and self.reports is None:
            self.reports = StreamReports(
                self._pacer, RtcpSession(self.ssrc, self._cname, codec.clock_rate), self._reception,
                self._sender_info, self.send_rtcp, self._rng, self._rtcp_interval)
            self.reports.start(self._reactor.seconds())
        moved = old is not None and (old.remote_address, old.remote_port) != (params.remote_address, params.remote_port)
        self._sources.reset(moved)  # judge sources afresh; a new destination latches again
        self._rtcp_sources.reset(moved)
        if params.rtcp_mux:
            self._close_rtcp()  # RFC 5761: RTCP shares the RTP port from now on
        if moved:
            self._talkspurt = True  # a new destination starts a new talkspurt
        if old is not None and (old.ptime, old.codec.clock_rate) != (params.ptime, params.codec.clock_rate):
            self._cancel_timer()  # the slot grid changes: start a new burst
        self._media_watch.heard(self._reactor.seconds())  # a fresh negotiation gets a full media timeout
        self._schedule()
        self._media_watch.watch()

    def stop(self) -> defer.Deferred[None]:
        """Stop sending and receiving, and release the socket.

        Pending :meth:`play` and :meth:`send_dtmf` Deferreds fire with
        False.  A digit whose end packets never came is reported to
        ``on_dtmf`` first, and the recording is written when
        :meth:`record_to` asked for it.  It always completes: an RTCP BYE
        the socket refuses (an address it cannot reach) is counted in
        ``stats.send_failed`` and the socket and stream slot are released
        all the same.

        Returns:
            A Deferred that fires when the port is closed.
        """
        if self._stopped:
            return defer.succeed(None)
        if self.reports is not None:
            self.reports.stop()
            if self.transport is not None:
                try:  # a BYE that cannot be made or sent must not keep the socket and slot (send_failed)
                    self.send_rtcp(self.reports.make(self._reactor.seconds(), bye=True))  # RFC 3550 §6.6
                except Exception:
                    self.log.failure("RTCP: the BYE could not be sent")
        self._stopped = True
        self._cancel_timer()
        if self.playout is not None:
            self.playout.stop()
        self._media_watch.unwatch()
        self._release_slot()
        for job in self._audio:
            job.puller.close()
        for deferred in [job.deferred for job in self._audio] + [job.deferred for job in self._digits]:
            deferred.callback(False)
        self._audio.clear()
        self._digits.clear()
        for digit in self._detector.flush():
            self._report_digit(digit)
        if self._record_sink is not None:
            self._recording.flush()
            self._record_sink.close()
        sinks, self._sinks = self._sinks, []
        for sink in sinks:
            try:
                sink.close()
            except Exception:
                self.log.failure("closing an audio sink failed")
        self._close_rtcp()
        listening, self._listening = self._listening, None
        if listening is not None:
            return defer.maybeDeferred(listening.stopListening)
        return defer.succeed(None)

    def _close_rtcp(self) -> None:
        """Close the RTCP socket, if any (``rtcp-mux`` negotiated, or stopping)."""
        rtcp, self._rtcp_listening = self._rtcp_listening, None
        if rtcp is not None:
            try:
                rtcp.stopListening()
            except Exception:
                self.log.failure("closing the RTCP socket failed")

    @property
    def rtcp_port(self) -> int | None:
        """The local RTCP port when RTCP has a socket of its own (no ``rtcp-mux``), else None."""
        if self._rtcp_listening is None:
            return None
        return int(self._rtcp_listening.getHost().port)

    def hold(self) -> None:
        """Pause sending (queued audio and digits wait), stop recording received audio and the media timeout."""
        self._held = True
        self._cancel_timer()
        self._media_watch.unwatch()

    def resume(self) -> None:
        """Undo :meth:`hold`: continue where playback stopped; the media timeout starts afresh."""
        self._held = False
        self._talkspurt = True
        self._media_watch.heard(self._reactor.seconds())
        self._schedule()
        self._media_watch.watch()

    # --- media timeout ------------------------------------------------------

    def _expecting_media(self) -> bool:
        return (
            not self._stopped
            and not self._held
            and self.transport is not None
            and self.params is not None
            and self.params.direction == "sendrecv"  # either side on hold: the peer may send nothing
            and self.params.remote_port != 0
            and self.params.remote_address not in ("0.0.0.0", "::")  # RFC 2543 hold
        )

    def _media_expired(self) -> None:
        self.log.warn("no media for {t} s", t=self._media_timeout)
        if self.on_timeout is not None:
            try:
                self.on_timeout()
            except Exception:
                self.log.failure("on_timeout callback failed")
