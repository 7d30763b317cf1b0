"""The in-UA registrar of ``txsipua answer`` (RFC 3261 §10.3), driven directly with a Clock."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from twisted.internet import task

from txsipua.sip.message import Request
from txsipua.ua.registrar import Registrar

AOR = "sip:alice@example.com"


class FakeUA:
    """Just what Registrar needs of a UserAgent: a reactor."""

    def __init__(self) -> None:
        self.reactor = task.Clock()


_cseq = itertools.count(1)


def register(*contacts: str, expires: str | None = None, to: str = AOR, method: str = "REGISTER") -> Request:
    """One REGISTER of a client that counts its CSeq up, as §10.2.4 requires."""
    headers = [
        ("Via", "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKr1"),
        ("From", f"<{to}>;tag=a1"), ("To", f"<{to}>"), ("Call-ID", "reg1@192.0.2.10"),
        ("CSeq", f"{next(_cseq)} {method}"),
    ]
    headers += [("Contact", c) for c in contacts]
    if expires is not None:
        headers.append(("Expires", expires))
    return Request(method, "sip:example.com", headers)


class Responder:
    """Collects what the registrar answered: ``(status, reason, headers)``."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, str | None, list[tuple[str, str]]]] = []

    def __call__(self, status: int, reason: str | None = None, headers: Any = (), body: bytes = b"") -> None:
        self.answers.append((status, reason, list(headers)))

    @property
    def status(self) -> int:
        return self.answers[-1][0]

    @property
    def contacts(self) -> list[str]:
        return [v for n, v in self.answers[-1][2] if n == "Contact"]


@pytest.fixture
def registrar() -> Registrar:
    return Registrar(FakeUA(), min_expires=60, max_expires=3600, default_expires=600)


def test_bind_with_expires_param_header_and_default(registrar: Registrar) -> None:
    """Contact ;expires= wins over Expires:, which wins over the default; max_expires caps them."""
    r = Responder()
    registrar.handle(register("<sip:alice@192.0.2.10:5060>;expires=120", expires="300"), r)
    assert r.status == 200 and r.contacts == ["<sip:alice@192.0.2.10:5060>;expires=120"]
    registrar.handle(register("<sip:alice@192.0.2.11>", expires="300"), r)
    registrar.handle(register("<sip:alice@192.0.2.12>"), r)
    registrar.handle(register("<sip:alice@192.0.2.13>", expires="99999"), r)
    assert sorted(r.contacts) == sorted([
        "<sip:alice@192.0.2.10:5060>;expires=120",
        "<sip:alice@192.0.2.11>;expires=300",
        "<sip:alice@192.0.2.12>;expires=600",
        "<sip:alice@192.0.2.13>;expires=3600",
    ])


def test_too_brief_gets_423_with_min_expires(registrar: Registrar) -> None:
    """Below min_expires: 423 Interval Too Brief carrying Min-Expires (§10.3 step 7)."""
    r = Responder()
    registrar.handle(register("<sip:alice@192.0.2.10>", expires="30"), r)
    assert r.status == 423 and ("Min-Expires", "60") in r.answers[-1][2]
    assert registrar.bindings.get(AOR, {}) == {}


def test_423_changes_no_binding(registrar: Registrar) -> None:
    """One too-brief contact refuses the whole request: the other contact is not bound either (§10.3 step 8)."""
    r = Responder()
    registrar.handle(register("<sip:alice@192.0.2.10>;expires=300", "<sip:alice@192.0.2.11>;expires=5"), r)
    assert r.status == 423
    assert registrar.bindings.get(AOR, {}) == {}


def test_expires_zero_removes_and_wildcard_clears(registrar: Registrar) -> None:
    """Expires 0 removes one binding; ``Contact: *`` with Expires: 0 removes them all (§10.2.2)."""
    r = Responder()
    registrar.handle(register("<sip:alice@192.0.2.10>", "<sip:alice@192.0.2.11>", expires="300"), r)
    assert len(r.contacts) == 2
    registrar.handle(register("<sip:alice@192.0.2.10>", expires="0"), r)
    assert r.status == 200 and r.contacts == ["<sip:alice@192.0.2.11>;expires=300"]
    registrar.handle(register("*", expires="0"), r)
    assert r.status == 200 and r.contacts == []


def test_wildcard_needs_expires_zero(registrar: Registrar) -> None:
    """``Contact: *`` without Expires: 0 is a 400."""
    r = Responder()
    registrar.handle(register("*", expires="300"), r)
    assert r.status == 400


def test_query_and_expiry(registrar: Registrar) -> None:
    """A REGISTER without Contact lists the bindings; expired ones are gone and the rest count down."""
    r = Responder()
    registrar.handle(register("<sip:alice@192.0.2.10>;expires=60", "<sip:alice@192.0.2.11>;expires=300"), r)
    registrar.ua.reactor.advance(100)
    registrar.handle(register(), r)
    assert r.status == 200 and r.contacts == ["<sip:alice@192.0.2.11>;expires=200"]


def test_other_methods(registrar: Registrar) -> None:
    """MESSAGE/INFO/NOTIFY get 200, anything else 501; a malformed Contact gets 400."""
    r = Responder()
    for method, status in (("MESSAGE", 200), ("INFO", 200), ("NOTIFY", 200), ("SUBSCRIBE", 501)):
        registrar.handle(register(method=method), r)
        assert r.status == status, method
    registrar.handle(register("<sip:alice@192.0.2.10", expires="300"), r)
    assert r.status == 400
    registrar.handle(register("<sip:alice@192.0.2.10>;expires=-5"), r)
    assert r.status == 400
    assert registrar.bindings.get(AOR, {}) == {}


def _to(aor: str, *contacts: str, expires: str) -> Request:
    return register(*contacts, expires=expires, to=aor)


def test_expired_bindings_of_every_aor_are_purged() -> None:
    """A REGISTER for one AOR removes the expired bindings of all the others (issue 12)."""
    registrar = Registrar(FakeUA(), min_expires=60, max_expires=3600, default_expires=600)
    r = Responder()
    for i in range(50):
        registrar.handle(_to(f"sip:user{i}@example.com", f"<sip:user{i}@192.0.2.{i + 1}>", expires="60"), r)
    assert len(registrar.store) == 50
    registrar.ua.reactor.advance(61)
    registrar.handle(_to("sip:late@example.com", "<sip:late@192.0.2.200>", expires="300"), r)
    assert r.status == 200
    assert len(registrar.store) == 1 and list(registrar.store.aors()) == ["sip:late@example.com"]
    assert set(registrar.bindings) == {"sip:late@example.com"}


def test_binding_cap_gives_503_with_retry_after_and_a_log_line() -> None:
    """Past max_bindings a REGISTER adding one is refused (503, Retry-After); refreshes and removals go on."""
    from twisted.logger import Logger

    events: list[dict[str, Any]] = []
    registrar = Registrar(FakeUA(), max_bindings=2, retry_after=30, log=Logger(observer=events.append))
    r = Responder()
    registrar.handle(_to("sip:a@example.com", "<sip:a@192.0.2.1>", expires="300"), r)
    registrar.handle(_to("sip:b@example.com", "<sip:b@192.0.2.2>", expires="300"), r)
    assert r.status == 200
    registrar.handle(_to("sip:c@example.com", "<sip:c@192.0.2.3>", expires="300"), r)
    assert r.status == 503 and ("Retry-After", "30") in r.answers[-1][2]
    assert "too many registrations" in (r.answers[-1][1] or "")
    assert len(events) == 1 and events[0]["log_level"].name == "warn"
    assert "sip:c@example.com" in events[0]["note"]
    registrar.handle(_to("sip:a@example.com", "<sip:a@192.0.2.1>", expires="600"), r)  # refresh
    assert r.status == 200
    registrar.handle(_to("sip:b@example.com", "<sip:b@192.0.2.2>", expires="0"), r)  # removal
    registrar.handle(_to("sip:c@example.com", "<sip:c@192.0.2.3>", expires="300"), r)  # room again
    assert r.status == 200 and len(registrar.store) == 2
    # expiry frees room as well
    registrar.ua.reactor.advance(601)
    registrar.handle(_to("sip:d@example.com", "<sip:d@192.0.2.4>", expires="300"), r)
    assert r.status == 200 and set(registrar.bindings) == {"sip:d@example.com"}
