"""The binding store and the §10.3 logic shared by the demo's proxy and ``answer`` (issue 8, issue 12)."""

from __future__ import annotations

import pytest

from txsipua.server.bindings import Binding, BindingStore, contact_key
from txsipua.server.registrar import Registrar
from txsipua.sip.message import Request
from txsipua.sip.uri import SipURI
from txsipua.sip.values import NameAddr

SOURCE = ("192.0.2.10", 5060)


def binding(aor: str, host: str, expires_at: float) -> Binding:
    return Binding(aor, NameAddr(SipURI(host=host, user="u")), expires_at, "c", 1, SOURCE)


def request(aor: str = "sip:alice@example.com", *contacts: str, expires: str | None = "300", cseq: int = 1,
            call_id: str = "r1", extra: tuple[tuple[str, str], ...] = ()) -> Request:
    headers = [("Via", "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKb1"), ("From", f"<{aor}>;tag=f"),
               ("To", f"<{aor}>"), ("Call-ID", call_id), ("CSeq", f"{cseq} REGISTER"),
               *[("Contact", c) for c in contacts], *extra]
    if expires is not None:
        headers.append(("Expires", expires))
    return Request("REGISTER", "sip:example.com", headers)


def test_store_purges_every_aor_and_counts() -> None:
    store = BindingStore()
    store.put(binding("sip:a@example.com", "192.0.2.1", 10.0))
    store.put(binding("sip:b@example.com", "192.0.2.2", 20.0))
    store.put(binding("sip:b@example.com", "192.0.2.3", 30.0))
    assert len(store) == 3 and store.next_expiry() == 10.0
    expired = store.purge(20.0)
    assert sorted(e.binding.contact.uri.host for e in expired) == ["192.0.2.1", "192.0.2.2"]
    assert len(store) == 1 and list(store.aors()) == ["sip:b@example.com"]
    assert store.next_expiry() == 30.0


def test_refresh_replaces_and_old_deadline_is_ignored() -> None:
    store = BindingStore()
    store.put(binding("sip:a@example.com", "192.0.2.1", 10.0))
    assert store.put(binding("sip:a@example.com", "192.0.2.1", 100.0)) is True
    assert len(store) == 1
    assert store.purge(50.0) == [] and store.next_expiry() == 100.0


def test_heap_stays_bounded_under_refreshes() -> None:
    store = BindingStore()
    for i in range(10_000):
        store.put(binding("sip:a@example.com", "192.0.2.1", 1000.0 + i))
        store.purge(float(i))
    assert len(store._deadlines) < 100  # noqa: SLF001 - the bound is the point of this test


def test_room_and_cap() -> None:
    store = BindingStore(max_bindings=2)
    assert store.room(2) and not store.room(3)
    with pytest.raises(ValueError):
        BindingStore(max_bindings=0)


def test_contact_key_ignores_host_case_and_params() -> None:
    assert contact_key(SipURI.parse("sip:u@Example.COM;x=1")) == contact_key(SipURI.parse("sip:u@example.com"))
    assert contact_key(SipURI.parse("sip:u@example.com:5070")) != contact_key(SipURI.parse("sip:u@example.com"))


def test_registrar_checks_before_authentication() -> None:
    logic = Registrar(BindingStore(), domain="example.com")
    reply = logic.check(request(extra=(("Require", "foo"),)))
    assert reply is not None and reply.status == 420 and ("Unsupported", "foo") in reply.headers
    reply = logic.check(request("sip:alice@elsewhere.example.org"))
    assert reply is not None and reply.status == 404
    assert logic.check(request()) is None
    assert Registrar(BindingStore()).check(request("sip:alice@elsewhere.example.org")) is None


def test_registrar_steps_6_to_8() -> None:
    logic = Registrar(BindingStore(), min_expires=60, max_expires=600)
    r = logic.register(request("sip:alice@example.com", "<sip:alice@192.0.2.10>", expires="9999"), SOURCE, 0.0)
    assert r.status == 200 and r.headers == (("Contact", "<sip:alice@192.0.2.10>;expires=600"),)
    r = logic.register(request("sip:alice@example.com", "<sip:alice@192.0.2.11>", expires="30", cseq=2), SOURCE, 0.0)
    assert r.status == 423 and r.headers == (("Min-Expires", "60"),)
    r = logic.register(request("sip:alice@example.com", "<sip:alice@192.0.2.10>", cseq=1), SOURCE, 0.0)
    assert r.status == 500  # same Call-ID, CSeq not above: out of order
    r = logic.register(request("sip:alice@example.com", "*", expires="0", cseq=3), SOURCE, 0.0)
    assert r.status == 200 and r.headers == ()
    r = logic.register(request("sip:alice@example.com", "*", expires="60", cseq=4), SOURCE, 0.0)
    assert r.status == 400


def test_registrar_purges_other_aors_and_caps() -> None:
    store = BindingStore(max_bindings=1)
    logic = Registrar(store, retry_after=17)
    assert logic.register(request("sip:a@example.com", "<sip:a@192.0.2.1>", expires="60"), SOURCE, 0.0).status == 200
    full = logic.register(request("sip:b@example.com", "<sip:b@192.0.2.2>", expires="60"), SOURCE, 30.0)
    assert full.status == 503 and full.overloaded and full.headers == (("Retry-After", "17"),)
    assert logic.refused_full == 1
    ok = logic.register(request("sip:b@example.com", "<sip:b@192.0.2.2>", expires="60"), SOURCE, 60.0)
    assert ok.status == 200 and list(store.aors()) == ["sip:b@example.com"]


def test_a_contact_longer_than_the_limit_gets_400_and_is_not_bound() -> None:
    """A 30 KB Contact is not held (issue 12 review F1): 400 naming the limit."""
    registrar = Registrar(BindingStore())
    reply = registrar.register(request("sip:alice@example.com", f"<sip:a@192.0.2.1;x={'q' * 30000}>"),
                               SOURCE, 0.0)
    assert reply.status == 400 and "2048" in (reply.reason or "") and reply.overloaded
    assert len(registrar.store) == 0 and registrar.refused_limits == 1
    ok = registrar.register(request("sip:alice@example.com", f"<sip:a@192.0.2.1;x={'q' * 1900}>"), SOURCE, 0.0)
    assert ok.status == 200


def test_bindings_per_aor_are_capped_so_the_200_always_fits_a_datagram() -> None:
    """Past max_bindings_per_aor, 403 with a reason; the 200 listing them stays small (review F1)."""
    registrar = Registrar(BindingStore(), max_bindings_per_aor=3)
    for i in range(3):
        reply = registrar.register(request("sip:alice@example.com", f"<sip:a@192.0.2.{i}>", cseq=i + 1), SOURCE, 0.0)
        assert reply.status == 200
    reply = registrar.register(request("sip:alice@example.com", "<sip:a@192.0.2.9>", cseq=9), SOURCE, 0.0)
    assert reply.status == 403 and "3 bindings" in (reply.reason or "") and reply.overloaded
    # a refresh, a removal and another AOR are still fine
    assert registrar.register(request("sip:alice@example.com", "<sip:a@192.0.2.1>", cseq=10), SOURCE, 0.0).status == 200
    assert registrar.register(request("sip:bob@example.com", "<sip:b@192.0.2.9>"), SOURCE, 0.0).status == 200
    # the defaults: the 200 of a full AOR of the largest Contacts fits a UDP datagram
    big = Registrar(BindingStore())
    for i in range(big.max_bindings_per_aor):
        reply = big.register(request("sip:alice@example.com", f"<sip:a@192.0.2.{i}>;x={'q' * 2000}", cseq=i + 1),
                             SOURCE, 0.0)
        assert reply.status == 200
    assert sum(len(n) + len(v) + 4 for n, v in reply.headers) < 60000
    refused = big.register(request("sip:alice@example.com", "<sip:a@198.51.100.1>", cseq=99), SOURCE, 0.0)
    assert refused.status == 403
