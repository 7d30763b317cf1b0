"""DigestServer: stateless nonces, verification, replay table, challenges (RFC 7616 §3.3-3.5, §5)."""

from __future__ import annotations

from typing import Any

import pytest
from authhelpers import SECRET, make_request, with_auth

from txsipua.auth.challenge import DigestAuthorization, parse_challenges
from txsipua.auth.digest import compute_ha1, compute_response
from txsipua.auth.server import (
    BadAuthorization,
    DigestCredentials,
    DigestServer,
    Exempt,
    NeedChallenge,
)
from txsipua.sip.message import Request, parse_message

REALM = "voip.example.net"
URI = "sip:example.com"


def credentials(
    server: DigestServer,
    now: float,
    *,
    password: str = "pw",
    nc: str | None = "00000001",
    cnonce: str | None = "c0ffee",
    qop: str | None = "auth",
    algorithm: str | None = "MD5",
    uri: str = URI,
    nonce: str | None = None,
    method: str = "REGISTER",
    body: bytes = b"",
    opaque: str | None = None,
    realm: str = REALM,
) -> str:
    """An Authorization value computed by hand (independent of DigestClient)."""
    nonce = nonce if nonce is not None else server.make_nonce(now)
    ha1 = compute_ha1(algorithm, "alice", realm, password)
    response = compute_response(
        algorithm=algorithm, ha1=ha1, nonce=nonce, method=method, uri=uri,
        qop=qop, cnonce=cnonce, nc=nc if qop else None, body=body,
    )  # fmt: skip
    return DigestAuthorization(
        username="alice", realm=realm, nonce=nonce, uri=uri, response=response,
        algorithm=algorithm, cnonce=cnonce, nc=nc if qop else None, qop=qop, opaque=opaque,
    ).to_header_value()  # fmt: skip


def request_with(value: str, header: str = "Authorization", **kwargs: object) -> Request:
    return with_auth(make_request(**kwargs), [(header, value)], 1)  # type: ignore[arg-type]


def inspect_ok(server: DigestServer, request: Request, now: float) -> DigestCredentials:
    outcome = server.inspect(request, now)
    assert isinstance(outcome, DigestCredentials), outcome
    return outcome


def test_challenge_response_shape() -> None:
    """401 with one WWW-Authenticate per algorithm, shared nonce, qop list, To tag added."""
    server = DigestServer(REALM, SECRET, algorithms=("SHA-256", "md5"), opaque="op")
    request = make_request()
    response = server.challenge(request, 1000.0)
    assert response.status == 401
    values = response.headers.get_all("WWW-Authenticate")
    cs = [c for v in values for c in parse_challenges(v)]
    assert [c.algorithm for c in cs] == ["SHA-256", "MD5"]
    assert {c.nonce for c in cs} == {cs[0].nonce}
    assert all(c.qop == ("auth", "auth-int") and c.opaque == "op" and c.realm == REALM for c in cs)
    assert not any(c.stale for c in cs)
    # mandatory response headers copied (RFC 3261 §8.2.6.2), To gets a stable tag
    assert response.call_id == request.call_id and response.cseq == request.cseq
    assert response.via == request.via and response.from_ == request.from_
    tag = response.to.tag
    assert tag and server.challenge(request, 1001.0).to.tag == tag
    # it serialises and parses back
    again = parse_message(response.to_bytes())
    assert again.headers.get_all("WWW-Authenticate") == values


def test_proxy_role() -> None:
    """Proxy role: 407, Proxy-Authenticate, and Proxy-Authorization is the header read."""
    server = DigestServer(REALM, SECRET, proxy_role=True)
    response = server.challenge(make_request(), 0.0)
    assert response.status == 407 and "Proxy-Authenticate" in response.headers
    value = credentials(server, 0.0)
    assert isinstance(server.inspect(request_with(value), 1.0), NeedChallenge)
    creds = inspect_ok(server, request_with(value, "Proxy-Authorization"), 1.0)
    assert creds.check_password("pw")


def test_stale_challenge_flag() -> None:
    """challenge(stale=True) sets stale=true on every challenge."""
    server = DigestServer(REALM, SECRET, algorithms=("MD5", "SHA-256"))
    values = server.challenge(make_request(), 0.0, stale=True).headers.get_all("WWW-Authenticate")
    assert all(parse_challenges(v)[0].stale for v in values)


def test_valid_credentials_and_nc_bookkeeping() -> None:
    """Correct digest accepted; same nc again is a replay; a higher nc is accepted."""
    server = DigestServer(REALM, SECRET)
    nonce = server.make_nonce(100.0)
    first = inspect_ok(server, request_with(credentials(server, 100.0, nonce=nonce)), 101.0)
    assert (first.username, first.realm, first.algorithm) == ("alice", REALM, "MD5")
    assert first.check_password("pw") and first.failure is None
    assert first.check_password("pw")  # idempotent on the same object
    replay = inspect_ok(server, request_with(credentials(server, 100.0, nonce=nonce)), 102.0)
    assert not replay.check_password("pw") and replay.failure == "replay" and not replay.stale
    lower = inspect_ok(
        server, request_with(credentials(server, 0, nonce=nonce, nc="00000000")), 102.0
    )
    assert not lower.check_password("pw")
    nxt = inspect_ok(
        server, request_with(credentials(server, 0, nonce=nonce, nc="00000002")), 103.0
    )
    assert nxt.check_password("pw")
    other_cnonce = inspect_ok(
        server, request_with(credentials(server, 0, nonce=nonce, cnonce="other")), 103.0
    )
    assert other_cnonce.check_password("pw")


def test_wrong_password_does_not_poison_replay_table() -> None:
    """A wrong digest is refused as 'password' and records nothing."""
    server = DigestServer(REALM, SECRET)
    nonce = server.make_nonce(0.0)
    bad = inspect_ok(
        server, request_with(credentials(server, 0, nonce=nonce, password="x", nc="ffffffff")), 1.0
    )
    assert not bad.check_password("pw") and bad.failure == "password"
    assert not bad.check_ha1(None)
    good = inspect_ok(server, request_with(credentials(server, 0, nonce=nonce)), 1.0)
    assert good.check_ha1(compute_ha1("MD5", "alice", REALM, "pw").upper())


def test_nonce_expiry_is_stale() -> None:
    """A genuine nonce past its lifetime is NeedChallenge(stale=True)."""
    server = DigestServer(REALM, SECRET, nonce_lifetime=30.0)
    value = credentials(server, 1000.0)
    assert isinstance(server.inspect(request_with(value), 1030.0), DigestCredentials)
    outcome = server.inspect(request_with(value), 1030.5)
    assert outcome == NeedChallenge(True, "the nonce expired")


def test_forged_or_foreign_nonces() -> None:
    """Nonces not ours (wrong MAC, other realm, other secret, future, junk) are not stale."""
    server = DigestServer(REALM, SECRET)
    genuine = server.make_nonce(1000.0)
    forged = genuine[:-1] + ("0" if genuine[-1] != "0" else "1")
    other_realm = DigestServer("other.example.com", SECRET).make_nonce(1000.0)
    other_secret = DigestServer(REALM, b"another-16-byte-secret").make_nonce(1000.0)
    future = server.make_nonce(2000.0)
    for nonce in (forged, other_realm, other_secret, "junk", future, genuine.upper()):
        outcome = server.inspect(request_with(credentials(server, 0, nonce=nonce)), 1000.0)
        assert isinstance(outcome, NeedChallenge) and not outcome.stale, nonce


def test_shared_secret_across_instances() -> None:
    """A nonce from one instance verifies on another sharing the secret (load balancing)."""
    a = DigestServer(REALM, SECRET)
    b = DigestServer(REALM, SECRET)
    value = credentials(a, 500.0)
    assert inspect_ok(b, request_with(value), 501.0).check_password("pw")


def test_digest_uri_must_match_request_uri() -> None:
    """digest-uri other than the Request-URI: 400 (RFC 3261 §22.4)."""
    server = DigestServer(REALM, SECRET)
    value = credentials(server, 0.0, uri="sip:other.example.com")
    outcome = server.inspect(request_with(value), 1.0)
    assert isinstance(outcome, BadAuthorization) and outcome.status == 400
    assert "Request-URI" in outcome.reason


def test_malformed_credentials_400() -> None:
    """Unparseable Digest credentials for the realm: 400."""
    server = DigestServer(REALM, SECRET)
    for value in ('Digest username="alice", realm="x', 'Digest realm="r"', '"quoted"'):
        outcome = server.inspect(request_with(value), 0.0)
        assert isinstance(outcome, BadAuthorization) and outcome.status == 400, value


def test_basic_never_accepted() -> None:
    """Basic credentials get a fresh Digest challenge."""
    server = DigestServer(REALM, SECRET)
    outcome = server.inspect(request_with("Basic YWxpY2U6cHc="), 0.0)
    assert isinstance(outcome, NeedChallenge) and "Basic" in outcome.reason


def test_ack_and_cancel_exempt() -> None:
    """ACK and CANCEL are never challenged, credentials or not."""
    server = DigestServer(REALM, SECRET)
    for method in ("ACK", "CANCEL"):
        assert isinstance(server.inspect(make_request(method), 0.0), Exempt)
        bad = request_with("Digest garbage", method=method)
        assert isinstance(server.inspect(bad, 0.0), Exempt)


def test_other_realm_credentials_ignored() -> None:
    """Credentials for another realm are not ours: challenge; ours are found among several."""
    server = DigestServer(REALM, SECRET)
    other = DigestServer("other.example.com", SECRET)
    foreign = credentials(other, 0.0, realm="other.example.com")
    assert isinstance(server.inspect(request_with(foreign), 1.0), NeedChallenge)
    r = with_auth(
        make_request(), [("Authorization", foreign), ("Authorization", credentials(server, 0.0))], 1
    )
    assert inspect_ok(server, r, 1.0).check_password("pw")


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"algorithm": "SHA-256"}, "algorithm"),
        ({"algorithm": "SHA-1"}, "algorithm"),
        ({"qop": None, "cnonce": None}, "qop is required"),
        ({"qop": "auth-conf"}, "qop"),
    ],
)
def test_not_offered(kwargs: dict[str, object], reason: str) -> None:
    """Algorithms or qop we did not offer get a new challenge."""
    server = DigestServer(REALM, SECRET, qop=("auth",))
    nonce = server.make_nonce(0.0)
    if kwargs.get("algorithm") == "SHA-1" or kwargs.get("qop") == "auth-conf":
        value = DigestAuthorization(
            "alice", REALM, nonce, URI, "0" * 32, algorithm=str(kwargs.get("algorithm", "MD5")),
            qop=str(kwargs.get("qop", "auth")), cnonce="c", nc="00000001",
        ).to_header_value()  # fmt: skip
    else:
        value = credentials(server, 0.0, nonce=nonce, **kwargs)  # type: ignore[arg-type]
    outcome = server.inspect(request_with(value), 1.0)
    assert isinstance(outcome, NeedChallenge) and reason in outcome.reason


def test_opaque_must_echo() -> None:
    """With an opaque configured, credentials must echo it."""
    server = DigestServer(REALM, SECRET, opaque="xyz")
    assert isinstance(server.inspect(request_with(credentials(server, 0.0)), 1.0), NeedChallenge)
    wrong = credentials(server, 0.0, opaque="abc")
    assert isinstance(server.inspect(request_with(wrong), 1.0), NeedChallenge)
    assert inspect_ok(
        server, request_with(credentials(server, 0.0, opaque="xyz")), 1.0
    ).check_password("pw")


def test_userhash_not_offered() -> None:
    """userhash=true credentials are refused (we never offer it)."""
    server = DigestServer(REALM, SECRET)
    value = credentials(server, 0.0) + ", userhash=true"
    assert isinstance(server.inspect(request_with(value), 1.0), NeedChallenge)


def test_rfc2069_without_qop() -> None:
    """With qop=() offered, the RFC 2069 form verifies (no nc bookkeeping)."""
    server = DigestServer(REALM, SECRET, qop=())
    assert "qop" not in str(server.challenge(make_request(), 0.0).headers.get("WWW-Authenticate"))
    value = credentials(server, 0.0, qop=None, cnonce=None)
    assert inspect_ok(server, request_with(value), 1.0).check_password("pw")
    assert inspect_ok(server, request_with(value), 2.0).check_password("pw")


@pytest.mark.parametrize("algorithm", ["MD5-sess", "SHA-256", "SHA-512-256-sess"])
def test_algorithms_verify_with_ha1(algorithm: str) -> None:
    """check_ha1 takes the base HA1 (ha1_algorithm) also for -sess algorithms."""
    server = DigestServer(REALM, SECRET, algorithms=(algorithm,))
    creds = inspect_ok(server, request_with(credentials(server, 0.0, algorithm=algorithm)), 1.0)
    assert creds.algorithm == algorithm
    assert creds.check_ha1(compute_ha1(creds.ha1_algorithm, "alice", REALM, "pw"))


def test_replay_table_bounded_with_horizon() -> None:
    """The nc table stays bounded; nonces older than what it dropped are treated as stale."""
    server = DigestServer(REALM, SECRET, replay_table_size=3)
    old = server.make_nonce(10.0)
    assert inspect_ok(server, request_with(credentials(server, 0, nonce=old)), 11.0).check_password(
        "pw"
    )
    for i in range(3):
        n = server.make_nonce(20.0 + i)
        assert inspect_ok(
            server, request_with(credentials(server, 0, nonce=n)), 25.0
        ).check_password("pw")
    assert len(server._seen) == 3
    # the dropped entry cannot be replayed: refused as stale (forces a new nonce)
    replay = inspect_ok(server, request_with(credentials(server, 0, nonce=old)), 26.0)
    assert not replay.check_password("pw") and replay.stale
    # a fresh nonce is fine
    fresh = server.make_nonce(30.0)
    assert inspect_ok(
        server, request_with(credentials(server, 0, nonce=fresh)), 31.0
    ).check_password("pw")


def test_constructor_validation() -> None:
    """Bad algorithms, qop, short secrets or sizes raise ValueError."""
    kwargs: dict[str, Any]
    for kwargs in ({"algorithms": ("SHA-1",)}, {"algorithms": ()}, {"qop": ("auth-conf",)},
                   {"nonce_lifetime": 0}, {"replay_table_size": 0}):  # fmt: skip
        with pytest.raises(ValueError):
            DigestServer(REALM, SECRET, **kwargs)
    with pytest.raises(ValueError):
        DigestServer(REALM, b"short")


def test_retargeted_digest_uri_accepted_by_uas_only() -> None:
    """A UAS reached through a retargeting proxy accepts a digest-uri equal to the To URI."""
    uas = DigestServer(REALM, SECRET)
    proxy = DigestServer(REALM, SECRET, proxy_role=True)
    value = credentials(uas, 0.0, uri="sip:alice@example.com", method="INVITE")
    retargeted = with_auth(
        make_request("INVITE", "sip:alice@192.0.2.30:5062"), [("Authorization", value)], 1
    )
    assert inspect_ok(uas, retargeted, 1.0).check_password("pw")
    as_proxy = with_auth(
        make_request("INVITE", "sip:alice@192.0.2.30:5062"), [("Proxy-Authorization", value)], 1
    )
    outcome = proxy.inspect(as_proxy, 1.0)
    assert isinstance(outcome, BadAuthorization) and outcome.status == 400
    strict = DigestServer(REALM, SECRET, accept_retargeted=False)
    assert isinstance(strict.inspect(retargeted, 1.0), BadAuthorization)


@pytest.mark.parametrize("stale", [False, True])
@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"algorithms": ("SHA-256", "MD5"), "qop": ("auth",)},
        {"qop": (), "opaque": 'op"aque\\x', "proxy_role": True},
        {"realm": 'odd "realm" nonce-goes-here-7f3a9c'},  # the template's mark in the realm
    ],
)
def test_challenge_fields_equal_the_challenges_serialised(settings: dict[str, Any], stale: bool) -> None:
    """The 401/407's challenge values (built from cached templates) are exactly what
    challenges() gives for the same nonce, per algorithm, in order."""
    options = dict(settings)
    realm = options.pop("realm", REALM)
    server = DigestServer(realm, SECRET, **options)
    for now in (1000.0, 1000.5):  # twice: the second call uses the cached template
        response = server.challenge(make_request(), now, stale=stale)
        values = response.headers.get_all(server.challenge_header)
        nonce = parse_challenges(values[0])[0].nonce
        assert nonce is not None
        assert values == [c.to_header_value() for c in server._challenges(nonce, stale)]
        assert server.nonce_issued(nonce) == now
