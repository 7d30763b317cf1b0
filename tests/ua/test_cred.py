"""twisted.cred adapter: HA1Checker over in-memory and htdigest stores, make_portal."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from txsipua.auth.challenge import DigestAuthorization
from txsipua.auth.digest import compute_ha1, compute_response
from txsipua.auth.server import DigestCredentials, DigestServer
from txsipua.sip.message import Request
from txsipua.ua.cred import (
    HA1Checker,
    HtdigestFileStore,
    HtdigestFormatError,
    IDigestHA1Credentials,
    IHA1Store,
    InMemoryHA1Store,
    ISIPUser,
    make_portal,
)

REALM = "voip.example.net"
SECRET = b"twisted-cred-test-secret"


def signed_request(
    server: DigestServer, username: str, password: str, algorithm: str = "MD5", nc: str = "00000001"
) -> Request:
    """A REGISTER carrying credentials computed by hand."""
    nonce = server.make_nonce(0.0)
    ha1 = compute_ha1(algorithm, username, REALM, password)
    response = compute_response(
        algorithm=algorithm, ha1=ha1, nonce=nonce, method="REGISTER", uri="sip:example.com",
        qop="auth", cnonce="abc", nc=nc,
    )  # fmt: skip
    auth = DigestAuthorization(
        username, REALM, nonce, "sip:example.com", response, algorithm=algorithm,
        cnonce="abc", nc=nc, qop="auth",
    )  # fmt: skip
    return Request(
        "REGISTER",
        "sip:example.com",
        [
            ("Via", "SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK-1"),
            ("From", "<sip:alice@example.com>;tag=1"),
            ("To", "<sip:alice@example.com>"),
            ("Call-ID", "cred-1"),
            ("CSeq", "1 REGISTER"),
            ("Authorization", auth.to_header_value()),
        ],
    )


def creds_for(server: DigestServer, *args: Any, **kwargs: Any) -> Any:
    """DigestCredentials (typed Any: it provides IDigestHA1Credentials via classImplements)."""
    outcome = server.inspect(signed_request(server, *args, **kwargs), 1.0)
    assert isinstance(outcome, DigestCredentials)
    return outcome


class HA1CheckerTests(SynchronousTestCase):
    """HA1Checker with an InMemoryHA1Store."""

    def setUp(self) -> None:
        self.store = InMemoryHA1Store()
        self.store.add_password("alice", REALM, "pw")
        self.server = DigestServer(REALM, SECRET, algorithms=("MD5", "SHA-256", "SHA-512-256-sess"))

    def test_interfaces(self) -> None:
        """Checker, store and credentials provide their interfaces."""
        self.assertTrue(verifyObject(ICredentialsChecker, HA1Checker(self.store)))
        self.assertTrue(verifyObject(IHA1Store, self.store))
        creds = creds_for(self.server, "alice", "pw")
        self.assertTrue(verifyObject(IDigestHA1Credentials, creds))

    def test_accepts_each_algorithm(self) -> None:
        """Right password: the avatar id is the username, for every stored algorithm."""
        checker = HA1Checker(self.store)
        for algorithm in ("MD5", "SHA-256", "SHA-512-256-sess"):
            creds = creds_for(self.server, "alice", "pw", algorithm)
            self.assertEqual(self.successResultOf(checker.requestAvatarId(creds)), "alice")

    def test_rejects(self) -> None:
        """Wrong password, unknown user, missing algorithm, replay: UnauthorizedLogin."""
        checker = HA1Checker(self.store)
        self.failureResultOf(
            checker.requestAvatarId(creds_for(self.server, "alice", "no")), UnauthorizedLogin
        )
        self.failureResultOf(
            checker.requestAvatarId(creds_for(self.server, "bob", "pw")), UnauthorizedLogin
        )
        only_md5 = InMemoryHA1Store()
        only_md5.add_password("alice", REALM, "pw", ("MD5",))
        creds = creds_for(self.server, "alice", "pw", "SHA-256")
        f = self.failureResultOf(HA1Checker(only_md5).requestAvatarId(creds), UnauthorizedLogin)
        self.assertIn("SHA-256", str(f.value))

    def test_deferred_store(self) -> None:
        """A store may answer with a Deferred."""

        class SlowStore:
            def __init__(self, inner: InMemoryHA1Store) -> None:
                self.inner = inner
                self.pending: list[defer.Deferred[Any]] = []

            def get_ha1(self, username: str, realm: str, algorithm: str) -> defer.Deferred[Any]:
                d: defer.Deferred[Any] = defer.Deferred()
                self.pending.append(d)
                d.addCallback(lambda _: self.inner.get_ha1(username, realm, algorithm))
                return d

        slow = SlowStore(self.store)
        d = HA1Checker(slow).requestAvatarId(creds_for(self.server, "alice", "pw"))
        self.assertNoResult(d)
        slow.pending[0].callback(None)
        self.assertEqual(self.successResultOf(d), "alice")

    def test_portal(self) -> None:
        """make_portal logs in with the username as avatar; bad credentials fail."""
        portal = make_portal(self.store)
        iface, avatar, logout = self.successResultOf(
            portal.login(creds_for(self.server, "alice", "pw"), None, ISIPUser)
        )
        self.assertEqual((iface, avatar), (ISIPUser, "alice"))
        logout()
        self.failureResultOf(
            portal.login(creds_for(self.server, "alice", "bad"), None, ISIPUser), UnauthorizedLogin
        )

    def test_in_memory_store_api(self) -> None:
        """add_ha1 validates shape; -sess names store under the base; remove forgets."""
        store = InMemoryHA1Store()
        ha1 = compute_ha1("SHA-256", "bob", REALM, "x")
        store.add_ha1("bob", REALM, "sha-256-sess", ha1.upper())
        self.assertEqual(store.get_ha1("bob", REALM, "SHA-256"), ha1)
        self.assertEqual(len(store), 1)
        with pytest.raises(ValueError):
            store.add_ha1("bob", REALM, "MD5", ha1)
        with pytest.raises(ValueError):
            store.add_ha1("bob", REALM, "SHA-1", ha1)
        store.remove("bob", REALM)
        self.assertIsNone(store.get_ha1("bob", REALM, "SHA-256"))


def htdigest_text() -> str:
    md5 = compute_ha1("MD5", "alice", REALM, "pw")
    sha = compute_ha1("SHA-256", "alice", REALM, "pw")
    bob = compute_ha1("MD5", "bob", "other.example.com", "b")
    return f"# users\n\nalice:{REALM}:{md5}\nalice:{REALM}:{sha}:SHA-256\nbob:other.example.com:{bob}\n"


def test_htdigest_parse() -> None:
    """Apache lines are MD5; the fourth field names another algorithm."""
    store = HtdigestFileStore.parse(htdigest_text())
    assert store.get_ha1("alice", REALM, "MD5") == compute_ha1("MD5", "alice", REALM, "pw")
    assert store.get_ha1("alice", REALM, "SHA-256") == compute_ha1("SHA-256", "alice", REALM, "pw")
    assert store.get_ha1("alice", REALM, "SHA-512-256") is None
    assert store.get_ha1("bob", REALM, "MD5") is None


@pytest.mark.parametrize(
    "line",
    [
        "alice:realm",
        "alice:realm:xyz",
        ":realm:" + "0" * 32,
        "a:b:" + "0" * 32 + ":SHA-256",
        "a:b:" + "0" * 32 + ":SHA-1",
        "a:b:c:d:e",
    ],  # fmt: skip
)
def test_htdigest_bad_lines(line: str) -> None:
    """Malformed lines raise HtdigestFormatError naming the line number."""
    with pytest.raises(HtdigestFormatError, match=r"users:2"):
        HtdigestFileStore.parse("# ok\n" + line + "\n", "users")


def test_htdigest_file_with_checker(tmp_path: Path) -> None:
    """The file store feeds the checker; edits to the file are picked up."""
    path = tmp_path / "users.htdigest"
    path.write_text(htdigest_text(), encoding="utf-8")
    store = HtdigestFileStore(path)
    server = DigestServer(REALM, SECRET, algorithms=("SHA-256", "MD5"))
    checker = HA1Checker(store)
    results: list[Any] = []
    checker.requestAvatarId(creds_for(server, "alice", "pw", "SHA-256")).addBoth(results.append)
    assert results == ["alice"]
    carol = compute_ha1("MD5", "carol", REALM, "c")
    path.write_text(htdigest_text() + f"carol:{REALM}:{carol}\n", encoding="utf-8")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    checker.requestAvatarId(creds_for(server, "carol", "c")).addBoth(results.append)
    assert results[-1] == "carol"
    # a broken edit keeps the last good content
    path.write_text("broken\n", encoding="utf-8")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    assert store.get_ha1("carol", REALM, "MD5") == carol
    with pytest.raises(HtdigestFormatError):
        store.reload()


def test_htdigest_missing_file(tmp_path: Path) -> None:
    """A missing file raises OSError on construction."""
    with pytest.raises(OSError):
        HtdigestFileStore(tmp_path / "nope")


def test_username_digest_hash_adapter() -> None:
    """UsernameDigestHash presents the credentials as twisted.cred's IUsernameDigestHash."""
    from twisted.cred.credentials import IUsernameDigestHash

    from txsipua.ua.cred import UsernameDigestHash

    server = DigestServer(REALM, SECRET)
    wrapped = UsernameDigestHash(creds_for(server, "alice", "pw"))
    assert verifyObject(IUsernameDigestHash, wrapped)
    assert wrapped.username == "alice" and wrapped.realm == REALM
    assert not wrapped.checkHash(compute_ha1("MD5", "alice", REALM, "other").encode())
    assert not wrapped.checkHash(b"\xff")
    assert wrapped.checkHash(compute_ha1("MD5", "alice", REALM, "pw").encode())


def test_htdigest_check_every_looks_at_the_file_at_most_once_per_interval(tmp_path: Path) -> None:
    """With check_every, lookups within the interval do not stat the file; the next one after it does."""
    path = tmp_path / "users.htdigest"
    path.write_text(htdigest_text(), encoding="utf-8")
    stats: list[Any] = []

    def counting_stat(p: Any) -> Any:
        stats.append(p)
        return os.stat(p)

    now = [100.0]
    store = HtdigestFileStore(path, stat=counting_stat, check_every=1.0, clock=lambda: now[0])
    stats.clear()
    carol = compute_ha1("MD5", "carol", REALM, "c")
    assert store.get_ha1("carol", REALM, "MD5") is None  # looks (first lookup)
    path.write_text(htdigest_text() + f"carol:{REALM}:{carol}\n", encoding="utf-8")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    now[0] += 0.5
    assert store.get_ha1("carol", REALM, "MD5") is None  # within the second: not looked at
    assert len(stats) == 1
    now[0] += 0.6
    assert store.get_ha1("carol", REALM, "MD5") == carol  # past it: the edit is seen
