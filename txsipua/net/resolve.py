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
   first); with an explicit port the host's A/AAAA records; otherwise the SRV
   records of ``_service._proto.domain`` ordered by priority, then weight
   (heaviest first: a deterministic reading of RFC 2782 that keeps tests
   exact), each target's A/AAAA records; with no SRV, the A/AAAA records of
   the host on the transport's default port.

The resolver is injected (any ``twisted.internet.interfaces.IResolver``),
so tests use an in-memory one and never ask the machine's resolver.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

import attrs
from twisted.internet import defer
from twisted.names import dns
from twisted.names.error import DNSNameError, DomainError

from txsipua.errors import ResolutionError
from txsipua.sip.uri import SipURI

_DEFAULT_PORT = {"UDP": 5060, "TCP": 5060, "TLS": 5061}
_NAPTR_SERVICES = {"SIP+D2U": "UDP", "SIP+D2T": "TCP", "SIPS+D2T": "TLS"}
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


def _not_found(failure: Any) -> list[Any]:
    failure.trap(DNSNameError, DomainError, defer.TimeoutError)
    return []


class SIPResolver:
    """RFC 3263 server location over an injected twisted.names resolver.

    Args:
        resolver: a ``twisted.internet.interfaces.IResolver`` (for example
            ``twisted.names.client.createResolver(servers=[("127.0.0.1", 53)])``).
        transports: the transports we can use, in order of preference.
        ipv6: also look up AAAA records (after A).
    """

    def __init__(self, resolver: Any, *, transports: Iterable[str] = ("UDP",), ipv6: bool = False) -> None:
        self.resolver = resolver
        self.transports = tuple(t.upper() for t in transports)
        self.ipv6 = ipv6

    @defer.inlineCallbacks
    def locate(self, uri: SipURI) -> Any:
        """Find the targets for ``uri`` (RFC 3263 §4).

        Returns:
            A Deferred firing with a non-empty ``list[Target]`` in the order
            to try them.

        Raises (as a Failure):
            ResolutionError: nothing was found, or only transports we lack.
        """
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
            addrs = yield self._addresses(host)
            if not addrs:
                raise ResolutionError(f"{host!r} has no address records")
            return [Target(transport, a, uri.port) for a in addrs]
        # no port, a name: NAPTR then SRV (§4.1, §4.2)
        srv_names: list[tuple[str, str]] = []
        if transport is None:
            srv_names = yield self._naptr(host, secure)
            if not srv_names:
                candidates = ["TLS"] if secure else ["TLS", "TCP", "UDP"]
                srv_names = [(t, _SRV_PREFIX[t] + host) for t in candidates if t in self.transports]
        else:
            srv_names = [(transport, _SRV_PREFIX[transport] + host)]
        for t, name in srv_names:
            targets = yield self._srv_targets(t, name)
            if targets:
                return targets
        # no SRV: the host's addresses on the default port (§4.2)
        t = transport or ("TLS" if secure else ("UDP" if "UDP" in self.transports else self.transports[0]))
        addrs = yield self._addresses(host)
        if not addrs:
            raise ResolutionError(f"cannot locate {uri}: no NAPTR, SRV or address records for {host!r}")
        return [Target(t, a, _DEFAULT_PORT[t]) for a in addrs]

    @defer.inlineCallbacks
    def _naptr(self, domain: str, secure: bool) -> Any:
        lookup = getattr(self.resolver, "lookupNamingAuthorityPointer", None)
        if lookup is None:
            return []
        answers = yield lookup(domain).addCallbacks(lambda r: r[0], _not_found)
        found = []
        for rr in answers:
            if rr.type != dns.NAPTR:
                continue
            p = rr.payload
            service = p.service.decode("ascii", "replace").upper() if isinstance(p.service, bytes) else str(p.service).upper()
            t = _NAPTR_SERVICES.get(service)
            if t is None or t not in self.transports or (secure and t != "TLS"):
                continue
            found.append((p.order, p.preference, t, str(p.replacement)))
        found.sort(key=lambda x: (x[0], x[1]))
        return [(t, name) for _, _, t, name in found]

    @defer.inlineCallbacks
    def _srv_targets(self, transport: str, name: str) -> Any:
        answers = yield self.resolver.lookupService(name).addCallbacks(lambda r: r[0], _not_found)
        records = [rr.payload for rr in answers if rr.type == dns.SRV]
        records.sort(key=lambda p: (p.priority, -p.weight))
        targets: list[Target] = []
        for p in records:
            target = str(p.target)
            if target in (".", ""):
                continue  # "service decidedly not available" (RFC 2782)
            addrs = yield self._addresses(target)
            targets.extend(Target(transport, a, p.port) for a in addrs)
        return targets

    @defer.inlineCallbacks
    def _addresses(self, host: str) -> Any:
        out: list[str] = []
        answers = yield self.resolver.lookupAddress(host).addCallbacks(lambda r: r[0], _not_found)
        out.extend(rr.payload.dottedQuad() for rr in answers if rr.type == dns.A)
        if self.ipv6:
            answers6 = yield self.resolver.lookupIPV6Address(host).addCallbacks(lambda r: r[0], _not_found)
            for rr in answers6:
                if rr.type == dns.AAAA:
                    out.append(str(ipaddress.IPv6Address(rr.payload.address)))
        return out
