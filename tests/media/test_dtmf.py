"""Tests for txsipua.media.dtmf: RFC 4733 payload layout, packet sequences and de-duplication."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from txsipua.errors import ParseError
from txsipua.media.dtmf import DtmfDetector, DtmfEvent, digit_to_event, dtmf_packets, event_to_digit
from txsipua.media.rtp import RtpPacket


def test_digit_codes():
    """RFC 4733 Table 7: 0-9, * = 10, # = 11, A-D = 12-15, flash = 16."""
    assert [digit_to_event(d) for d in "0123456789*#ABCDabcd!"] == [*range(16), 12, 13, 14, 15, 16]
    assert [event_to_digit(e) for e in (0, 9, 10, 11, 15, 16, 17, 255)] == [
        "0", "9", "*", "#", "D", "!", None, None]
    for bad in ("", "E", "55", " "):
        with pytest.raises(ValueError):
            digit_to_event(bad)


def test_payload_layout():
    """event | E R volume | duration, network order (RFC 4733 §2.3)."""
    assert DtmfEvent("#", end=True, volume=10, duration=800).to_bytes() == bytes([11, 0x80 | 10, 0x03, 0x20])
    assert DtmfEvent(5, volume=63, duration=160).to_bytes() == bytes([5, 63, 0x00, 0xA0])
    parsed = DtmfEvent.parse(bytes([11, 0xC0 | 7, 0xFF, 0xFF]))  # R bit set: ignored
    assert parsed == DtmfEvent(11, end=True, volume=7, duration=65535)
    assert parsed.digit == "#"
    assert DtmfEvent.parse(bytes([1, 0x8A, 0, 1, 9, 9, 9, 9])).event == 1  # redundancy trailer ignored


def test_payload_errors():
    """Short payloads raise ParseError; out-of-range fields ValueError."""
    with pytest.raises(ParseError):
        DtmfEvent.parse(b"\x01\x02\x03")
    with pytest.raises(ValueError):
        DtmfEvent(1, volume=64)
    with pytest.raises(ValueError):
        DtmfEvent(1, duration=70000)
    with pytest.raises(ValueError):
        DtmfEvent("x")


@given(st.integers(0, 255), st.booleans(), st.integers(0, 63), st.integers(0, 0xFFFF))
def test_payload_round_trip(event, end, volume, duration):
    """Every payload value round-trips."""
    ev = DtmfEvent(event, end=end, volume=volume, duration=duration)
    assert DtmfEvent.parse(ev.to_bytes()) == ev


def test_packet_sequence_for_100ms_digit():
    """Start with marker, growing durations, then the end packet three times; one timestamp."""
    packets = dtmf_packets("5", duration_ms=100, payload_type=101, ssrc=9, sequence=65534, timestamp=4000)
    events = [DtmfEvent.parse(p.payload) for p in packets]
    assert [(e.duration, e.end) for e in events] == [
        (160, False), (320, False), (480, False), (640, False), (800, True), (800, True), (800, True)]
    assert [p.marker for p in packets] == [True] + [False] * 6
    assert {p.timestamp for p in packets} == {4000}
    assert [p.sequence for p in packets] == [65534, 65535, 0, 1, 2, 3, 4]
    assert {(p.payload_type, p.ssrc) for p in packets} == {(101, 9)}
    assert {e.event for e in events} == {5}


def test_packet_sequence_short_and_odd_durations():
    """A 20 ms digit: one start packet then three ends; 50 ms is rounded into 20 ms packets."""
    short = [DtmfEvent.parse(p.payload) for p in dtmf_packets("#", duration_ms=20)]
    assert [(e.duration, e.end) for e in short] == [(160, False)] + [(160, True)] * 3
    odd = [DtmfEvent.parse(p.payload) for p in dtmf_packets("1", duration_ms=50)]
    assert [(e.duration, e.end) for e in odd] == [(160, False), (320, False)] + [(400, True)] * 3
    with pytest.raises(ValueError):
        dtmf_packets("1", duration_ms=9000)
    with pytest.raises(ValueError):
        dtmf_packets("1", duration_ms=0)


def test_detector_reports_each_digit_once():
    """Repeated end packets and late updates are ignored; each event is reported on its first end."""
    detector = DtmfDetector()
    seen = []
    stream = dtmf_packets("1", timestamp=0) + dtmf_packets("1", timestamp=1600, sequence=7)
    stream += dtmf_packets("#", timestamp=3200, sequence=14)
    for packet in stream:
        seen += detector.receive(packet)
    assert seen == ["1", "1", "#"]
    # a retransmission arriving late is still ignored
    assert detector.receive(stream[-1]) == []
    assert detector.flush() == []


def test_detector_without_end_packets():
    """When every end packet is lost the digit is reported when the next event starts, or on flush."""
    detector = DtmfDetector()
    first = [p for p in dtmf_packets("7", timestamp=0) if not DtmfEvent.parse(p.payload).end]
    second = [p for p in dtmf_packets("8", timestamp=2000) if not DtmfEvent.parse(p.payload).end]
    seen = []
    for packet in first + second:
        seen += detector.receive(packet)
    assert seen == ["7"]
    assert detector.flush() == ["8"]
    assert detector.flush() == []


def test_detector_ignores_non_dtmf_events_and_other_ssrc_keys():
    """Events above 16 are not digits; the same timestamp from another SSRC is another event."""
    detector = DtmfDetector()
    assert detector.receive(dtmf_packets(40, timestamp=0)[-1]) == []
    end = dtmf_packets("3", timestamp=800)[-1]
    assert detector.receive(end) == ["3"]
    assert detector.receive(attrs.evolve(end, ssrc=end.ssrc + 1)) == ["3"]
    with pytest.raises(ParseError):
        detector.receive(RtpPacket(payload_type=101, sequence=0, timestamp=5, ssrc=0, payload=b"\x01"))
