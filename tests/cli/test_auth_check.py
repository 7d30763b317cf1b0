"""``txsipua auth-check`` against the built-in registrar (``txsipua answer``), one failure kind each;
and the README's account registering to ``answer`` without ``--owner``."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from clirun import HOST, REALM, USERS, account_file, htdigest

from txsipua.cli.auth_check import Exchange, diagnose
from txsipua.ua.account import Account


def _users_with_owner(path: Path) -> Path:
    """The users file of the README's account: auth user alice-auth may register SIP user alice."""
    ha1 = hashlib.md5(f"alice-auth:{REALM}:{USERS['alice-auth']}".encode()).hexdigest()
    path.write_text(f"# auth user : realm : HA1 : algorithm : AOR users it may register\n"
                    f"alice-auth:{REALM}:{ha1}::alice\n")
    return path


def _answer(cli, tmp_path: Path, *extra: str, users: Path | None = None) -> str:
    users = users or _users_with_owner(tmp_path / "users.htdigest")
    proc = cli("answer", "--bind", f"{HOST}:0", "--realm", REALM, "--users", str(users), *extra)
    return "sip:" + proc.wait_for("ready ").split()[1]


def test_readme_account_registers_to_answer_without_owner_flag(cli, tmp_path: Path) -> None:
    """auth user alice-auth for SIP user alice: the users file's fifth field allows it, no --owner."""
    registrar = _answer(cli, tmp_path)
    acct = account_file(tmp_path / "alice.toml", registrar)
    proc = cli("register", "--account", str(acct), "--bind", f"{HOST}:0")
    assert proc.wait() == 0, proc
    assert "registered sip:alice@example.com" in proc.stdout


def test_auth_check_explains_a_success(cli, tmp_path: Path) -> None:
    """Exit 0; the 401 challenge (realm, algorithm, qop) and which credential answered it."""
    acct = account_file(tmp_path / "alice.toml", _answer(cli, tmp_path))
    proc = cli("auth-check", "--account", str(acct), "--bind", f"{HOST}:0")
    assert proc.wait() == 0, proc
    out = proc.stdout
    assert f"challenge 401 from the registrar (WWW-Authenticate) at {HOST}:" in out, out
    assert f"realm='{REALM}' algorithm=MD5 qop=auth,auth-int" in out
    assert f"credential of realm '{REALM}' (username 'alice-auth') answered realm '{REALM}'" in out
    assert f"OK: registered: realm {REALM} as alice-auth" in out
    assert USERS["alice-auth"] not in out + proc.stderr


def test_auth_check_wrong_realm(cli, tmp_path: Path) -> None:
    """Credentials written for the SIP domain's realm: 'wrong realm' and the realm to set."""
    acct = account_file(tmp_path / "alice.toml", _answer(cli, tmp_path), realm="example.com")
    proc = cli("auth-check", "--account", str(acct), "--bind", f"{HOST}:0")
    assert proc.wait() == 1, proc
    assert "problem (wrong-realm): wrong realm configured: 401 challenged in realm 'voip.example.net'" in proc.stdout
    assert 'fix: set realm = "voip.example.net"' in proc.stdout


def test_auth_check_sip_user_sent_as_auth_user(cli, tmp_path: Path) -> None:
    """username = the SIP user where the provider wants alice-auth: re-challenged, 'auth user vs SIP user'."""
    acct = account_file(tmp_path / "alice.toml", _answer(cli, tmp_path))
    acct.write_text(acct.read_text().replace('username = "alice-auth"', 'username = "alice"'))
    proc = cli("auth-check", "--account", str(acct), "--bind", f"{HOST}:0")
    assert proc.wait() == 1, proc
    assert "problem (auth-user): auth user vs SIP user: realm 'voip.example.net' refused username 'alice'" in proc.stdout
    assert "separate authentication username" in proc.stdout


def test_auth_check_registrar_refuses_the_aor(cli, tmp_path: Path) -> None:
    """Good credentials but the users file lets alice-auth register no other AOR: 403 explained."""
    registrar = _answer(cli, tmp_path, users=htdigest(tmp_path / "plain.htdigest"))
    acct = account_file(tmp_path / "alice.toml", registrar)
    proc = cli("auth-check", "--account", str(acct), "--bind", f"{HOST}:0")
    assert proc.wait() == 1, proc
    assert "problem (forbidden): 403 alice-auth may not register sip:alice@example.com" in proc.stdout, proc
    assert "alice-auth:REALM:HA1::alice" in proc.stdout


def test_auth_check_algorithm_the_credential_cannot_answer(cli, tmp_path: Path) -> None:
    """The registrar challenges with SHA-256 only; the account stores an MD5 HA1: 'algorithm'."""
    sha = hashlib.sha256(f"alice-auth:{REALM}:{USERS['alice-auth']}".encode()).hexdigest()
    users = tmp_path / "sha.htdigest"
    users.write_text(f"alice-auth:{REALM}:{sha}:SHA-256:alice\n")
    registrar = _answer(cli, tmp_path, "--algorithm", "SHA-256", users=users)
    md5 = hashlib.md5(f"alice-auth:{REALM}:{USERS['alice-auth']}".encode()).hexdigest()
    acct = tmp_path / "alice.toml"
    acct.write_text(f'user = "alice"\ndomain = "example.com"\nregistrar = "{registrar}"\n[[credentials]]\n'
                    f'realm = "{REALM}"\nusername = "alice-auth"\nha1 = "{md5}"\nalgorithm = "MD5"\n')
    proc = cli("auth-check", "--account", str(acct), "--bind", f"{HOST}:0")
    assert proc.wait() == 1, proc
    assert "problem (algorithm): algorithm unsupported by the credential: realm 'voip.example.net' is " \
           "challenged with SHA-256, but the account stores an HA1 for MD5 only" in proc.stdout, proc


@pytest.mark.parametrize("algorithm", ["SHA-1", "AKAv1-MD5"])
def test_diagnose_algorithm_txsipua_does_not_implement(algorithm: str) -> None:
    """A realm challenged only with an algorithm outside RFC 7616/8760's: 'algorithm unsupported'."""
    account = Account.from_mapping({"user": "alice", "domain": "example.com", "credentials": [
        {"realm": REALM, "username": "alice-auth", "password": "x"}]})
    exchange = Exchange()
    exchange.record("send", (b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
                             b"From: <sip:alice@example.com>;tag=1\r\nTo: <sip:alice@example.com>\r\n"
                             b"Call-ID: c\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n"), ("192.0.2.5", 5060))
    exchange.record("recv", (b"SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
                             b"From: <sip:alice@example.com>;tag=1\r\nTo: <sip:alice@example.com>;tag=2\r\n"
                             b"Call-ID: c\r\nCSeq: 1 REGISTER\r\n"
                             b'WWW-Authenticate: Digest realm="' + REALM.encode() + b'", nonce="n", algorithm='
                             + algorithm.encode() + b"\r\nContent-Length: 0\r\n\r\n"), ("192.0.2.5", 5060))
    [finding] = diagnose(exchange, account, RuntimeError("unsupported"))
    assert finding.kind == "algorithm" and algorithm in finding.problem


def test_auth_check_wrong_password_is_not_auth_user(cli, tmp_path: Path) -> None:
    """The right auth user with a wrong password: 'credentials refused' (kind credentials), never
    labelled as auth user vs SIP user."""
    acct = account_file(tmp_path / "alice.toml", _answer(cli, tmp_path), password="not-the-secret")
    proc = cli("auth-check", "--account", str(acct), "--bind", f"{HOST}:0")
    assert proc.wait() == 1, proc
    assert ("problem (credentials): credentials refused: realm 'voip.example.net' challenged again"
            in proc.stdout), proc
    assert "auth-user" not in proc.stdout and "auth user vs SIP user" not in proc.stdout, proc


def test_auth_check_credentials_without_username_says_it_is_missing(cli, tmp_path: Path) -> None:
    """A [[credentials]] table without ``username``: a usage error saying the username is missing."""
    acct = account_file(tmp_path / "alice.toml", f"sip:{HOST}:9")
    acct.write_text(acct.read_text().replace('username = "alice-auth"\n', ""))
    proc = cli("auth-check", "--account", str(acct), "--bind", f"{HOST}:0")
    assert proc.wait() == 2, proc
    assert "username is missing" in proc.stderr, proc
