"""Regressions found by the issue-3 review: hostile values in challenges and credentials."""

from __future__ import annotations

import pytest

from txsipua.auth.client import DigestClient
from txsipua.auth.credentials import Credential, InMemoryCredentials
from txsipua.auth.digest import compute_ha1
from txsipua.auth.server import BadAuthorization, DigestCredentials, DigestServer, NeedChallenge
from txsipua.errors import AuthenticationError
from txsipua.sip.message import Request, Response

REALM = "realm1"


def _request(auth: str | None = None) -> Request:
    h = [("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1"), ("From", "<sip:a@example.com>;tag=1"),
         ("To", "<sip:b@example.com>"), ("Call-ID", "c"), ("CSeq", "1 REGISTER")]
    if auth:
        h.append(("Authorization", auth))
    return Request("REGISTER", "sip:example.com", h)


def test_escaped_control_character_in_a_nonce_fails_cleanly() -> None:
    """nonce="a\\<0x01>b" parses (a quoted-pair) but cannot be echoed: AuthenticationError, not ValueError."""
    r = Response(401, None, [("WWW-Authenticate", 'Digest realm="realm1", nonce="a\\\x01b"')])
    attempt = DigestClient(InMemoryCredentials([Credential(REALM, "alice", "pw")])).start()
    with pytest.raises(AuthenticationError):
        attempt.respond_to(r, "REGISTER", "sip:example.com")
    assert any("cannot answer" in n for n in attempt.notes)


@pytest.mark.parametrize("field", ["response", "opaque"])
def test_non_ascii_credentials_are_refused_not_raised(field: str) -> None:
    """Non-ASCII response or opaque values are compared in constant time without TypeError."""
    server = DigestServer(REALM, b"s" * 32, opaque="op")
    nonce = server.make_nonce(0.0)
    values = {"response": "0" * 32, "opaque": "op"}
    values[field] = "é" * 8
    auth = (f'Digest username="alice", realm="{REALM}", nonce="{nonce}", uri="sip:example.com", '
            f'response="{values["response"]}", opaque="{values["opaque"]}", algorithm=MD5')
    outcome = server.inspect(_request(auth), 1.0)
    if isinstance(outcome, DigestCredentials):
        assert outcome.check_ha1(compute_ha1("MD5", "alice", REALM, "pw")) is False
    else:
        assert isinstance(outcome, NeedChallenge | BadAuthorization)
