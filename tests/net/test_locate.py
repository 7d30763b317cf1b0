"""Target selection and failover, sans-IO (RFC 3263 §4.3, RFC 2782), and the resolver's TTL cache and AAAA."""

from __future__ import annotations

import collections
import random
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from test_resolve import ZONE, ZoneResolver, result
from twisted.names import dns

from txsipua.net.locate import Failover, TTLCache, Unavailable, srv_order
from txsipua.net.resolve import SIPResolver, Target
from txsipua.sip.uri import SipURI


def test_srv_order_priority_first_whatever_the_draw() -> None:
    """Lower priority always first; the draw only orders within one priority."""
    records = [(20, 100, "backup"), (10, 10, "a"), (10, 60, "b")]
    for draw in (0.0, 0.5, 0.99):
        assert srv_order(records, lambda d=draw: d)[-1] == "backup"  # type: ignore[misc]


def test_srv_order_draw_thresholds() -> None:
    """Weights 10 and 60: a draw below 10/70 picks the light one first, above it the heavy one."""
    records = [(10, 10, "light"), (10, 60, "heavy")]
    assert srv_order(records, lambda: 0.1) == ["light", "heavy"]   # r = 7 <= 10
    assert srv_order(records, lambda: 0.2) == ["heavy", "light"]   # r = 14 > 10


def test_srv_order_zero_weight_first_only_on_a_zero_draw() -> None:
    """Weight 0 records are listed first, so only r == 0 picks them (RFC 2782)."""
    records = [(1, 50, "w50"), (1, 0, "w0")]
    assert srv_order(records, lambda: 0.0) == ["w0", "w50"]
    assert srv_order(records, lambda: 0.01) == ["w50", "w0"]
    assert srv_order([(1, 0, "x"), (1, 0, "y")], lambda: 0.7) == ["x", "y"]  # all zero: r = 0, listed order


def test_srv_order_follows_the_weights_over_many_draws() -> None:
    """Over 6,000 seeded draws, weight 60 vs 10 comes first about 6/7 of the time."""
    rng = random.Random(7)
    firsts = collections.Counter(srv_order([(0, 10, "a"), (0, 60, "b")], rng.random)[0] for _ in range(6000))
    assert 0.83 < firsts["b"] / 6000 < 0.89


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 100)), max_size=8), st.floats(0, 0.999))
def test_srv_order_is_a_permutation_in_priority_order(spec: list[tuple[int, int]], draw: float) -> None:
    """Every record exactly once, priorities never decreasing (hypothesis)."""
    records = [(p, w, i) for i, (p, w) in enumerate(spec)]
    out = srv_order(records, lambda: draw)
    assert sorted(out) == list(range(len(spec)))
    priorities = [spec[i][0] for i in out]
    assert priorities == sorted(priorities)


A, B, C = ("192.0.2.1", 5060), ("192.0.2.2", 5060), ("192.0.2.3", 5070)


def test_failover_walks_the_targets_in_order() -> None:
    """Timeouts and transport errors move to the next target; None once all were tried."""
    f = Failover([A, B, C])
    assert f.next_target(A, None, 0.0) == B
    assert f.next_target(B, None, 1.0) == C
    assert f.next_target(C, None, 2.0) is None
    assert f.tried == [A, B, C]


def test_503_retry_after_skips_the_server_for_that_long() -> None:
    """A 503 with Retry-After marks its server; other requests skip it until then, not after."""
    table = Unavailable()
    first = Failover([A, B], table)
    assert first.next_target(A, 120.0, 10.0) == B
    assert table.until(A, 10.0) == 130.0
    assert table.available([A, B, C], 129.9) == [B, C]
    assert table.available([A, B, C], 130.0) == [A, B, C]
    later = Failover([C, A, B], table)   # a request that lists A after C
    table.mark(A, 200.0)
    assert later.next_target(C, None, 150.0) == B   # A is skipped
    assert later.tried == [C, B]


def test_unavailable_is_bounded() -> None:
    """The table forgets its oldest marks past its limit."""
    table = Unavailable(limit=2)
    for i in range(3):
        table.mark(("192.0.2.9", 5000 + i), 100.0)
    assert table.until(("192.0.2.9", 5000), 0.0) is None
    assert table.until(("192.0.2.9", 5002), 0.0) == 100.0


def test_ttl_cache_expires_and_is_bounded() -> None:
    """An entry lives until its deadline; the oldest goes first past the limit."""
    cache: TTLCache[str, int] = TTLCache(limit=2)
    cache.put("a", 1, 10.0)
    assert cache.get("a", 9.9) == 1 and cache.get("a", 10.0) is None
    cache.put("a", 1, 50.0)
    cache.put("b", 2, 50.0)
    cache.put("c", 3, 50.0)
    assert cache.get("a", 0.0) is None and len(cache) == 2


class Clock:
    """A settable clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_resolver_caches_for_the_smallest_ttl() -> None:
    """The zone's records have TTL 60: a second locate within 60 s asks nothing, after it asks again."""
    zone = ZoneResolver(ZONE)
    clock = Clock()
    resolver = SIPResolver(zone, clock=clock, random=lambda: 0.5)
    uri = SipURI.parse("sip:alice@example.com")
    first = result(resolver.locate(uri))
    asked = len(zone.queries)
    clock.now += 59.0
    assert result(resolver.locate(uri)) == first
    assert len(zone.queries) == asked
    clock.now += 1.0
    result(resolver.locate(uri))
    assert len(zone.queries) == 2 * asked


def test_resolver_returns_a_and_aaaa() -> None:
    """A host with A and AAAA records gives both addresses, A first (RFC 3263 §4.2)."""
    zone = ZoneResolver({
        ("dual.example.com", dns.A): [dns.Record_A("192.0.2.4")],
        ("dual.example.com", dns.AAAA): [dns.Record_AAAA("2001:db8::4")],
    })
    targets: Any = result(SIPResolver(zone).locate(SipURI.parse("sip:dual.example.com:5070")))
    assert targets == [Target("UDP", "192.0.2.4", 5070), Target("UDP", "2001:db8::4", 5070)]
    only4: Any = result(SIPResolver(zone, ipv6=False).locate(SipURI.parse("sip:dual.example.com:5070")))
    assert only4 == [Target("UDP", "192.0.2.4", 5070)]


def test_websocket_naptr_and_no_srv() -> None:
    """NAPTR SIP+D2W leads to WS targets (RFC 7118 §10.3); transport=ws on a name asks no SRV."""
    zone = ZoneResolver({
        ("ws.example.com", dns.NAPTR): [dns.Record_NAPTR(10, 10, b"s", b"SIP+D2W", b"", "_sip._ws.ws.example.com")],
        ("_sip._ws.ws.example.com", dns.SRV): [dns.Record_SRV(0, 0, 8080, "edge.ws.example.com")],
        ("edge.ws.example.com", dns.A): [dns.Record_A("192.0.2.80")],
        ("plain.ws.example.com", dns.A): [dns.Record_A("192.0.2.81")],
    })
    resolver = SIPResolver(zone, transports=("WS",))
    assert result(resolver.locate(SipURI.parse("sip:ws.example.com"))) == [Target("WS", "192.0.2.80", 8080)]
    zone.queries.clear()
    assert result(resolver.locate(SipURI.parse("sip:plain.ws.example.com;transport=ws"))) == [
        Target("WS", "192.0.2.81", 5060)]
    assert all(t in (dns.A, dns.AAAA) for _, t in zone.queries)
