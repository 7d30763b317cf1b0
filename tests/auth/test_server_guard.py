"""The digest server against guessers and odd clients (issue 12): digest-uri rule, unique nonces,
per-nonce failure cap, lockouts per source and user, and no difference between unknown and known users.

Every test is sans-IO: requests are built by hand, credentials computed with the RFC 7616
formulas, and time is an explicit ``now``.
"""

from __future__ import annotations

import pytest

from txsipua.auth.challenge import parse_challenges
from txsipua.auth.digest import compute_ha1, compute_response
from txsipua.auth.limiter import FailureLimiter, Lockout
from txsipua.auth.server import (
    LOCKED_OUT_REASON,
    BadAuthorization,
    DigestCredentials,
    DigestServer,
    NeedChallenge,
)
from txsipua.sip.message import Request

REALM = "atlanta.example.com"
SECRET = b"0123456789abcdef-guard-secret"
USERS = {"alice": "wonderland7"}


def request(uri: str = "sip:bob@192.0.2.1:5060", *, source: str = "192.0.2.10", method: str = "INVITE",
            cseq: int = 1, authorization: str | None = None) -> Request:
    headers = [
        ("Via", f"SIP/2.0/UDP {source}:5060;branch=z9hG4bK-g{cseq}"),
        ("From", "<sip:alice@example.com>;tag=a1"),
        ("To", "<sip:bob@example.com>"),
        ("Call-ID", "guard-1@192.0.2.10"),
        ("CSeq", f"{cseq} {method}"),
    ]
    if authorization is not None:
        headers.append(("Authorization", authorization))
    return Request(method, uri, headers)


def credentials(nonce: str, *, user: str = "alice", password: str = "wonderland7", uri: str = "sip:bob@192.0.2.1:5060",
                method: str = "INVITE", nc: int = 1) -> str:
    ha1 = compute_ha1("MD5", user, REALM, password)
    ncs = f"{nc:08x}"
    response = compute_response(algorithm="MD5", ha1=ha1, nonce=nonce, method=method, uri=uri, qop="auth",
                                cnonce="c0ffee", nc=ncs)
    return (f'Digest username="{user}", realm="{REALM}", nonce="{nonce}", uri="{uri}", '
            f'response="{response}", algorithm=MD5, qop=auth, nc={ncs}, cnonce="c0ffee"')


def nonce_of(server: DigestServer, now: float) -> str:
    challenge = server.challenge(request(), now)
    return parse_challenges(challenge.headers.get("WWW-Authenticate") or "")[0].nonce


def check(server: DigestServer, req: Request, now: float) -> object:
    """The server's verdict, password checked like HA1Checker does (None HA1 for unknown users)."""
    outcome = server.inspect(req, now)
    if isinstance(outcome, DigestCredentials):
        password = USERS.get(outcome.username)
        ha1 = compute_ha1("MD5", outcome.username, REALM, password) if password is not None else None
        return "ok" if outcome.check_ha1(ha1) else outcome
    return outcome


# ---------------------------------------------------------------------------------- digest-uri

def test_digest_uri_of_same_host_and_port_is_accepted() -> None:
    """SIPp's ``uri="sip:HOST:PORT"`` for ``sip:bob@HOST:PORT`` verifies (default, lenient rule)."""
    server = DigestServer(REALM, SECRET)
    nonce = nonce_of(server, 100.0)
    for nc, uri in enumerate(("sip:192.0.2.1:5060", "sip:192.0.2.1", "sip:bob@192.0.2.1"), start=1):
        req = request(authorization=credentials(nonce, uri=uri, nc=nc), cseq=nc)
        assert check(server, req, 100.0) == "ok", uri


@pytest.mark.parametrize("uri", [
    "sip:192.0.2.99:5060",           # another host
    "sip:192.0.2.1:5070",            # another port
    "sip:carol@192.0.2.1:5060",      # another user of the same server
    "sips:192.0.2.1:5060",           # another scheme
    "tel:+15550100",                 # not a SIP URI
])
def test_digest_uri_of_another_target_is_400(uri: str) -> None:
    server = DigestServer(REALM, SECRET)
    nonce = nonce_of(server, 100.0)
    outcome = server.inspect(request(authorization=credentials(nonce, uri=uri)), 100.0)
    assert isinstance(outcome, BadAuthorization) and outcome.status == 400


def test_strict_digest_uri_refuses_the_host_only_uri() -> None:
    """``strict_digest_uri=True``: only the Request-URI itself (RFC 3261 §22.4) is accepted."""
    server = DigestServer(REALM, SECRET, strict_digest_uri=True)
    nonce = nonce_of(server, 100.0)
    outcome = server.inspect(request(authorization=credentials(nonce, uri="sip:192.0.2.1:5060")), 100.0)
    assert isinstance(outcome, BadAuthorization) and outcome.status == 400
    exact = request(authorization=credentials(nonce, uri="sip:bob@192.0.2.1:5060"), cseq=2)
    assert check(server, exact, 100.0) == "ok"


# --------------------------------------------------------------------------------------- nonces

def test_instances_sharing_a_secret_issue_distinct_nonces_all_verifiable() -> None:
    """Same millisecond, same counter, same secret: the instance part keeps the nonces apart."""
    a = DigestServer(REALM, SECRET, instance=1)
    b = DigestServer(REALM, SECRET, instance=2)
    na, nb = a.make_nonce(1000.0), b.make_nonce(1000.0)
    assert na != nb
    for server in (a, b):  # each verifies both
        assert server.nonce_issued(na) == 1000.0 and server.nonce_issued(nb) == 1000.0
    same = DigestServer(REALM, SECRET, instance=1)
    assert same.make_nonce(1000.0) == na  # the instance is what differs, nothing hidden


def test_instance_part_is_under_the_hmac() -> None:
    """Changing the instance digits of a nonce makes it not ours."""
    server = DigestServer(REALM, SECRET, instance=0x0000ABCD)
    nonce = server.make_nonce(5.0)
    assert "0000abcd" in nonce
    forged = nonce.replace("0000abcd", "0000abce", 1)
    assert server.nonce_issued(forged) is None


def test_instance_out_of_range() -> None:
    with pytest.raises(ValueError):
        DigestServer(REALM, SECRET, instance=2**32)


# ------------------------------------------------------------------------ per-nonce failure cap

def test_a_nonce_serves_only_a_few_failed_attempts() -> None:
    """After ``max_nonce_failures`` wrong guesses with one nonce, even the right password needs a new one."""
    server = DigestServer(REALM, SECRET, max_nonce_failures=3)
    nonce = nonce_of(server, 100.0)
    for i in range(3):
        verdict = check(server, request(authorization=credentials(nonce, password=f"guess{i}", nc=i + 1),
                                        cseq=i + 1), 100.0)
        assert isinstance(verdict, DigestCredentials) and verdict.failure == "password"
    right = request(authorization=credentials(nonce, nc=4), cseq=4)
    outcome = server.inspect(right, 100.0)
    assert isinstance(outcome, NeedChallenge) and not outcome.stale
    fresh = nonce_of(server, 100.0)
    assert check(server, request(authorization=credentials(fresh), cseq=5), 100.0) == "ok"


# ------------------------------------------------------------------------------------- lockouts

def test_source_lockout_gives_403_and_is_reported() -> None:
    limiter = FailureLimiter(max_failures=3, window=60, lockout=30)
    lockouts: list[Lockout] = []
    server = DigestServer(REALM, SECRET, limiter=limiter, on_lockout=lockouts.append)
    for i in range(3):  # three different users, all wrong, from one source
        nonce = nonce_of(server, 100.0 + i)
        check(server, request(authorization=credentials(nonce, user=f"u{i}", password="x"), cseq=i + 1), 100.0 + i)
    assert [(lo.kind, lo.key) for lo in lockouts] == [("source", "192.0.2.10")]
    assert lockouts[0].until == 102.0 + 30
    # locked: even a request without credentials gets 403, before any digest work
    outcome = server.inspect(request(cseq=9), 110.0)
    assert isinstance(outcome, BadAuthorization) and outcome.status == 403
    assert outcome.reason == LOCKED_OUT_REASON
    # another source is not affected; the lockout ends
    assert isinstance(server.inspect(request(source="192.0.2.11", cseq=10), 110.0), NeedChallenge)
    assert isinstance(server.inspect(request(cseq=11), 132.5), NeedChallenge)


def test_user_lockout_across_sources_and_unknown_users_alike() -> None:
    """A user guessed from many sources is locked; an unknown user locks exactly like a known one."""
    limiter = FailureLimiter(max_failures=4, window=60, lockout=60)
    lockouts: list[Lockout] = []
    server = DigestServer(REALM, SECRET, limiter=limiter, on_lockout=lockouts.append)
    verdicts: dict[str, list[object]] = {}
    for user in ("alice", "nobody"):
        for i in range(5):
            nonce = nonce_of(server, 100.0)
            req = request(source=f"198.51.100.{i + 1}", authorization=credentials(nonce, user=user, password="bad"),
                          cseq=i + 1)
            verdict = check(server, req, 100.0)
            verdicts.setdefault(user, []).append(
                verdict.status if isinstance(verdict, BadAuthorization) else getattr(verdict, "failure", verdict)
            )
    assert verdicts["alice"] == verdicts["nobody"] == ["password"] * 4 + [403]
    assert [(lo.kind, lo.key) for lo in lockouts] == [("user", "alice"), ("user", "nobody")]
    # the right password does not get through while alice is locked
    nonce = nonce_of(server, 101.0)
    right = server.inspect(request(source="203.0.113.5", authorization=credentials(nonce), cseq=20), 101.0)
    assert isinstance(right, BadAuthorization) and right.status == 403


def test_success_forgets_user_failures() -> None:
    limiter = FailureLimiter(max_failures=3, window=60, lockout=60)
    server = DigestServer(REALM, SECRET, limiter=limiter)
    for round_ in range(3):  # two failures then a success, three times: never locked
        for i in range(2):
            nonce = nonce_of(server, 100.0)
            check(server, request(source=f"198.51.100.{round_ * 2 + i + 1}",
                                  authorization=credentials(nonce, password="bad")), 100.0)
        nonce = nonce_of(server, 100.0)
        assert check(server, request(source="203.0.113.9", authorization=credentials(nonce)), 100.0) == "ok"
    assert limiter.lockouts == 0


def test_unknown_and_known_users_get_the_same_challenge() -> None:
    """svwar: REGISTER and INVITE for an unknown user and a known one with a wrong password answer alike."""
    server = DigestServer(REALM, SECRET)
    for method, uri in (("REGISTER", "sip:example.com"), ("INVITE", "sip:bob@192.0.2.1:5060")):
        shapes = []
        for user in ("alice", "nobody"):
            nonce = nonce_of(server, 100.0)
            req = request(uri, method=method, authorization=credentials(nonce, user=user, password="bad", uri=uri,
                                                                        method=method))
            verdict = check(server, req, 100.0)
            assert isinstance(verdict, DigestCredentials) and verdict.failure == "password"
            assert not verdict.stale
            challenge = server.challenge(req, 100.0, stale=verdict.stale)
            values = challenge.headers.get_all("WWW-Authenticate")
            shapes.append((challenge.status, [n for n, _ in challenge.headers.items()],
                           [sorted(c.params) for v in values for c in parse_challenges(v)]))
        assert shapes[0] == shapes[1], method
