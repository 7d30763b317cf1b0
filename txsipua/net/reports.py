"""RTCP reports of one RTP stream on the shared pacer (RFC 3550 §6.2, §6.4; RFC 5761 when multiplexed).

A :class:`StreamReports` is a pace client of the process's
:class:`~txsipua.net.pacer.Pacer`: every report interval (5 s times a random
factor in 0.5-1.5, RFC 3550 §6.3.1; the first one after half an interval) it
asks its :class:`~txsipua.media.rtcp.RtcpSession` for a compound packet (an
SR if the stream sent RTP since the last one, else an RR, with a reception
block about the source it hears) and hands it to the stream's ``send_rtcp``.
Received RTCP goes to :meth:`StreamReports.receive`, which keeps the round
trip and the peer's view of our stream in :attr:`StreamReports.stats`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from txsipua.media.reception import ReceptionStatistics
from txsipua.media.rtcp import MIN_INTERVAL, RtcpSession, RtcpStats
from txsipua.net.pacer import Pacer

__all__ = ["StreamReports"]


class StreamReports:
    """Periodic RTCP for one stream.

    Args:
        pacer: the shared pacing clock.
        session: the stream's :class:`~txsipua.media.rtcp.RtcpSession`.
        reception: the reception statistics of the source heard.
        sender_info: ``now -> (packets sent, octets sent, RTP timestamp now)``.
        send: writes one compound RTCP packet (the stream protects and addresses it).
        rng: the random factor of the interval.
        interval: the mean report interval, seconds (at least 5, RFC 3550 §6.2).
    """

    def __init__(self, pacer: Pacer, session: RtcpSession, reception: ReceptionStatistics,
                 sender_info: Callable[[float], tuple[int, int, int]], send: Callable[[bytes], Any],
                 rng: random.Random, interval: float = MIN_INTERVAL) -> None:
        self._pacer = pacer
        self.session = session
        self._reception = reception
        self._sender_info = sender_info
        self._send = send
        self._rng = rng
        self.interval = max(interval, MIN_INTERVAL)
        self._packets_at_last = 0
        self._running = False

    @property
    def stats(self) -> RtcpStats:
        """What RTCP told: round trip, the peer's loss and jitter of our stream, reports counted."""
        return self.session.stats

    def start(self, now: float) -> None:
        """Report from now on: the first report after half an interval (RFC 3550 §6.2)."""
        if not self._running:
            self._running = True
            self._pacer.schedule(self, now + self.interval * self._rng.uniform(0.25, 0.75))

    def stop(self) -> None:
        """No more periodic reports."""
        if self._running:
            self._running = False
            self._pacer.cancel(self)

    def pace(self, now: float) -> float | None:
        """Send one report; the next deadline."""
        self._send(self.make(now))
        return now + self.interval * self._rng.uniform(0.5, 1.5)

    def make(self, now: float, *, bye: bool = False) -> bytes:
        """One compound packet for ``now`` (SR or RR, SDES CNAME, BYE when ``bye``)."""
        packets, octets, timestamp = self._sender_info(now)
        sent = packets > self._packets_at_last
        self._packets_at_last = packets
        return self.session.report(now, packets_sent=packets, octets_sent=octets, rtp_timestamp=timestamp,
                                   sent=sent, reception=self._reception, bye=bye)

    def receive(self, data: bytes, now: float) -> None:
        """A compound RTCP packet from the peer (already unprotected)."""
        self.session.receive(data, now)
