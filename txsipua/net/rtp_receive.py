"""The receiving half of an RTP stream: sources, loss and jitter, DTMF, audio to sinks and recording.

Theory of operation (RFC 3550, RFC 4733, RFC 4961):

- Received datagrams are accepted only from the negotiated source: the
  address and port of the peer's SDP (``c=`` and ``m=``, RFC 4566), or,
  when the stream was built with ``latch=True``, the first source heard
  after :meth:`~txsipua.net.rtp.MediaStream.configure` if that is not the
  negotiated one (symmetric RTP, RFC 4961: we then send there too).
  Anything from another source is dropped and counted in
  :attr:`~txsipua.media.reception.MediaStats.wrong_source`: it is neither
  recorded nor decoded for DTMF.
- Received packets are parsed (anything malformed is counted and dropped),
  counted for loss (RFC 3550 §6.4.1, Appendix A.3) and jitter (A.8);
  telephone events go through a :class:`~txsipua.media.dtmf.DtmfDetector`
  to ``on_dtmf`` once per digit; G.711 audio is decoded and
  written into the recording at the position its timestamp gives, so lost
  packets and silences become silence and reordering is undone.  A jump
  forward is filled with at most ``max_recording_gap`` seconds of silence,
  and never with more than the time that really passed since the last
  recorded packet (:class:`~txsipua.media.recording.Recording`).  Recording is opt-in
  (``record=True``, :meth:`RtpReceiver.start_recording`,
  :meth:`RtpReceiver.record_to`); :meth:`RtpReceiver.record_to` streams to
  its file, keeping only the last second in memory.
- The usual packet (version 2, no CSRC, extension or padding: first octet
  0x80) is read by :func:`~txsipua.media.rtp.plain_fields` into ints and a
  payload, without an :class:`~txsipua.media.rtp.RtpPacket`; any other goes
  through :meth:`~txsipua.media.rtp.RtpPacket.parse`, which judges it.  Both
  give the same fields (a hypothesis test says so).
- Frames (:mod:`txsipua.media.audio`): every decoded frame is *pushed* to
  each :class:`~txsipua.media.audio.IAudioSink` of :meth:`RtpReceiver.add_sink`
  and each digit to the callables of :meth:`RtpReceiver.add_digit_sink`.
- A new SSRC from the accepted source (the peer restarted its stream)
  starts a new sequence count (the loss already counted is kept) and
  continues the recording at its end.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from txsipua.errors import LocalProtocolError, ParseError
from txsipua.media.audio import WavSink, resampled_sink
from txsipua.media.codecs import AudioCodec, Decoder, lookup, resample
from txsipua.media.dtmf import DtmfDetector
from txsipua.media.reception import ReceptionStatistics
from txsipua.media.recording import Recording
from txsipua.media.rtcp import RtcpStats
from txsipua.media.rtp import RtpPacket, is_rtcp, plain_fields
from txsipua.media.srtp import SrtpError
from txsipua.net.media_watch import MediaWatch
from txsipua.net.playout import Playout
from txsipua.net.reports import StreamReports
from txsipua.net.rtp_send import AUDIO_RATE, RtpSender

__all__ = ["RtpReceiver"]

_STATIC_DECODERS = {0: "pcmu", 8: "pcma"}  # heard whatever was negotiated


class RtpReceiver(RtpSender):
    """Receiving for :class:`~txsipua.net.rtp.MediaStream`: every datagram of its socket.

    Not used alone: :class:`~txsipua.net.rtp.MediaStream` sets the state
    declared here in its ``__init__``.
    """

    on_dtmf: Callable[[str], object] | None
    on_audio: Callable[[bytes], object] | None
    reports: StreamReports | None
    playout: Playout | None
    _decoders: dict[int, tuple[AudioCodec, Decoder]]
    _media_watch: MediaWatch
    _detector: DtmfDetector
    _reception: ReceptionStatistics
    _record: bool
    _record_path: str | None
    _recording: Recording
    _max_recording_gap: float
    _record_sink: WavSink | None
    _sinks: list[Any]
    _any_rate_sinks: list[Any]
    _digit_sinks: list[Callable[[str], object]]
    _playout_sink: Callable[[bytes], object] | None

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
            self._rtcp_received(data, now)
            return
        fields = plain_fields(data)  # the usual packet, read without an RtpPacket
        if fields is None:
            try:
                parsed = RtpPacket.parse(data)
            except ParseError:
                self.stats.invalid += 1
                return
            fields = (parsed.payload_type, parsed.marker, parsed.sequence, parsed.timestamp, parsed.ssrc,
                      parsed.payload)
        payload_type, marker, sequence, timestamp, ssrc, payload = fields
        stats = self.stats
        stats.packets_received += 1
        stats.octets_received += len(payload)
        self._reception.count(ssrc, sequence)
        params = self.params
        if params is None:
            return
        if payload_type in (params.telephone_event_pt, params.local_telephone_event_pt):
            try:
                digits = self._detector.receive(RtpPacket(payload_type, sequence, timestamp, ssrc, marker, payload))
            except ParseError:
                self.stats.invalid += 1
                return
            for digit in digits:
                self._report_digit(digit)
            return
        coder = self._decoders.get(payload_type) or self._decoder_for(payload_type)
        if coder is None:
            return
        codec, decoder = coder
        self._reception.jitter(timestamp, codec.clock_rate, now)
        if self._held or not params.receiving:
            return
        if self._playout_sink is not None and codec is self.codec:
            if self.playout is None:
                self.playout = Playout(self._pacer, codec, codec.coders(self._ptime())[1], self._ptime(),
                                       self._playout_sink)
            self.playout.push(timestamp, payload, now)
        if not (self._record or self.on_audio is not None or self._sinks):
            return  # nobody listens: no decoding
        try:
            pcm = decoder.decode(payload)
        except ValueError:
            self.stats.invalid += 1
            return
        if self._record:
            cut = self._recording.gaps_cut
            if codec.clock_rate != 8000:  # the recording counts 8000 Hz units
                timestamp = (timestamp * 8000 // codec.clock_rate) & 0xFFFFFFFF
            self._recording.add(ssrc, timestamp, resample(pcm, codec.sample_rate, AUDIO_RATE), now)
            self.stats.recording_gaps_cut += self._recording.gaps_cut - cut
        self.deliver_audio(pcm, codec.sample_rate)

    def rtcp_datagram_received(self, data: bytes, addr: Any) -> None:
        """Handle one datagram of the RTCP socket (no ``rtcp-mux``: our RTP port + 1, RFC 3550 §11).

        Heard only from the peer's RTCP address (its ``a=rtcp`` port, RFC
        3605, else its RTP port + 1) or, with ``latch``, the first other
        source (RFC 4961); SRTCP is unprotected (RFC 3711); then handled as
        multiplexed RTCP is.
        """
        if self._stopped:
            return
        params = self.params
        if self.trace is not None:
            self.trace("recv", data, (self.local_host, self.port + 1), (addr[0], addr[1]))
        expected = None if params is None else (params.rtcp_port or params.remote_port + 1)
        if not self._rtcp_sources.accepts(addr, params, expected):
            self.stats.wrong_source += 1
            return
        if self._srtp is not None:
            try:
                data = self._srtp.unprotect_rtcp(data)
            except SrtpError as e:
                self.stats.srtp_failed += 1
                if self.stats.srtp_failed == 1 or self.stats.srtp_failed % 1000 == 0:
                    self.log.warn("SRTCP: {n} packet(s) dropped, the peer's key does not match? ({err})",
                                  n=self.stats.srtp_failed, err=e)
                return
        now = self._reactor.seconds()
        self._media_watch.heard(now)
        self._rtcp_received(data, now)

    def _rtcp_received(self, data: bytes, now: float) -> None:
        """One RTCP compound packet (clear text), from the RTP or the RTCP socket."""
        self.stats.rtcp += 1
        if self.reports is not None:
            self.reports.receive(data, now)

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


    @property
    def latched(self) -> tuple[str, int] | None:
        """The ``(host, port)`` latched to (``latch=True``), or None."""
        return self._sources.latched

    @property
    def rtcp_stats(self) -> RtcpStats | None:
        """What RTCP told (round trip, the peer's loss and jitter of our stream), or None without RTCP."""
        return self.reports.stats if self.reports is not None else None


    def _decoder_for(self, payload_type: int) -> tuple[AudioCodec, Decoder] | None:
        """The decoder of the negotiated codec, or of static G.711 the peer may send anyway."""
        coder = self._decoders.get(payload_type)
        if coder is None and payload_type in _STATIC_DECODERS:
            codec = lookup(_STATIC_DECODERS[payload_type])
            assert codec is not None
            coder = self._decoders[payload_type] = (codec, codec.coders()[1])
        return coder


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
