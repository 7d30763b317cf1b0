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


# ------------------------------------------- host:port domains (review LOW e)


@pytest.mark.parametrize(("domain", "host", "port", "registrar"), [
    ("example.com", "example.com", None, "sip:example.com"),
    ("127.0.0.1:5080", "127.0.0.1", 5080, "sip:127.0.0.1:5080"),
    ("[2001:db8::1]:5080", "[2001:db8::1]", 5080, "sip:[2001:db8::1]:5080"),
    ("[2001:db8::1]", "[2001:db8::1]", None, "sip:[2001:db8::1]"),
    ("2001:db8::1", "[2001:db8::1]", None, "sip:[2001:db8::1]"),
])
def test_a_domain_with_a_port_is_split_into_host_and_port(domain: str, host: str, port: int | None,
                                                         registrar: str) -> None:
    """domain "host:port" / "[v6]:port": the URIs carry host and port apart, never "host:port" as a host."""
    account = Account("alice", domain)
    assert (account.domain_host, account.domain_port) == (host, port)
    assert account.registrar_uri.host == host and account.registrar_uri.port == port
    assert str(account.registrar_uri) == registrar
    assert account.aor.host == host and account.aor.port == port and account.aor.user == "alice"


@pytest.mark.parametrize("domain", ["", "alice@example.com", "example.com;transport=tcp", "example.com:port",
                                    "a b", "127.0.0.1:5080:1"])
def test_a_domain_that_is_not_a_host_is_an_account_error(domain: str) -> None:
    with pytest.raises(AccountError, match="domain"):
        Account("alice", domain)


class _NoColonResolver:
    """A SIPResolver stand-in that fails the test if asked for a host with an unbracketed ':'."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def locate(self, uri: object) -> object:
        from twisted.internet import defer

        from txsipua.errors import ResolutionError

        host = getattr(uri, "host", "")
        self.asked.append(host)
        assert ":" not in host or host.startswith("["), f"the resolver was asked for {host!r}"
        return defer.fail(ResolutionError(f"{host} unknown"))


def test_a_host_port_domain_never_reaches_the_resolver() -> None:
    """Account domain "127.0.0.1:5080": REGISTER and a call by user name go to 127.0.0.1:5080, no lookup."""
    from uafakes import UDPClock, requests

    from txsipua.ua.config import Configuration
    from txsipua.ua.transports import UDPTransport
    from txsipua.ua.useragent import UserAgent

    clock = UDPClock()
    resolver = _NoColonResolver()
    ua = UserAgent(clock, Configuration(media=False), Account("alice", "127.0.0.1:5080"),
                   UDPTransport(clock, "127.0.0.1", 0), resolver=resolver)
    ua.start()
    ua.registration(60).start().addErrback(lambda f: None)
    call = ua.place_call("bob")
    call.answered.addErrback(lambda f: None)
    assert resolver.asked == []
    written = clock.ports[0].written
    assert {addr for _, addr in written} == {("127.0.0.1", 5080)}
    assert str(requests(ua, "REGISTER")[0].uri) == "sip:127.0.0.1:5080"
    assert str(requests(ua, "INVITE")[0].uri) == "sip:bob@127.0.0.1:5080"


def test_the_resolvers_refuse_a_host_with_a_port_inside() -> None:
    """Even a URI built by hand with host "127.0.0.1:5080" is refused before any DNS query."""

    from txsipua.errors import ResolutionError
    from txsipua.net.resolve import SIPResolver
    from txsipua.sip.uri import SipURI

    class NoDNS:
        def __getattr__(self, name: str) -> object:
            raise AssertionError(f"DNS was asked: {name}")

    failures: list[object] = []
    SIPResolver(NoDNS()).locate(SipURI(host="127.0.0.1:5080")).addErrback(failures.append)
    assert len(failures) == 1 and failures[0].check(ResolutionError)  # type: ignore[attr-defined]
    from uafakes import UDPClock

    from txsipua.ua.config import Configuration
    from txsipua.ua.transports import UDPTransport
    from txsipua.ua.useragent import UserAgent

    clock = UDPClock()
    ua = UserAgent(clock, Configuration(media=False), Account("alice", "example.com"),
                   UDPTransport(clock, "127.0.0.1", 0), resolver=_NoColonResolver())
    ua.start()
    seen: list[object] = []
    ua.resolve(SipURI(host="127.0.0.1:5080")).addErrback(seen.append)
    assert len(seen) == 1 and seen[0].check(ResolutionError)  # type: ignore[attr-defined]


@pytest.mark.parametrize("user", ["", "al\r\nice", "al\nice", "alice\x00", "al\tice", "alice\x7f"])
def test_an_empty_user_or_one_with_a_control_character_is_refused(user: str) -> None:
    """RFC 3261 §25 user = 1*(...): sip:@host has no form; control characters are a mistake. ValueError naming user."""
    with pytest.raises(ValueError, match="^user: ") as info:
        Account(user, "example.com")
    assert isinstance(info.value, AccountError)


@pytest.mark.parametrize("name", ["Alice\r\nX-Injected: 1", "Alice\n", "Alice\r", "Al\x00ice", "Al\x1bice", "Al\x7f"])
def test_a_display_name_with_a_control_character_is_refused(name: str) -> None:
    """CR/LF would end the From header (every request then failed at send time): refused at construction."""
    with pytest.raises(ValueError, match="^display_name: "):
        Account("alice", "example.com", display_name=name)


def test_names_that_the_wire_can_carry_are_kept() -> None:
    """Users needing escapes and display names with quotes, backslashes, a tab or UTF-8 go out and parse back."""
    from txsipua.sip.values import NameAddr

    for user, name in [("a b@c", 'Al "the" \\ one'), ("é;x", "Al\tice é"), ("+12125551212", ""), ("bob", None)]:
        account = Account(user, "example.com", display_name=name)
        parsed = NameAddr.parse(str(account.identity))
        assert parsed.uri.user == user and parsed.uri == account.aor


def test_an_account_file_with_a_bad_display_name_names_the_key(tmp_path: Path) -> None:
    """From TOML: the same check, as an AccountError naming display_name (the CLI's exit 2)."""
    path = tmp_path / "a.toml"
    path.write_text('user = "alice"\ndomain = "example.com"\ndisplay_name = "A\\r\\nB"\n')
    with pytest.raises(AccountError, match="display_name"):
        Account.from_toml(path)
    path.write_text('user = "alice"\ndomain = "example.com"\ndisplay_name = 7\n')
    with pytest.raises(AccountError, match="display_name"):
        Account.from_toml(path)
