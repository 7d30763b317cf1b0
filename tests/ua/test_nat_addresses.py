"""Our advertised addresses: wildcard binds, static NAT, RFC 3581 learning (txsipua.ua.nat)."""

from __future__ import annotations

import pytest
from uafakes import UDPClock, requests

from txsipua.sip.message import Response
from txsipua.sip.uri import SipURI
from txsipua.ua.account import Account
from txsipua.ua.config import Configuration
from txsipua.ua.nat import is_wildcard, learned_address, outbound_contact, route_source
from txsipua.ua.transports import UDPTransport
from txsipua.ua.useragent import UserAgent


def response_with_via(via: str) -> Response:
    return Response(200, None, [("Via", via), ("From", "<sip:a@example.com>;tag=1"), ("To", "<sip:a@example.com>"),
                                ("Call-ID", "c"), ("CSeq", "1 REGISTER")])


@pytest.mark.parametrize(("via", "expected"), [
    ("SIP/2.0/UDP 192.0.2.10:5060;rport=40123;received=203.0.113.7;branch=z9hG4bK1", ("203.0.113.7", 40123)),
    ("SIP/2.0/UDP 192.0.2.10:5060;rport=40123;branch=z9hG4bK1", ("192.0.2.10", 40123)),
    ("SIP/2.0/UDP 192.0.2.10:5060;received=203.0.113.7;branch=z9hG4bK1", ("203.0.113.7", 5060)),
    ("SIP/2.0/UDP 192.0.2.10:5060;rport=5060;received=192.0.2.10;branch=z9hG4bK1", None),
    ("SIP/2.0/UDP 192.0.2.10:5060;rport;branch=z9hG4bK1", None),  # rport not filled in
    ("SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK1", None),
    ("SIP/2.0/UDP [2001:db8::1]:5060;rport=7000;received=2001:db8::9;branch=z9hG4bK1", ("2001:db8::9", 7000)),
])
def test_learned_address_from_received_and_rport(via: str, expected: tuple[str, int] | None) -> None:
    """RFC 3581 §4 / RFC 3261 §18.2.1: received (else sent-by host) and rport (else sent-by port)."""
    advertised = ("2001:db8::1", 5060) if "2001" in via else ("192.0.2.10", 5060)
    assert learned_address(response_with_via(via), advertised, "UDP") == expected


def test_nothing_is_learned_over_connections() -> None:
    """TCP/TLS: the source port is ephemeral; the Contact is not corrected."""
    r = response_with_via("SIP/2.0/TCP 192.0.2.10:5060;received=203.0.113.7;rport=40123;branch=z9hG4bK1")
    assert learned_address(r, ("192.0.2.10", 5060), "TCP") is None


def test_route_source_asks_the_kernel_without_sending() -> None:
    """Loopback routes from loopback; a name or garbage gives None."""
    assert route_source("127.0.0.1") == "127.0.0.1"
    assert route_source("not-an-address") is None
    assert is_wildcard("0.0.0.0") and is_wildcard("::") and not is_wildcard("127.0.0.1")


def test_outbound_contact_value() -> None:
    uri = SipURI(user="alice", host="192.0.2.10", port=5060)
    assert outbound_contact(uri, "urn:uuid:1", 2) == '<sip:alice@192.0.2.10:5060>;+sip.instance="<urn:uuid:1>";reg-id=2'


def loopback_account() -> Account:
    return Account(user="alice", domain="example.com", registrar="sip:127.0.0.1:5999")


def test_a_wildcard_bind_advertises_the_routed_interface(clock: UDPClock) -> None:
    """Bound to 0.0.0.0 with a registrar on 127.0.0.1: Via, Contact and SDP name 127.0.0.1, not 0.0.0.0."""
    ua = UserAgent(clock, Configuration(media=False), loopback_account(), UDPTransport(clock, "0.0.0.0", 0))
    ua.start()
    assert ua.local_address[0] == "127.0.0.1"
    ua.registration(600).start()
    reg = requests(ua, "REGISTER")[-1]
    assert reg.top_via.host == "127.0.0.1" and reg.contact[0].uri.host == "127.0.0.1"
    assert ua.media_bind_host == "0.0.0.0" and ua.media_advertise == "127.0.0.1"


def test_a_wildcard_bind_learns_its_address_at_the_first_send(clock: UDPClock) -> None:
    """No account: the first out-of-dialog request (OPTIONS to 127.0.0.1) fixes Via and Contact."""
    ua = UserAgent(clock, Configuration(media=False), None, UDPTransport(clock, "0.0.0.0", 0))
    ua.start()
    assert ua.local_address[0] == "0.0.0.0"
    ua.options("sip:127.0.0.1:5999")
    req = requests(ua, "OPTIONS")[-1]
    assert req.top_via.host == "127.0.0.1" and req.contact[0].uri.host == "127.0.0.1"
    assert ua.local_address[0] == "127.0.0.1"


def test_static_nat_public_addresses(clock: UDPClock) -> None:
    """public_host names Via/Contact; rtp_public_host the SDP; the sockets bind where they were told."""
    config = Configuration(media=False, public_host="203.0.113.7", rtp_public_host="203.0.113.8",
                           rtp_host="192.0.2.10")
    ua = UserAgent(clock, config, loopback_account(), UDPTransport(clock, "192.0.2.10", 5070))
    ua.start()
    assert ua.local_address == ("203.0.113.7", 5070)
    ua.registration(600).start()
    reg = requests(ua, "REGISTER")[-1]
    assert reg.top_via.host == "203.0.113.7" and str(reg.contact[0].uri) == "sip:alice@203.0.113.7:5070"
    assert ua.media_bind_host == "192.0.2.10" and ua.media_advertise == "203.0.113.8"


def test_configuration_checks_the_new_fields() -> None:
    for bad in ({"public_host": "example.com"}, {"rtp_public_host": "1.2.3"}, {"rtp_ports": (10001, 10000)},
                {"rtp_ports": (0, 10)}, {"keepalive_interval": 0.5}, {"reg_id": 0}, {"instance_id": "uuid:x"},
                {"registration_max_retry": 0}, {"keepalive_timeout": 0}):
        with pytest.raises(ValueError):
            Configuration(**bad)  # type: ignore[arg-type]
    c = Configuration(rtp_ports=[20000, 20010])  # type: ignore[arg-type]
    assert c.rtp_ports == (20000, 20010)
    d = Configuration()
    assert (d.nat_contact, d.outbound, d.keepalive_interval, d.symmetric_rtp, d.registration_max_retry) == (
        True, False, None, False, 1800.0)


def test_sdp_follows_a_learned_public_address(clock: UDPClock) -> None:
    """Bound to 192.0.2.10, the registrar showed 203.0.113.7: RTP still binds 192.0.2.10, SDP names 203.0.113.7."""
    ua = UserAgent(clock, Configuration(media=False), loopback_account(), UDPTransport(clock, "192.0.2.10", 0))
    ua.start()
    assert (ua.media_bind_host, ua.media_advertise) == ("192.0.2.10", "192.0.2.10")
    ua.advertise(("203.0.113.7", 40123))
    assert (ua.media_bind_host, ua.media_advertise) == ("192.0.2.10", "203.0.113.7")
    with_public = UserAgent(clock, Configuration(media=False, public_host="203.0.113.9"), loopback_account(),
                            UDPTransport(clock, "192.0.2.10", 0))
    with_public.start()
    assert with_public.media_advertise == "203.0.113.9"


@pytest.mark.parametrize("target", ["sip:bob@127.0.0.1:5999", "sip:bob@example.com"])
def test_a_wildcard_bind_calls_before_registering(clock: UDPClock, target: str) -> None:
    """Issue 10: INVITE before any REGISTER, registrar a host name: Via, Contact and SDP name the routed interface."""
    ua = UserAgent(clock, Configuration(), Account(user="alice", domain="example.com"),
                   UDPTransport(clock, "0.0.0.0", 0), locate=lambda uri: ("127.0.0.1", 5999))
    ua.start()
    ua.place_call(target)
    invite = requests(ua, "INVITE")[-1]
    assert invite.top_via.host == "127.0.0.1" and invite.contact[0].uri.host == "127.0.0.1"
    body = invite.body.decode()
    assert "c=IN IP4 127.0.0.1" in body and "0.0.0.0" not in body and "0.0.0.0" not in str(invite)


def test_a_wildcard_bind_subscribes_before_registering(clock: UDPClock) -> None:
    """SUBSCRIBE before any REGISTER: the located next hop picks the advertised interface."""
    ua = UserAgent(clock, Configuration(media=False), Account(user="alice", domain="example.com"),
                   UDPTransport(clock, "0.0.0.0", 0), locate=lambda uri: ("127.0.0.1", 5999))
    ua.start()
    ua.subscribe("sip:bob@example.com", "presence")
    sub = requests(ua, "SUBSCRIBE")[-1]
    assert sub.top_via.host == "127.0.0.1" and sub.contact[0].uri.host == "127.0.0.1"


def test_no_route_never_advertises_a_wildcard() -> None:
    """A next hop with no route: the default interface or loopback, never 0.0.0.0 or ::."""
    from txsipua.ua.nat import advertised
    for bind, toward in ((("0.0.0.0", 5060), "255.255.255.255"), (("::", 5060), "ff02::1")):
        host = advertised(bind, None, toward)[0]
        assert not is_wildcard(host)
    assert advertised(("0.0.0.0", 5060), None, "example.com") == ("0.0.0.0", 5060)  # a name: wait for location


def test_only_aaaa_from_an_ipv4_socket_says_so(clock: UDPClock) -> None:
    """A name with only IPv6 addresses, our socket IPv4: a ResolutionError saying exactly that."""
    from twisted.internet import defer

    from txsipua.errors import ResolutionError
    from txsipua.net.resolve import Target

    class V6Only:
        def locate(self, uri: SipURI) -> defer.Deferred[list[Target]]:
            return defer.succeed([Target("UDP", "2001:db8::5", 5060)])

    ua = UserAgent(clock, Configuration(media=False), None, UDPTransport(clock, "192.0.2.10", 0), resolver=V6Only())
    ua.start()
    failures: list[Exception] = []
    ua.options("sip:v6only.example.com").addErrback(lambda f: failures.append(f.value))
    assert len(failures) == 1 and isinstance(failures[0], ResolutionError)
    assert "only IPv6 (AAAA)" in str(failures[0]) and "IPv4" in str(failures[0])
