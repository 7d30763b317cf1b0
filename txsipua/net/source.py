"""Which datagrams an RTP stream hears: the negotiated source, or the latched one (RFC 4961).

A :class:`SourceFilter` accepts a datagram from the address and port of the
peer's SDP, or, when built with ``latch=True``, latches on the first other
source heard after a negotiation (symmetric RTP for peers behind NAT) and
then accepts that one only.  The last accepted address is cached, since
comparing address texts (IPv4-mapped IPv6 included) costs more than the
rest of a packet's handling.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from twisted.logger import Logger

from txsipua.media.offer_answer import MediaParams

__all__ = ["SourceFilter", "same_address"]


def same_address(a: str, b: str) -> bool:
    """True when two IP address texts name the same address (IPv4-mapped IPv6 included)."""
    try:
        x, y = ipaddress.ip_address(a), ipaddress.ip_address(b)
    except ValueError:
        return False  # a name in the SDP: never matches a datagram's source (use latch)
    if isinstance(x, ipaddress.IPv6Address) and x.ipv4_mapped is not None:
        x = x.ipv4_mapped
    if isinstance(y, ipaddress.IPv6Address) and y.ipv4_mapped is not None:
        y = y.ipv4_mapped
    return x == y


class SourceFilter:
    """The sources one stream hears.

    Args:
        latch: latch on the first source heard when it is not the negotiated one.

    Attributes:
        latched: the ``(host, port)`` latched to, or None.
    """

    log = Logger()

    def __init__(self, latch: bool = False) -> None:
        self.latch = latch
        self.latched: tuple[str, int] | None = None
        self._heard: Any = None

    def reset(self, new_destination: bool) -> None:
        """A new negotiation: judge sources afresh; latch again when the destination changed."""
        self._heard = None
        if new_destination:
            self.latched = None

    def accepts(self, addr: Any, params: MediaParams | None, port: int | None = None) -> bool:
        """True for a datagram from the negotiated source, or the latched one.

        Args:
            addr: the datagram's source ``(host, port)``.
            params: the negotiation in force (None: nothing is heard).
            port: the negotiated source port; None for ``params.remote_port``
                (the RTCP socket gives the peer's RTCP port).
        """
        if params is None or not isinstance(addr, tuple) or len(addr) < 2:
            return False  # nothing negotiated yet: nobody to hear
        if addr == self._heard:
            return True
        expected = params.remote_port if port is None else port
        host, port = str(addr[0]), int(addr[1])
        if port == expected and same_address(host, params.remote_address):
            self._heard = addr
            return True
        if self.latched is not None:
            if port == self.latched[1] and same_address(host, self.latched[0]):
                self._heard = addr
                return True
            return False
        if self.latch:
            self.latched = (host, port)
            self._heard = addr
            self.log.info("symmetric RTP: latched to {host}:{port}", host=host, port=port)
            return True
        return False
