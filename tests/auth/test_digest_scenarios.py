"""Random client/server scenarios: invariants of the digest exchange over many configurations."""

from __future__ import annotations

import itertools
import subprocess
import sys

import attrs
from authhelpers import SECRET, Path, Users, make_request, with_auth
from hypothesis import given, settings
from hypothesis import strategies as st

from txsipua.auth.challenge import parse_authorization
from txsipua.auth.client import MAX_ROUNDS, DigestAuthenticationError, DigestClient
from txsipua.auth.credentials import Credential, InMemoryCredentials
from txsipua.auth.digest import ALGORITHMS, base_algorithm, compute_ha1
from txsipua.auth.server import DigestServer

REALMS = ("voip.example.net", "biloxi.example.org", "atlanta.example.com")


@attrs.frozen
class ServerSpec:
    """One DigestServer on the path."""

    realm: str
    proxy: bool
    algorithms: tuple[str, ...]
    qop: tuple[str, ...]


@attrs.frozen
class Scenario:
    """Servers on the path (distinct realms), the account's credentials, clock steps."""

    servers: tuple[ServerSpec, ...]
    creds: dict[str, str]  # realm -> "right" / "wrong" / "absent" / "ha1" (SHA-256 HA1 only)
    steps: tuple[float, ...]
    prefer: str
    strongest: bool
    requests: int


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    """Random scenarios."""
    realms = draw(st.lists(st.sampled_from(REALMS), min_size=1, max_size=3, unique=True))
    servers = tuple(
        ServerSpec(
            realm,
            draw(st.booleans()),
            tuple(draw(st.lists(st.sampled_from(ALGORITHMS), min_size=1, max_size=3, unique=True))),
            draw(st.sampled_from([("auth", "auth-int"), ("auth",), ("auth-int",), ()])),
        )
        for realm in realms
    )
    return Scenario(
        servers=servers,
        creds={r: draw(st.sampled_from(["right", "wrong", "absent", "ha1"])) for r in REALMS},
        steps=tuple(
            draw(st.lists(st.sampled_from([0.0, 1.0, 10.0, 100.0]), min_size=12, max_size=12))
        ),
        prefer=draw(st.sampled_from(["auth", "auth-int"])),
        strongest=draw(st.booleans()),
        requests=draw(st.integers(min_value=1, max_value=3)),
    )


def _credential(realm: str, kind: str) -> Credential | None:
    if kind == "right":
        return Credential(realm, "alice", "pw")
    if kind == "wrong":
        return Credential(realm, "alice", "nope")
    if kind == "ha1":
        return Credential(
            realm, "alice", ha1={"SHA-256": compute_ha1("SHA-256", "alice", realm, "pw")}
        )
    return None


@settings(max_examples=120, deadline=None)
@given(scenarios())
def test_random_scenarios(sc: Scenario) -> None:
    """Success iff every realm on the path has right credentials; bounded; never a stray realm.

    Clock steps (up to 100 s, nonce lifetime 60 s) make nonces expire mid-flight;
    later requests reuse cached challenges.
    """
    servers = [
        DigestServer(spec.realm, SECRET, proxy_role=spec.proxy, algorithms=spec.algorithms,
                     qop=spec.qop, nonce_lifetime=60.0)
        for spec in sc.servers
    ]  # fmt: skip
    creds = [c for realm, kind in sc.creds.items() if (c := _credential(realm, kind)) is not None]
    counter = itertools.count()
    client = DigestClient(
        InMemoryCredentials(creds),
        cnonce_factory=lambda: f"c{next(counter)}",
        prefer_qop=sc.prefer,
        prefer_strongest=sc.strongest,
    )
    path = Path(servers, Users({("alice", realm): "pw" for realm in REALMS}))
    steps = iter(sc.steps)
    now = 1000.0
    on_path = {s.realm for s in servers}

    def answerable(server: DigestServer) -> bool:
        kind = sc.creds[server.realm]
        # a stored SHA-256 HA1 also answers SHA-256-sess
        return kind == "right" or (
            kind == "ha1" and any(base_algorithm(a) == "SHA-256" for a in server.algorithms)
        )

    all_good = all(answerable(s) for s in servers)
    for n in range(sc.requests):
        attempt = client.start()
        request = make_request("INVITE", "sip:bob@biloxi.example.org", body=b"v=0\r\n", cseq=10 * n)
        headers = attempt.initial_headers(request.method, request.uri_text, request.body)
        sent = 0
        try:
            while True:
                current = with_auth(request, headers, 10 * n + sent)
                for name in ("Authorization", "Proxy-Authorization"):
                    for value in current.headers.get_all(name):
                        realm = parse_authorization(value).realm
                        assert realm in on_path, "credentials sent to a realm never challenged"
                        assert sc.creds[realm] != "absent"
                sent += 1
                assert sent <= 2 * MAX_ROUNDS
                now += next(steps, 0.0)
                response = path.handle(current, now)
                if response.status not in (401, 407):
                    attempt.succeeded()
                    break
                headers = attempt.respond_to(
                    response, request.method, request.uri_text, request.body
                )
        except DigestAuthenticationError as e:
            # with every credential right, only nonces expiring again and again may fail
            assert not all_good or e.kind == "stale-loop", (e.kind, str(e))
            return
        assert response.status == 200
        assert all_good


def test_pure_import_without_twisted() -> None:
    """Importing txsipua.auth loads no Twisted, uuid, socket or random (the pure-package rule).

    Compared with a bare interpreter, since site hooks may load some modules early.
    """
    code = (
        "import sys; before = set(sys.modules); "
        "import txsipua.auth, txsipua.auth.client, txsipua.auth.server; "
        "new = set(sys.modules) - before; "
        "bad = sorted(m for m in new if m.split('.')[0] in ('twisted', 'random', 'uuid', 'socket')); "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
