"""RTP packets (RFC 3550 §5.1), parsed and serialised.

The fixed header::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |V=2|P|X|  CC   |M|     PT      |       sequence number         |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                           timestamp                           |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |           synchronization source (SSRC) identifier            |
    +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
    |            contributing source (CSRC) identifiers             |
    |                             ....                              |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

followed, when X is set, by a header extension (16-bit profile word, 16-bit
length in 32-bit words, data; §5.3.1), the payload, and, when P is set,
padding whose last octet counts the padding octets (§5.1).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any

import attrs

from txsipua.errors import ParseError

__all__ = ["RtpPacket", "is_rtcp", "plain_fields"]

_HEADER = struct.Struct("!BBHII")


def _range(bits: int) -> Any:
    limit = 1 << bits

    def check(instance: Any, attribute: Any, value: int) -> None:
        if not 0 <= value < limit:
            raise ValueError(f"{attribute.name} must fit in {bits} bits, not {value!r}")

    return check


def _int_tuple(value: Iterable[int]) -> tuple[int, ...]:
    return tuple(int(v) for v in value)


def _check_csrcs(instance: Any, attribute: Any, value: tuple[int, ...]) -> None:
    if len(value) > 15:
        raise ValueError("at most 15 CSRCs")
    for c in value:
        if not 0 <= c < 1 << 32:
            raise ValueError(f"CSRC out of range: {c!r}")


def _check_extension(instance: Any, attribute: Any, value: tuple[int, bytes] | None) -> None:
    if value is None:
        return
    profile, data = value
    if not 0 <= profile < 1 << 16 or len(data) % 4 or len(data) >= 1 << 18:
        raise ValueError("extension is (16-bit profile, data whose length is a multiple of 4)")


def _check_padding(instance: Any, attribute: Any, value: int) -> None:
    if not 0 <= value <= 255:
        raise ValueError(f"padding must be 0-255 octets, not {value!r}")


@attrs.frozen
class RtpPacket:
    """One RTP data packet (RFC 3550 §5.1).

    Attributes:
        payload_type: PT, 0-127 (RFC 3551 §6 for static values).
        sequence: sequence number, 16 bits, +1 per packet (wraps).
        timestamp: sampling instant of the first octet, 32 bits, in units of
            the codec's clock (8000 Hz for G.711).
        ssrc: synchronisation source, 32 bits.
        marker: M bit: first packet of a talkspurt for audio (RFC 3551 §4.1),
            first packet of an event for telephone events (RFC 4733 §2.5.1.3).
        payload: the payload octets.
        csrcs: contributing sources (0-15 of them, 32 bits each).
        extension: header extension as (profile, data) or None (§5.3.1).
        padding: number of padding octets at the end, the count octet included (0: none).
    """

    payload_type: int = attrs.field(validator=_range(7))
    sequence: int = attrs.field(validator=_range(16))
    timestamp: int = attrs.field(validator=_range(32))
    ssrc: int = attrs.field(validator=_range(32))
    marker: bool = False
    payload: bytes = b""
    csrcs: tuple[int, ...] = attrs.field(default=(), converter=_int_tuple, validator=_check_csrcs)
    extension: tuple[int, bytes] | None = attrs.field(default=None, validator=_check_extension)
    padding: int = attrs.field(default=0, validator=_check_padding)

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Parse one datagram.

        Args:
            data: the UDP payload.

        Returns:
            The packet.

        Raises:
            ParseError: not an RTP version 2 packet, or truncated (the detail
                says which field).
        """
        data = bytes(data)
        if len(data) < 12:
            raise ParseError(f"RTP packet too short ({len(data)} octets, need 12)")
        first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
        if first >> 6 != 2:
            raise ParseError(f"RTP version {first >> 6}, expected 2")
        count = first & 0x0F
        offset = 12 + 4 * count
        if len(data) < offset:
            raise ParseError(f"RTP packet truncated in its {count} CSRCs")
        csrcs = struct.unpack_from(f"!{count}I", data, 12)
        extension = None
        if first & 0x10:
            if len(data) < offset + 4:
                raise ParseError("RTP packet truncated in its header extension")
            profile, words = struct.unpack_from("!HH", data, offset)
            end = offset + 4 + 4 * words
            if len(data) < end:
                raise ParseError("RTP header extension longer than the packet")
            extension = (profile, data[offset + 4 : end])
            offset = end
        padding = 0
        end = len(data)
        if first & 0x20:
            padding = data[-1]
            if padding == 0 or offset + padding > len(data):
                raise ParseError(f"bad RTP padding count {padding}")
            end -= padding
        return cls(
            payload_type=second & 0x7F,
            sequence=sequence,
            timestamp=timestamp,
            ssrc=ssrc,
            marker=bool(second & 0x80),
            payload=data[offset:end],
            csrcs=csrcs,
            extension=extension,
            padding=padding,
        )

    def to_bytes(self) -> bytes:
        """Serialise; padding octets are zeros but the last, which holds the count."""
        first = 0x80 | len(self.csrcs)
        if self.padding:
            first |= 0x20
        if self.extension is not None:
            first |= 0x10
        second = self.payload_type | (0x80 if self.marker else 0)
        parts = [_HEADER.pack(first, second, self.sequence, self.timestamp, self.ssrc)]
        if self.csrcs:
            parts.append(struct.pack(f"!{len(self.csrcs)}I", *self.csrcs))
        if self.extension is not None:
            profile, data = self.extension
            parts.append(struct.pack("!HH", profile, len(data) // 4))
            parts.append(data)
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes([self.padding]))
        return b"".join(parts)


def is_rtcp(data: bytes) -> bool:
    """True when a datagram looks like RTCP multiplexed on the RTP port (RFC 5761 §4).

    RTCP packet types 192-223 occupy the second octet where RTP has M and PT,
    so RTP payload types 64-95 are never used on a multiplexed port.
    """
    return len(data) >= 2 and data[0] >> 6 == 2 and 192 <= data[1] <= 223


_PLAIN = struct.Struct("!xBHII")


def plain_fields(data: bytes) -> tuple[int, bool, int, int, int, bytes] | None:
    """The fields of a plain RTP packet, read without building an :class:`RtpPacket` (the receive fast path).

    Plain: version 2, no padding, no header extension, no CSRC (first octet
    0x80) and at least the 12-octet fixed header, what every G.711 stream
    sends.  Anything else is for :meth:`RtpPacket.parse` to judge.

    Returns:
        ``(payload_type, marker, sequence, timestamp, ssrc, payload)``, equal
        to those :meth:`RtpPacket.parse` gives, or None when the packet is not plain.
    """
    if len(data) < 12 or data[0] != 0x80:
        return None
    second, sequence, timestamp, ssrc = _PLAIN.unpack_from(data)
    return second & 0x7F, second > 0x7F, sequence, timestamp, ssrc, bytes(data[12:])
