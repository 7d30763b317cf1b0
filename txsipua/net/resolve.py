"""Locating SIP servers (RFC 3263) with twisted.names.

Theory of operation: :meth:`SIPResolver.locate` turns a SIP URI into an
ordered list of :class:`Target` (transport, IP address, port) to try:

1. Transport (RFC 3263 §4.1): the URI's ``transport`` parameter; else UDP
   (TLS for ``sips``) when the host is an address or a port is given; else the
   NAPTR records of the domain (``SIP+D2U``, ``SIP+D2T``, ``SIPS+D2T``)
   filtered to the transports we support; else the first SRV record set that
   exists among ``_sips._tcp``, ``_sip._tcp`` and ``_sip._udp`` (sips only the
   first).
2. Address and port (§4.2): a numeric host is used as it is (``maddr``
   first); with an explicit port the host's A and AAAA records; otherwise the
   SRV records of ``_service._proto.domain`` ordered by priority, then by the
   weighted random draw of RFC 2782 (:func:`~txsipua.net.locate.srv_order`,
   with an injected ``random``), each target's A and AAAA records; with no
   SRV, the A and AAAA records of the host on the transport's default port.

A result is cached for the smallest TTL of the records it came from
(:class:`~txsipua.net.locate.TTLCache`, the injected ``clock``).  What is
done with the list (failover on timeout, transport error or 503, servers
skipped after a Retry-After) is :mod:`txsipua.net.locate`'s part.

The resolver is injected (any ``twisted.internet.interfaces.IResolver``),
so tests use an in-memory one and never ask the machine's resolver.
"""

from __future__ import annotations

import ipaddress
import random as _random
import time
from collections.abc import Callable, Iterable
from typing import Any

import attrs
from twisted.internet import defer
from twisted.names import dns
from twisted.names.error import DNSNameError, DomainError

from txsipua.errors import ResolutionError
from txsipua.net.locate import TTLCache, srv_order
from txsipua.sip.uri import SipURI

_DEFAULT_PORT = {"UDP": 5060, "TCP": 5060, "TLS": 5061, "WS": 5060, "WSS": 5061}
_NAPTR_SERVICES = {"SIP+D2U": "UDP", "SIP+D2T": "TCP", "SIPS+D2T": "TLS",
                   "SIP+D2W": "WS", "SIPS+D2W": "WSS"}  # D2W: RFC 7118 §10.3
_SRV_PREFIX = {"UDP": "_sip._udp.", "TCP": "_sip._tcp.", "TLS": "_sips._tcp."}


@attrs.frozen
class Target:
    """One place to send a request.

    Attributes:
        transport: ``"UDP"``, ``"TCP"`` or ``"TLS"``.
        host: an IP address (IPv6 without brackets).
        port: the port.
    """

    transport: str
    host: str
    port: int

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)``."""
        return (self.host, self.port)


def _numeric(host: str) -> str | None:
    bare = host[1:-1] if host.startswith("[") else host
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        return None


def _absent(name: str, notes: list[str]) -> Callable[[Any], list[Any]]:
    """An errback: no answer for ``name`` counts as no records; a server failure is noted for the error text."""

    def errback(failure: Any) -> list[Any]:
        failure.trap(DNSNameError, DomainError, defer.TimeoutError)
        if failure.check(defer.TimeoutError):
            notes.append(f"no answer from the DNS server for {name!r} (timeout)")
        elif not failure.check(DNSNameError):
            # SERVFAIL, REFUSED, FORMERR, NOTIMP...: the server failed, not "no such records"
            kind = type(failure.value).__name__
            notes.append(f"the DNS server failed for {name!r} ({kind})")
        return []

    return errback


def _why(notes: list[str]) -> str:
    return "; ".join(dict.fromkeys(notes))


class SIPResolver:
    """RFC 3263 server location over an injected twisted.names resolver.

    Args:
        resolver: a ``twisted.internet.interfaces.IResolver`` (for example
            ``twisted.names.client.createResolver(servers=[("127.0.0.1", 53)])``).
        transports: the transports we can use, in order of preference.
        ipv6: also look up AAAA records (after A); the user agent keeps the
            addresses of its own socket's family.
        random: returns a float in ``[0, 1)`` for the SRV weight draw
            (``random.random`` by default; inject one in tests).
        clock: returns the time in seconds for the TTL cache
            (``reactor.seconds``; ``time.monotonic`` by default).

    Attributes:
        cache: located results by URI, each kept for its records' smallest TTL.
    """

    def __init__(self, resolver: Any, *, transports: Iterable[str] = ("UDP",), ipv6: bool = True,
                 random: Callable[[], float] | None = None, clock: Callable[[], float] | None = None) -> None:
        self.resolver = resolver
        self.transports = tuple(t.upper() for t in transports)
        self.ipv6 = ipv6
        self.random: Callable[[], float] = random if random is not None else _random.random
        self.clock: Callable[[], float] = clock if clock is not None else time.monotonic
        self.cache: TTLCache[tuple[Any, ...], list[Target]] = TTLCache()

    def locate(self, uri: SipURI) -> defer.Deferred[list[Target]]:
        """Find the targets for ``uri`` (RFC 3263 §4), from the cache while its TTL lasts.

        Returns:
            A Deferred firing with a non-empty ``list[Target]`` in the order
            to try them.

        Raises (as a Failure):
            ResolutionError: nothing was found, or only transports we lack.
        """
        key = (uri.scheme, (uri.params.get("maddr") or uri.host).lower(), uri.port,
               (uri.params.get("transport") or "").lower())
        cached = self.cache.get(key, self.clock())
        if cached is not None:
            return defer.succeed(list(cached))
        ttls: list[int] = []

        def keep(targets: list[Target]) -> list[Target]:
            if ttls and min(ttls) > 0:
                self.cache.put(key, list(targets), self.clock() + min(ttls))
            return targets

        return self._locate(uri, ttls).addCallback(keep)

    @defer.inlineCallbacks
    def _locate(self, uri: SipURI, ttls: list[int]) -> Any:
        notes: list[str] = []  # DNS server failures met on the way, for the error text
        host = uri.params.get("maddr") or uri.host
        secure = uri.scheme == "sips"
        explicit = uri.params.get("transport")
        ip = _numeric(host)
        if ip is None and ":" in host:
            # "host:port" is not a name: it must never reach a DNS query
            raise ResolutionError(f"{host!r} is not a host name or IP address")
        transport: str | None = None
        if explicit:
            transport = "TLS" if secure and explicit.lower() == "tcp" else explicit.upper()
        elif ip is not None or uri.port is not None:
            # RFC 3263 §4.1 says UDP here; a UA without UDP uses what it has
            transport = "TLS" if secure else ("UDP" if "UDP" in self.transports else self.transports[0])
        if transport is not None and transport not in self.transports:
            raise ResolutionError(f"{uri}: transport {transport} is not available")
        if ip is not None:
            assert transport is not None
            return [Target(transport, ip, uri.port or _DEFAULT_PORT[transport])]
        if uri.port is not None:
            assert transport is not None
            addrs = yield self._addresses(host, ttls, notes)
            if not addrs:
                if notes:
                    raise ResolutionError(f"cannot locate {uri}: {_why(notes)}")
                raise ResolutionError(f"{host!r} has no address records")
            return [Target(transport, a, uri.port) for a in addrs]
        # no port, a name: NAPTR then SRV (§4.1, §4.2)
        srv_names: list[tuple[str, str]] = []
        if transport is None:
            srv_names = yield self._naptr(host, secure, ttls, notes)
            if not srv_names:
                candidates = ["TLS"] if secure else ["TLS", "TCP", "UDP"]
                srv_names = [(t, _SRV_PREFIX[t] + host) for t in candidates if t in self.transports]
        else:
            # WebSocket has no SRV service (RFC 7118): its addresses on the default port
            srv_names = [(transport, _SRV_PREFIX[transport] + host)] if transport in _SRV_PREFIX else []
        for t, name in srv_names:
            targets = yield self._srv_targets(t, name, ttls, notes)
            if targets:
                return targets
        # no SRV: the host's addresses on the default port (§4.2)
        t = transport or ("TLS" if secure else ("UDP" if "UDP" in self.transports else self.transports[0]))
        addrs = yield self._addresses(host, ttls, notes)
        if not addrs:
            if notes:
                raise ResolutionError(f"cannot locate {uri}: {_why(notes)}")
            raise ResolutionError(f"cannot locate {uri}: no NAPTR, SRV or address records for {host!r}")
        return [Target(t, a, _DEFAULT_PORT[t]) for a in addrs]

    @defer.inlineCallbacks
    def _naptr(self, domain: str, secure: bool, ttls: list[int], notes: list[str]) -> Any:
        lookup = getattr(self.resolver, "lookupNamingAuthorityPointer", None)
        if lookup is None:
            return []
        answers = yield lookup(domain).addCallbacks(lambda r: r[0], _absent(domain, notes))
        found = []
        for rr in answers:
            if rr.type != dns.NAPTR:
                continue
            p = rr.payload
            service = p.service.decode("ascii", "replace").upper() if isinstance(p.service, bytes) else str(p.service).upper()
            t = _NAPTR_SERVICES.get(service)
            if t is None or t not in self.transports or (secure and t not in ("TLS", "WSS")):
                continue
            ttls.append(rr.ttl)
            found.append((p.order, p.preference, t, str(p.replacement)))
        found.sort(key=lambda x: (x[0], x[1]))
        return [(t, name) for _, _, t, name in found]

    @defer.inlineCallbacks
    def _srv_targets(self, transport: str, name: str, ttls: list[int], notes: list[str]) -> Any:
        answers = yield self.resolver.lookupService(name).addCallbacks(lambda r: r[0], _absent(name, notes))
        srv = [rr for rr in answers if rr.type == dns.SRV]
        ttls.extend(rr.ttl for rr in srv)
        records = srv_order(((rr.payload.priority, rr.payload.weight, rr.payload) for rr in srv), self.random)
        targets: list[Target] = []
        for p in records:
            target = str(p.target)
            if target in (".", ""):
                continue  # "service decidedly not available" (RFC 2782)
            addrs = yield self._addresses(target, ttls, notes)
            targets.extend(Target(transport, a, p.port) for a in addrs)
        return targets

    @defer.inlineCallbacks
    def _addresses(self, host: str, ttls: list[int], notes: list[str]) -> Any:
        out: list[str] = []
        answers = yield self.resolver.lookupAddress(host).addCallbacks(lambda r: r[0], _absent(host, notes))
        for rr in answers:
            if rr.type == dns.A:
                out.append(rr.payload.dottedQuad())
                ttls.append(rr.ttl)
        lookup6 = getattr(self.resolver, "lookupIPV6Address", None)
        if self.ipv6 and lookup6 is not None:
            answers6 = yield lookup6(host).addCallbacks(lambda r: r[0], _absent(host, notes))
            for rr in answers6:
                if rr.type == dns.AAAA:
                    out.append(str(ipaddress.IPv6Address(rr.payload.address)))
                    ttls.append(rr.ttl)
        return out
