"""RTCP sender and receiver reports (RFC 3550 §6.4), SDES CNAME (§6.5) and BYE (§6.6), sans-IO.

A compound packet (§6.1) starts with an SR (we sent RTP since the last
report) or an RR, then an SDES with our CNAME::

    SR:  V=2 P RC | PT=200 | length | SSRC of sender
         NTP timestamp (64) | RTP timestamp | sender's packet count | octet count
         report blocks...
    RR:  V=2 P RC | PT=201 | length | SSRC of packet sender | report blocks...
    report block: SSRC_n | fraction lost (8) | cumulative lost (24)
                  extended highest sequence number | interarrival jitter
                  last SR (LSR) | delay since last SR (DLSR)

:class:`RtcpSession` keeps what one stream needs: the "prior" counts for the
fraction lost of each interval (Appendix A.3), the middle 32 bits of the last
SR heard and when (for LSR/DLSR), and the round-trip time computed from the
report blocks the peer sends about us (§6.4.1: ``A - LSR - DLSR``).  Times
are ``now`` in seconds on any clock; NTP timestamps are ``now`` plus the
1900-1970 offset, which is right when ``now`` is the Unix time (the real
reactor) and self-consistent otherwise.  Pure: no clock, no randomness (the
report interval's random factor is given by the caller).
"""

from __future__ import annotations

import struct

import attrs

from txsipua.errors import ParseError
from txsipua.media.reception import ReceptionStatistics

__all__ = [
    "MIN_INTERVAL",
    "Goodbye",
    "ReceiverReport",
    "ReportBlock",
    "RtcpSession",
    "RtcpStats",
    "SenderReport",
    "SourceDescription",
    "build_compound",
    "parse_compound",
]

#: The minimum report interval, seconds (RFC 3550 §6.2).
MIN_INTERVAL = 5.0
NTP_OFFSET = 2208988800  # seconds from 1900 to 1970
SR, RR, SDES, BYE = 200, 201, 202, 203


@attrs.frozen
class ReportBlock:
    """One reception report block (RFC 3550 §6.4.1).

    Attributes:
        ssrc: the source reported on.
        fraction_lost: lost / expected since the previous report, 0-255 (x/256).
        cumulative_lost: packets lost since the start (24-bit signed).
        highest_sequence: extended highest sequence number received.
        jitter: interarrival jitter, RTP timestamp units.
        lsr: middle 32 bits of the last SR's NTP timestamp from that source, 0 if none.
        dlsr: delay since that SR, 1/65536 s.
    """

    ssrc: int
    fraction_lost: int
    cumulative_lost: int
    highest_sequence: int
    jitter: int
    lsr: int = 0
    dlsr: int = 0

    def to_bytes(self) -> bytes:
        lost = self.cumulative_lost & 0xFFFFFF
        return struct.pack("!IIIIII", self.ssrc, (self.fraction_lost << 24) | lost, self.highest_sequence,
                           self.jitter, self.lsr, self.dlsr)

    @classmethod
    def parse(cls, data: bytes, offset: int) -> ReportBlock:
        ssrc, word, highest, jitter, lsr, dlsr = struct.unpack_from("!IIIIII", data, offset)
        lost = word & 0xFFFFFF
        if lost & 0x800000:
            lost -= 0x1000000
        return cls(ssrc, word >> 24, lost, highest, jitter, lsr, dlsr)


@attrs.frozen
class SenderReport:
    """An SR (RFC 3550 §6.4.1): sender info and report blocks."""

    ssrc: int
    ntp: int  # 64-bit NTP timestamp
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    blocks: tuple[ReportBlock, ...] = ()


@attrs.frozen
class ReceiverReport:
    """An RR (RFC 3550 §6.4.2)."""

    ssrc: int
    blocks: tuple[ReportBlock, ...] = ()


@attrs.frozen
class SourceDescription:
    """An SDES chunk list reduced to each source's CNAME (RFC 3550 §6.5)."""

    cnames: tuple[tuple[int, str], ...] = ()


@attrs.frozen
class Goodbye:
    """A BYE (RFC 3550 §6.6)."""

    ssrcs: tuple[int, ...] = ()


Packet = SenderReport | ReceiverReport | SourceDescription | Goodbye


def _header(count: int, packet_type: int, body: bytes) -> bytes:
    assert len(body) % 4 == 0
    return struct.pack("!BBH", 0x80 | count, packet_type, len(body) // 4) + body


def _sdes(ssrc: int, cname: str) -> bytes:
    text = cname.encode("utf-8")[:255]
    chunk = struct.pack("!IBB", ssrc, 1, len(text)) + text + b"\0"
    chunk += bytes(-len(chunk) % 4)
    return _header(1, SDES, chunk)


def build_compound(report: SenderReport | ReceiverReport, cname: str, *, bye: bool = False) -> bytes:
    """A compound RTCP packet: the report, SDES CNAME, and BYE when ``bye`` (RFC 3550 §6.1).

    Raises:
        ValueError: more than 31 report blocks.
    """
    if len(report.blocks) > 31:
        raise ValueError("at most 31 report blocks in one report")
    blocks = b"".join(b.to_bytes() for b in report.blocks)
    if isinstance(report, SenderReport):
        body = struct.pack("!IQIII", report.ssrc, report.ntp, report.rtp_timestamp,
                           report.packet_count & 0xFFFFFFFF, report.octet_count & 0xFFFFFFFF) + blocks
        out = _header(len(report.blocks), SR, body)
    else:
        out = _header(len(report.blocks), RR, struct.pack("!I", report.ssrc) + blocks)
    out += _sdes(report.ssrc, cname)
    if bye:
        out += _header(1, BYE, struct.pack("!I", report.ssrc))
    return out


def parse_compound(data: bytes) -> list[Packet]:
    """Parse a compound RTCP packet; packet types we do not use are skipped.

    Raises:
        ParseError: not RTCP version 2, or a length that overruns the datagram.
    """
    data = bytes(data)
    out: list[Packet] = []
    offset = 0
    if len(data) < 8:
        raise ParseError(f"RTCP packet too short ({len(data)} octets)")
    while offset < len(data):
        if len(data) - offset < 4:
            raise ParseError("RTCP packet truncated in a header")
        first, packet_type, words = struct.unpack_from("!BBH", data, offset)
        if first >> 6 != 2:
            raise ParseError(f"RTCP version {first >> 6}, expected 2")
        end = offset + 4 + 4 * words
        if end > len(data):
            raise ParseError("RTCP length longer than the datagram")
        count = first & 0x1F
        body = offset + 4
        try:
            if packet_type == SR:
                ssrc, ntp, rtp_ts, packets, octets = struct.unpack_from("!IQIII", data, body)
                blocks = tuple(ReportBlock.parse(data, body + 24 + 24 * i) for i in range(count))
                if body + 24 + 24 * count > end:
                    raise ParseError("SR report blocks overrun its length")
                out.append(SenderReport(ssrc, ntp, rtp_ts, packets, octets, blocks))
            elif packet_type == RR:
                (ssrc,) = struct.unpack_from("!I", data, body)
                if body + 4 + 24 * count > end:
                    raise ParseError("RR report blocks overrun its length")
                out.append(ReceiverReport(ssrc, tuple(ReportBlock.parse(data, body + 4 + 24 * i)
                                                      for i in range(count))))
            elif packet_type == SDES:
                out.append(SourceDescription(tuple(_parse_sdes(data, body, end, count))))
            elif packet_type == BYE:
                out.append(Goodbye(struct.unpack_from(f"!{count}I", data, body)))
        except struct.error:
            raise ParseError(f"RTCP packet type {packet_type} truncated") from None
        offset = end
    return out


def _parse_sdes(data: bytes, offset: int, end: int, count: int) -> list[tuple[int, str]]:
    out = []
    for _ in range(count):
        (ssrc,) = struct.unpack_from("!I", data, offset)
        offset += 4
        cname = ""
        while offset < end and data[offset] != 0:
            kind, length = data[offset], data[offset + 1]
            if kind == 1:
                cname = data[offset + 2 : offset + 2 + length].decode("utf-8", "replace")
            offset += 2 + length
        offset += 1
        offset += -offset % 4
        out.append((ssrc, cname))
    return out


@attrs.define
class RtcpStats:
    """What RTCP told about one call's stream (RFC 3550 §6.4).

    Attributes:
        reports_sent: compound packets sent.
        reports_received: compound packets received and parsed.
        round_trip: the last round-trip time, seconds (None until the peer
            reported on one of our SRs).
        remote_fraction_lost: the peer's last fraction lost of our stream (0.0-1.0).
        remote_cumulative_lost: packets of ours the peer counts as lost.
        remote_jitter: the jitter the peer measured on our stream, seconds.
        remote_cname: the peer's CNAME, or "".
        remote_bye: the peer sent BYE.
        invalid: RTCP datagrams that did not parse.
    """

    reports_sent: int = 0
    reports_received: int = 0
    round_trip: float | None = None
    remote_fraction_lost: float = 0.0
    remote_cumulative_lost: int = 0
    remote_jitter: float = 0.0
    remote_cname: str = ""
    remote_bye: bool = False
    invalid: int = 0


class RtcpSession:
    """The RTCP of one RTP stream: builds our reports, reads the peer's (RFC 3550 §6.4).

    Args:
        ssrc: our SSRC.
        cname: our CNAME (RFC 3550 §6.5.1), e.g. ``"user@192.0.2.10"``.
        clock_rate: the RTP clock rate of our stream, Hz (for the jitter we report
            and the peer's jitter we read).
    """

    def __init__(self, ssrc: int, cname: str, clock_rate: int) -> None:
        self.ssrc = ssrc
        self.cname = cname
        self.clock_rate = clock_rate
        self.stats = RtcpStats()
        self._expected_prior = 0
        self._received_prior = 0
        self._last_sr: tuple[int, float] | None = None  # (middle 32 bits, arrival)

    @staticmethod
    def interval(members: int, factor: float) -> float:
        """The next report interval, seconds: the 5 s minimum times ``factor`` (0.5-1.5, random, §6.3.1)."""
        del members  # two members: the minimum applies (§6.2)
        return MIN_INTERVAL * min(max(factor, 0.5), 1.5)

    def report(self, now: float, *, packets_sent: int, octets_sent: int, rtp_timestamp: int, sent: bool,
               reception: ReceptionStatistics | None, bye: bool = False) -> bytes:
        """Our compound packet at ``now``: an SR when ``sent`` (we sent RTP since the last report), else an RR.

        Args:
            now: seconds.
            packets_sent: RTP packets sent since the start.
            octets_sent: payload octets sent since the start.
            rtp_timestamp: the RTP timestamp matching ``now`` on our stream.
            sent: we sent RTP since the previous report.
            reception: the statistics of the source we receive, or None.
            bye: end with a BYE.
        """
        blocks: tuple[ReportBlock, ...] = ()
        if reception is not None:
            snap = reception.snapshot()
            if snap is not None:
                ssrc, highest, expected, received, jitter_units = snap
                exp_int = expected - self._expected_prior
                rec_int = received - self._received_prior
                self._expected_prior, self._received_prior = expected, received
                lost_int = exp_int - rec_int
                fraction = 0 if exp_int <= 0 or lost_int <= 0 else min(255, (lost_int << 8) // exp_int)
                cumulative = max(-0x800000, min(0x7FFFFF, expected - received))
                lsr = dlsr = 0
                if self._last_sr is not None:
                    lsr = self._last_sr[0]
                    dlsr = int((now - self._last_sr[1]) * 65536) & 0xFFFFFFFF
                blocks = (ReportBlock(ssrc, fraction, cumulative, highest & 0xFFFFFFFF,
                                      int(jitter_units) & 0xFFFFFFFF, lsr, dlsr),)
        report: SenderReport | ReceiverReport
        if sent:
            report = SenderReport(self.ssrc, _ntp(now), rtp_timestamp & 0xFFFFFFFF, packets_sent, octets_sent,
                                  blocks)
        else:
            report = ReceiverReport(self.ssrc, blocks)
        self.stats.reports_sent += 1
        return build_compound(report, self.cname, bye=bye)

    def receive(self, data: bytes, now: float) -> None:
        """Read the peer's compound packet: LSR for our next report, round trip, the peer's view of us.

        A datagram that does not parse is counted in ``stats.invalid``.
        """
        try:
            packets = parse_compound(data)
        except ParseError:
            self.stats.invalid += 1
            return
        self.stats.reports_received += 1
        for packet in packets:
            if isinstance(packet, SenderReport):
                self._last_sr = ((packet.ntp >> 16) & 0xFFFFFFFF, now)
            if isinstance(packet, SenderReport | ReceiverReport):
                for block in packet.blocks:
                    if block.ssrc == self.ssrc:
                        self._about_us(block, now)
            elif isinstance(packet, SourceDescription) and packet.cnames:
                self.stats.remote_cname = packet.cnames[0][1]
            elif isinstance(packet, Goodbye):
                self.stats.remote_bye = True

    def _about_us(self, block: ReportBlock, now: float) -> None:
        stats = self.stats
        stats.remote_fraction_lost = block.fraction_lost / 256
        stats.remote_cumulative_lost = block.cumulative_lost
        stats.remote_jitter = block.jitter / self.clock_rate
        if block.lsr:
            arrival = (_ntp(now) >> 16) & 0xFFFFFFFF
            rtt = ((arrival - block.lsr - block.dlsr) & 0xFFFFFFFF) / 65536
            if rtt < 60:  # a wrapped or bogus value is not a round trip
                stats.round_trip = rtt


def _ntp(now: float) -> int:
    seconds = now + NTP_OFFSET
    whole = int(seconds)
    return ((whole & 0xFFFFFFFF) << 32) | int((seconds - whole) * (1 << 32)) & 0xFFFFFFFF
