"""RTCP reports (txsipua.media.rtcp): wire format, loss fractions, round trip (RFC 3550 §6.4)."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from txsipua.errors import ParseError
from txsipua.media.reception import MediaStats, ReceptionStatistics
from txsipua.media.rtcp import (
    Goodbye,
    ReceiverReport,
    ReportBlock,
    RtcpSession,
    SenderReport,
    SourceDescription,
    build_compound,
    parse_compound,
)
from txsipua.media.rtp import RtpPacket, is_rtcp


def test_sender_report_round_trip_with_sdes_and_bye() -> None:
    """An SR with one block, its CNAME and a BYE parse back to the same values; it looks like RTCP on a muxed port."""
    block = ReportBlock(0xAABBCCDD, 64, -3, 70000, 123, 0x12345678, 65536)
    sr = SenderReport(0x01020304, 0x1122334455667788, 4000, 50, 8000, (block,))
    data = build_compound(sr, "bot@192.0.2.10", bye=True)
    assert len(data) % 4 == 0 and is_rtcp(data)
    packets = parse_compound(data)
    assert packets == [sr, SourceDescription(((0x01020304, "bot@192.0.2.10"),)), Goodbye((0x01020304,))]


def test_receiver_report_round_trip() -> None:
    """An RR without blocks is 8 octets plus the SDES."""
    rr = ReceiverReport(7)
    packets = parse_compound(build_compound(rr, "x"))
    assert packets[0] == rr


@pytest.mark.parametrize("data", [b"", b"\x80\xc8", b"\x40\xc8\x00\x01abcd", b"\x80\xc8\x00\x09abcd",
                                  b"\x81\xc9\x00\x01abcd"])
def test_bad_rtcp_raises_parse_error(data: bytes) -> None:
    """Short, wrong version, overrunning lengths and truncated blocks are ParseError."""
    with pytest.raises(ParseError):
        parse_compound(data)


@given(st.binary(max_size=200))
def test_only_parse_error_escapes(data: bytes) -> None:
    """Whatever the bytes, parse_compound returns or raises ParseError."""
    with contextlib.suppress(ParseError):
        parse_compound(data)


def feed(reception: ReceptionStatistics, sequences: list[int]) -> None:
    """Count packets of SSRC 9 with these sequence numbers."""
    for seq in sequences:
        reception.count_sequence(RtpPacket(0, seq & 0xFFFF, seq * 160 & 0xFFFFFFFF, 9))


def test_fraction_lost_per_interval_and_cumulative() -> None:
    """Each report's fraction covers its interval only (Appendix A.3); the cumulative count grows."""
    reception = ReceptionStatistics(MediaStats())
    session = RtcpSession(1, "a", 8000)
    feed(reception, [s for s in range(99) if s % 4 != 3])  # 0..98: 24 of 99 lost
    first = parse_compound(session.report(10.0, packets_sent=0, octets_sent=0, rtp_timestamp=0, sent=False,
                                          reception=reception))[0]
    assert isinstance(first, ReceiverReport)
    (block,) = first.blocks
    assert block.ssrc == 9 and block.fraction_lost == 24 * 256 // 99 and block.cumulative_lost == 24
    assert block.highest_sequence == 98
    feed(reception, list(range(99, 200)))  # nothing lost
    second = parse_compound(session.report(15.0, packets_sent=5, octets_sent=800, rtp_timestamp=1, sent=True,
                                           reception=reception))[0]
    assert isinstance(second, SenderReport) and second.packet_count == 5
    assert second.blocks[0].fraction_lost == 0 and second.blocks[0].cumulative_lost == 24


def test_round_trip_from_lsr_and_dlsr() -> None:
    """A sends an SR; B answers 0.3 s later with LSR/DLSR; A computes the 0.1 s network round trip."""
    a, b = RtcpSession(1, "a", 8000), RtcpSession(2, "b", 8000)
    rec_a, rec_b = ReceptionStatistics(MediaStats()), ReceptionStatistics(MediaStats())
    rec_b.count_sequence(RtpPacket(0, 1, 0, 1))  # b hears a's SSRC 1
    sr = a.report(100.0, packets_sent=10, octets_sent=1600, rtp_timestamp=0, sent=True, reception=rec_a)
    b.receive(sr, 100.05)  # one way: 50 ms
    rr = b.report(100.35, packets_sent=0, octets_sent=0, rtp_timestamp=0, sent=False, reception=rec_b)
    a.receive(rr, 100.4)
    assert a.stats.round_trip == pytest.approx(0.1, abs=0.001)
    assert b.stats.remote_cname == "a" and a.stats.remote_cname == "b"
    assert a.stats.reports_received == 1 and a.stats.reports_sent == 1


def test_garbage_is_counted_not_raised() -> None:
    """A datagram that is not RTCP is counted as invalid by the session."""
    session = RtcpSession(1, "a", 8000)
    session.receive(b"\x80\xc8" + struct.pack("!H", 200), 0.0)
    assert session.stats.invalid == 1 and session.stats.reports_received == 0


def test_interval_is_bounded() -> None:
    """The interval is 5 s times a factor kept within 0.5-1.5."""
    assert RtcpSession.interval(2, 0.1) == 2.5 and RtcpSession.interval(2, 3) == 7.5
