"""DigestClient against DigestServer in memory: every client-side rule of RFC 3261 §22 / RFC 7616."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import attrs
import pytest
from authhelpers import SECRET, Path, Users, make_request, merge_challenges, with_auth

from txsipua.auth.challenge import Challenge, DigestAuthorization, parse_authorization
from txsipua.auth.client import MAX_ROUNDS, DigestClient, host_key
from txsipua.auth.credentials import Credential, InMemoryCredentials
from txsipua.auth.digest import compute_ha1
from txsipua.auth.server import DigestServer
from txsipua.errors import AuthenticationError
from txsipua.sip.message import Request, Response

REGISTRAR = "registrar.example.net"


@attrs.define
class Exchange:
    """The requests a UAC sent for one logical request and the final response."""

    sent: list[Request]
    final: Response


def run(
    client: DigestClient,
    path: Path,
    request: Request,
    now: float = 1000.0,
    hop: str = REGISTRAR,
) -> Exchange:
    """Drive one logical request the way the UAC core does (CSeq+1 per retry)."""
    attempt = client.start()
    method, uri, body = request.method, request.uri_text, request.body
    cseq = request.cseq.seq
    current = with_auth(request, attempt.initial_headers(method, uri, body, hop_host=hop), cseq)
    sent = [current]
    response = path.handle(current, now)
    while response.status in (401, 407):
        headers = attempt.respond_to(response, method, uri, body, hop_host=hop)
        cseq += 1
        current = with_auth(request, headers, cseq)
        sent.append(current)
        assert len(sent) < 20, "client looped"
        response = path.handle(current, now)
    attempt.succeeded()
    return Exchange(sent, response)


def creds(*items: Credential) -> InMemoryCredentials:
    return InMemoryCredentials(items)


def client_for(cnonces: Iterator[str], *items: Credential, **kwargs: object) -> DigestClient:
    return DigestClient(creds(*items), cnonce_factory=lambda: next(cnonces), **kwargs)  # type: ignore[arg-type]


def auth_values(request: Request, name: str = "Authorization") -> list[DigestAuthorization]:
    return [parse_authorization(v) for v in request.headers.get_all(name)]


ALICE = Credential("voip.example.net", "alice-auth", "s3cret")
USERS = Users(
    {("alice-auth", "voip.example.net"): "s3cret", ("alice-b", "biloxi.example.org"): "b-pw"}
)


def registrar(**kwargs: object) -> DigestServer:
    return DigestServer("voip.example.net", SECRET, **kwargs)  # type: ignore[arg-type]


# -- the plain flows -------------------------------------------------------------------


def test_register_401_md5_auth(cnonces: Iterator[str]) -> None:
    """A 401 is answered with one Authorization; qop=auth, nc 1, uri = Request-URI, MD5 named."""
    client = client_for(cnonces, ALICE)
    path = Path([registrar()], USERS)
    ex = run(client, path, make_request())
    assert ex.final.status == 200
    assert len(ex.sent) == 2
    assert "Authorization" not in ex.sent[0].headers
    (a,) = auth_values(ex.sent[1])
    assert (a.username, a.realm, a.uri) == ("alice-auth", "voip.example.net", "sip:example.com")
    assert (a.qop, a.nc, a.cnonce, a.algorithm) == ("auth", "00000001", "cn000001", "MD5")
    assert ex.sent[1].cseq.seq == 2
    raw = ex.sent[1].headers.get("Authorization") or ""
    assert "algorithm=MD5" in raw and "qop=auth," in raw and "nc=00000001" in raw
    assert "Proxy-Authorization" not in ex.sent[1].headers


def test_proxy_407(cnonces: Iterator[str]) -> None:
    """A 407 is answered with Proxy-Authorization only."""
    client = client_for(cnonces, ALICE)
    path = Path([registrar(proxy_role=True)], USERS)
    ex = run(client, path, make_request("INVITE", "sip:bob@biloxi.example.org"))
    assert ex.final.status == 200
    assert "Authorization" not in ex.sent[1].headers
    (a,) = auth_values(ex.sent[1], "Proxy-Authorization")
    assert a.realm == "voip.example.net"


def test_algorithm_absent_sends_md5_and_no_qop_rfc2069(cnonces: Iterator[str]) -> None:
    """No qop offered: the RFC 2069 form (no cnonce, no nc), but algorithm=MD5 still sent."""
    client = client_for(cnonces, ALICE)
    response = Response(
        401, None, [("WWW-Authenticate", 'Digest realm="voip.example.net", nonce="abc"')]
    )
    headers = client.start().respond_to(response, "REGISTER", "sip:example.com", hop_host=REGISTRAR)
    ((name, value),) = headers
    a = parse_authorization(value)
    assert name == "Authorization"
    assert a.algorithm == "MD5" and a.qop is None and a.nc is None and a.cnonce is None
    ha1 = compute_ha1("MD5", "alice-auth", "voip.example.net", "s3cret")
    from hashlib import md5

    ha2 = md5(b"REGISTER:sip:example.com").hexdigest()
    assert a.response == md5(f"{ha1}:abc:{ha2}".encode()).hexdigest()
    # and the server accepts the RFC 2069 form when it offers no qop
    path = Path([registrar(qop=())], USERS)
    assert run(client, path, make_request()).final.status == 200


@pytest.mark.parametrize(
    "algorithm",
    ["MD5", "MD5-sess", "SHA-256", "SHA-256-sess", "SHA-512-256", "SHA-512-256-sess"],
)
@pytest.mark.parametrize("prefer_qop", ["auth", "auth-int"])
def test_every_algorithm_and_qop(cnonces: Iterator[str], algorithm: str, prefer_qop: str) -> None:
    """Each algorithm, with auth and auth-int (the body hashed), verifies end to end."""
    client = client_for(cnonces, ALICE, prefer_qop=prefer_qop)
    path = Path([registrar(algorithms=(algorithm,))], USERS)
    ex = run(client, path, make_request("INVITE", "sip:bob@example.com", body=b"v=0\r\n"))
    assert ex.final.status == 200
    (a,) = auth_values(ex.sent[-1])
    assert a.algorithm == algorithm and a.qop == prefer_qop


def test_auth_int_body_tampering_refused(cnonces: Iterator[str]) -> None:
    """auth-int covers the body: a changed body fails verification."""
    client = client_for(cnonces, ALICE, prefer_qop="auth-int")
    server = registrar()
    request = make_request("INVITE", "sip:bob@example.com", body=b"v=0\r\n")
    challenge = server.challenge(request, 1000.0)
    headers = client.start().respond_to(
        challenge, "INVITE", "sip:bob@example.com", request.body, REGISTRAR
    )
    tampered = with_auth(make_request("INVITE", "sip:bob@example.com", body=b"v=1\r\n"), headers, 2)
    outcome = server.inspect(tampered, 1001.0)
    assert not outcome.check_password("s3cret")  # type: ignore[union-attr]
    assert outcome.failure == "password"  # type: ignore[union-attr]


# -- several realms, both header kinds ------------------------------------------------

BOB_REALM = Credential("biloxi.example.org", "alice-b", "b-pw", hosts=("proxy.example.net",))


def test_407_then_401_keeps_both(cnonces: Iterator[str]) -> None:
    """A proxy's 407 then the far end's 401: the last retry carries both credentials."""
    client = client_for(cnonces, ALICE, BOB_REALM)
    proxy = DigestServer("voip.example.net", SECRET, proxy_role=True)
    uas = DigestServer("biloxi.example.org", b"another-secret-of-bob", algorithms=("SHA-256",))
    path = Path([proxy, uas], USERS)
    ex = run(
        client, path, make_request("INVITE", "sip:bob@biloxi.example.org"), hop="proxy.example.net"
    )
    assert ex.final.status == 200
    assert [r.cseq.seq for r in ex.sent] == [1, 2, 3]
    last = ex.sent[-1]
    (p,) = auth_values(last, "Proxy-Authorization")
    (w,) = auth_values(last, "Authorization")
    assert p.realm == "voip.example.net" and p.username == "alice-auth"
    assert w.realm == "biloxi.example.org" and w.username == "alice-b" and w.algorithm == "SHA-256"
    # the proxy credentials were recomputed with the next nonce count, not copied
    assert p.nc == "00000002"


def test_aggregated_response_answered_at_once(cnonces: Iterator[str]) -> None:
    """One response carrying Proxy-Authenticate and WWW-Authenticate (RFC 3261 §16.7)."""
    client = client_for(cnonces, ALICE, BOB_REALM)
    proxy = DigestServer("voip.example.net", SECRET, proxy_role=True)
    uas = DigestServer("biloxi.example.org", b"another-secret-of-bob")
    request = make_request("INVITE", "sip:bob@biloxi.example.org")
    both = merge_challenges(proxy.challenge(request, 1000.0), uas.challenge(request, 1000.0))
    attempt = client.start()
    headers = attempt.respond_to(
        both, "INVITE", "sip:bob@biloxi.example.org", hop_host="proxy.example.net"
    )
    names = sorted(name for name, _ in headers)
    assert names == ["Authorization", "Proxy-Authorization"]
    retried = with_auth(request, headers, 2)
    assert Path([proxy, uas], USERS).handle(retried, 1001.0).status == 200
    assert attempt.headers == headers


def test_several_proxy_realms_only_known_answered(cnonces: Iterator[str]) -> None:
    """Two proxy realms challenged, credentials for one: answer that one only, never the other."""
    client = client_for(cnonces, ALICE)
    r = make_request("INVITE", "sip:bob@biloxi.example.org")
    a = DigestServer("voip.example.net", SECRET, proxy_role=True).challenge(r, 1000.0)
    b = DigestServer("elsewhere.example.com", SECRET, proxy_role=True).challenge(r, 1000.0)
    headers = client.start().respond_to(
        merge_challenges(a, b), "INVITE", "sip:bob@biloxi.example.org", hop_host=REGISTRAR
    )
    assert [parse_authorization(v).realm for _, v in headers] == ["voip.example.net"]


def test_one_value_per_realm_topmost_supported(cnonces: Iterator[str]) -> None:
    """One realm with several algorithms: answer one, the topmost supported (RFC 8760 §2.4)."""
    client = client_for(cnonces, ALICE)
    value = (
        'Digest realm="voip.example.net", nonce="n1", algorithm=SHA-1024-x, '
        'Digest realm="voip.example.net", nonce="n1", algorithm=MD5, '
        'Digest realm="voip.example.net", nonce="n1", algorithm=SHA-512-256'
    )
    attempt = client.start()
    headers = attempt.respond_to(
        Response(401, None, [("WWW-Authenticate", value)]),
        "REGISTER",
        "sip:example.com",
        hop_host=REGISTRAR,
    )
    assert len(headers) == 1
    assert parse_authorization(headers[0][1]).algorithm == "MD5"
    assert any("SHA-1024-x" in n for n in attempt.notes)
    strongest = client_for(cnonces, ALICE, prefer_strongest=True)
    headers = strongest.start().respond_to(
        Response(401, None, [("WWW-Authenticate", value)]),
        "REGISTER",
        "sip:example.com",
        hop_host=REGISTRAR,
    )
    assert parse_authorization(headers[0][1]).algorithm == "SHA-512-256"


def test_two_challenge_fields_server_order(cnonces: Iterator[str]) -> None:
    """The server offers SHA-256 then MD5 as two fields: SHA-256 answered and accepted."""
    client = client_for(cnonces, ALICE)
    path = Path([registrar(algorithms=("SHA-256", "MD5"))], USERS)
    ex = run(client, path, make_request())
    assert ex.final.status == 200
    (a,) = auth_values(ex.sent[-1])
    assert a.algorithm == "SHA-256"


def test_stored_ha1_only_for_one_algorithm(cnonces: Iterator[str]) -> None:
    """A credential with only a SHA-256 HA1 skips the MD5 challenge and answers SHA-256."""
    ha1 = compute_ha1("SHA-256", "alice-auth", "voip.example.net", "s3cret")
    cred = Credential("voip.example.net", "alice-auth", ha1={"SHA-256": ha1})
    client = client_for(cnonces, cred)
    path = Path([registrar(algorithms=("MD5", "SHA-256"))], USERS)
    ex = run(client, path, make_request())
    assert ex.final.status == 200
    assert auth_values(ex.sent[-1])[0].algorithm == "SHA-256"


# -- failures explain themselves -------------------------------------------------------


def test_wrong_password_fails_after_exactly_one_retry(cnonces: Iterator[str]) -> None:
    """A non-stale re-challenge of a realm just answered: AuthenticationError, no loop."""
    client = client_for(cnonces, Credential("voip.example.net", "alice-auth", "wrong"))
    path = Path([registrar()], USERS)
    with pytest.raises(AuthenticationError) as info:
        run(client, path, make_request())
    err = info.value
    assert err.status == 401
    assert err.realms == ("voip.example.net",)
    assert err.algorithms == ("MD5",)
    assert err.account_realms == ("voip.example.net",)
    assert "rejected" in str(err) and "voip.example.net" in str(err)
    assert path.log == [
        "voip.example.net: challenge stale=False no credentials for realm 'voip.example.net'",
        "voip.example.net: refused password",
    ]


def test_no_credentials_for_realm_names_the_fix(cnonces: Iterator[str]) -> None:
    """The error names the challenged realm and the realms the account has."""
    client = client_for(cnonces, Credential("example.com", "alice", "pw"))
    path = Path([registrar()], USERS)
    with pytest.raises(AuthenticationError) as info:
        run(client, path, make_request())
    text = str(info.value)
    assert info.value.realms == ("voip.example.net",)
    assert info.value.account_realms == ("example.com",)
    assert "no credentials for realm(s) 'voip.example.net'" in text
    assert "the server's realm is 'voip.example.net'" in text and "'example.com'" in text


def test_wildcard_only_when_configured(cnonces: Iterator[str]) -> None:
    """A "*" credential answers any realm; without one, unknown realms are not answered."""
    client = client_for(cnonces, Credential("*", "any", "s3cret"))
    users = Users({("any", "voip.example.net"): "s3cret"})
    assert run(client, Path([registrar()], users), make_request()).final.status == 200


def test_unknown_algorithm_alone(cnonces: Iterator[str]) -> None:
    """Only an unsupported algorithm: the error names it."""
    client = client_for(cnonces, ALICE)
    response = Response(
        407,
        None,
        [("Proxy-Authenticate", 'Digest realm="voip.example.net", nonce="n", algorithm=SHA-1')],
    )
    with pytest.raises(AuthenticationError) as info:
        client.start().respond_to(response, "INVITE", "sip:bob@example.com", hop_host=REGISTRAR)
    assert info.value.algorithms == ("SHA-1",)
    assert info.value.status == 407
    assert "SHA-1" in str(info.value)


def test_unsupported_qop_alone(cnonces: Iterator[str]) -> None:
    """A challenge offering only qop=auth-conf is unusable."""
    client = client_for(cnonces, ALICE)
    response = Response(
        401,
        None,
        [("WWW-Authenticate", 'Digest realm="voip.example.net", nonce="n", qop="auth-conf"')],
    )
    with pytest.raises(AuthenticationError, match="auth-conf"):
        client.start().respond_to(response, "REGISTER", "sip:example.com", hop_host=REGISTRAR)


@pytest.mark.parametrize(
    "fields",
    [
        [],
        [("WWW-Authenticate", 'Basic realm="voip.example.net"')],
        [("WWW-Authenticate", 'Digest realm="voip.example.net"')],  # no nonce: unparseable
        [("WWW-Authenticate", "Digest realm=")],
    ],
)
def test_no_usable_challenge_is_final(
    cnonces: Iterator[str], fields: list[tuple[str, str]]
) -> None:
    """A 401 without a usable Digest challenge is a final failure; Basic is never answered."""
    client = client_for(cnonces, ALICE)
    attempt = client.start()
    with pytest.raises(AuthenticationError, match="no usable Digest challenge"):
        attempt.respond_to(
            Response(401, None, fields), "REGISTER", "sip:example.com", hop_host=REGISTRAR
        )
    if fields:
        assert attempt.notes


def test_cancel_never_retried_and_never_carries_credentials(cnonces: Iterator[str]) -> None:
    """CANCEL: no pre-emptive credentials; a 401/407 to it is never retried (RFC 3261 §22.1)."""
    client = client_for(cnonces, ALICE)
    path = Path([registrar()], USERS)
    run(client, path, make_request())  # cache a success
    attempt = client.start()
    assert attempt.initial_headers("CANCEL", "sip:example.com", hop_host=REGISTRAR) == []
    challenge = registrar().challenge(make_request("CANCEL"), 1000.0)
    with pytest.raises(AuthenticationError, match="CANCEL"):
        attempt.respond_to(challenge, "CANCEL", "sip:example.com", hop_host=REGISTRAR)


def test_ack_repeats_invite_credentials(cnonces: Iterator[str]) -> None:
    """headers is what the ACK for a 2xx repeats (RFC 3261 §13.2.2.4)."""
    client = client_for(cnonces, ALICE)
    server = registrar(proxy_role=True)
    request = make_request("INVITE", "sip:bob@example.com")
    attempt = client.start()
    headers = attempt.respond_to(
        server.challenge(request, 1000.0), "INVITE", "sip:bob@example.com", hop_host=REGISTRAR
    )
    attempt.succeeded()
    assert attempt.headers == headers
    answered = attempt.answered
    assert [
        (x.header, x.realm, x.username, x.algorithm, x.nc, x.pre_emptive) for x in answered
    ] == [("Proxy-Authorization", "voip.example.net", "alice-auth", "MD5", "00000001", False)]
    ack = make_request("ACK", "sip:bob@192.0.2.20")
    assert server.inspect(ack, 1001.0).__class__.__name__ == "Exempt"


# -- stale, expiry, reuse ---------------------------------------------------------------


def test_expired_nonce_stale_retry_not_a_failure(cnonces: Iterator[str]) -> None:
    """An expired nonce gets stale=true; the client retries with the new one and succeeds."""
    client = client_for(cnonces, ALICE)
    server = registrar(nonce_lifetime=60.0)
    path = Path([server], USERS)
    request = make_request()
    attempt = client.start()
    first = server.challenge(request, 1000.0)
    headers = attempt.respond_to(first, "REGISTER", "sip:example.com", hop_host=REGISTRAR)
    late = path.handle(with_auth(request, headers, 2), 1000.0 + 61.0)
    assert late.status == 401
    (c,) = _challenges(late)
    assert c.stale is True
    headers = attempt.respond_to(late, "REGISTER", "sip:example.com", hop_host=REGISTRAR)
    assert path.handle(with_auth(request, headers, 3), 1062.0).status == 200


def _challenges(response: Response) -> list[Challenge]:
    from txsipua.auth.challenge import parse_challenges

    out = []
    for name in ("WWW-Authenticate", "Proxy-Authenticate"):
        for v in response.headers.get_all(name):
            out += parse_challenges(v, name)
    return out


def test_stale_loop_is_bounded(cnonces: Iterator[str]) -> None:
    """A server that says stale=true forever (or with the same nonce) ends with an error."""
    client = client_for(cnonces, ALICE)
    attempt = client.start()
    nonce = iter(range(100))

    def stale_401(n: int | None = None) -> Response:
        return Response(
            401,
            None,
            [
                (
                    "WWW-Authenticate",
                    f'Digest realm="voip.example.net", nonce="n{next(nonce) if n is None else n}", stale=true, qop="auth"',
                )
            ],
        )

    attempt.respond_to(stale_401(), "REGISTER", "sip:example.com", hop_host=REGISTRAR)
    with pytest.raises(AuthenticationError, match="stale"):
        for _ in range(10):
            attempt.respond_to(stale_401(), "REGISTER", "sip:example.com", hop_host=REGISTRAR)
    # same nonce re-sent as stale
    attempt = client.start()
    attempt.respond_to(stale_401(50), "REGISTER", "sip:example.com", hop_host=REGISTRAR)
    with pytest.raises(AuthenticationError, match="stale"):
        attempt.respond_to(stale_401(50), "REGISTER", "sip:example.com", hop_host=REGISTRAR)


def test_round_bound_with_new_realms(cnonces: Iterator[str]) -> None:
    """Even a wildcard account stops after MAX_ROUNDS rounds of ever-new realms."""
    client = client_for(cnonces, Credential("*", "any", "pw"))
    attempt = client.start()
    with pytest.raises(AuthenticationError, match="rounds"):
        for i in range(MAX_ROUNDS + 2):
            r = Response(407, None, [("Proxy-Authenticate", f'Digest realm="r{i}", nonce="n"')])
            attempt.respond_to(r, "INVITE", "sip:x@example.com", hop_host=REGISTRAR)
    assert attempt.rounds == MAX_ROUNDS + 1


def test_reuse_after_success_next_nc(cnonces: Iterator[str]) -> None:
    """After a success, the next REGISTER carries credentials pre-emptively with nc+1."""
    client = client_for(cnonces, ALICE)
    path = Path([registrar()], USERS)
    first = run(client, path, make_request(), now=1000.0)
    assert len(first.sent) == 2
    second = run(client, path, make_request(cseq=3), now=1010.0)
    assert len(second.sent) == 1  # no round trip
    (a,) = auth_values(second.sent[0])
    assert a.nc == "00000002"
    assert a.nonce == auth_values(first.sent[1])[0].nonce
    third = run(client, path, make_request(cseq=4), now=1020.0)
    assert auth_values(third.sent[0])[0].nc == "00000003"
    assert third.final.status == 200


def test_cached_nonce_refused_one_fresh_attempt(cnonces: Iterator[str]) -> None:
    """Cached credentials refused with a new non-stale nonce (a restarted registrar): one fresh try."""
    client = client_for(cnonces, ALICE)
    run(client, Path([registrar()], USERS), make_request(), now=1000.0)
    restarted = DigestServer("voip.example.net", b"a-new-secret-after-restart")
    path = Path([restarted], USERS)
    ex = run(client, path, make_request(cseq=3), now=1010.0)
    assert ex.final.status == 200
    assert len(ex.sent) == 2
    assert [a.nc for r in ex.sent for a in auth_values(r)] == ["00000002", "00000001"]


def test_cached_nonce_refused_then_wrong_password_fails(cnonces: Iterator[str]) -> None:
    """The fresh attempt after a refused cached nonce is the only one: then the error."""
    users = Users({("alice-auth", "voip.example.net"): "s3cret"})
    client = client_for(cnonces, ALICE)
    run(client, Path([registrar()], users), make_request(), now=1000.0)
    users.passwords[("alice-auth", "voip.example.net")] = "changed"
    path = Path([registrar()], users)
    with pytest.raises(AuthenticationError, match="rejected"):
        run(client, path, make_request(cseq=3), now=1010.0)
    assert len([line for line in path.log if "refused" in line]) == 2
    assert client.cached_realms == ()


def test_reuse_scope_hop_and_uri(cnonces: Iterator[str]) -> None:
    """Authorization is reused only for the same hop and Request-URI; Proxy-Authorization per hop."""
    client = client_for(cnonces, ALICE, BOB_REALM)
    proxy = DigestServer("voip.example.net", SECRET, proxy_role=True)
    uas = DigestServer("biloxi.example.org", b"another-secret-of-bob")
    run(
        client,
        Path([proxy, uas], USERS),
        make_request("INVITE", "sip:bob@biloxi.example.org"),
        hop="proxy.example.net",
    )
    attempt = client.start()
    other_uri = attempt.initial_headers(
        "INVITE", "sip:carol@example.com", hop_host="proxy.example.net"
    )
    assert [n for n, _ in other_uri] == ["Proxy-Authorization"]
    same_uri = client.start().initial_headers(
        "BYE", "sip:bob@biloxi.example.org", hop_host="proxy.example.net"
    )
    assert sorted(n for n, _ in same_uri) == ["Authorization", "Proxy-Authorization"]
    assert (
        client.start().initial_headers(
            "INVITE", "sip:bob@biloxi.example.org", hop_host="198.51.100.9"
        )
        == []
    )
    client.forget("voip.example.net")
    assert [
        n
        for n, _ in client.start().initial_headers(
            "BYE", "sip:bob@biloxi.example.org", hop_host="proxy.example.net"
        )
    ] == ["Authorization"]


# -- the digest-leak guard ------------------------------------------------------------------


def test_guard_refuses_untrusted_hop(cnonces: Iterator[str]) -> None:
    """A peer calling us directly challenges our BYE with our provider's realm: refused."""
    client = client_for(
        cnonces, ALICE, trusted_hosts=["sip:registrar.example.net:5060", "203.0.113.5"]
    )
    challenge = registrar().challenge(make_request("BYE", "sip:mallory@198.51.100.66"), 1000.0)
    with pytest.raises(AuthenticationError) as info:
        client.start().respond_to(
            challenge, "BYE", "sip:mallory@198.51.100.66", hop_host="198.51.100.66"
        )
    assert "digest-leak guard" in str(info.value) and "198.51.100.66" in str(info.value)
    # the registrar and the outbound proxy are trusted (port and case ignored)
    for hop in ("REGISTRAR.example.net", "203.0.113.5:5060"):
        assert client.start().respond_to(challenge, "BYE", "sip:x@example.com", hop_host=hop)
    # an unknown hop ("") is refused too when the guard is on
    with pytest.raises(AuthenticationError):
        client.start().respond_to(challenge, "BYE", "sip:x@example.com")


def test_guard_realm_hosts_and_opt_out(cnonces: Iterator[str]) -> None:
    """Hosts listed for a realm may challenge for it; guard=False answers anyone."""
    listed = Credential("voip.example.net", "alice-auth", "s3cret", hosts=("[2001:DB8::7]",))
    client = client_for(cnonces, listed, trusted_hosts=["registrar.example.net"])
    challenge = registrar().challenge(make_request("BYE"), 1000.0)
    assert client.start().respond_to(
        challenge, "BYE", "sip:example.com", hop_host="[2001:db8::7]:5060"
    )
    off = client_for(cnonces, ALICE, trusted_hosts=["registrar.example.net"], guard=False)
    assert off.start().respond_to(challenge, "BYE", "sip:example.com", hop_host="198.51.100.66")
    no_trusted = client_for(cnonces, ALICE)
    assert no_trusted.start().respond_to(
        challenge, "BYE", "sip:example.com", hop_host="198.51.100.66"
    )


def test_guard_blocks_reuse_on_other_hop(cnonces: Iterator[str]) -> None:
    """Pre-emptive credentials are not offered to an untrusted hop either."""
    client = client_for(cnonces, ALICE, trusted_hosts=[REGISTRAR])
    run(client, Path([registrar()], USERS), make_request())
    assert (
        client.start().initial_headers("REGISTER", "sip:example.com", hop_host="198.51.100.66")
        == []
    )


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("sip:Proxy.Example.COM:5060;lr", "proxy.example.com"),
        ("[2001:DB8::1]:5060", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("sips:alice@203.0.113.5", "203.0.113.5"),
        ("example.com.", "example.com"),
    ],
)
def test_host_key(text: str, key: str) -> None:
    """Hosts compare without scheme, user, port, brackets, case or trailing dot."""
    assert host_key(text) == key


def test_prefer_qop_validated() -> None:
    """prefer_qop must be auth or auth-int."""
    with pytest.raises(ValueError):
        DigestClient(creds(ALICE), prefer_qop="auth-conf")


def test_default_cnonce_has_64_bits() -> None:
    """The default cnonce comes from secrets: 16 hex digits, different each time."""
    client = DigestClient(creds(ALICE))
    r = Response(
        401, None, [("WWW-Authenticate", 'Digest realm="voip.example.net", nonce="n", qop="auth"')]
    )
    values = [
        parse_authorization(client.start().respond_to(r, "REGISTER", "sip:x")[0][1]).cnonce
        for _ in range(3)
    ]
    assert all(v is not None and len(v) == 16 for v in values)
    assert len(set(values)) == 3


def test_nonce_count_per_realm_and_nonce(cnonces: Iterator[str]) -> None:
    """nc counts per (realm, nonce): a new nonce restarts at 1."""
    client = client_for(cnonces, ALICE)
    make: Callable[[str], Response] = lambda n: Response(  # noqa: E731
        401,
        None,
        [("WWW-Authenticate", f'Digest realm="voip.example.net", nonce="{n}", qop="auth"')],
    )
    ncs = [
        parse_authorization(client.start().respond_to(make(n), "REGISTER", "sip:x")[0][1]).nc
        for n in ("a", "a", "b", "a")
    ]
    assert ncs == ["00000001", "00000002", "00000001", "00000003"]


def test_error_kinds_and_hints(cnonces: Iterator[str]) -> None:
    """Each failure carries a kind for programs and a hint that fits it."""
    from txsipua.auth.client import DigestAuthenticationError

    def failure(
        client: DigestClient, value: str, hop: str = REGISTRAR, method: str = "REGISTER"
    ) -> DigestAuthenticationError:
        response = Response(401, None, [("WWW-Authenticate", value)])
        with pytest.raises(DigestAuthenticationError) as info:
            attempt = client.start()
            attempt.respond_to(response, method, "sip:example.com", hop_host=hop)
            attempt.respond_to(response, method, "sip:example.com", hop_host=hop)
        return info.value

    ours = 'Digest realm="voip.example.net", nonce="n", qop="auth"'
    guarded = failure(
        client_for(cnonces, ALICE, trusted_hosts=[REGISTRAR]), ours, hop="198.51.100.66"
    )
    assert guarded.kind == "guard" and "hosts" in guarded.hint and guarded.hint in str(guarded)
    assert "username and password" not in str(guarded)
    rejected = failure(client_for(cnonces, ALICE), ours)
    assert rejected.kind == "rejected" and "username and password" in rejected.hint
    missing = failure(client_for(cnonces, Credential("example.com", "a", "p")), ours)
    assert (
        missing.kind == "no-credentials"
        and "the server's realm is 'voip.example.net'" in missing.hint
    )
    unsupported = failure(
        client_for(cnonces, ALICE), 'Digest realm="voip.example.net", nonce="n", algorithm=SHA-1'
    )
    assert unsupported.kind == "unsupported" and "SHA-256" in unsupported.hint
    none = failure(client_for(cnonces, ALICE), 'Basic realm="voip.example.net"')
    assert none.kind == "no-challenge" and "Basic" in none.hint
    cancel = failure(client_for(cnonces, ALICE), ours, method="CANCEL")
    assert cancel.kind == "method"
    assert isinstance(cancel, AuthenticationError)


def test_kept_credentials_get_next_nc(cnonces: Iterator[str]) -> None:
    """Credentials kept across rounds are recomputed with the next nc (no self-inflicted replay)."""
    client = client_for(cnonces, ALICE, BOB_REALM)
    proxy = DigestServer("voip.example.net", SECRET, proxy_role=True)
    uas = DigestServer("biloxi.example.org", b"another-secret-of-bob")
    request = make_request("INVITE", "sip:bob@biloxi.example.org")
    attempt = client.start()
    first = attempt.respond_to(
        proxy.challenge(request, 0.0), "INVITE", request.uri_text, hop_host="proxy.example.net"
    )
    second = attempt.respond_to(
        uas.challenge(request, 0.0), "INVITE", request.uri_text, hop_host="proxy.example.net"
    )
    (p1,) = [parse_authorization(v) for n, v in first if n == "Proxy-Authorization"]
    (p2,) = [parse_authorization(v) for n, v in second if n == "Proxy-Authorization"]
    assert (p1.nonce, p1.nc) == (p2.nonce, "00000001") and p2.nc == "00000002"
    assert p1.cnonce != p2.cnonce
