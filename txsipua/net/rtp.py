"""An RTP audio stream on a UDP socket: play, record and DTMF for call bots (RFC 3550, RFC 4733).

Theory of operation:

- :class:`MediaStream` is a :class:`~twisted.internet.protocol.DatagramProtocol`
  bound by :meth:`MediaStream.start` (or connected by hand to any datagram
  transport, as the tests do).  The reactor is injected; nothing here reads
  the global one.
- The negotiated parameters (:class:`~txsipua.media.offer_answer.MediaParams`)
  arrive through :meth:`MediaStream.configure`, again on every re-INVITE.
- Sending is paced by *slots* of ``ptime`` (20 ms): while there is something
  to send, the stream asks the process's one :class:`~txsipua.net.pacer.Pacer`
  (shared by every stream of the reactor: one timer, not one per stream) to
  call it at each slot's deadline, computed from the burst's start
  (``start + n * ptime``), so lateness never accumulates; a slot that is
  late is sent at once, and counted in ``stats.packets_late`` when more than
  5 ms late.  Each slot sends one packet: the next
  DTMF packet if digits are queued (audio pauses during events, RFC 4733
  §2.5.1.2), else the next audio frame.  The RTP timestamp advances by one
  frame per slot; a burst after silence starts with the marker bit (RFC 3551
  §4.1) at a timestamp taken from the clock.
- While held (:meth:`MediaStream.hold`) or when the negotiated direction
  forbids sending, queued audio and digits wait; they continue on resume.
- Idle silence (:meth:`MediaStream.send_silence_when_idle`, what a call's
  stream does): while the stream may send (configured, not held, direction
  sendrecv or sendonly) and nothing is queued, each slot carries an encoded
  silence frame, so the peer keeps receiving frames (its playout, its RTP
  timeout, NAT bindings).  It rides the same burst and pacer as audio: no
  timer of its own.  Comfort noise (RFC 3389) is not sent: txsipua does not
  negotiate CN.
- Received datagrams are accepted only from the negotiated source: the
  address and port of the peer's SDP (``c=`` and ``m=``, RFC 4566), or,
  when the stream was built with ``latch=True``, the first source heard
  after :meth:`MediaStream.configure` if that is not the negotiated one
  (symmetric RTP, RFC 4961: we then send there too).  Anything from another
  source is dropped and counted in :attr:`MediaStats.wrong_source`: it is
  neither recorded nor decoded for DTMF.
- Received packets are parsed (anything malformed is counted and dropped),
  counted for loss (RFC 3550 §6.4.1, Appendix A.3) and jitter (A.8);
  telephone events go through a :class:`~txsipua.media.dtmf.DtmfDetector`
  to :attr:`MediaStream.on_dtmf` once per digit; G.711 audio is decoded and
  written into the recording at the position its timestamp gives, so lost
  packets and silences become silence and reordering is undone.  A jump
  forward is filled with at most ``max_recording_gap`` seconds of silence,
  and never with more than the time that really passed since the last
  recorded packet (:class:`~txsipua.media.recording.Recording`).  Recording is opt-in
  (``record=True``, :meth:`MediaStream.start_recording`,
  :meth:`MediaStream.record_to`); :meth:`MediaStream.record_to` streams to
  its file, keeping only the last second in memory.
- Frames (:mod:`txsipua.media.audio`): :meth:`MediaStream.play` *pulls* an
  :class:`~txsipua.media.audio.IAudioSource` one 20 ms frame at a time (re-cut
  to ``ptime``); every decoded frame is *pushed* to each
  :class:`~txsipua.media.audio.IAudioSink` of :meth:`MediaStream.add_sink`
  and each digit to the callables of :meth:`MediaStream.add_digit_sink`.
  Cancelling a :meth:`MediaStream.play` Deferred stops that audio at once.
- A new SSRC from the accepted source (the peer restarted its stream)
  starts a new sequence count (the loss already counted is kept) and
  continues the recording at its end.
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
"""

from __future__ import annotations

import os
import random
import struct
from collections import deque
from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet import defer
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from txsipua.errors import LocalProtocolError, ParseError
from txsipua.media.audio import (
    FramePuller,
    IAudioSource,
    PCMSource,
    WavSink,
    resampled_sink,
    resampled_source,
)
from txsipua.media.codecs import AudioCodec, CodecUnavailable, Decoder, Encoder, lookup, resample
from txsipua.media.dtmf import DtmfDetector, digit_to_event, dtmf_packets
from txsipua.media.offer_answer import MediaParams
from txsipua.media.reception import MediaStats, ReceptionStatistics
from txsipua.media.recording import MAX_GAP, Recording
from txsipua.media.rtcp import RtcpSession, RtcpStats
from txsipua.media.rtp import RtpPacket, is_rtcp
from txsipua.media.srtp import SrtpError, SrtpTransform, SrtpUnavailable
from txsipua.media.wav import read_wav
from txsipua.net.media_limits import DEFAULT_LIMIT, MediaStreamLimit, MediaUnavailable
from txsipua.net.media_watch import MediaWatch
from txsipua.net.pacer import Pacer, pacer_for
from txsipua.net.playout import Playout
from txsipua.net.reports import StreamReports
from txsipua.net.source import SourceFilter

__all__ = ["DEFAULT_LIMIT", "MediaStats", "MediaStream", "MediaStreamLimit", "MediaUnavailable"]

_STATIC_DECODERS = {0: "pcmu", 8: "pcma"}  # heard whatever was negotiated
_RTP_HEADER = struct.Struct("!BBHII")
#: Default for ``max_recording_gap`` (:class:`~txsipua.media.recording.Recording`).
MAX_RECORDING_GAP = MAX_GAP
#: Default for ``media_timeout``: seconds without RTP or RTCP before ``on_timeout``.
MEDIA_TIMEOUT = 60.0
#: Bounds on the packet time we send with, in ms, whatever the peer asks for.
MIN_PTIME, MAX_PTIME = 10, 60
#: Slots of silence between two digits of one :meth:`MediaStream.send_dtmf` call.
DTMF_GAP_SLOTS = 3
#: A packet sent more than this many seconds after its slot's deadline counts in ``stats.packets_late``.
LATE_THRESHOLD = 0.005
#: The rate of the PCM the stream pulls from sources and pushes to sinks (G.711), Hz.
AUDIO_RATE = 8000



@attrs.define
class _Playback:
    puller: FramePuller  # the source, re-cut to the packet size
    deferred: defer.Deferred[bool]
    rate: int = 8000  # the rate the puller delivers


@attrs.define
class _DigitJob:
    digits: deque[str]
    deferred: defer.Deferred[bool]
    duration_ms: int = 100
    packets: deque[RtpPacket] = attrs.field(factory=deque)
    gap: int = 0


class MediaStream(DatagramProtocol):
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
            negotiated (RFC 5761), else to the peer's RTCP port; None: no RTCP.
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

    log = Logger()

    trace: Callable[[str, bytes, tuple[str, int], tuple[str, int]], object] | None = None
    """Optional: called as ``trace(direction, data, local, peer)`` with every datagram sent
    (``"send"``) and received (``"recv"``), e.g. to write it to a pcap file."""

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
        self._limit = limit
        self._has_slot = False
        self._media_timeout = media_timeout
        self._media_watch = MediaWatch(reactor, media_timeout, self._expecting_media, self._media_expired)
        self._listening: Any = None
        self._held = False
        self._stopped = False
        # sending
        self._audio: deque[_Playback] = deque()
        self._digits: deque[_DigitJob] = deque()
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
        """Bind the UDP socket.

        Returns:
            The local port (an even port is not guaranteed with ``port=0``).

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
            self._listening = self._reactor.listenUDP(self._wanted_port, self, interface=self.local_host)
        except Exception as e:  # CannotListenError (EMFILE, EADDRINUSE...), OSError
            self._release_slot()
            self.log.warn("cannot open an RTP socket: {err}", err=e)
            raise MediaUnavailable(f"cannot open an RTP socket: {e}") from e
        return self.port

    def _release_slot(self) -> None:
        if self._has_slot and self._limit is not None:
            self._has_slot = False
            self._limit.release()

    @property
    def port(self) -> int:
        """The bound local port (0 before :meth:`start`)."""
        if self._listening is None:
            return 0
        return int(self._listening.getHost().port)

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
        :meth:`record_to` asked for it.

        Returns:
            A Deferred that fires when the port is closed.
        """
        if self._stopped:
            return defer.succeed(None)
        if self.reports is not None:
            self.reports.stop()
            if self.transport is not None:
                self.send_rtcp(self.reports.make(self._reactor.seconds(), bye=True))  # RFC 3550 §6.6
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
        listening, self._listening = self._listening, None
        if listening is not None:
            return defer.maybeDeferred(listening.stopListening)
        return defer.succeed(None)

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

    # --- sending ------------------------------------------------------------

    def play(self, source: Any, *, rate: int = AUDIO_RATE) -> defer.Deferred[bool]:
        """Queue audio to send, one frame per ``ptime``.

        Args:
            source: an :class:`~txsipua.media.audio.IAudioSource` (pulled one
                20 ms frame per slot, resampled to the codec's rate
                (:attr:`sample_rate`) when its rate differs), 16-bit
                little-endian mono PCM at ``rate`` Hz, or the path of a WAV
                file (converted by :func:`txsipua.media.wav.read_wav`).
            rate: the rate of PCM given as bytes, Hz.

        Returns:
            A Deferred firing with True once the last frame is sent, or with
            False if the stream stops first; it fails with the error a source
            raised while read.  Cancelling it stops that audio at once (the
            source is closed; later audio goes on).  Audio queued before
            :meth:`configure` or while held waits.

        Raises:
            txsipua.media.wav.WavError: the WAV file cannot be read (raised
                at once, not through the Deferred).
            txsipua.media.audio.AudioError: the source's rate needs ``soxr``.
        """
        if IAudioSource.providedBy(source):
            pulled = resampled_source(source, self.sample_rate)
        else:
            if isinstance(source, bytes | bytearray | memoryview):
                pcm = bytes(source)
            else:
                pcm, _ = read_wav(source, rate=AUDIO_RATE)
                rate = AUDIO_RATE
            if len(pcm) % 2:
                raise ValueError("16-bit PCM must have an even number of octets")
            pulled = resampled_source(PCMSource(pcm, rate), self.sample_rate)
            if not pcm:
                return defer.succeed(True)
        job: _Playback

        def cancel(_: defer.Deferred[bool]) -> None:
            if job in self._audio:
                self._audio.remove(job)
            job.puller.close()

        d: defer.Deferred[bool] = defer.Deferred(cancel)
        job = _Playback(FramePuller(pulled), d, rate=pulled.rate)
        if self._stopped:
            pulled.close()
            d.callback(False)
            return d
        self._audio.append(job)
        self._schedule()
        return d

    def send_dtmf(self, digits: str, *, duration_ms: int = 100) -> defer.Deferred[bool]:
        """Queue DTMF digits as RFC 4733 telephone events.

        Each digit lasts ``duration_ms`` (then its end packet three times),
        digits are separated by a short silence; queued audio pauses meanwhile.

        Args:
            digits: e.g. ``"123#"``.
            duration_ms: tone length of each digit, milliseconds.

        Returns:
            A Deferred firing with True once the last end packet is sent
            (False if the stream stops first); it fails with
            :class:`~txsipua.errors.LocalProtocolError` when the peer
            negotiated no telephone-event.

        Raises:
            ValueError: a character that is not a DTMF digit.
        """
        for digit in digits:
            digit_to_event(digit)
        if self.params is not None and self.params.telephone_event_pt is None:
            return defer.fail(LocalProtocolError("the peer did not negotiate telephone-event (RFC 4733)"))
        d: defer.Deferred[bool] = defer.Deferred()
        if self._stopped:
            d.callback(False)
            return d
        if not digits:
            d.callback(True)
            return d
        job = _DigitJob(deque(digits), d, duration_ms)
        self._digits.append(job)
        self._schedule()
        return d

    def _can_send(self) -> bool:
        return (
            not self._held
            and not self._stopped
            and self.params is not None
            and self.params.sending
            and self.transport is not None
            and bool(self._audio or self._digits or self._idle_silence)
        )

    def send_silence_when_idle(self, on: bool = True) -> None:
        """Send an encoded silence frame every ``ptime`` while the stream may send and has nothing queued.

        Keeps the peer's frames flowing (a listening bot, a muted
        microphone), its RTP timeout and NAT bindings alive.  Nothing is sent
        while held, before :meth:`configure`, or when the direction is
        recvonly or inactive.  Off by default; a call's stream has it on
        (:attr:`~txsipua.ua.config.Configuration.idle_silence`).
        """
        self._idle_silence = on
        if on:
            self._schedule()

    def _cancel_timer(self) -> None:
        if self._pacing:
            self._pacing = False
            self._pacer.cancel(self)

    def _schedule(self) -> None:
        """Start a burst when there is something to send and none is running."""
        if self._pacing or not self._can_send():
            return
        assert self.params is not None
        now = self._reactor.seconds()
        if self._epoch is None:
            self._epoch = now
        rate = self.params.codec.clock_rate
        self._burst_start = now
        self._slot_index = 0
        self._timestamp = (self._timestamp_base + round((now - self._epoch) * rate)) & 0xFFFFFFFF
        self._talkspurt = True
        self._pacing = True
        self._pacer.schedule(self, now)

    def pace(self, now: float) -> float | None:
        """Send every slot due at ``now`` (called by the :class:`~txsipua.net.pacer.Pacer`).

        Args:
            now: the reactor's time, seconds.

        Returns:
            The next slot's deadline (absolute seconds), or None when there is
            nothing left to send (the burst ends).
        """
        self._pacing = True  # a play() from a callback below joins this burst
        if self.params is None:
            self._pacing = False
            return None
        interval = self._ptime() / 1000.0
        if now - (self._burst_start + self._slot_index * interval) > 0.2:
            # far behind (the reactor was blocked): restart the schedule from now
            self.stats.packets_late += 1
            self._burst_start = now
            self._slot_index = 0
        horizon = now + self._pacer.slack + 1e-9
        while self._can_send():
            deadline = self._burst_start + self._slot_index * interval
            if deadline > horizon:
                break
            if now - deadline > LATE_THRESHOLD:
                self.stats.packets_late += 1
            self._send_slot()
            self._slot_index += 1
            self._timestamp = (self._timestamp + self._samples_per_slot()) & 0xFFFFFFFF
        self._pacing = self._can_send()
        return self._burst_start + self._slot_index * interval if self._pacing else None

    def _ptime(self) -> int:
        """The packet time in ms: the peer's ptime, kept within 10-60 ms."""
        assert self.params is not None
        return min(max(self.params.ptime, MIN_PTIME), MAX_PTIME)

    def _samples_per_slot(self) -> int:
        """RTP timestamp units per slot (the RTP clock, not the PCM rate: they differ for G.722)."""
        assert self.params is not None
        return self.params.codec.clock_rate * self._ptime() // 1000

    @property
    def sample_rate(self) -> int:
        """The PCM rate of the negotiated codec (Hz; 8000 before :meth:`configure`)."""
        return self.codec.sample_rate if self.codec is not None else 8000

    def _send(self, packet: RtpPacket) -> None:
        packet = attrs.evolve(packet, sequence=self._sequence, ssrc=self.ssrc)
        self._write(packet.to_bytes(), len(packet.payload))

    def _write(self, data: bytes, payload_octets: int) -> None:
        assert self.params is not None and self.transport is not None
        self._sequence = (self._sequence + 1) & 0xFFFF
        transport: Any = self.transport  # IUDPTransport.write(packet, addr)
        destination = self.latched or (self.params.remote_address, self.params.remote_port)
        if self._srtp is not None:
            try:
                data = self._srtp.protect(data)
            except SrtpError as e:
                self._srtp_send_failed(e)
                return
        if self.trace is not None:
            self.trace("send", data, (self.local_host, self.port), destination)
        transport.write(data, destination)
        self.stats.packets_sent += 1
        self.stats.octets_sent += payload_octets

    def _send_slot(self) -> None:
        assert self.params is not None
        if self._digits:
            self._send_digit_slot(self._digits[0])
            return
        assert self.codec is not None and self._encoder is not None
        while self._audio:
            job = self._audio[0]
            try:  # the codec may have changed since the job was queued: convert its frames
                frame = job.puller.take(self.codec.frame_samples(self._ptime()) * 2 * job.rate // self.codec.sample_rate)
                if frame and job.rate != self.codec.sample_rate:
                    frame = resample(frame, job.rate, self.codec.sample_rate)
            except Exception as e:  # a source that cannot be read (a file gone...)
                self.log.failure("an audio source failed")
                self._audio.popleft()
                job.puller.close()
                job.deferred.errback(e)
                continue
            if frame:
                payload = self._encoder.encode(frame)
                second = self.params.codec.payload_type | (0x80 if self._talkspurt else 0)
                header = _RTP_HEADER.pack(0x80, second, self._sequence, self._timestamp, self.ssrc)
                self._write(header + payload, len(payload))
                self._talkspurt = False
            if job.puller.finished:
                self._audio.popleft()
                job.deferred.callback(True)
            if frame:
                return
        if self._idle_silence:  # nothing queued: silence keeps the peer's frames coming
            payload = self._encoder.encode(bytes(2 * self.codec.frame_samples(self._ptime())))
            second = self.params.codec.payload_type | (0x80 if self._talkspurt else 0)
            header = _RTP_HEADER.pack(0x80, second, self._sequence, self._timestamp, self.ssrc)
            self._write(header + payload, len(payload))
            self._talkspurt = False

    def _send_digit_slot(self, job: _DigitJob) -> None:
        assert self.params is not None and self.params.telephone_event_pt is not None
        if job.gap > 0:  # silence between digits
            job.gap -= 1
            return
        if not job.packets:
            job.packets = deque(dtmf_packets(
                job.digits[0],
                duration_ms=job.duration_ms,
                payload_type=self.params.telephone_event_pt,
                timestamp=self._timestamp,
                clock_rate=self.params.codec.clock_rate,
                packet_ms=self._ptime(),
            ))
        self._send(job.packets.popleft())
        if job.packets:
            return
        job.digits.popleft()
        self.stats.dtmf_sent += 1
        self._talkspurt = True
        if job.digits:
            job.gap = DTMF_GAP_SLOTS
        else:
            self._digits.popleft()
            job.deferred.callback(True)

    # --- receiving ----------------------------------------------------------

    def datagramReceived(self, data: bytes, addr: Any) -> None:  # noqa: N802 - Twisted's name
        """Handle one datagram: count it, report DTMF, record audio."""
        if self._stopped:
            return
        if self.trace is not None:
            self.trace("recv", data, (self.local_host, self.port), (addr[0], addr[1]))
        if not self._sources.accepts(addr, self.params):
            self.stats.wrong_source += 1
            return
        rtcp = is_rtcp(data)
        if self._srtp is not None:
            try:
                data = self._srtp.unprotect_rtcp(data) if rtcp else self._srtp.unprotect(data)
            except SrtpError as e:
                self.stats.srtp_failed += 1
                if self.stats.srtp_failed == 1 or self.stats.srtp_failed % 1000 == 0:
                    self.log.warn("SRTP: {n} packet(s) dropped, the peer's key does not match? ({err})",
                                  n=self.stats.srtp_failed, err=e)
                return
        now = self._reactor.seconds()
        self._media_watch.heard(now)
        if rtcp:
            self.stats.rtcp += 1
            if self.reports is not None:
                self.reports.receive(data, now)
            return
        try:
            packet = RtpPacket.parse(data)
        except ParseError:
            self.stats.invalid += 1
            return
        self.stats.packets_received += 1
        self.stats.octets_received += len(packet.payload)
        self._reception.count_sequence(packet)
        params = self.params
        if params is None:
            return
        if packet.payload_type in (params.telephone_event_pt, params.local_telephone_event_pt):
            try:
                digits = self._detector.receive(packet)
            except ParseError:
                self.stats.invalid += 1
                return
            for digit in digits:
                self._report_digit(digit)
            return
        coder = self._decoder_for(packet.payload_type)
        if coder is None:
            return
        codec, decoder = coder
        now = self._reactor.seconds()
        self._reception.update_jitter(packet, codec.clock_rate, now)
        if self._held or not params.receiving:
            return
        if self._playout_sink is not None and codec is self.codec:
            if self.playout is None:
                self.playout = Playout(self._pacer, codec, codec.coders(self._ptime())[1], self._ptime(),
                                       self._playout_sink)
            self.playout.push(packet.timestamp, packet.payload, now)
        if not (self._record or self.on_audio is not None or self._sinks):
            return  # nobody listens: no decoding
        try:
            pcm = decoder.decode(packet.payload)
        except ValueError:
            self.stats.invalid += 1
            return
        if self._record:
            cut = self._recording.gaps_cut
            timestamp = packet.timestamp
            if codec.clock_rate != 8000:  # the recording counts 8000 Hz units
                timestamp = (timestamp * 8000 // codec.clock_rate) & 0xFFFFFFFF
            self._recording.add(packet.ssrc, timestamp, resample(pcm, codec.sample_rate, AUDIO_RATE), now)
            self.stats.recording_gaps_cut += self._recording.gaps_cut - cut
        self.deliver_audio(pcm, codec.sample_rate)

    def deliver_audio(self, pcm: bytes, rate: int = AUDIO_RATE) -> None:
        """Push one decoded frame (PCM at ``rate`` Hz) to ``on_audio`` and, at :data:`AUDIO_RATE`, every sink.

        The receive path calls this once per frame, in playout order; a
        sink whose ``write`` raises is detached at its first failure (logged
        once, with the traceback; it is not closed).
        """
        if self.on_audio is not None:
            try:
                self.on_audio(pcm)
            except Exception:
                self.log.failure("on_audio callback failed")
        narrow: bytes | None = None  # the frame at AUDIO_RATE, made once when a sink needs it
        for sink in list(self._sinks):
            try:
                if sink in self._any_rate_sinks:
                    sink.write(pcm, rate)
                    continue
                if narrow is None:
                    narrow = resample(pcm, rate, AUDIO_RATE) if rate != AUDIO_RATE else pcm
                sink.write(narrow)
            except Exception:
                self.log.failure("an audio sink failed: detached from the stream")
                self.remove_sink(sink)

    def add_sink(self, sink: Any, *, any_rate: bool = False) -> Any:
        """Push every decoded frame to an :class:`~txsipua.media.audio.IAudioSink` from now on.

        The stream closes its sinks when it stops.  With ``any_rate=True`` the
        sink is called as ``sink.write(pcm, rate)`` with each frame at the
        codec's own rate (16000 Hz for G.722...), unconverted (what
        :class:`~txsipua.ua.audio.CallAudio` uses to keep wideband audio).

        Returns:
            What was attached: ``sink``, or a resampling wrapper when its rate
            is not :data:`AUDIO_RATE` (give that to :meth:`remove_sink`).

        Raises:
            txsipua.media.audio.AudioError: the sink's rate needs ``soxr``.
        """
        attached = sink if any_rate else resampled_sink(sink, AUDIO_RATE)
        if self._stopped:
            attached.close()
        else:
            self._sinks.append(attached)
            if any_rate:
                self._any_rate_sinks.append(attached)
        return attached

    def remove_sink(self, attached: Any) -> None:
        """Stop pushing frames to a sink :meth:`add_sink` attached (it is not closed)."""
        if attached in self._sinks:
            self._sinks.remove(attached)
        if attached in self._any_rate_sinks:
            self._any_rate_sinks.remove(attached)

    def add_digit_sink(self, sink: Callable[[str], object]) -> None:
        """Call ``sink`` with each received digit too (besides :attr:`on_dtmf`)."""
        self._digit_sinks.append(sink)

    def remove_digit_sink(self, sink: Callable[[str], object]) -> None:
        """Undo :meth:`add_digit_sink`."""
        if sink in self._digit_sinks:
            self._digit_sinks.remove(sink)

    def send_rtcp(self, data: bytes) -> None:
        """Send one compound RTCP packet (SRTCP when SRTP is on) to the peer's RTCP address.

        The RTP destination when ``rtcp-mux`` was negotiated (RFC 5761), else
        the peer's ``a=rtcp`` port or its RTP port + 1 (RFC 3550 §11).
        """
        params = self.params
        if params is None or self.transport is None or params.remote_port == 0:
            return
        if params.rtcp_mux:
            destination = self.latched or (params.remote_address, params.remote_port)
        else:
            destination = (params.remote_address, params.rtcp_port or params.remote_port + 1)
        if self._srtp is not None:
            try:
                data = self._srtp.protect_rtcp(data)
            except SrtpError as e:
                self._srtp_send_failed(e)
                return
        if self.trace is not None:
            self.trace("send", data, (self.local_host, self.port), destination)
        transport: Any = self.transport
        transport.write(data, destination)

    def _srtp_send_failed(self, error: SrtpError) -> None:
        """libsrtp refused to protect a packet: not sent, counted, logged at most once per 1000."""
        self.stats.srtp_send_failed += 1
        if self.stats.srtp_send_failed == 1 or self.stats.srtp_send_failed % 1000 == 0:
            self.log.warn("SRTP: {n} packet(s) not sent ({err})", n=self.stats.srtp_send_failed, err=error)

    @property
    def latched(self) -> tuple[str, int] | None:
        """The ``(host, port)`` latched to (``latch=True``), or None."""
        return self._sources.latched

    @property
    def rtcp_stats(self) -> RtcpStats | None:
        """What RTCP told (round trip, the peer's loss and jitter of our stream), or None without RTCP."""
        return self.reports.stats if self.reports is not None else None

    def _sender_info(self, now: float) -> tuple[int, int, int]:
        """(packets sent, octets sent, our RTP timestamp at ``now``) for an SR (RFC 3550 §6.4.1)."""
        rate = self.params.codec.clock_rate if self.params is not None else 8000
        epoch = self._epoch if self._epoch is not None else now
        timestamp = (self._timestamp_base + round((now - epoch) * rate)) & 0xFFFFFFFF
        return self.stats.packets_sent, self.stats.octets_sent, timestamp

    def _decoder_for(self, payload_type: int) -> tuple[AudioCodec, Decoder] | None:
        """The decoder of the negotiated codec, or of static G.711 the peer may send anyway."""
        coder = self._decoders.get(payload_type)
        if coder is None and payload_type in _STATIC_DECODERS:
            codec = lookup(_STATIC_DECODERS[payload_type])
            assert codec is not None
            coder = self._decoders[payload_type] = (codec, codec.coders()[1])
        return coder

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

    def _report_digit(self, digit: str) -> None:
        self.stats.dtmf_received += 1
        for sink in [self.on_dtmf, *self._digit_sinks]:
            if sink is None:
                continue
            try:
                sink(digit)
            except Exception:
                self.log.failure("on_dtmf callback failed for {digit!r}", digit=digit)

    def play_out(self, sink: Callable[[bytes], object] | None) -> None:
        """Hand received audio to ``sink`` one frame per packet time, through a jitter buffer.

        ``sink`` gets 16-bit LE mono PCM at :attr:`sample_rate`, one ``ptime``
        frame at a time at the pace of the process's pacer, in timestamp
        order; missing frames are concealed (:class:`~txsipua.net.playout.Playout`,
        :class:`~txsipua.media.jitter.JitterBuffer`).  None stops it.
        """
        self._playout_sink = sink
        if sink is None and self.playout is not None:
            self.playout.stop()
            self.playout = None

    def start_recording(self) -> None:
        """Keep received audio in memory from now on (:meth:`recorded`); about 16 kB/s."""
        self._record = True

    def record_to(self, path: str | os.PathLike[str]) -> None:
        """Record received audio to a WAV file (8000 Hz mono), written as it comes.

        Only the last second (:data:`~txsipua.media.recording.WINDOW`, to undo
        reordering) is held in memory; the file is completed on :meth:`stop`.
        Audio recorded in memory before (:meth:`start_recording`) opens the file.

        Raises:
            OSError: the file cannot be created.
        """
        if self._record_sink is not None:
            raise LocalProtocolError("the stream already records to a file")
        sink = WavSink(path, AUDIO_RATE)
        sink.write(self._recording.pcm())
        self._record = True
        self._record_path = os.fspath(path)
        self._record_sink = sink
        self._recording = Recording(self._max_recording_gap, writer=sink.write)

    def recorded(self) -> bytes:
        """Received audio held in memory, 16-bit little-endian mono PCM at 8000 Hz.

        All of it with ``record=True`` or :meth:`start_recording`; with
        :meth:`record_to`, only the part not yet written to the file.
        """
        return self._recording.pcm()
