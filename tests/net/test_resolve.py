"""RFC 3263 server location over an in-memory twisted.names resolver (no outside DNS)."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import defer
from twisted.names import dns
from twisted.names.common import ResolverBase
from twisted.names.error import DNSNameError

from txsipua.errors import ResolutionError
from txsipua.net.resolve import SIPResolver, Target
from txsipua.sip.uri import SipURI


class ZoneResolver(ResolverBase):
    """An IResolver answering from a dict {(name, type): [payload]}; counts queries."""

    def __init__(self, records: dict[tuple[str, int], list[Any]]) -> None:
        super().__init__()
        self.records = records
        self.queries: list[tuple[str, int]] = []

    def _lookup(self, name: Any, cls: int, type: int, timeout: Any) -> defer.Deferred[Any]:
        text = name.decode() if isinstance(name, bytes) else str(name)
        self.queries.append((text, type))
        payloads = self.records.get((text, type))
        if payloads is None:
            return defer.fail(DNSNameError(text))
        rrs = [dns.RRHeader(text, type, dns.IN, 60, p) for p in payloads]
        return defer.succeed((rrs, [], []))


def result(d: defer.Deferred[Any]) -> Any:
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "the Deferred did not fire synchronously"
    if hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]


ZONE = {
    ("_sip._udp.example.com", dns.SRV): [
        dns.Record_SRV(20, 0, 5090, "backup.example.com"),
        dns.Record_SRV(10, 10, 5070, "sip1.example.com"),
        dns.Record_SRV(10, 60, 5080, "sip2.example.com"),
    ],
    ("sip1.example.com", dns.A): [dns.Record_A("192.0.2.1")],
    ("sip2.example.com", dns.A): [dns.Record_A("192.0.2.2")],
    ("backup.example.com", dns.A): [dns.Record_A("198.51.100.9")],
    ("plain.example.org", dns.A): [dns.Record_A("203.0.113.7")],
    ("naptr.example.net", dns.NAPTR): [
        dns.Record_NAPTR(50, 50, b"s", b"SIP+D2T", b"", "_sip._tcp.naptr.example.net"),
        dns.Record_NAPTR(90, 50, b"s", b"SIP+D2U", b"", "_sip._udp.naptr.example.net"),
    ],
    ("_sip._udp.naptr.example.net", dns.SRV): [dns.Record_SRV(0, 0, 5099, "u.naptr.example.net")],
    ("u.naptr.example.net", dns.A): [dns.Record_A("192.0.2.50")],
}


def test_numeric_host_needs_no_dns() -> None:
    """An IP address is used as it is, default port 5060 (RFC 3263 §4.2)."""
    r = ZoneResolver({})
    assert result(SIPResolver(r).locate(SipURI.parse("sip:bob@127.0.0.1"))) == [Target("UDP", "127.0.0.1", 5060)]
    assert result(SIPResolver(r).locate(SipURI.parse("sip:[::1]:5070"))) == [Target("UDP", "::1", 5070)]
    assert r.queries == []


def test_srv_ordered_by_priority_then_weight() -> None:
    """SRV targets in priority order; within one, the RFC 2782 draw (a high draw picks the heavy one)."""
    targets = result(SIPResolver(ZoneResolver(ZONE), random=lambda: 0.99).locate(SipURI.parse("sip:alice@example.com")))
    assert targets == [
        Target("UDP", "192.0.2.2", 5080),
        Target("UDP", "192.0.2.1", 5070),
        Target("UDP", "198.51.100.9", 5090),
    ]


def test_explicit_port_skips_srv() -> None:
    """With a port the host's A records are used (§4.2)."""
    r = ZoneResolver(ZONE)
    assert result(SIPResolver(r).locate(SipURI.parse("sip:plain.example.org:5062"))) == [
        Target("UDP", "203.0.113.7", 5062)
    ]
    assert all(t in (dns.A, dns.AAAA) for _, t in r.queries)  # no NAPTR, no SRV


def test_no_srv_falls_back_to_address() -> None:
    """No NAPTR and no SRV: A records on the default port."""
    assert result(SIPResolver(ZoneResolver(ZONE)).locate(SipURI.parse("sip:plain.example.org"))) == [
        Target("UDP", "203.0.113.7", 5060)
    ]


def test_naptr_filtered_to_supported_transports() -> None:
    """NAPTR records for transports we lack (TCP here) are skipped."""
    targets = result(SIPResolver(ZoneResolver(ZONE), transports=("UDP",)).locate(SipURI.parse("sip:naptr.example.net")))
    assert targets == [Target("UDP", "192.0.2.50", 5099)]


def test_nothing_found_is_a_resolution_error() -> None:
    """A name with no records at all fails with ResolutionError naming it."""
    with pytest.raises(ResolutionError) as e:
        result(SIPResolver(ZoneResolver({})).locate(SipURI.parse("sip:nowhere.example.invalid")))
    assert "nowhere.example.invalid" in str(e.value)


def test_unavailable_transport_is_refused() -> None:
    """transport=tcp on a UDP-only resolver fails clearly."""
    with pytest.raises(ResolutionError):
        result(SIPResolver(ZoneResolver(ZONE)).locate(SipURI.parse("sip:example.com;transport=tcp")))


class FailingResolver(ZoneResolver):
    """Every query fails with SERVFAIL (DNSServerError)."""

    def _lookup(self, name: Any, cls: int, type: int, timeout: Any) -> defer.Deferred[Any]:
        from twisted.names.error import DNSServerError

        return defer.fail(DNSServerError(name))


@pytest.mark.parametrize("target", ["sip:broken.example.com", "sip:broken.example.com:5070"])
def test_servfail_is_told_apart_from_no_records(target: str) -> None:
    """A failing DNS server (SERVFAIL) is named as such, not as "no records"."""
    with pytest.raises(ResolutionError) as e:
        result(SIPResolver(FailingResolver({})).locate(SipURI.parse(target)))
    text = str(e.value)
    assert "DNS server failed" in text and "DNSServerError" in text
    assert "no address records" not in text and "no NAPTR" not in text
    with pytest.raises(ResolutionError) as e2:
        result(SIPResolver(ZoneResolver({})).locate(SipURI.parse(target)))
    assert "DNS server failed" not in str(e2.value) and "no " in str(e2.value)
