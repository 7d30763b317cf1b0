"""pcap files of SIP and RTP traffic, with IP/UDP/TCP framing that capture tools accept.

Anatomy of the file written (libpcap format, microsecond timestamps)::

    global header (24 octets): magic a1b2c3d4, version 2.4, snaplen 65535,
                               link type 101 (LINKTYPE_RAW: each packet starts at its IP header)
    record header (16 octets): seconds, microseconds, captured length, original length
    packet:                    IPv4 (RFC 791) or IPv6 (RFC 8200) header
                               + UDP (RFC 768) or TCP (RFC 9293) header, checksums computed
                               + the payload (a SIP message, an RTP packet)

Messages seen on a stream (TCP, TLS shown in clear) are written as TCP
segments of one connection per address pair: the first segment of a flow is
preceded by a three-way handshake (SYN, SYN-ACK, ACK) so that analysers see a
whole connection, and sequence and acknowledgement numbers follow the octets
written in each direction.  A payload too large for one IP packet is split
into several segments (TCP) or refused (UDP: never larger than 65,507 octets
over IPv4 in the first place).

Pure: the time of every packet is an argument (seconds since the epoch).
"""

from __future__ import annotations

import ipaddress
import struct
from typing import BinaryIO

__all__ = ["LINKTYPE_RAW", "PcapWriter", "internet_checksum", "ip_packet", "tcp_segment", "udp_datagram"]

LINKTYPE_RAW = 101
"""pcap link type whose packets begin with an IPv4 or IPv6 header."""

IPPROTO_TCP = 6
IPPROTO_UDP = 17
_MAX_IP_PAYLOAD = 65_535 - 60  # room for the largest IPv4 header (never used: ours is 20 octets)
_TCP_CHUNK = 65_000  # octets of payload per TCP segment when a message is split
_SYN, _ACK, _PSH = 0x02, 0x10, 0x08

Endpoint = tuple[str, int]
"""``(ip address text, port)``; an IPv6 address may be written in brackets."""


def internet_checksum(data: bytes) -> int:
    """The 16-bit one's complement checksum of RFC 1071 over ``data``."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text.strip("[]").split("%", 1)[0])


def _pseudo_header(src: str, dst: str, protocol: int, length: int) -> bytes:
    s, d = _address(src), _address(dst)
    if s.version == 4:
        return s.packed + d.packed + struct.pack("!BBH", 0, protocol, length)
    return s.packed + d.packed + struct.pack("!IxxxB", length, protocol)


def _same_family(src: str, dst: str) -> tuple[str, str]:
    s, d = _address(src), _address(dst)
    if s.version == d.version:
        return str(s), str(d)
    # a socket bound to :: talking to an IPv4 peer: show both as IPv4 (v4-mapped) or IPv6
    if s.version == 6 and s.ipv4_mapped is not None:
        return str(s.ipv4_mapped), str(d)
    if d.version == 6 and d.ipv4_mapped is not None:
        return str(s), str(d.ipv4_mapped)
    if s.version == 4:
        return f"::ffff:{s}", str(d)
    return str(s), f"::ffff:{d}"


def udp_datagram(src: Endpoint, dst: Endpoint, payload: bytes) -> bytes:
    """A UDP header and ``payload`` (RFC 768), checksum over the IP pseudo-header.

    Raises:
        ValueError: the payload does not fit one datagram.
    """
    length = 8 + len(payload)
    if length > _MAX_IP_PAYLOAD:
        raise ValueError(f"{len(payload)} octets do not fit one UDP datagram")
    header = struct.pack("!HHHH", src[1], dst[1], length, 0)
    checksum = internet_checksum(_pseudo_header(src[0], dst[0], IPPROTO_UDP, length) + header + payload)
    return struct.pack("!HHHH", src[1], dst[1], length, checksum or 0xFFFF) + payload


def tcp_segment(src: Endpoint, dst: Endpoint, seq: int, ack: int, flags: int, payload: bytes = b"") -> bytes:
    """A TCP header (20 octets, no options; window 65535) and ``payload``, checksummed (RFC 9293 §3.1)."""
    header = struct.pack("!HHIIBBHHH", src[1], dst[1], seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags,
                         65535, 0, 0)
    checksum = internet_checksum(_pseudo_header(src[0], dst[0], IPPROTO_TCP, len(header) + len(payload))
                                 + header + payload)
    return header[:16] + struct.pack("!H", checksum) + header[18:] + payload


def ip_packet(src: str, dst: str, protocol: int, payload: bytes, identification: int = 0) -> bytes:
    """An IPv4 header (RFC 791, TTL 64, don't fragment) or IPv6 header (RFC 8200, hop limit 64) and ``payload``."""
    s, d = _address(src), _address(dst)
    if s.version == 4:
        header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), identification & 0xFFFF, 0x4000,
                             64, protocol, 0, s.packed, d.packed)
        checksum = internet_checksum(header)
        return header[:10] + struct.pack("!H", checksum) + header[12:] + payload
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), protocol, 64, s.packed, d.packed) + payload


class PcapWriter:
    """Writes SIP/RTP payloads as packets of a pcap file.

    Args:
        stream: a binary file object, written at once (the global header) and
            on every packet; flushed after each packet, so the file can be read
            while the program runs.

    The flows of :meth:`tcp` are remembered (sequence numbers per direction)
    for as long as the writer lives.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.packets = 0
        self._ident = 0
        self._flows: dict[tuple[Endpoint, Endpoint], int] = {}
        stream.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_RAW))
        stream.flush()

    def _record(self, now: float, packet: bytes) -> None:
        seconds = int(now)
        micros = min(999_999, int(round((now - seconds) * 1_000_000)))
        self.stream.write(struct.pack("<IIII", seconds, micros, len(packet), len(packet)) + packet)
        self.stream.flush()
        self.packets += 1

    def _ip(self, now: float, src: str, dst: str, protocol: int, payload: bytes) -> None:
        self._ident += 1
        self._record(now, ip_packet(src, dst, protocol, payload, self._ident))

    def udp(self, now: float, src: Endpoint, dst: Endpoint, payload: bytes) -> None:
        """One UDP datagram from ``src`` to ``dst`` at ``now`` (seconds since the epoch).

        Raises:
            ValueError: an address is not an IP address, or the payload is too large.
        """
        s, d = _same_family(src[0], dst[0])
        self._ip(now, s, d, IPPROTO_UDP, udp_datagram((s, src[1]), (d, dst[1]), payload))

    def tcp(self, now: float, src: Endpoint, dst: Endpoint, payload: bytes) -> None:
        """``payload`` sent on the TCP connection from ``src`` to ``dst`` at ``now``.

        The first time a pair of endpoints is seen (either way round) a
        handshake is written first; large payloads become several segments.

        Raises:
            ValueError: an address is not an IP address.
        """
        s, d = _same_family(src[0], dst[0])
        a, b = (s, src[1]), (d, dst[1])
        if (a, b) not in self._flows:
            self._flows[(a, b)] = 1000
            self._flows[(b, a)] = 5000
            self._ip(now, s, d, IPPROTO_TCP, tcp_segment(a, b, 999, 0, _SYN))
            self._ip(now, d, s, IPPROTO_TCP, tcp_segment(b, a, 4999, 1000, _SYN | _ACK))
            self._ip(now, s, d, IPPROTO_TCP, tcp_segment(a, b, 1000, 5000, _ACK))
        for start in range(0, max(len(payload), 1), _TCP_CHUNK):
            chunk = payload[start : start + _TCP_CHUNK]
            seq, ack = self._flows[(a, b)], self._flows[(b, a)]
            self._ip(now, s, d, IPPROTO_TCP, tcp_segment(a, b, seq, ack, _PSH | _ACK, chunk))
            self._flows[(a, b)] = (seq + len(chunk)) & 0xFFFFFFFF
