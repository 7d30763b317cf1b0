"""HEP v3 (the Homer Encapsulation Protocol), the packets a Homer collector takes.

Anatomy of a packet::

    "HEP3" | total length (uint16, the whole packet)
    chunks:  vendor id (uint16, 0 = generic) | type id (uint16) | length (uint16, header included) | value

Generic chunk types used here: 1 IP family (2 = IPv4, 10 = IPv6), 2 IP
protocol (17 UDP, 6 TCP), 3/4 source/destination IPv4 address, 5/6
source/destination IPv6 address, 7/8 source/destination port, 9/10
timestamp seconds/microseconds, 11 payload type (1 = SIP), 12 capture agent
id, 14 authentication key (password), 15 payload, 17 correlation id (the
Call-ID).  Integers are big-endian.

Pure: the time is an argument; :func:`encode` returns bytes, :func:`decode`
reads them back (collectors in tests).
"""

from __future__ import annotations

import ipaddress
import struct

import attrs

__all__ = ["HEPChunk", "HEPPacket", "PAYLOAD_SIP", "decode", "encode"]

PAYLOAD_SIP = 1
"""HEP payload type of a SIP message."""

_FAMILY = {4: 2, 6: 10}
_PROTOCOL = {"udp": 17, "tcp": 6, "tls": 6}


@attrs.frozen
class HEPChunk:
    """One chunk: ``vendor`` and ``type`` ids and the raw ``value``."""

    vendor: int
    type: int
    value: bytes


@attrs.frozen
class HEPPacket:
    """A decoded packet: its chunks in order, and the generic ones by name."""

    chunks: tuple[HEPChunk, ...]

    def get(self, type_id: int) -> bytes | None:
        """The value of the first generic (vendor 0) chunk of ``type_id``, or None."""
        for c in self.chunks:
            if c.vendor == 0 and c.type == type_id:
                return c.value
        return None

    def integer(self, type_id: int) -> int | None:
        """A generic chunk's value read as a big-endian unsigned integer, or None."""
        value = self.get(type_id)
        return None if value is None else int.from_bytes(value, "big")

    @property
    def source(self) -> tuple[str, int]:
        """``(address, port)`` of the sender."""
        raw = self.get(3) or self.get(5) or b""
        return (str(ipaddress.ip_address(raw)), self.integer(7) or 0)

    @property
    def destination(self) -> tuple[str, int]:
        """``(address, port)`` of the receiver."""
        raw = self.get(4) or self.get(6) or b""
        return (str(ipaddress.ip_address(raw)), self.integer(8) or 0)

    @property
    def payload(self) -> bytes:
        """The captured message."""
        return self.get(15) or b""


def _chunk(type_id: int, value: bytes) -> bytes:
    return struct.pack("!HHH", 0, type_id, 6 + len(value)) + value


def encode(now: float, src: tuple[str, int], dst: tuple[str, int], payload: bytes, *,
           transport: str = "udp", agent_id: int = 0, password: str | None = None,
           correlation_id: str | None = None, payload_type: int = PAYLOAD_SIP) -> bytes:
    """A HEP v3 packet carrying ``payload`` seen going from ``src`` to ``dst`` at ``now``.

    Args:
        now: seconds since the epoch.
        src: ``(ip address, port)`` of the sender; ``dst`` likewise. Mixed
            families are shown as IPv6 (IPv4-mapped).
        transport: ``"udp"``, ``"tcp"`` or ``"tls"``.
        agent_id: the capture agent id (chunk 12).
        password: the collector's authentication key (chunk 14), if it wants one.
        correlation_id: the Call-ID (chunk 17), if known.

    Raises:
        ValueError: an address is not an IP address, or the packet would exceed 65,535 octets.
    """
    s = ipaddress.ip_address(src[0].strip("[]"))
    d = ipaddress.ip_address(dst[0].strip("[]"))
    if s.version != d.version:
        s = s if s.version == 6 else ipaddress.IPv6Address(f"::ffff:{s}")
        d = d if d.version == 6 else ipaddress.IPv6Address(f"::ffff:{d}")
    seconds = int(now)
    micros = min(999_999, int(round((now - seconds) * 1_000_000)))
    body = b"".join([
        _chunk(1, bytes([_FAMILY[s.version]])),
        _chunk(2, bytes([_PROTOCOL.get(transport, 17)])),
        _chunk(3 if s.version == 4 else 5, s.packed),
        _chunk(4 if d.version == 4 else 6, d.packed),
        _chunk(7, struct.pack("!H", src[1])),
        _chunk(8, struct.pack("!H", dst[1])),
        _chunk(9, struct.pack("!I", seconds)),
        _chunk(10, struct.pack("!I", micros)),
        _chunk(11, bytes([payload_type])),
        _chunk(12, struct.pack("!I", agent_id)),
        _chunk(14, password.encode()) if password else b"",
        _chunk(17, correlation_id.encode()) if correlation_id else b"",
        _chunk(15, payload),
    ])
    total = 6 + len(body)
    if total > 65_535:
        raise ValueError(f"a HEP packet of {total} octets is too large")
    return b"HEP3" + struct.pack("!H", total) + body


def decode(data: bytes) -> HEPPacket:
    """Read a HEP v3 packet.

    Raises:
        ValueError: not HEP v3, or a length that does not add up.
    """
    if len(data) < 6 or data[:4] != b"HEP3":
        raise ValueError("not a HEP3 packet")
    (total,) = struct.unpack("!H", data[4:6])
    if total != len(data):
        raise ValueError(f"HEP3 length {total} but {len(data)} octets")
    chunks = []
    at = 6
    while at < total:
        if total - at < 6:
            raise ValueError("truncated HEP3 chunk header")
        vendor, type_id, length = struct.unpack("!HHH", data[at : at + 6])
        if length < 6 or at + length > total:
            raise ValueError(f"bad HEP3 chunk length {length}")
        chunks.append(HEPChunk(vendor, type_id, data[at + 6 : at + length]))
        at += length
    return HEPPacket(tuple(chunks))
