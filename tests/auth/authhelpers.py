"""Helpers wiring a DigestClient to DigestServers in memory (imported by the auth tests)."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from txsipua.auth.server import (
    BadAuthorization,
    DigestCredentials,
    DigestServer,
    Exempt,
    NeedChallenge,
)
from txsipua.sip.message import Request, Response

SECRET = b"0123456789abcdef-test-secret"


def make_request(
    method: str = "REGISTER",
    uri: str = "sip:example.com",
    *,
    body: bytes = b"",
    cseq: int = 1,
    extra: Sequence[tuple[str, str]] = (),
) -> Request:
    """A minimal well-formed request from alice (documentation addresses)."""
    headers = [
        ("Via", f"SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-{method.lower()}-{cseq}"),
        ("Max-Forwards", "70"),
        ("From", "<sip:alice@example.com>;tag=a1"),
        ("To", "<sip:alice@example.com>"),
        ("Call-ID", "call-1@192.0.2.10"),
        ("CSeq", f"{cseq} {method}"),
        *extra,
    ]
    return Request(method, uri, headers, body)


def merge_challenges(*responses: Response, status: int = 407) -> Response:
    """The aggregate of several challenge responses (a forking proxy, RFC 3261 §16.7)."""
    headers = list(responses[0].headers.items())
    for r in responses[1:]:
        headers += [
            (n, v) for n, v in r.headers.items() if n in ("WWW-Authenticate", "Proxy-Authenticate")
        ]
    return Response(status, None, headers)


@attrs.define
class Users:
    """Passwords by (username, realm)."""

    passwords: dict[tuple[str, str], str] = attrs.Factory(dict)

    def check(self, creds: DigestCredentials) -> bool:
        password = self.passwords.get((creds.username, creds.realm))
        return password is not None and creds.check_password(password)


@attrs.define
class Path:
    """Servers a request crosses in order (e.g. a proxy then a UAS); the first to refuse answers."""

    servers: list[DigestServer]
    users: Users
    log: list[str] = attrs.Factory(list)

    def handle(self, request: Request, now: float) -> Response:
        for server in self.servers:
            outcome = server.inspect(request, now)
            if isinstance(outcome, Exempt):
                continue
            if isinstance(outcome, BadAuthorization):
                self.log.append(f"{server.realm}: {outcome.status} {outcome.reason}")
                return Response(outcome.status, outcome.reason, list(request.headers.items())[:5])
            if isinstance(outcome, NeedChallenge):
                self.log.append(f"{server.realm}: challenge stale={outcome.stale} {outcome.reason}")
                return server.challenge(request, now, stale=outcome.stale)
            if not self.users.check(outcome):
                self.log.append(f"{server.realm}: refused {outcome.failure}")
                return server.challenge(request, now, stale=outcome.stale)
            self.log.append(f"{server.realm}: accepted {outcome.username}")
        return Response(200, None, list(request.headers.items())[:5])


def with_auth(request: Request, headers: Sequence[tuple[str, str]], cseq: int) -> Request:
    """The retried request: credentials replaced, CSeq incremented."""
    r = request.copy()
    r.headers.remove("Authorization")
    r.headers.remove("Proxy-Authorization")
    r.headers.set("CSeq", f"{cseq} {request.method}")
    for name, value in headers:
        r.headers.add(name, value)
    return r
