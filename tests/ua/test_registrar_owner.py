"""The answer registrar: an authenticated user registers only its own AOR unless mapped (RFC 3261 §10.3 step 3)."""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock

from txsipua.sip.message import Request
from txsipua.ua.registrar import Registrar


class Respond:
    def __init__(self, identity: str | None) -> None:
        self.identity = identity
        self.calls: list[tuple[Any, ...]] = []

    def __call__(self, status: int, reason: str | None = None, headers: Any = (), body: bytes = b"") -> None:
        self.calls.append((status, reason, list(headers)))


class FakeUA:
    def __init__(self) -> None:
        self.reactor = Clock()


def _register(aor_user: str) -> Request:
    return Request("REGISTER", "sip:example.com", [
        ("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1"), ("From", f"<sip:{aor_user}@example.com>;tag=1"),
        ("To", f"<sip:{aor_user}@example.com>"), ("Call-ID", "c"), ("CSeq", "1 REGISTER"),
        ("Contact", "<sip:dev@192.0.2.1>"), ("Expires", "600"),
    ])


def test_own_aor_is_accepted_others_forbidden() -> None:
    """alice registers sip:alice@; alice registering sip:bob@ gets 403 and binds nothing."""
    reg = Registrar(FakeUA())
    ok = Respond("alice")
    reg.handle(_register("alice"), ok)
    assert ok.calls[0][0] == 200
    bad = Respond("alice")
    reg.handle(_register("bob"), bad)
    assert bad.calls[0][0] == 403
    assert "sip:bob@example.com" not in reg.bindings or not reg.bindings["sip:bob@example.com"]


def test_owner_mapping_allows_a_different_auth_username() -> None:
    """owners={"alice-auth": "alice"} lets alice-auth register sip:alice@ (and only that)."""
    reg = Registrar(FakeUA(), owners={"alice-auth": "alice"})
    ok = Respond("alice-auth")
    reg.handle(_register("alice"), ok)
    assert ok.calls[0][0] == 200
    bad = Respond("alice-auth")
    reg.handle(_register("bob"), bad)
    assert bad.calls[0][0] == 403


def test_unauthenticated_registrar_accepts_any() -> None:
    """Without an authenticator (no identity) the registrar accepts every AOR, as configured."""
    reg = Registrar(FakeUA())
    r = Respond(None)
    reg.handle(_register("bob"), r)
    assert r.calls[0][0] == 200


def test_users_file_fifth_field_names_the_aors_an_auth_user_may_register(tmp_path: Any) -> None:
    """``alice-auth:realm:HA1::alice`` (and ``pbx:...:SHA-256:alice,bob``): the owner rules come
    from the users file, read live, and still forbid every other AOR."""
    from txsipua.ua.cred import HtdigestFileStore

    md5, sha = "0" * 32, "1" * 64
    path = tmp_path / "users"
    path.write_text(f"alice-auth:r:{md5}::alice\npbx:r:{sha}:SHA-256: alice , bob\ncarol:r:{md5}\n")
    store = HtdigestFileStore(path)
    assert store.may_register("alice-auth") == {"alice"} and store.may_register("pbx") == {"alice", "bob"}
    assert store.may_register("carol") == frozenset()
    assert store.get_ha1("alice-auth", "r", "MD5") == md5 and store.get_ha1("pbx", "r", "SHA-256") == sha
    reg = Registrar(FakeUA(), owner_rules=store.may_register)
    for identity, aor, status in [("alice-auth", "alice", 200), ("alice-auth", "bob", 403), ("pbx", "bob", 200),
                                  ("carol", "alice", 403), ("carol", "carol", 200)]:
        respond = Respond(identity)
        reg.handle(_register(aor), respond)
        assert respond.calls[0][0] == status, (identity, aor)
