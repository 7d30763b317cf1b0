"""Several accounts on one UserAgent: Contact users, matching incoming requests, per-account requests."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.testing import MemoryReactorClock

from txsipua.auth.credentials import Credential, InMemoryCredentials
from txsipua.sip.message import Request, parse_message
from txsipua.sip.uri import SipURI
from txsipua.testing.strategies import requests
from txsipua.ua.account import Account
from txsipua.ua.transports import UDPTransport
from txsipua.ua.useragent import UserAgent


def _account(user: str, domain: str, realm: str = "voip.example.net") -> Account:
    creds = InMemoryCredentials([Credential(realm=realm, username=f"{user}-auth", password="pw")])
    return Account(user=user, domain=domain, credentials=creds, registrar="sip:192.0.2.5")


def _ua(primary: Account | None) -> UserAgent:
    reactor = MemoryReactorClock()
    return UserAgent(reactor, None, primary, UDPTransport(reactor, "192.0.2.100", 5060))


def _invite(ruri: str, to: str) -> Request:
    msg = parse_message(
        f"INVITE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.5;branch=z9hG4bKm\r\nFrom: <sip:x@example.org>;tag=1\r\n"
        f"To: <{to}>\r\nCall-ID: m\r\nCSeq: 1 INVITE\r\nContact: <sip:x@192.0.2.5>\r\nContent-Length: 0\r\n\r\n".encode()
    )
    assert isinstance(msg, Request)
    return msg


def test_contact_users_are_made_distinct() -> None:
    """The same user at two providers gets alice-2 as its Contact user; a third alice-3."""
    ua = _ua(_account("alice", "home.example"))
    work = ua.add_account(_account("alice", "work.example"))
    club = ua.add_account(_account("alice", "club.example"))
    bob = ua.add_account(_account("bob", "work.example"))
    assert [work.contact_user, club.contact_user, bob.contact_user] == ["alice-2", "alice-3", "bob"]
    assert str(work.core.contact_uri()) == "sip:alice-2@192.0.2.100:5060"
    assert len(ua.accounts) == 3
    with pytest.raises(ValueError, match="already"):
        ua.add_account(_account("alice", "work.example"))


def test_matching_rules_in_order() -> None:
    """Request-URI = AOR, then Request-URI user = Contact user, then To = AOR; else the UA's own."""
    ua = _ua(_account("alice", "home.example"))
    work = ua.add_account(_account("alice", "work.example"))
    bob = ua.add_account(_account("bob", "work.example"))
    match = ua.accounts.match
    # the Contact we registered
    assert match(_invite("sip:alice-2@192.0.2.100:5060", "sip:someone@elsewhere.example")) is work
    assert match(_invite("sip:bob@192.0.2.100:5060", "sip:alice@work.example")) is bob
    assert match(_invite("sip:alice@192.0.2.100:5060", "sip:bob@work.example")) is None  # the UA's Contact user
    # the Request-URI is an AOR (before Contact users: "alice" is also the UA's Contact user)
    assert match(_invite("sip:alice@WORK.example", "sip:x@elsewhere.example")) is work
    assert match(_invite("sip:alice@home.example", "sip:bob@work.example")) is None  # the UA's own AOR
    # the To URI
    assert match(_invite("sip:unknown@192.0.2.100", "sip:bob@work.example")) is bob
    # none: the UA's own handlers
    assert match(_invite("sip:unknown@192.0.2.100", "sip:nobody@work.example")) is None


def test_without_added_accounts_nothing_matches() -> None:
    """A single-account UA: every request is its own (behaviour unchanged)."""
    ua = _ua(_account("alice", "home.example"))
    assert ua.accounts.match(_invite("sip:bob@192.0.2.100", "sip:bob@work.example")) is None


def test_ua_without_account_can_serve_added_ones() -> None:
    """A UA built without an account: an added one matches; its Contact user is its own user."""
    ua = _ua(None)
    line = ua.add_account(_account("carol", "work.example"))
    assert line.contact_user == "carol"
    assert ua.accounts.match(_invite("sip:carol@192.0.2.100", "sip:carol@work.example")) is line


def test_a_line_builds_requests_as_its_account() -> None:
    """From is the line's AOR, Contact its Contact user, Route its outbound proxy; the UA's account is untouched."""
    ua = _ua(_account("alice", "home.example"))
    acct = Account(user="alice", domain="work.example", outbound_proxy="sip:198.51.100.7")
    line = ua.add_account(acct)
    req = line._request("OPTIONS", "sip:carol@work.example")
    assert req.from_.uri.host == "work.example"
    assert req.headers.get("Contact") == "<sip:alice-2@192.0.2.100:5060>"
    assert req.headers.get("Route") == "<sip:198.51.100.7;lr>"
    assert ua.outbound_route() == []
    assert line.digest is not ua.core.digest


def test_lines_registrations_belong_to_the_ua() -> None:
    """A line's Registration is the UA's (ua.stop() ends it), with the line's AOR and Contact."""
    ua = _ua(_account("alice", "home.example"))
    line = ua.add_account(_account("bob", "work.example"))
    reg: Any = line.registration(300)
    assert reg.ua is line and reg.ua.registrations is ua.registrations
    assert reg.ua.require_account().aor == line.account.aor


def test_a_lines_core_view_is_the_uas_core() -> None:
    """Reading or setting through a line's core reaches the one core (our address is the UA's)."""
    ua = _ua(_account("alice", "home.example"))
    line = ua.add_account(_account("bob", "work.example"))
    line.core.local = ("198.51.100.20", 5062)
    assert ua.core.local == ("198.51.100.20", 5062)
    assert str(line.core.contact_uri()) == "sip:bob@198.51.100.20:5062"
    assert str(ua.core.contact_uri()) == "sip:alice@198.51.100.20:5062"


_UA = _ua(_account("alice", "home.example"))
_LINES = [_UA.add_account(_account("alice", "work.example")), _UA.add_account(_account("bob", "work.example"))]


@settings(max_examples=80, deadline=None)
@given(requests(), st.sampled_from(["alice", "alice-2", "bob", "carol", None]),
       st.sampled_from(["home.example", "work.example", "192.0.2.100"]))
def test_matching_never_raises_and_follows_the_rules(request: Request, user: str | None, host: str) -> None:
    """Any request (hypothesis), its Request-URI rewritten: the match is a line or None as the rules say."""
    request.uri = SipURI(user=user, host=host)
    found = _UA.accounts.match(request)
    assert found is None or found in _LINES
    if (user, host) == ("alice", "work.example") or user == "alice-2":
        assert found is _LINES[0]
    if (user, host) == ("alice", "home.example") or (user == "alice" and host == "192.0.2.100"):
        assert found is None
