"""Telephone events: DTMF digits as RTP payload (RFC 4733).

The event payload (RFC 4733 §2.3)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |     event     |E|R| volume    |          duration             |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

One digit is sent as a series of packets that share the RTP timestamp of the
event's start (§2.5.1): the first has the marker bit, the following ones carry
the growing duration, and the final packet (E bit set) is sent three times
(§2.5.1.4), each with its own sequence number.  A receiver reports the digit
once, on the first end packet, and ignores the retransmissions
(:class:`DtmfDetector`).
"""

from __future__ import annotations

import struct
from typing import Any

import attrs

from txsipua.errors import ParseError
from txsipua.media.rtp import RtpPacket

__all__ = [
    "DtmfDetector",
    "DtmfEvent",
    "digit_to_event",
    "dtmf_packets",
    "event_to_digit",
]

_DIGITS = "0123456789*#ABCD"
#: Event codes for DTMF (RFC 4733 §3.2, Table 7): "0"-"9" -> 0-9, "*" -> 10, "#" -> 11,
#: "A"-"D" -> 12-15, and hook flash -> 16 (written "!" as in SIP INFO / SIPp).
EVENT_CODES: dict[str, int] = {d: i for i, d in enumerate(_DIGITS)} | {"!": 16}
_PAYLOAD = struct.Struct("!BBH")


def digit_to_event(digit: str) -> int:
    """The RFC 4733 event code of a DTMF digit.

    Args:
        digit: one of ``0123456789*#ABCD`` (lower case accepted), or ``"!"`` for flash.

    Raises:
        ValueError: not a DTMF digit.
    """
    try:
        return EVENT_CODES[digit.upper()]
    except (KeyError, AttributeError):
        raise ValueError(f"not a DTMF digit: {digit!r}") from None


def event_to_digit(event: int) -> str | None:
    """The DTMF digit of an event code (0-16), or None for other events."""
    if 0 <= event < len(_DIGITS):
        return _DIGITS[event]
    return "!" if event == 16 else None


def _to_event(value: int | str) -> int:
    return digit_to_event(value) if isinstance(value, str) else int(value)


def _range(low: int, high: int) -> Any:
    def check(instance: Any, attribute: Any, value: int) -> None:
        if not low <= value <= high:
            raise ValueError(f"{attribute.name} must be {low}-{high}, not {value!r}")

    return check


@attrs.frozen
class DtmfEvent:
    """One telephone-event payload (RFC 4733 §2.3).

    Attributes:
        event: event code 0-255 (a digit string is converted, e.g. ``"#"`` -> 11).
        end: the E bit: the event has ended.
        volume: power level in -dBm0, 0-63 (larger is quieter); 10 is typical.
        duration: duration so far, in RTP clock units (8000 Hz: 160 per 20 ms), 0-65535.
    """

    event: int = attrs.field(converter=_to_event, validator=_range(0, 255))
    end: bool = False
    volume: int = attrs.field(default=10, validator=_range(0, 63))
    duration: int = attrs.field(default=0, validator=_range(0, 0xFFFF))

    @property
    def digit(self) -> str | None:
        """The DTMF digit, or None when the event is not one."""
        return event_to_digit(self.event)

    @classmethod
    def parse(cls, data: bytes) -> DtmfEvent:
        """Parse an event payload.

        Raises:
            ParseError: fewer than 4 octets.  (Longer payloads are redundant
                blocks, RFC 4733 §2.5.1.5; the first 4 octets are read.)
        """
        if len(data) < 4:
            raise ParseError(f"telephone-event payload too short ({len(data)} octets)")
        event, flags, duration = _PAYLOAD.unpack_from(data)
        return cls(event=event, end=bool(flags & 0x80), volume=flags & 0x3F, duration=duration)

    def to_bytes(self) -> bytes:
        """Serialise to the 4-octet payload (R bit zero)."""
        return _PAYLOAD.pack(self.event, (0x80 if self.end else 0) | self.volume, self.duration)


def dtmf_packets(
    digit: str | int,
    *,
    duration_ms: int = 100,
    volume: int = 10,
    payload_type: int = 101,
    ssrc: int = 0,
    sequence: int = 0,
    timestamp: int = 0,
    clock_rate: int = 8000,
    packet_ms: int = 20,
) -> list[RtpPacket]:
    """The packets that send one digit (RFC 4733 §2.5.1).

    One packet per ``packet_ms`` while the tone lasts (the first with the
    marker bit, durations ``packet_ms``, ``2*packet_ms``...), then the final
    packet (E bit, full duration) three times.  All share ``timestamp``;
    sequence numbers count up from ``sequence`` (mod 2**16).  A 100 ms digit
    at 8000 Hz gives durations 160, 320, 480, 640, then 800 three times.

    Args:
        digit: a DTMF digit (``"5"``, ``"#"``) or an event code.
        duration_ms: tone length in milliseconds.
        volume: power level in -dBm0 (0-63).
        payload_type: the peer's telephone-event payload type.
        ssrc: our SSRC.
        sequence: sequence number of the first packet.
        timestamp: RTP timestamp of the event start.
        clock_rate: RTP clock rate in Hz.
        packet_ms: interval between packets in milliseconds.

    Returns:
        The packets, in sending order, one every ``packet_ms``.

    Raises:
        ValueError: a bad digit, or a duration that does not fit 16 bits
            (8.19 s at 8000 Hz).
    """
    if duration_ms <= 0 or packet_ms <= 0:
        raise ValueError("duration_ms and packet_ms must be positive")
    event = _to_event(digit)
    step = clock_rate * packet_ms // 1000
    total = clock_rate * duration_ms // 1000
    if total > 0xFFFF:
        raise ValueError(f"a {duration_ms} ms event does not fit the 16-bit duration field")
    updates = max(1, -(-total // step) - 1)
    payloads = [
        DtmfEvent(event, end=False, volume=volume, duration=min(step * (k + 1), total))
        for k in range(updates)
    ]
    payloads += [DtmfEvent(event, end=True, volume=volume, duration=total)] * 3
    return [
        RtpPacket(
            payload_type=payload_type,
            sequence=(sequence + i) & 0xFFFF,
            timestamp=timestamp & 0xFFFFFFFF,
            ssrc=ssrc,
            marker=i == 0,
            payload=p.to_bytes(),
        )
        for i, p in enumerate(payloads)
    ]


@attrs.define
class DtmfDetector:
    """Turns received telephone-event packets into digits, once each (RFC 4733 §2.5.2).

    An event is identified by its RTP timestamp (and SSRC).  The digit is
    reported on the first end packet; retransmitted end packets and late
    updates of an event already reported are ignored.  If every end packet of
    an event is lost, the digit is reported when the next event starts
    (:meth:`receive` then returns it) or on :meth:`flush`.
    """

    _current: tuple[int, int, int] | None = None  # (ssrc, timestamp, event) seen, not ended
    _reported: list[tuple[int, int]] = attrs.field(factory=list)  # recent (ssrc, timestamp) ended

    def receive(self, packet: RtpPacket) -> list[str]:
        """Feed one telephone-event packet.

        Args:
            packet: an RTP packet whose payload type is telephone-event.

        Returns:
            The digits completed by this packet (usually none or one).
            Events that are not DTMF digits are ignored.

        Raises:
            ParseError: the payload is not a telephone event.
        """
        event = DtmfEvent.parse(packet.payload)
        key = (packet.ssrc, packet.timestamp)
        if key in self._reported:
            return []
        digits: list[str] = []
        if self._current is not None and self._current[:2] != key:
            digits += self._finish(self._current)
        if event.end:
            digits += self._finish((packet.ssrc, packet.timestamp, event.event))
        else:
            self._current = (packet.ssrc, packet.timestamp, event.event)
        return digits

    def flush(self) -> list[str]:
        """Report an event whose end packets never came (e.g. when the stream stops)."""
        return self._finish(self._current) if self._current is not None else []

    def _finish(self, current: tuple[int, int, int]) -> list[str]:
        ssrc, timestamp, code = current
        self._current = None
        self._reported.append((ssrc, timestamp))
        del self._reported[:-16]
        digit = event_to_digit(code)
        return [digit] if digit is not None else []
