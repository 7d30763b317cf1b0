"""Tests for txsipua.media.rtp: RTP packet layout, round trips and fuzzing (RFC 3550 §5.1)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from txsipua.errors import ParseError
from txsipua.media.rtp import RtpPacket, is_rtcp


def test_fixed_header_layout():
    """V=2, M, PT, sequence, timestamp and SSRC land in the right bits (network order)."""
    packet = RtpPacket(payload_type=0, sequence=0x1234, timestamp=0xDEADBEEF, ssrc=0x01020304,
                       marker=True, payload=b"\xff" * 160)
    data = packet.to_bytes()
    assert data[:12] == bytes.fromhex("80 80 1234 DEADBEEF 01020304")
    assert len(data) == 172
    assert RtpPacket.parse(data) == packet


def test_parse_known_packet():
    """A PCMA packet with no marker, as a capture would show it."""
    data = bytes.fromhex("8008 0001 000000a0 cafebabe") + b"\xd5" * 4
    packet = RtpPacket.parse(data)
    assert (packet.payload_type, packet.sequence, packet.timestamp, packet.ssrc, packet.marker) == (
        8, 1, 160, 0xCAFEBABE, False)
    assert packet.payload == b"\xd5" * 4


def test_csrcs_extension_and_padding():
    """CC, X and P bits: CSRC list, extension (profile, length in words) and padding count."""
    packet = RtpPacket(payload_type=96, sequence=65535, timestamp=0, ssrc=1, csrcs=(7, 8),
                       extension=(0xBEDE, b"\x10\xaa\x00\x00"), padding=4, payload=b"abc")
    data = packet.to_bytes()
    assert data[0] == 0x80 | 0x20 | 0x10 | 2
    assert data[12:20] == bytes.fromhex("00000007 00000008")
    assert data[20:24] == bytes.fromhex("BEDE 0001")
    assert data[-7:] == b"abc\x00\x00\x00\x04"
    assert RtpPacket.parse(data) == packet


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\x80\x00", "too short"),
        (bytes.fromhex("4000 0000 00000000 00000000"), "version 1"),
        (bytes.fromhex("8200 0000 00000000 00000000 00000001"), "CSRC"),
        (bytes.fromhex("9000 0000 00000000 00000000 0000"), "extension"),
        (bytes.fromhex("9000 0000 00000000 00000000 0000 0002 00000000"), "extension"),
        (bytes.fromhex("a000 0000 00000000 00000000 00"), "padding"),
        (bytes.fromhex("a000 0000 00000000 00000000 aabb05"), "padding"),
    ],
)
def test_malformed(data, words):
    """Each truncation or bad field raises ParseError naming it."""
    with pytest.raises(ParseError) as info:
        RtpPacket.parse(data)
    assert words in info.value.detail


def test_constructor_validates_ranges():
    """Values that do not fit their fields are refused."""
    with pytest.raises(ValueError):
        RtpPacket(payload_type=128, sequence=0, timestamp=0, ssrc=0)
    with pytest.raises(ValueError):
        RtpPacket(payload_type=0, sequence=1 << 16, timestamp=0, ssrc=0)
    with pytest.raises(ValueError):
        RtpPacket(payload_type=0, sequence=0, timestamp=1 << 32, ssrc=0)
    with pytest.raises(ValueError):
        RtpPacket(payload_type=0, sequence=0, timestamp=0, ssrc=0, csrcs=range(16))
    with pytest.raises(ValueError):
        RtpPacket(payload_type=0, sequence=0, timestamp=0, ssrc=0, extension=(1, b"abc"))


def test_is_rtcp():
    """RTCP sender/receiver reports are told apart from RTP on a multiplexed port (RFC 5761)."""
    assert is_rtcp(bytes.fromhex("80c8 0006"))  # SR
    assert is_rtcp(bytes.fromhex("81c9 0007"))  # RR
    assert not is_rtcp(RtpPacket(payload_type=0, sequence=0, timestamp=0, ssrc=0).to_bytes())
    assert not is_rtcp(RtpPacket(payload_type=101, sequence=0, timestamp=0, ssrc=0, marker=True).to_bytes())
    assert not is_rtcp(b"\x80")


packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    sequence=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    marker=st.booleans(),
    payload=st.binary(max_size=64),
    csrcs=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15).map(tuple),
    extension=st.one_of(st.none(), st.tuples(st.integers(0, 0xFFFF),
                                             st.binary(max_size=12).map(lambda b: b[: len(b) // 4 * 4]))),
    padding=st.integers(0, 255),
)


@settings(max_examples=300, deadline=None)
@given(packets)
def test_round_trip(packet):
    """Any packet serialises and parses back equal."""
    assert RtpPacket.parse(packet.to_bytes()) == packet


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=80))
def test_fuzz_only_parse_error(data):
    """Whatever arrives, only ParseError escapes; what parses re-serialises to the same header."""
    try:
        packet = RtpPacket.parse(data)
    except ParseError:
        return
    again = packet.to_bytes()
    assert len(again) == len(data)
    assert RtpPacket.parse(again) == packet
