"""Reception statistics of one RTP stream: sequence, loss and jitter (RFC 3550 §6.4, Appendix A).

Pure: no Twisted, no clock (the arrival time is given in seconds).
:class:`MediaStats` holds the counters a stream exposes;
:class:`ReceptionStatistics` keeps the per-source state RFC 3550 Appendix
A.1/A.3 (extended highest sequence number, cycles, expected vs received) and
A.8 (interarrival jitter) needs, and writes its results into a MediaStats.
"""

from __future__ import annotations

import attrs

from txsipua.media.rtp import RtpPacket

__all__ = ["MediaStats", "ReceptionStatistics"]


@attrs.define
class MediaStats:
    """Counters of one stream (RFC 3550 §6.4 vocabulary).

    Attributes:
        packets_sent: RTP packets sent (audio and events).
        octets_sent: payload octets sent.
        packets_received: valid RTP packets received.
        octets_received: payload octets received.
        packets_lost: expected minus received, from sequence numbers
            (RFC 3550 Appendix A.3; never negative).
        duplicates: packets received twice or too late to count as new.
        invalid: datagrams that were not RTP (counted, dropped).
        rtcp: RTCP packets seen on the RTP port (ignored).
        wrong_source: datagrams from a source other than the negotiated (or
            latched) one, dropped unread.
        ssrc_changes: times the accepted source started a new SSRC.
        recording_gaps_cut: timestamp jumps not filled with silence in full.
        dtmf_sent: digits sent.
        dtmf_received: digits reported to ``on_dtmf``.
        jitter: interarrival jitter estimate in seconds (RFC 3550 §6.4.1).
        srtp_failed: packets that failed SRTP/SRTCP authentication (a
            wrong key, tampering, replay), dropped.
        packets_late: packets sent more than 5 ms after their slot's
            deadline (the reactor was busy), judged when each was written.
        packets_skipped: slots missed by more than 0.2 s (the process was
            blocked) and skipped: their packet was never sent (its audio
            dropped, the RTP timestamp advanced past it).
        srtp_send_failed: packets (RTP or RTCP) libsrtp refused to protect
            (e.g. over its 1500 octets), not sent.
        send_failed: packets (RTP or RTCP) the socket refused to send (an
            address it cannot reach: IPv6 to an IPv4 socket, a broadcast,
            an invalid address; a datagram too long), dropped.
    """

    packets_sent: int = 0
    octets_sent: int = 0
    packets_received: int = 0
    octets_received: int = 0
    packets_lost: int = 0
    duplicates: int = 0
    invalid: int = 0
    rtcp: int = 0
    wrong_source: int = 0
    ssrc_changes: int = 0
    recording_gaps_cut: int = 0
    dtmf_sent: int = 0
    dtmf_received: int = 0
    jitter: float = 0.0
    packets_late: int = 0
    srtp_failed: int = 0
    srtp_send_failed: int = 0
    send_failed: int = 0
    packets_skipped: int = 0



class ReceptionStatistics:
    """Loss and jitter of the packets received from one source (RFC 3550 Appendix A.1, A.3, A.8).

    A new SSRC (the peer restarted its stream) starts a new sequence count;
    the loss already counted is kept.  No probation: the first packet of a
    source is taken as its base.

    Args:
        stats: the counters to update (``packets_lost``, ``duplicates``,
            ``ssrc_changes``, ``jitter``).
    """

    __slots__ = ("_base_seq", "_counted", "_cycles", "_jitter_units", "_lost_before", "_max_seq",
                 "_source_ssrc", "_transit", "stats")

    def __init__(self, stats: MediaStats) -> None:
        self.stats = stats
        self._source_ssrc: int | None = None
        self._base_seq = 0
        self._max_seq = 0
        self._cycles = 0
        self._counted = 0
        self._lost_before = 0  # loss counted under earlier SSRCs
        self._transit: float | None = None
        self._jitter_units = 0.0

    def count_sequence(self, packet: RtpPacket) -> None:
        """Count ``packet`` for loss: expected minus received (Appendix A.1, A.3)."""
        self.count(packet.ssrc, packet.sequence)

    def count(self, ssrc: int, seq: int) -> None:
        """:meth:`count_sequence` for a packet of SSRC ``ssrc`` and sequence number ``seq``.

        The fields as ints, so the receive path needs no
        :class:`~txsipua.media.rtp.RtpPacket`.
        """
        stats = self.stats
        if ssrc != self._source_ssrc:
            if self._source_ssrc is not None:
                stats.ssrc_changes += 1
                self._lost_before = stats.packets_lost
            self._source_ssrc = ssrc
            self._base_seq = self._max_seq = seq
            self._cycles = 0
            self._counted = 1
            self._transit = None
            return
        delta = (seq - self._max_seq) & 0xFFFF
        if delta == 0 or delta >= 0x8000:
            stats.duplicates += int(delta == 0)
            if delta >= 0x8000:
                self._counted += 1  # late, counted as received
        else:
            if seq < self._max_seq:
                self._cycles += 0x10000
            self._max_seq = seq
            self._counted += 1
        expected = self._cycles + self._max_seq - self._base_seq + 1
        stats.packets_lost = self._lost_before + max(0, expected - self._counted)

    def snapshot(self) -> tuple[int, int, int, int, float] | None:
        """What a reception report (RFC 3550 §6.4.1) needs, or None before the first packet.

        Returns:
            ``(ssrc, extended highest sequence number, expected, received,
            jitter in timestamp units)``; counts are since the current SSRC began.
        """
        if self._source_ssrc is None:
            return None
        highest = self._cycles + self._max_seq
        expected = highest - self._base_seq + 1
        return self._source_ssrc, highest, expected, self._counted, self._jitter_units

    def update_jitter(self, packet: RtpPacket, rate: int, arrival: float) -> None:
        """Update the interarrival jitter with ``packet`` (Appendix A.8).

        Args:
            packet: an audio packet of the negotiated codec.
            rate: its clock rate, Hz.
            arrival: when it arrived, seconds (any fixed origin).
        """
        self.jitter(packet.timestamp, rate, arrival)

    def jitter(self, timestamp: int, rate: int, arrival: float) -> None:
        """:meth:`update_jitter` for a packet of RTP timestamp ``timestamp``.

        Args:
            timestamp: the RTP timestamp of an audio packet of the negotiated codec.
            rate: its clock rate, Hz.
            arrival: when it arrived, seconds (any fixed origin).
        """
        transit = arrival * rate - timestamp
        if self._transit is not None:
            d = abs(transit - self._transit)
            if d < rate * 60:  # ignore timestamp wraps and jumps
                self._jitter_units += (d - self._jitter_units) / 16.0
        self._transit = transit
        self.stats.jitter = self._jitter_units / rate
