"""Several UserAgents on one fake clock, joined by a wire that carries what each writes to the others.

Each UA listens on :class:`uafakes.UDPClock` (fake UDP ports that record
writes); :meth:`Wire.pump` hands every datagram written so far to the UA
bound at its destination, until nobody writes anything more, and records
each one as ``(source, destination, message)`` for ladders and exact-message
assertions.  Time moves only with :meth:`Wire.advance`.
"""

from __future__ import annotations

from typing import Any

from uafakes import UDPClock

from txsipua.auth.credentials import InMemoryCredentials
from txsipua.sip.message import Request, Response, parse_message
from txsipua.ua.account import Account
from txsipua.ua.config import Configuration
from txsipua.ua.transports import UDPTransport
from txsipua.ua.useragent import UserAgent


def account(user: str, host: str) -> Account:
    """An account without credentials whose domain is ``host``."""
    return Account(user=user, domain=host, credentials=InMemoryCredentials([]), registrar=f"sip:{host}")


class Wire:
    """The UAs of one test and the datagrams between them."""

    def __init__(self) -> None:
        self.clock = UDPClock()
        self.uas: dict[tuple[str, int], UserAgent] = {}
        self._ports: dict[tuple[str, int], Any] = {}
        self._seen: dict[tuple[str, int], int] = {}
        self.log: list[tuple[tuple[str, int], tuple[str, int], Request | Response]] = []

    def ua(self, user: str, host: str, *, auto_answer: bool = True, media: bool = False) -> UserAgent:
        """A started UA for ``user`` at ``host`` (media off unless ``media``)."""
        agent = UserAgent(self.clock, Configuration(media=media), account(user, host),
                          UDPTransport(self.clock, host, 0))
        agent.start()
        agent.auto_answer = auto_answer
        address = agent.local_address
        self.uas[address] = agent
        self._ports[address] = self.clock.ports[-1]
        self._seen[address] = 0
        return agent

    def uri(self, agent: UserAgent) -> str:
        """``sip:user@host:port`` of ``agent``."""
        host, port = agent.local_address
        assert agent.account is not None
        return f"sip:{agent.account.user}@{host}:{port}"

    def pump(self) -> None:
        """Deliver everything written, until the wire is quiet."""
        moved = True
        while moved:
            moved = False
            for address, port in self._ports.items():
                while self._seen[address] < len(port.written):
                    data, destination = port.written[self._seen[address]]
                    self._seen[address] += 1
                    moved = True
                    self.log.append((address, destination, parse_message(data)))
                    peer = self.uas.get(destination)
                    if peer is not None:
                        peer.protocol.datagramReceived(data, address)

    def advance(self, seconds: float) -> None:
        """Move the clock (firing timers), then pump."""
        self.pump()
        self.clock.advance(seconds)
        self.pump()

    def ladder(self, start: int = 0) -> list[str]:
        """``"alice -> bob INVITE"`` / ``"bob -> alice 200 INVITE"`` lines from ``start``."""
        names = {a: (u.account.user if u.account else str(a)) for a, u in self.uas.items()}
        out = []
        for src, dst, msg in self.log[start:]:
            what = msg.method if isinstance(msg, Request) else f"{msg.status} {msg.cseq.method}"
            out.append(f"{names.get(src, src)} -> {names.get(dst, dst)} {what}")
        return out

    def sent(self, method: str, start: int = 0) -> list[Request]:
        """The requests of ``method`` on the wire."""
        return [m for _, _, m in self.log[start:] if isinstance(m, Request) and m.method == method]

    def responses(self, method: str, start: int = 0) -> list[Response]:
        """The responses to ``method`` on the wire."""
        return [m for _, _, m in self.log[start:] if isinstance(m, Response) and m.cseq.method == method]
