"""RFC 3550 Appendix A reception statistics, pure: loss across wraps and SSRC changes, jitter."""

from __future__ import annotations

from txsipua.media.reception import MediaStats, ReceptionStatistics
from txsipua.media.rtp import RtpPacket


def packet(seq: int, ts: int = 0, ssrc: int = 0x1234) -> RtpPacket:
    return RtpPacket(payload_type=0, sequence=seq & 0xFFFF, timestamp=ts, ssrc=ssrc, payload=b"\xff" * 160)


def test_loss_counts_gaps_across_the_sequence_wrap() -> None:
    """65534, 65535, (0 lost), 1, 2: one lost, the cycle counted (A.1, A.3)."""
    stats = MediaStats()
    rx = ReceptionStatistics(stats)
    for seq in (65534, 65535, 1, 2):
        rx.count_sequence(packet(seq))
    assert stats.packets_lost == 1 and stats.duplicates == 0


def test_duplicates_and_late_packets_are_not_loss() -> None:
    stats = MediaStats()
    rx = ReceptionStatistics(stats)
    for seq in (10, 12, 12, 11):  # 11 arrives late: received after all
        rx.count_sequence(packet(seq))
    assert stats.duplicates == 1 and stats.packets_lost == 0


def test_a_new_ssrc_keeps_the_loss_counted_before() -> None:
    stats = MediaStats()
    rx = ReceptionStatistics(stats)
    for seq in (1, 3):
        rx.count_sequence(packet(seq))
    rx.count_sequence(packet(500, ssrc=0x9999))
    rx.count_sequence(packet(501, ssrc=0x9999))
    assert stats.ssrc_changes == 1 and stats.packets_lost == 1


def test_jitter_is_zero_for_regular_arrivals_and_grows_with_variance() -> None:
    """Packets 20 ms apart arriving 20 ms apart: J stays 0; a 10 ms late one moves it by D/16."""
    stats = MediaStats()
    rx = ReceptionStatistics(stats)
    for n in range(5):
        rx.update_jitter(packet(n, ts=160 * n), 8000, 0.020 * n)
    assert stats.jitter == 0.0
    rx.update_jitter(packet(5, ts=800), 8000, 0.100 + 0.010)
    assert abs(stats.jitter - 0.010 / 16) < 1e-9
