"""The digest-leak guard on transport addresses (auth/guard.py), and DigestClient under it.

Sans-IO: every challenge is made with an explicit ``now``; hops are
:class:`HopAddress` values as the core builds them (the next-hop URI's host as
written, the address it was located at, the transport used).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from authhelpers import SECRET, make_request

from txsipua.auth.challenge import parse_authorization
from txsipua.auth.client import DigestClient
from txsipua.auth.credentials import Credential, CredentialsConfigError, InMemoryCredentials
from txsipua.auth.guard import HopAddress, LeakGuard, TrustedHop, default_port
from txsipua.auth.server import DigestServer
from txsipua.errors import AuthenticationError
from txsipua.sip.uri import SipURI

REALM = "voip.example.net"
ALICE = Credential(REALM, "alice-auth", "s3cret")
NOW = 1000.0


def client_for(cnonces: Iterator[str], *items: Credential, **kwargs: object) -> DigestClient:
    return DigestClient(InMemoryCredentials(items), cnonce_factory=lambda: next(cnonces), **kwargs)  # type: ignore[arg-type]


def hop(uri: str, address: tuple[str, int], transport: str = "UDP") -> HopAddress:
    """The hop of a request whose next-hop URI is ``uri``, located at ``address``."""
    return HopAddress.located(SipURI.parse(uri), address, transport)


def challenge(method: str = "BYE", *, proxy: bool = False, now: float = NOW) -> object:
    server = DigestServer(REALM, SECRET, proxy_role=proxy)
    return server.challenge(make_request(method, "sip:bob@192.0.2.9"), now)


# -- entries and hops ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "entry"),
    [
        ("203.0.113.5", TrustedHop("203.0.113.5")),
        ("203.0.113.5:5070", TrustedHop("203.0.113.5", 5070)),
        ("Registrar.Example.NET.", TrustedHop("registrar.example.net")),
        ("[2001:DB8:0::7]:5080", TrustedHop("2001:db8::7", 5080)),
        ("2001:db8::7", TrustedHop("2001:db8::7")),
        ("sip:203.0.113.5;transport=tcp", TrustedHop("203.0.113.5", None, "TCP")),
        ("sips:proxy.example.net", TrustedHop("proxy.example.net", None, "TLS")),
        ("sip:registrar.test:5080;maddr=127.0.0.1;lr", TrustedHop("127.0.0.1", 5080)),
    ],
)
def test_trusted_hop_parse(text: str, entry: TrustedHop) -> None:
    """host, host:port, [v6]:port and URIs (transport, sips = TLS, maddr wins) are read."""
    assert TrustedHop.parse(text) == entry


@pytest.mark.parametrize("text", ["", "203.0.113.5:http", "host:0", "sip:h;transport=sctp"])
def test_trusted_hop_parse_refuses(text: str) -> None:
    """An empty entry, a port that is not one, an unknown transport: ValueError."""
    with pytest.raises(ValueError):
        TrustedHop.parse(text)


def test_realm_hosts_are_validated() -> None:
    """A realm's hosts entry that is neither host nor host:port is a configuration error."""
    with pytest.raises(CredentialsConfigError, match="host:port"):
        Credential(REALM, "a", "pw", hosts=("198.51.100.7:x",))
    assert Credential(REALM, "a", "pw", hosts=("198.51.100.7:5070",)).hosts == ("198.51.100.7:5070",)


def test_default_port_by_transport() -> None:
    """An entry without a port is trusted at 5060 over UDP/TCP and 5061 over TLS, nowhere else."""
    entry = TrustedHop.parse("203.0.113.5")
    assert (default_port("udp"), default_port("TCP"), default_port("TLS")) == (5060, 5060, 5061)
    assert entry.matches(hop("sip:203.0.113.5", ("203.0.113.5", 5060)))
    assert entry.matches(hop("sip:203.0.113.5", ("203.0.113.5", 5060), "TCP"))
    assert entry.matches(hop("sips:203.0.113.5", ("203.0.113.5", 5061), "TLS"))
    assert not entry.matches(hop("sip:203.0.113.5:5061", ("203.0.113.5", 5061)))
    assert not entry.matches(hop("sip:203.0.113.5:5070", ("203.0.113.5", 5070)))
    assert not entry.matches(hop("sip:203.0.113.5:5060", ("203.0.113.5", 5060), "TLS"))
    # sip:203.0.113.5 as written, located at 5060 by a TLS user agent: the same party
    assert entry.matches(hop("sip:203.0.113.5", ("203.0.113.5", 5060), "TLS"))
    assert not entry.matches(hop("sip:203.0.113.5", ("203.0.113.5", 5070), "TLS"))  # not how it locates
    tcp_only = TrustedHop.parse("sip:203.0.113.5;transport=tcp")
    assert tcp_only.matches(hop("sip:203.0.113.5", ("203.0.113.5", 5060), "TCP"))
    assert not tcp_only.matches(hop("sip:203.0.113.5", ("203.0.113.5", 5060)))


def test_hop_address_from_uri() -> None:
    """A hop keeps the address it goes to and the name (maddr first) it was located from."""
    h = hop("sip:Registrar.Example.net:5080;lr", ("203.0.113.5", 5080))
    assert (h.host, h.port, h.transport, h.name, h.name_port) == (
        "203.0.113.5", 5080, "UDP", "registrar.example.net", 5080,
    )
    numeric = hop("sip:evil@registrar.example.net;maddr=198.51.100.66", ("198.51.100.66", 5060))
    assert numeric.name == "198.51.100.66" and numeric.key == ("198.51.100.66", 5060, "UDP")
    assert HopAddress.located("[2001:db8::7]:5070", ("2001:db8::7", 5070), "tcp").key == (
        "2001:db8::7", 5070, "TCP",
    )
    assert HopAddress.parse("") is None
    assert HopAddress.parse("203.0.113.5").key == ("203.0.113.5", 5060, "UDP")  # type: ignore[union-attr]


# -- the guard: addresses, names and their location -----------------------------------------


def test_numeric_registrar_trusted_at_its_port_only() -> None:
    """registrar = sip:203.0.113.5:5060: another port on the same IP is another party."""
    guard = LeakGuard(["sip:203.0.113.5:5060"])
    assert guard.allows(REALM, hop("sip:203.0.113.5", ("203.0.113.5", 5060)))
    assert not guard.allows(REALM, hop("sip:203.0.113.5:5070", ("203.0.113.5", 5070)))
    assert not guard.allows(REALM, hop("sip:198.51.100.66", ("198.51.100.66", 5060)))
    assert not guard.allows(REALM, None)


def test_named_registrar_trusted_where_its_location_went() -> None:
    """A name is trusted at the addresses locating it gave, later also when reached by IP."""
    guard = LeakGuard([SipURI.parse("sip:registrar.example.net")])
    by_name = hop("sip:registrar.example.net", ("203.0.113.5", 5080))  # SRV gave port 5080
    assert guard.allows(REALM, by_name)
    by_ip = hop("sip:203.0.113.5:5080;lr", ("203.0.113.5", 5080))
    assert not guard.allows(REALM, by_ip)  # not located yet: nothing says this is the registrar
    guard.observe(by_name)
    assert guard.allows(REALM, by_ip)
    assert [h.key for h in guard.learned] == [("203.0.113.5", 5080, "UDP")]
    # the same name written with another port is located elsewhere: another party
    assert not guard.allows(REALM, hop("sip:registrar.example.net:5070", ("203.0.113.5", 5070)))
    assert not guard.allows(REALM, hop("sip:203.0.113.5:5070", ("203.0.113.5", 5070)))
    # the same IP at the learned port but over TCP is not what was located
    assert not guard.allows(REALM, hop("sip:203.0.113.5:5080", ("203.0.113.5", 5080), "TCP"))


def test_learn_from_a_location_result() -> None:
    """learn() takes every target of the configured name; other names teach nothing."""
    guard = LeakGuard(["sip:proxy.example.net"])
    guard.learn(SipURI.parse("sip:proxy.example.net"), [("UDP", "203.0.113.5", 5060), ("UDP", "203.0.113.6", 5060)])
    guard.learn(SipURI.parse("sip:evil.example.org"), [("UDP", "198.51.100.66", 5060)])
    guard.learn(SipURI.parse("sip:proxy.example.net:5099"), [("UDP", "198.51.100.67", 5099)])
    assert {h.host for h in guard.learned} == {"203.0.113.5", "203.0.113.6"}
    assert guard.allows(REALM, hop("sip:203.0.113.6", ("203.0.113.6", 5060)))
    assert not guard.allows(REALM, hop("sip:198.51.100.66", ("198.51.100.66", 5060)))


def test_maddr_is_judged_not_the_nominal_host() -> None:
    """A Contact naming our registrar as host but its own maddr is not the registrar."""
    guard = LeakGuard(["sip:registrar.example.net"])
    evil = hop("sip:evil@registrar.example.net;maddr=198.51.100.66", ("198.51.100.66", 5060))
    assert not guard.allows(REALM, evil)
    guard.observe(evil)
    assert guard.learned == ()


def test_realm_hosts() -> None:
    """A realm's hosts: bare = any port, host:port = that port, for that realm only."""
    hosts = {REALM: ("198.51.100.7", "proxy.example.org:5070", "[2001:db8::7]:5062")}
    guard = LeakGuard(["sip:203.0.113.5"], realm_hosts=lambda realm: hosts.get(realm, ()))
    assert guard.allows(REALM, hop("sip:198.51.100.7:5999", ("198.51.100.7", 5999)))
    assert not guard.allows("other.example.org", hop("sip:198.51.100.7", ("198.51.100.7", 5060)))
    assert guard.allows(REALM, hop("sip:proxy.example.org:5070", ("198.51.100.8", 5070)))
    assert not guard.allows(REALM, hop("sip:proxy.example.org:5071", ("198.51.100.8", 5071)))
    assert guard.allows(REALM, hop("sip:[2001:db8::7]:5062", ("2001:db8::7", 5062)))
    assert not guard.allows(REALM, hop("sip:[2001:db8::7]", ("2001:db8::7", 5060)))


def test_realm_host_name_learned_for_that_realm_only() -> None:
    """A name in a realm's hosts: its located address is then trusted by IP, for that realm only."""
    hosts = {REALM: ("proxy.example.org",), "other.example.org": ()}
    guard = LeakGuard(["sip:203.0.113.5"], realm_hosts=lambda realm: hosts.get(realm, ()),
                      realms=lambda: tuple(hosts))
    by_ip = hop("sip:198.51.100.8:5070;lr", ("198.51.100.8", 5070))
    assert not guard.allows(REALM, by_ip)
    guard.learn(SipURI.parse("sip:proxy.example.org:5070"), [("UDP", "198.51.100.8", 5070)])
    assert guard.allows(REALM, by_ip)
    assert not guard.allows("other.example.org", by_ip)
    assert not guard.allows(REALM, hop("sip:198.51.100.8:5071", ("198.51.100.8", 5071)))
    # the registrar's name later located at the same address widens it to every realm
    registrar = LeakGuard(["sip:registrar.example.net"], realm_hosts=lambda realm: hosts.get(realm, ()),
                          realms=lambda: tuple(hosts))
    registrar.observe(hop("sip:proxy.example.org:5070", ("198.51.100.8", 5070)))
    registrar.observe(hop("sip:registrar.example.net:5070", ("198.51.100.8", 5070)))
    assert registrar.allows("other.example.org", by_ip) is False  # 5070 is not the registrar's port
    registrar.observe(hop("sip:registrar.example.net", ("198.51.100.8", 5070)))  # SRV gave 5070
    assert registrar.allows("other.example.org", by_ip)


def test_guard_off_or_empty_allows_all() -> None:
    """digest_guard = false, or nothing trusted: every hop may receive credentials."""
    anywhere = hop("sip:198.51.100.66:5999", ("198.51.100.66", 5999))
    assert LeakGuard(["203.0.113.5"], enabled=False).allows(REALM, anywhere)
    assert LeakGuard([]).allows(REALM, anywhere)


# -- DigestClient: every request kind judged at its transport address -----------------------


@pytest.mark.parametrize("method", ["REGISTER", "INVITE", "BYE", "INFO", "MESSAGE", "OPTIONS"])
def test_other_port_on_registrar_ip_gets_nothing(cnonces: Iterator[str], method: str) -> None:
    """A party on the registrar's IP but another port challenges: refused, kind "guard"."""
    client = client_for(cnonces, ALICE, trusted_hosts=[SipURI.parse("sip:203.0.113.5")])
    mallory = hop("sip:bob@203.0.113.5:5070", ("203.0.113.5", 5070))
    with pytest.raises(AuthenticationError) as info:
        client.start().respond_to(challenge(method), method, "sip:bob@203.0.113.5:5070", hop=mallory)
    assert info.value.kind == "guard"  # type: ignore[attr-defined]
    assert "203.0.113.5:5070/UDP" in str(info.value)
    assert "add '203.0.113.5:5070' to that realm's hosts" in str(info.value)
    registrar = hop("sip:203.0.113.5", ("203.0.113.5", 5060))
    assert client.start().respond_to(challenge(method), method, "sip:bob@example.com", hop=registrar)


@pytest.mark.parametrize("method", ["BYE", "INVITE", "INFO", "MESSAGE", "OPTIONS"])
def test_named_registrar_trusted_by_ip_in_dialog(cnonces: Iterator[str], method: str) -> None:
    """registrar = sip:registrar.example.net: after the REGISTER located it, its IP is trusted."""
    client = client_for(cnonces, ALICE, trusted_hosts=[SipURI.parse("sip:registrar.example.net")])
    by_ip = hop("sip:203.0.113.5;lr", ("203.0.113.5", 5060))
    with pytest.raises(AuthenticationError):
        client.start().respond_to(challenge(method), method, "sip:bob@example.com", hop=by_ip)
    register = client.start()
    by_name = hop("sip:registrar.example.net", ("203.0.113.5", 5060))
    register.initial_headers("REGISTER", "sip:example.com", hop=by_name)
    assert register.respond_to(challenge("REGISTER"), "REGISTER", "sip:example.com", hop=by_name)
    register.succeeded()
    assert client.start().respond_to(challenge(method), method, "sip:bob@example.com", hop=by_ip)


def test_pre_emptive_credentials_only_to_the_same_trusted_address(cnonces: Iterator[str]) -> None:
    """After one 407 from the provider, the provider's IP at another port gets no credentials."""
    client = client_for(cnonces, ALICE, trusted_hosts=[SipURI.parse("sip:203.0.113.5")])
    provider = hop("sip:203.0.113.5", ("203.0.113.5", 5060))
    attempt = client.start()
    assert attempt.initial_headers("INVITE", "sip:bob@example.com", hop=provider) == []
    attempt.respond_to(challenge("INVITE", proxy=True), "INVITE", "sip:bob@example.com", hop=provider)
    attempt.succeeded()
    again = client.start().initial_headers("MESSAGE", "sip:carol@example.com", hop=provider)
    assert [n for n, _ in again] == ["Proxy-Authorization"]
    for other in (
        hop("sip:203.0.113.5:5070", ("203.0.113.5", 5070)),
        hop("sip:203.0.113.5", ("203.0.113.5", 5060), "TCP"),
        hop("sip:198.51.100.66", ("198.51.100.66", 5060)),
    ):
        assert client.start().initial_headers("MESSAGE", "sip:carol@example.com", hop=other) == []
    # even with the guard off, a cached challenge is reused only at the address it came from
    off = client_for(cnonces, ALICE, guard=False)
    first = off.start()
    first.respond_to(challenge("INVITE", proxy=True), "INVITE", "sip:bob@example.com", hop=provider)
    first.succeeded()
    assert off.start().initial_headers("BYE", "sip:bob@example.com", hop=provider)
    assert off.start().initial_headers(
        "BYE", "sip:bob@example.com", hop=hop("sip:203.0.113.5:5070", ("203.0.113.5", 5070))
    ) == []


def test_ack_credentials_follow_the_guard(cnonces: Iterator[str]) -> None:
    """The ACK repeats the INVITE's credentials only for realms its next hop is trusted for."""
    callee_realm = Credential("biloxi.example.org", "alice-b", "b-pw", hosts=("192.0.2.9:5070",))
    client = client_for(cnonces, ALICE, callee_realm, trusted_hosts=[SipURI.parse("sip:203.0.113.5")])
    proxy = hop("sip:203.0.113.5;lr", ("203.0.113.5", 5060))
    attempt = client.start()
    fields = attempt.respond_to(challenge("INVITE", proxy=True), "INVITE", "sip:bob@example.com", hop=proxy)
    uas = DigestServer("biloxi.example.org", b"b" * 32).challenge(make_request("INVITE"), NOW)
    fields = attempt.respond_to(uas, "INVITE", "sip:bob@example.com", hop=proxy)
    assert sorted(n for n, _ in fields) == ["Authorization", "Proxy-Authorization"]
    invite_fields = [*fields, ("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx")]
    # through the proxy that challenged (Record-Route): everything is repeated
    kept, withheld = client.credentials_for_hop(invite_fields, proxy)
    assert kept == invite_fields and withheld is None
    # straight to the callee (no Record-Route): the proxy's realm is left out, with a reason
    callee = hop("sip:bob@192.0.2.9:5070", ("192.0.2.9", 5070))
    kept, withheld = client.credentials_for_hop(invite_fields, callee)
    assert [n for n, _ in kept] == ["Authorization", "Via"]
    assert parse_authorization(kept[0][1]).realm == "biloxi.example.org"
    assert withheld is not None and "Proxy-Authorization for realm 'voip.example.net'" in str(withheld)
    assert "192.0.2.9:5070/UDP" in str(withheld)
    # an unreadable value is never repeated to an untrusted hop either
    kept, withheld = client.credentials_for_hop([("Proxy-Authorization", "Digest ,,,")], callee)
    assert kept == [] and withheld is not None and "unreadable" in str(withheld)
