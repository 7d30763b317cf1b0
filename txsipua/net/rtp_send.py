"""The sending half of an RTP stream: paced slots of audio, DTMF and idle silence (RFC 3550, RFC 4733).

Theory of operation:

- Sending is paced by *slots* of ``ptime`` (20 ms): while there is something
  to send, the stream asks the process's one :class:`~txsipua.net.pacer.Pacer`
  (shared by every stream of the reactor: one timer, not one per stream) to
  call it at each slot's deadline, computed from the burst's start
  (``start + n * ptime``), so lateness never accumulates.  Each slot sends
  one packet: the next DTMF packet if digits are queued (audio pauses during
  events, RFC 4733 §2.5.1.2), else the next audio frame.  The RTP timestamp
  advances by one frame per slot; a burst after silence starts with the
  marker bit (RFC 3551 §4.1) at a timestamp taken from the clock.
- Lateness is judged when the packet goes out: the reactor's clock is read
  as each slot is sent (not the pacer tick's start, which may be long past
  when the 600th stream of a tick is served), and a packet sent more than
  :data:`LATE_THRESHOLD` (5 ms) after its slot's deadline counts in
  ``stats.packets_late``.  A slot up to :data:`SKIP_THRESHOLD` (0.2 s) late
  is still sent (a few slots due together go out at once).
- A slot missed by more than :data:`SKIP_THRESHOLD` (the process was
  blocked) is *skipped*, with every slot missed since: its audio frame is
  consumed and dropped, so a prompt stays on the wall clock (a 4 s prompt
  still ends about 4 s after it started); the RTP timestamp advances by the
  skipped slots, so it keeps following the sampling clock (RFC 3550 §5.1)
  and the peer sees a gap (loss), not a shift; the sequence number does not
  jump (it counts packets sent); each skipped slot that would have carried
  a packet counts in ``stats.packets_skipped``.  Only the slot due now is
  sent then: no burst of catch-up packets, and the stream keeps its place on
  its grid, so streams started at different instants stay spread over the
  frame instead of all sending in the same tick from then on.  A DTMF event
  (RFC 4733) in progress stays coherent: its packets due in the skipped
  slots are dropped like audio (the ones after carry the durations of their
  own slots, all at the event's timestamp), but its final packets (E bit)
  are never dropped: they go out once sending resumes, so the event ends
  with its full duration; digits and audio queued behind it wait for them.
- While held or when the negotiated direction forbids sending, queued audio
  and digits wait; they continue on resume.
- Idle silence (:meth:`RtpSender.send_silence_when_idle`, what a call's
  stream does): while the stream may send (configured, not held, direction
  sendrecv or sendonly) and nothing is queued, each slot carries an encoded
  silence frame, so the peer keeps receiving frames (its playout, its RTP
  timeout, NAT bindings).  It rides the same burst and pacer as audio: no
  timer of its own.  Comfort noise (RFC 3389) is not sent: txsipua does not
  negotiate CN.
- Frames (:mod:`txsipua.media.audio`): :meth:`RtpSender.play` *pulls* an
  :class:`~txsipua.media.audio.IAudioSource` one 20 ms frame at a time (re-cut
  to ``ptime``).  Cancelling a :meth:`RtpSender.play` Deferred stops that
  audio at once.
- An audio packet's header is written by one ``struct`` call into a new
  datagram with the encoded payload: no :class:`~txsipua.media.rtp.RtpPacket`
  per packet (DTMF packets, rare, are built as packets).
- A datagram the socket refuses (an address it cannot reach, a datagram too
  long) is dropped and counted in ``stats.send_failed``, as a full buffer is
  (:mod:`txsipua.net.rtp_sockets`): pacing goes on, and a re-INVITE to a good
  address is heard at once.  :meth:`RtpSender.pace` never lets an error end a
  stream that still has something to send.

:class:`RtpSender` is the base of :class:`~txsipua.net.rtp.MediaStream`
(lifecycle, negotiation) through :class:`~txsipua.net.rtp_receive.RtpReceiver`;
it declares the state the three share.
"""

from __future__ import annotations

import random
import struct
from collections import deque
from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet import defer, error
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from txsipua.errors import LocalProtocolError
from txsipua.media.audio import FramePuller, IAudioSource, PCMSource, resampled_source
from txsipua.media.codecs import AudioCodec, Encoder, resample
from txsipua.media.dtmf import DtmfEvent, digit_to_event, dtmf_packets
from txsipua.media.offer_answer import MediaParams
from txsipua.media.reception import MediaStats
from txsipua.media.rtp import RtpPacket
from txsipua.media.srtp import SrtpError, SrtpTransform
from txsipua.media.wav import read_wav
from txsipua.net.pacer import Pacer
from txsipua.net.source import SourceFilter

__all__ = ["AUDIO_RATE", "DTMF_GAP_SLOTS", "LATE_THRESHOLD", "MAX_PTIME", "MIN_PTIME", "SKIP_THRESHOLD", "RtpSender"]

_RTP_HEADER = struct.Struct("!BBHII")
#: Bounds on the packet time we send with, in ms, whatever the peer asks for.
MIN_PTIME, MAX_PTIME = 10, 60
#: Slots of silence between two digits of one :meth:`RtpSender.send_dtmf` call.
DTMF_GAP_SLOTS = 3
#: A packet sent more than this many seconds after its slot's deadline counts in ``stats.packets_late``.
LATE_THRESHOLD = 0.005
#: A slot missed by more than this many seconds is skipped (not sent), counted in ``stats.packets_skipped``.
SKIP_THRESHOLD = 0.2
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




class RtpSender(DatagramProtocol):
    """Sending for :class:`~txsipua.net.rtp.MediaStream`: queued audio and digits, paced by slots.

    Not used alone: :class:`~txsipua.net.rtp.MediaStream` sets the state
    declared here in its ``__init__``.
    """

    log = Logger()

    trace: Callable[[str, bytes, tuple[str, int], tuple[str, int]], object] | None = None
    """Optional: called as ``trace(direction, data, local, peer)`` with every datagram sent
    (``"send"``) and received (``"recv"``), e.g. to write it to a pcap file."""

    # state shared with the receiving half and the stream (set by MediaStream.__init__)
    _reactor: Any
    _pacer: Pacer
    _listening: Any
    _sources: SourceFilter
    _rtcp_sources: SourceFilter
    _rtcp_listening: Any
    _srtp: SrtpTransform | None
    _rng: random.Random
    local_host: str
    ssrc: int
    params: MediaParams | None
    codec: AudioCodec | None
    stats: MediaStats
    _held: bool
    _stopped: bool
    # sending state
    _encoder: Encoder | None
    _sequence: int
    _timestamp_base: int
    _epoch: float | None
    _audio: deque[_Playback]
    _digits: deque[_DigitJob]
    _pacing: bool
    _burst_start: float
    _slot_index: int
    _timestamp: int
    _talkspurt: bool
    _idle_silence: bool
    _shape_of: MediaParams | None = None  # the params _shape was worked out for
    _shape: tuple[float, int, int] = (0.02, 160, 160)
    _pace_failures: int = 0  # unexpected errors in pace(), for logging

    @property
    def port(self) -> int:
        """The bound local port (0 before :meth:`~txsipua.net.rtp.MediaStream.start`)."""
        if self._listening is None:
            return 0
        return int(self._listening.getHost().port)

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
        """Called by the :class:`~txsipua.net.pacer.Pacer`: :meth:`_pace`, never losing the stream.

        An unexpected error while sending a slot (an encoder, a source
        wrapper...) is logged (at most once per 1000) and the stream goes on
        at the next slot while it has something to send: the Pacer never
        drops a running stream, and ``_pacing`` never stays set without a
        deadline (which would stop :meth:`_schedule` for good).
        """
        try:
            return self._pace(now)
        except Exception:
            self._pace_failures += 1
            if self._pace_failures == 1 or self._pace_failures % 1000 == 0:
                self.log.failure("RTP: sending a slot failed ({n} time(s))", n=self._pace_failures)
            self._pacing = self._can_send()
            return now + (self._shape[0] if self._shape_of is not None else 0.02) if self._pacing else None

    def _pace(self, now: float) -> float | None:
        """Send every slot due at ``now``.

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
        interval, units, _ = self._slot_shape()
        clock = self._reactor.seconds
        horizon = now + self._pacer.slack + 1e-9
        sending = self._can_send()
        while sending:
            deadline = self._burst_start + self._slot_index * interval
            if deadline > horizon:
                break
            behind = clock() - deadline  # judged as the packet goes out, not at the tick's start
            if behind > SKIP_THRESHOLD:
                # far behind (the reactor was blocked): skip the slots missed, keeping the stream's place
                # on its grid: re-aligned on `now`, every stream blocked together would send in one burst
                self._skip_slots(int(behind / interval + 1e-6))  # up to the slot due now (float-safe)
                sending = self._can_send()
                continue
            if behind > LATE_THRESHOLD:
                self.stats.packets_late += 1
            self._send_slot()
            self._slot_index += 1
            self._timestamp = (self._timestamp + units) & 0xFFFFFFFF
            sending = self._can_send()  # a callback of the slot may have held, stopped or emptied the stream
        self._pacing = sending
        return self._burst_start + self._slot_index * interval if self._pacing else None

    def _skip_slots(self, slots: int) -> None:
        """Skip ``slots`` slots missed: consume what they would have sent, advance the timestamp, count them.

        The sequence number is left as it is (RFC 3550: it counts packets
        sent); the RTP timestamp advances by every slot skipped (§5.1).  Each
        slot that would have carried a packet counts in
        ``stats.packets_skipped``.
        """
        units = self._slot_shape()[1]
        while slots > 0 and self._can_send():
            if not (self._digits or self._audio):  # idle silence only: nothing to consume, skip the rest at once
                self.stats.packets_skipped += slots
                break
            dropped = self._skip_slot()
            if dropped is None:  # a DTMF event's end waits to be sent: nothing more to consume
                break
            self.stats.packets_skipped += dropped
            self._slot_index += 1
            self._timestamp = (self._timestamp + units) & 0xFFFFFFFF
            slots -= 1
        # the rest (or, the stream having nothing more to send, slots of no consequence)
        self._slot_index += slots
        self._timestamp = (self._timestamp + slots * units) & 0xFFFFFFFF

    def _skip_slot(self) -> int | None:
        """Consume what this slot would have sent, sending nothing.

        Returns:
            1 if a packet was dropped, 0 if the slot had none (a pause between
            digits), None if what comes next must not be dropped (a DTMF
            event's end packets): the rest of the slots consume nothing.
        """
        assert self.params is not None
        if self._digits:
            job = self._digits[0]
            if job.gap > 0:
                job.gap -= 1
                return 0
            if not job.packets:
                job.packets = self._digit_packets(job)
            if DtmfEvent.parse(job.packets[0].payload).end:
                return None  # the event's end is never dropped: it goes out once sending resumes
            job.packets.popleft()
            return 1
        while self._audio:
            job_ = self._audio[0]
            frame = self._take_frame(job_)
            if frame is None:
                continue
            if job_.puller.finished:
                self._audio.popleft()
                job_.deferred.callback(True)
            if frame:
                return 1
        return int(self._idle_silence)

    def _slot_shape(self) -> tuple[float, int, int]:
        """(slot length in seconds, RTP timestamp units per slot, PCM samples per slot) of the params in force.

        Worked out once per :class:`~txsipua.media.offer_answer.MediaParams`
        (the packet path asks for it every slot).
        """
        params = self.params
        if params is not self._shape_of:
            assert params is not None
            ptime = min(max(params.ptime, MIN_PTIME), MAX_PTIME)
            samples = self.codec.frame_samples(ptime) if self.codec is not None else 8 * ptime
            self._shape = (ptime / 1000.0, params.codec.clock_rate * ptime // 1000, samples)
            self._shape_of = params
        return self._shape

    def _ptime(self) -> int:
        """The packet time in ms: the peer's ptime, kept within 10-60 ms."""
        assert self.params is not None
        return min(max(self.params.ptime, MIN_PTIME), MAX_PTIME)

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
        destination = self._sources.latched or (self.params.remote_address, self.params.remote_port)
        if self._srtp is not None:
            try:
                data = self._srtp.protect(data)
            except SrtpError as e:
                self._srtp_send_failed(e)
                return
        if self.trace is not None:
            self.trace("send", data, (self.local_host, self.port), destination)
        if self._transmit(data, destination):
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
            frame = self._take_frame(job)
            if frame is None:
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
            payload = self._encoder.encode(bytes(2 * self._slot_shape()[2]))
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
            job.packets = self._digit_packets(job)
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

    def _take_frame(self, job: _Playback) -> bytes | None:
        """The next frame of ``job`` at the codec's rate (``b""`` once over); None when its source failed.

        A failed source is logged, dropped from the queue and its Deferred failed.
        """
        assert self.codec is not None
        try:  # the codec may have changed since the job was queued: convert its frames
            frame = job.puller.take(self._slot_shape()[2] * 2 * job.rate // self.codec.sample_rate)
            if frame and job.rate != self.codec.sample_rate:
                frame = resample(frame, job.rate, self.codec.sample_rate)
        except Exception as e:  # a source that cannot be read (a file gone...)
            self.log.failure("an audio source failed")
            self._audio.popleft()  # job is the queue head
            job.puller.close()
            job.deferred.errback(e)
            return None
        return frame

    def _digit_packets(self, job: _DigitJob) -> deque[RtpPacket]:
        """The packets of ``job``'s next digit, starting at the current slot's timestamp (RFC 4733 §2.5.1)."""
        assert self.params is not None and self.params.telephone_event_pt is not None
        return deque(dtmf_packets(
            job.digits[0],
            duration_ms=job.duration_ms,
            payload_type=self.params.telephone_event_pt,
            timestamp=self._timestamp,
            clock_rate=self.params.codec.clock_rate,
            packet_ms=self._ptime(),
        ))


    def send_rtcp(self, data: bytes) -> None:
        """Send one compound RTCP packet (SRTCP when SRTP is on) to the peer's RTCP address.

        The RTP destination when ``rtcp-mux`` was negotiated (RFC 5761), else
        the peer's ``a=rtcp`` port (RFC 3605) or its RTP port + 1 (RFC 3550
        §11), or the RTCP source latched to (RFC 4961), sent from our RTCP
        socket (RTP port + 1) when there is one.
        """
        params = self.params
        if params is None or self.transport is None or params.remote_port == 0:
            return
        transport: Any = self.transport
        local_port = self.port
        if params.rtcp_mux:
            destination = self._sources.latched or (params.remote_address, params.remote_port)
        else:
            destination = self._rtcp_sources.latched or (
                params.remote_address, params.rtcp_port or params.remote_port + 1)
            if self._rtcp_listening is not None:
                transport = self._rtcp_listening
                local_port = int(transport.getHost().port)
        if self._srtp is not None:
            try:
                data = self._srtp.protect_rtcp(data)
            except SrtpError as e:
                self._srtp_send_failed(e)
                return
        if self.trace is not None:
            self.trace("send", data, (self.local_host, local_port), destination)
        self._transmit(data, destination, transport)

    def _transmit(self, data: bytes, destination: tuple[str, int], transport: Any = None) -> bool:
        """Write one datagram; a socket error drops it (counted, logged at most once per 1000).

        Args:
            data: the datagram.
            destination: ``(host, port)``.
            transport: the socket to send from (the RTCP socket); None for the RTP one.

        Returns:
            True when the transport took the datagram.
        """
        if transport is None:
            transport = self.transport  # IUDPTransport.write(packet, addr)
        try:
            transport.write(data, destination)
        except (OSError, error.InvalidAddressError, error.MessageLengthError) as e:
            # an address the socket cannot send to (IPv6 on IPv4, a broadcast, 0.0.0.1...): the
            # packet is lost as a network would lose it; the stream goes on (a re-INVITE may fix it)
            self.stats.send_failed += 1
            if self.stats.send_failed == 1 or self.stats.send_failed % 1000 == 0:
                self.log.warn("RTP: {n} packet(s) not sent to {dest} ({err})",
                              n=self.stats.send_failed, dest=destination, err=e)
            return False
        return True

    def _srtp_send_failed(self, error: SrtpError) -> None:
        """libsrtp refused to protect a packet: not sent, counted, logged at most once per 1000."""
        self.stats.srtp_send_failed += 1
        if self.stats.srtp_send_failed == 1 or self.stats.srtp_send_failed % 1000 == 0:
            self.log.warn("SRTP: {n} packet(s) not sent ({err})", n=self.stats.srtp_send_failed, err=error)


    def _sender_info(self, now: float) -> tuple[int, int, int]:
        """(packets sent, octets sent, our RTP timestamp at ``now``) for an SR (RFC 3550 §6.4.1)."""
        rate = self.params.codec.clock_rate if self.params is not None else 8000
        epoch = self._epoch if self._epoch is not None else now
        timestamp = (self._timestamp_base + round((now - epoch) * rate)) & 0xFFFFFFFF
        return self.stats.packets_sent, self.stats.octets_sent, timestamp

