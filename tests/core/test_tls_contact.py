"""Our Contact over TLS (RFC 3261 §8.1.1.8, RFC 5630 §3.1.3 and §4.1)."""

from __future__ import annotations

import pytest

from txsipua.core.builders import contact_uri
from txsipua.core.useragent import UserAgentCore
from txsipua.sip.message import Request, parse_message
from txsipua.sip.uri import SipURI
from txsipua.sip.values import NameAddr


@pytest.mark.parametrize(
    ("transport", "secure", "expected"),
    [
        ("TLS", True, "sips:alice@192.0.2.1:5061"),
        ("TLS", False, "sip:alice@192.0.2.1:5061;transport=tls"),
        ("TCP", True, "sip:alice@192.0.2.1:5061;transport=tcp"),
        ("UDP", True, "sip:alice@192.0.2.1:5061"),
    ],
)
def test_contact_uri_forms(transport: str, secure: bool, expected: str) -> None:
    """sips: alone over TLS (never with the deprecated transport=tls); sip:;transport=tls when not secure."""
    assert str(contact_uri(("192.0.2.1", 5061), transport, "alice", secure)) == expected


def _core(sips_contact: bool) -> UserAgentCore:
    core = UserAgentCore(local=("192.0.2.1", 5061), transport="TLS", contact_user="alice", reliable=True)
    core.context.sips_contact = sips_contact
    return core


def _contact(request: Request) -> str:
    return request.headers.get("Contact") or ""


def test_sip_request_over_tls_follows_the_setting() -> None:
    """A sip: Request-URI over TLS: sips: by default, sip:;transport=tls when sips_contact is off."""
    uri = SipURI.parse("sip:bob@192.0.2.9")
    me = NameAddr(SipURI.parse("sip:alice@example.com"))
    assert _contact(_core(True).new_request("OPTIONS", uri, me, NameAddr(uri))) == "<sips:alice@192.0.2.1:5061>"
    plain = _core(False)
    assert _contact(plain.new_request("OPTIONS", uri, me, NameAddr(uri))) == "<sip:alice@192.0.2.1:5061;transport=tls>"
    assert str(plain.contact_uri()) == "sip:alice@192.0.2.1:5061;transport=tls"


def test_sips_request_gets_a_sips_contact_whatever_the_setting() -> None:
    """A sips: Request-URI or first Route: the Contact must be sips: (§8.1.1.8)."""
    core = _core(False)
    me = NameAddr(SipURI.parse("sip:alice@example.com"))
    target = SipURI.parse("sips:bob@192.0.2.9")
    assert _contact(core.new_request("INVITE", target, me, NameAddr(target))) == "<sips:alice@192.0.2.1:5061>"
    plain = SipURI.parse("sip:bob@192.0.2.9")
    routed = core.new_request("INVITE", plain, me, NameAddr(plain), route=[SipURI.parse("sips:192.0.2.7;lr")])
    assert _contact(routed) == "<sips:alice@192.0.2.1:5061>"


def test_2xx_to_a_sips_invite_has_a_sips_contact() -> None:
    """Answering a sips: INVITE with sips_contact off still gives a sips: Contact (§12.1.1)."""
    core = _core(False)
    invite = parse_message(
        b"INVITE sips:alice@192.0.2.1:5061 SIP/2.0\r\nVia: SIP/2.0/TLS 192.0.2.9;branch=z9hG4bKx\r\n"
        b"From: <sips:bob@example.org>;tag=1\r\nTo: <sips:alice@example.com>\r\nCall-ID: c\r\n"
        b"CSeq: 1 INVITE\r\nContact: <sips:bob@192.0.2.9>\r\nContent-Length: 0\r\n\r\n"
    )
    assert isinstance(invite, Request)
    assert core.make_response(invite, 200).headers.get("Contact") == "<sips:alice@192.0.2.1:5061>"
