"""Accounts: the TOML file of README.md, defaults, validation errors naming the key."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from txsipua.ua.account import Account, AccountError

FULL = """\
user = "alice"
domain = "example.com"
display_name = "Alice"
registrar = "sip:203.0.113.5:5060"
outbound_proxy = "sip:203.0.113.6"
digest_guard = true
[[credentials]]
realm = "voip.example.net"
username = "alice-auth"
password = "s3cret"
hosts = ["198.51.100.7"]
[[credentials]]
realm = "callee.example.org"
username = "alice-callee"
ha1 = "{ha1}"
algorithm = "SHA-256"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "account.toml"
    path.write_text(text)
    return path


def test_full_account_file(tmp_path: Path) -> None:
    """Every README key: identity, registrar, outbound proxy, two realms (password and SHA-256 HA1)."""
    ha1 = hashlib.sha256(b"alice-callee:callee.example.org:pw").hexdigest()
    acct = Account.from_toml(write(tmp_path, FULL.format(ha1=ha1)))
    assert str(acct.aor) == "sip:alice@example.com"
    assert str(acct.identity) == '"Alice" <sip:alice@example.com>'
    assert str(acct.registrar_uri) == "sip:203.0.113.5:5060"
    assert acct.outbound_proxy is not None and acct.outbound_proxy.host == "203.0.113.6"
    assert acct.trusted_hosts == ("203.0.113.5", "203.0.113.6")
    assert set(acct.credentials.realms()) == {"voip.example.net", "callee.example.org"}
    cred = acct.credentials.credentials_for("voip.example.net")
    assert (cred.username, cred.password, cred.hosts) == ("alice-auth", "s3cret", ("198.51.100.7",))
    assert acct.credentials.credentials_for("callee.example.org").ha1 == {"SHA-256": ha1}
    assert acct.credentials.credentials_for("other.example.org") is None
    client = acct.digest_client()
    assert client.guard and "203.0.113.5" in client.trusted_hosts


def test_defaults(tmp_path: Path) -> None:
    """Minimal file: the registrar is sip:<domain>, no proxy, guard on, no credentials."""
    acct = Account.from_toml(write(tmp_path, 'user = "bob"\ndomain = "example.com"\n'))
    assert str(acct.registrar_uri) == "sip:example.com"
    assert acct.outbound_proxy is None and acct.display_name is None
    assert acct.digest_guard and acct.prefer_qop == "auth"
    assert acct.credentials.realms() == ()
    assert acct.trusted_hosts == ("example.com",)


def test_registrar_without_scheme_is_a_sip_uri() -> None:
    """``registrar = "203.0.113.5:5070"`` is read as ``sip:203.0.113.5:5070``."""
    acct = Account.from_mapping({"user": "a", "domain": "example.com", "registrar": "203.0.113.5:5070"})
    assert (acct.registrar_uri.host, acct.registrar_uri.port) == ("203.0.113.5", 5070)


@pytest.mark.parametrize(("text", "named"), [
    ('domain = "example.com"\n', "user"),
    ('user = "a"\n', "domain"),
    ('user = ""\ndomain = "example.com"\n', "user"),
    ('user = "a"\ndomain = "example.com"\npasword = "x"\n', "pasword"),
    ('user = "a"\ndomain = "example.com"\ncredentials = "x"\n', "credentials"),
    ('user = "a"\ndomain = "example.com"\nregistrar = "sip:"\n', "registrar"),
    ('user = "a"\ndomain = "example.com"\n[[credentials]]\nrealm = "r"\nusername = "u"\n', "password"),
    ('user = "a"\ndomain = "example.com"\n[[credentials]]\nrealm = "r"\nusername = "u"\npassword = "p"\nfoo = 1\n',
     "foo"),
    ('user = "a"\ndomain = "example.com"\n[[credentials]]\nrealm = "r"\nusername = "u"\nha1 = "zz"\n', "HA1"),
    ('user = "a"\ndomain = \n', "TOML"),
])
def test_invalid_files_name_the_problem(tmp_path: Path, text: str, named: str) -> None:
    """Each defect raises AccountError whose message names the key (or says the TOML is invalid)."""
    with pytest.raises(AccountError) as info:
        Account.from_toml(write(tmp_path, text))
    assert named.lower() in str(info.value).lower()


def test_missing_file(tmp_path: Path) -> None:
    """An unreadable file: AccountError naming the path."""
    with pytest.raises(AccountError, match="nope.toml"):
        Account.from_toml(tmp_path / "nope.toml")
