"""The pure trace encoders: pcap framing (IP/UDP/TCP checksums) and HEP v3 round trips."""

from __future__ import annotations

import contextlib
import io
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from txsipua.trace import hep
from txsipua.trace.pcap import LINKTYPE_RAW, PcapWriter, internet_checksum, ip_packet, udp_datagram

SIP = b"OPTIONS sip:192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK1\r\n\r\n"


def _records(data: bytes) -> list[tuple[float, bytes]]:
    magic, major, minor, _, _, snaplen, linktype = struct.unpack("<IHHiIII", data[:24])
    assert (magic, major, minor, snaplen, linktype) == (0xA1B2C3D4, 2, 4, 65535, LINKTYPE_RAW)
    out, at = [], 24
    while at < len(data):
        sec, usec, caplen, length = struct.unpack("<IIII", data[at : at + 16])
        assert caplen == length
        out.append((sec + usec / 1e6, data[at + 16 : at + 16 + caplen]))
        at += 16 + caplen
    assert at == len(data)
    return out


def test_udp_over_ipv4_checksums_verify() -> None:
    """An IPv4 header and a UDP datagram whose checksums sum to zero, as a receiver checks them."""
    f = io.BytesIO()
    PcapWriter(f).udp(1700000000.25, ("192.0.2.1", 5060), ("198.51.100.2", 5080), SIP)
    [(when, packet)] = _records(f.getvalue())
    assert when == pytest.approx(1700000000.25)
    assert packet[0] == 0x45 and internet_checksum(packet[:20]) == 0
    assert struct.unpack("!H", packet[2:4])[0] == len(packet)
    udp = packet[20:]
    pseudo = packet[12:20] + struct.pack("!BBH", 0, 17, len(udp))
    assert internet_checksum(pseudo + udp) == 0
    assert struct.unpack("!HHH", udp[:6]) == (5060, 5080, 8 + len(SIP))
    assert udp[8:] == SIP


def test_tcp_flow_has_a_handshake_and_sequence_numbers_follow_the_octets() -> None:
    """The first segment of a flow follows SYN, SYN-ACK, ACK; seq advances by the payload length."""
    f = io.BytesIO()
    w = PcapWriter(f)
    w.tcp(1.0, ("2001:db8::1", 40000), ("2001:db8::2", 5060), SIP)
    w.tcp(2.0, ("2001:db8::2", 5060), ("2001:db8::1", 40000), b"SIP/2.0 200 OK\r\n\r\n")
    w.tcp(3.0, ("2001:db8::1", 40000), ("2001:db8::2", 5060), SIP)
    packets = [p for _, p in _records(f.getvalue())]
    assert len(packets) == 6
    flags = [p[40 + 13] for p in packets]
    assert flags[:3] == [0x02, 0x12, 0x10]
    seqs = [struct.unpack("!I", p[40 + 4 : 40 + 8])[0] for p in packets]
    assert seqs[5] == seqs[3] + len(SIP)
    for p in packets:
        assert p[0] >> 4 == 6
        tcp = p[40:]
        pseudo = p[8:40] + struct.pack("!IxxxB", len(tcp), 6)
        assert internet_checksum(pseudo + tcp) == 0


def test_mixed_families_are_written_as_ipv6() -> None:
    """A v4 peer seen by a socket bound to ``::`` is written with an IPv4-mapped address."""
    f = io.BytesIO()
    PcapWriter(f).udp(1.0, ("::", 5060), ("192.0.2.1", 5060), SIP)
    [(_, packet)] = _records(f.getvalue())
    assert packet[0] >> 4 == 6


def test_too_large_udp_payload_is_refused() -> None:
    """A payload that fits no datagram raises ValueError instead of writing a lying length."""
    with pytest.raises(ValueError):
        udp_datagram(("192.0.2.1", 1), ("192.0.2.2", 2), b"x" * 70000)


def test_ip_packet_v4_total_length() -> None:
    """The IPv4 total length counts header and payload."""
    packet = ip_packet("192.0.2.1", "192.0.2.2", 17, b"abc")
    assert struct.unpack("!H", packet[2:4])[0] == 23


@given(payload=st.binary(max_size=2000), sport=st.integers(0, 65535), dport=st.integers(0, 65535),
       when=st.floats(0, 4e9), call_id=st.none() | st.text(min_size=1, max_size=40))
def test_hep_round_trip(payload: bytes, sport: int, dport: int, when: float, call_id: str | None) -> None:
    """decode(encode(...)) gives back the addresses, ports, time, Call-ID and payload."""
    packet = hep.decode(hep.encode(when, ("192.0.2.1", sport), ("2001:db8::5", dport), payload,
                                   correlation_id=call_id, agent_id=7))
    assert packet.payload == payload
    assert packet.source == ("::ffff:c000:201", sport)
    assert packet.destination == ("2001:db8::5", dport)
    assert packet.integer(9) == int(when)
    assert packet.integer(11) == hep.PAYLOAD_SIP and packet.integer(12) == 7
    assert packet.get(17) == (call_id.encode() if call_id else None)


@given(st.binary(max_size=200))
def test_hep_decode_raises_only_value_error(data: bytes) -> None:
    """Any bytes: a HEPPacket or ValueError, nothing else."""
    with contextlib.suppress(ValueError):
        hep.decode(b"HEP3" + struct.pack("!H", len(data) + 6) + data)
