"""Credentials per realm, the source seam, and the account file's [[credentials]] tables."""

from __future__ import annotations

from typing import Any

import pytest
from zope.interface.verify import verifyObject

from txsipua.auth.credentials import (
    Credential,
    CredentialsConfigError,
    ICredentialSource,
    InMemoryCredentials,
    credentials_from_toml,
)
from txsipua.auth.digest import compute_ha1
from txsipua.errors import SIPError

MD5_HA1 = compute_ha1("MD5", "alice", "r", "pw")
SHA_HA1 = compute_ha1("SHA-256", "alice", "r", "pw")


def test_in_memory_provides_interface() -> None:
    """InMemoryCredentials provides ICredentialSource."""
    source = InMemoryCredentials([Credential("r", "alice", "pw")])
    assert verifyObject(ICredentialSource, source)
    assert source.realms() == ("r",)
    assert source.credentials_for("r") == Credential("r", "alice", "pw")
    assert source.credentials_for("R") is None  # realms compare exactly
    assert source.credentials_for("other") is None


def test_wildcard_only_when_given() -> None:
    """ "*" matches any realm, but exact realms win."""
    exact = Credential("r", "alice", "pw")
    anyrealm = Credential("*", "any", "pw2")
    source = InMemoryCredentials([anyrealm, exact])
    assert source.credentials_for("r") is exact
    assert source.credentials_for("elsewhere") is anyrealm
    assert anyrealm.is_wildcard and not exact.is_wildcard


def test_ha1_for() -> None:
    """HA1 from the password, or stored per algorithm (also serving -sess)."""
    pw = Credential("r", "alice", "pw")
    assert pw.ha1_for("MD5") == MD5_HA1
    assert pw.ha1_for("sha-256-sess") == SHA_HA1
    assert pw.ha1_for("SHA-1") is None
    stored = Credential("r", "alice", ha1={"md5-SESS": MD5_HA1.upper()})
    assert stored.ha1 == {"MD5": MD5_HA1}
    assert stored.ha1_for("MD5-sess") == MD5_HA1
    assert stored.ha1_for("SHA-256") is None
    assert stored.can_answer("MD5") and not stored.can_answer("SHA-256")
    wildcard = Credential("*", "alice", "pw")
    assert wildcard.ha1_for("MD5", "r") == MD5_HA1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"realm": "r", "username": "a"},
        {"realm": "*", "username": "a", "ha1": {"MD5": MD5_HA1}},
        {"realm": "r", "username": "a", "ha1": {"MD5": "xyz"}},
        {"realm": "r", "username": "a", "ha1": {"SHA-256": MD5_HA1}},
        {"realm": "r", "username": "a", "ha1": {"SHA-1": MD5_HA1}},
        {"realm": "r", "username": "a", "ha1": {"MD5": MD5_HA1, "MD5-sess": "0" * 32}},
        {"realm": "r", "username": "a", "password": "p", "hosts": "h"},
    ],
)
def test_invalid_credential(kwargs: dict[str, Any]) -> None:
    """Missing secrets, bad HA1s, wildcard HA1s are refused with CredentialsConfigError."""
    with pytest.raises(CredentialsConfigError) as info:
        Credential(**kwargs)
    assert isinstance(info.value, SIPError) and isinstance(info.value, ValueError)


def test_duplicate_realm() -> None:
    """Two credentials for one realm are refused."""
    with pytest.raises(CredentialsConfigError, match="two credentials"):
        InMemoryCredentials([Credential("r", "a", "p"), Credential("r", "b", "q")])


def test_password_not_in_repr() -> None:
    """Neither the password nor HA1 appear in repr (logs)."""
    text = repr(Credential("r", "alice", "hunter2", ha1={"MD5": MD5_HA1}))
    assert "hunter2" not in text and MD5_HA1 not in text


def test_from_toml_tables() -> None:
    """Tables with password, a single ha1 + algorithm, an ha1 table, hosts."""
    source = credentials_from_toml(
        [
            {"realm": "r", "username": "alice", "password": "pw", "hosts": ["198.51.100.7"]},
            {"realm": "s", "username": "bob", "ha1": SHA_HA1, "algorithm": "SHA-256"},
            {"realm": "t", "username": "carol", "ha1": {"MD5": MD5_HA1, "SHA-256": SHA_HA1}},
            {"realm": "u", "username": "dave", "ha1": MD5_HA1},
        ]
    )
    assert source.realms() == ("r", "s", "t", "u")
    r = source.credentials_for("r")
    assert r is not None and r.hosts == ("198.51.100.7",) and r.password == "pw"
    s = source.credentials_for("s")
    assert s is not None and s.password is None and s.ha1 == {"SHA-256": SHA_HA1}
    t = source.credentials_for("t")
    assert t is not None and set(t.ha1) == {"MD5", "SHA-256"}
    u = source.credentials_for("u")
    assert u is not None and u.ha1 == {"MD5": MD5_HA1}
    assert source.credentials_for("other") is None


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ([{"username": "a", "password": "p"}], "realm is missing"),
        ([{"realm": "r", "password": "p"}], "username is missing"),
        ([{"realm": "r", "username": 7, "password": "p"}], "username must be a string"),
        ([{"realm": "r", "username": "a"}], "password or an HA1"),
        ([{"realm": "r", "username": "a", "password": 3}], "password must be a string"),
        ([{"realm": "r", "username": "a", "ha1": 3}], "ha1 must be"),
        ([{"realm": "r", "username": "a", "ha1": "00", "algorithm": "MD5"}], "32 hex digits"),
        ([{"realm": "r", "username": "a", "ha1": MD5_HA1, "algorithm": "SHA-1"}], "SHA-1"),
        ([{"realm": "r", "username": "a", "password": "p", "algorithm": "MD5"}], "algorithm goes"),
        ([{"realm": "r", "username": "a", "password": "p", "hosts": [1]}], "hosts"),
        ([{"realm": "r", "username": "a", "password": "p", "pasword": "x"}], "unknown key"),
        (["nope"], "not a table"),
        ([{"realm": "r", "username": "a", "password": "p"}] * 2, "two credentials"),
    ],
)
def test_from_toml_errors(tables: list[Any], message: str) -> None:
    """Each defect is named, with the table it is in."""
    with pytest.raises(CredentialsConfigError, match=message) as info:
        credentials_from_toml(tables)
    assert "credentials" in str(info.value)


def test_from_toml_names_table() -> None:
    """The error names the table index and realm."""
    with pytest.raises(CredentialsConfigError, match=r"table 2 \(realm 'bad'\)"):
        credentials_from_toml(
            [{"realm": "ok", "username": "a", "password": "p"}, {"realm": "bad", "username": "b"}]
        )
