"""txsipua as registrar/UAS challenging real clients (issue 3, "Real peers in CI").

``txsipua answer`` runs as a subprocess on 127.0.0.1 and challenges every REGISTER (401) and
every INVITE (401, or 407 with ``--proxy-role``).  Each client from Debian - SIPp's
``[authentication]``, sipsak, baresip, linphonec - registers and/or calls it with the right
password (accepted: 200, call answered and hung up) and with a wrong one (refused: 401/407
again, never a 2xx).  The verdicts come from the server's own ``-v`` trace, paired into
request -> responses exchanges by ``clients.exchanges``, and from each client's exit status
or output; the ``answered=N open_calls=N`` line printed on SIGTERM closes every test.

Matrix (client x flow), all MD5 unless noted:

    client     REGISTER  INVITE 401  INVITE 407  wrong password    SHA-256
    SIPp       yes       yes         yes         REGISTER, INVITE  -  (SIPp 3.6: MD5 only)
    sipsak     yes       -           -           REGISTER          -  (built with MD5 only)
    baresip    yes       yes         yes         REGISTER, INVITE  -  (baresip 1.0: MD5 only)
    linphonec  yes       yes         yes         REGISTER, INVITE  yes, and SHA-256+MD5 offered

Two tests record txsipua deviations found here and since fixed (the registrar's 200 had no
To tag; ``--proxy-role`` challenged REGISTER with 407).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from clients import (
    AnswerServer,
    Exchange,
    HtdigestUser,
    Linphonec,
    baresip_account,
    baresip_argv,
    run_client,
    sipsak_register_argv,
    start_answer,
    write_baresip_config,
    write_linphonerc,
    write_users,
)
from peers import HOST, Sipp, free_udp_port

if TYPE_CHECKING:  # only annotations: at run time the fixtures come from conftest.py itself
    from conftest import TxsipuaCli, _Peers

pytestmark = pytest.mark.interop

REALM = "txsipua.example.net"
USER = "alice"  # the SIP user (address of record)
AUTH_USER = "alice-auth"  # differs from the SIP user on purpose
PASSWORD = "alice-secret-7"
WRONG_PASSWORD = "alice-secret-8"
CALLEE = "bob"


@pytest.fixture
def answer(tmp_path: Path, txsipua_cli: TxsipuaCli) -> Callable[..., AnswerServer]:
    """``answer(algorithms=(...), proxy_role=False, realm=REALM)``: a running ``txsipua answer``.

    The users file holds alice-auth's HA1 for exactly the algorithms challenged, so a client
    that answered with another algorithm could not pass.  Stopped (SIGTERM) at teardown.
    """

    def factory(
        algorithms: tuple[str, ...] = ("MD5",), proxy_role: bool = False, realm: str = REALM
    ) -> AnswerServer:
        users = write_users(
            tmp_path / "users.htdigest", [HtdigestUser(AUTH_USER, REALM, PASSWORD)], algorithms
        )
        return start_answer(
            txsipua_cli.start,
            realm=realm,
            users=users,
            algorithms=[] if algorithms == ("MD5",) else list(algorithms),
            proxy_role=proxy_role,
            owners={AUTH_USER: USER},  # alice-auth registers sip:alice@... (RFC 3261 §10.3 step 3)
        )

    return factory


def _statuses(xs: list[Exchange]) -> list[tuple[bool, int | None]]:
    """(carried credentials, final status) per exchange."""
    return [(x.authenticated, x.final_status) for x in xs]


def _assert_accepted(
    server: AnswerServer, method: str, challenge: int | tuple[int, ...] = 401
) -> Exchange:
    """``method`` was challenged until a request with the right credentials got 200; return it.

    Every ``method`` before the accepted one got ``challenge`` (401 with WWW-Authenticate, or
    407 with Proxy-Authenticate) in our realm - a client may send stale or misdirected
    credentials first (linphonec puts its cached registrar nonce in Proxy-Authorization);
    the accepted one carries the header that answers it (RFC 3261 §22.2, §22.3),
    for the auth username, with digest-uri equal to the Request-URI as sent (§22.4), and a
    nonce this server sent in an earlier challenge (so a request accepted at the first try
    is a client reusing a nonce it was given, e.g. the REGISTER's, never an unchallenged one).
    """
    xs = server.exchanges(method)
    ladder = server.ladder()
    ok = [i for i, x in enumerate(xs) if x.final_status == 200]
    assert ok, f"no {method} was accepted:\n{ladder}"
    accepted = xs[ok[0]]
    allowed = (challenge,) if isinstance(challenge, int) else challenge
    used: set[int] = set()
    for x in xs[: ok[0]]:
        assert x.final is not None and x.final.status in allowed, ladder
        header = "www-authenticate" if x.final.status == 401 else "proxy-authenticate"
        chal = x.final.get(header)
        assert chal is not None and f'realm="{server.realm}"' in chal, x.final.text
        used.add(x.final.status)
    for status in used or set(allowed):
        creds = "authorization" if status == 401 else "proxy-authorization"
        assert accepted.request.get(creds), f"credentials not in {creds}:\n{accepted.request.text}"
    assert accepted.request.digest_param("uri") == accepted.request.start_line.split(" ")[1]
    assert accepted.request.digest_param("username") == AUTH_USER
    nonce = accepted.request.digest_param("nonce")
    issued = [
        m.text for m in server.trace()
        if m.direction == "out" and m.status in (401, 407) and f'nonce="{nonce}"' in m.text
    ]
    assert nonce and issued, f"accepted with a nonce the server never sent ({nonce}):\n{ladder}"
    return accepted


#: ``txsipua answer``'s default ``--auth-fail-limit``: failures per source before a lockout (403).
AUTH_FAIL_LIMIT = 10


def _assert_refused(server: AnswerServer, method: str, challenge: int = 401) -> None:
    """Every ``method`` carrying credentials got ``challenge`` again; none got a 2xx.

    A client that keeps retrying (baresip does) is locked out once the source has failed
    ``AUTH_FAIL_LIMIT`` times (issue 12): from then on it gets 403, never earlier.
    """
    xs = server.exchanges(method)
    ladder = server.ladder()
    with_creds = [x for x in xs if x.authenticated]
    assert with_creds, f"the client never retried {method} with credentials:\n{ladder}"
    statuses = [x.final_status for x in with_creds]
    challenged = statuses.index(403) if 403 in statuses else len(statuses)
    assert all(s == challenge for s in statuses[:challenged]), ladder
    assert all(s == 403 for s in statuses[challenged:]), ladder
    failures = sum(1 for x in server.exchanges() if x.authenticated and x.final_status in (401, 407))
    assert challenged == len(statuses) or failures >= AUTH_FAIL_LIMIT, ladder
    assert not any(x.final_status and 200 <= x.final_status < 300 for x in xs), ladder


def _assert_call_completed(server: AnswerServer) -> None:
    """Every INVITE's final response was ACKed, and the caller's BYE got 200.

    ACK of a non-2xx: same branch as its INVITE (RFC 3261 §17.1.1.3); ACK of the 2xx: same
    CSeq number, a new transaction (§13.2.2.4).
    """
    ladder = server.ladder()
    acks = [x.request for x in server.exchanges("ACK")]
    invites = server.exchanges("INVITE")
    assert invites, ladder
    for invite in invites:
        number = invite.request.cseq[0]
        if invite.final_status == 200:
            assert any(a.cseq[0] == number and a.branch != invite.request.branch for a in acks), (
                f"no ACK for the 200 to CSeq {number}:\n{ladder}"
            )
        else:
            assert any(a.branch == invite.request.branch for a in acks), (
                f"no ACK for the {invite.final_status} to CSeq {number}:\n{ladder}"
            )
    byes = server.exchanges("BYE")
    assert [x.final_status for x in byes] == [200], ladder


# ---------------------------------------------------------------------------------------------
# SIPp (uac_register.xml, client_*.xml)


def _sipp_register(sipp_factory: Callable[..., Sipp], server: AnswerServer, scenario: str, password: str) -> Sipp:
    return sipp_factory(
        scenario,
        remote=(server.host, server.port),
        auth=(AUTH_USER, password),
        timeout=10,
        extra=["-s", USER, "-key", "domain", HOST, "-key", "expires", "120", "-auth_uri", HOST],
    )


def _sipp_call(sipp_factory: Callable[..., Sipp], server: AnswerServer, scenario: str, password: str) -> Sipp:
    return sipp_factory(
        scenario,
        remote=(server.host, server.port),
        auth=(AUTH_USER, password),
        timeout=10,
        extra=[
            "-key", "caller", USER, "-key", "callee", CALLEE,
            "-auth_uri", f"{CALLEE}@{server.host}:{server.port}",
        ],
    )


def test_sipp_register_md5(answer: Callable[..., AnswerServer], sipp_factory: Callable[..., Sipp]) -> None:
    """SIPp REGISTERs, is challenged (401, MD5), retries with credentials and gets 200."""
    server = answer()
    sipp = _sipp_register(sipp_factory, server, "uac_register.xml", PASSWORD)
    rc = sipp.wait(15)
    assert rc == 0, sipp.report() + "\n--- server\n" + server.ladder()
    assert _statuses(server.exchanges("REGISTER")) == [(False, 401), (True, 200)], server.ladder()
    accepted = _assert_accepted(server, "REGISTER")
    assert accepted.request.digest_param("algorithm") in (None, "MD5")
    ok = accepted.final
    assert ok is not None
    assert f"<sip:{USER}@{HOST}:{sipp.port}>" in (ok.get("contact") or ""), ok.text
    assert server.stop() == (0, 0, 0)


def test_register_200_carries_a_to_tag(
    answer: Callable[..., AnswerServer], sipp_factory: Callable[..., Sipp]
) -> None:
    """The registrar's 200 adds a To tag, as every final response must (RFC 3261 §8.2.6.2)."""
    server = answer()
    sipp = _sipp_register(sipp_factory, server, "uac_register.xml", PASSWORD)
    assert sipp.wait(15) == 0, sipp.report()
    for x in server.exchanges("REGISTER"):
        assert x.final is not None and ";tag=" in (x.final.get("to") or ""), x.final.text if x.final else x
    server.stop()


def test_sipp_register_proxy_role(
    answer: Callable[..., AnswerServer], sipp_factory: Callable[..., Sipp]
) -> None:
    """With --proxy-role INVITEs get 407, but REGISTER is still challenged 401 (registrar role).

    RFC 3261 §22.1/§10.3: a registrar authenticates as a UAS, with 401 and WWW-Authenticate.
    """
    server = answer(proxy_role=True)
    sipp = _sipp_register(sipp_factory, server, "uac_register.xml", PASSWORD)
    rc = sipp.wait(15)
    assert _statuses(server.exchanges("REGISTER"))[:1] == [(False, 401)], server.ladder()
    assert rc == 0, sipp.report() + "\n--- server\n" + server.ladder()
    _assert_accepted(server, "REGISTER", 401)
    assert server.stop() == (0, 0, 0)


@pytest.mark.parametrize("proxy_role", [False, True], ids=["uas-401", "proxy-role-407"])
def test_sipp_call_challenged_md5(
    answer: Callable[..., AnswerServer], sipp_factory: Callable[..., Sipp], proxy_role: bool
) -> None:
    """SIPp INVITEs; 401 (or 407 with --proxy-role); retried INVITE answered 200; ACK, BYE/200."""
    server = answer(proxy_role=proxy_role)
    challenge = 407 if proxy_role else 401
    sipp = _sipp_call(sipp_factory, server, "client_call_auth.xml", PASSWORD)
    rc = sipp.wait(15)
    assert rc == 0, sipp.report() + "\n--- server\n" + server.ladder()
    assert f"challenged {challenge}" in sipp.logs(), sipp.logs()
    assert _statuses(server.exchanges("INVITE")) == [(False, challenge), (True, 200)], server.ladder()
    _assert_accepted(server, "INVITE", challenge)
    _assert_call_completed(server)
    assert server.stop() == (0, 1, 0)


def test_sipp_register_wrong_password(
    answer: Callable[..., AnswerServer], sipp_factory: Callable[..., Sipp]
) -> None:
    """A REGISTER with a wrong password is challenged again (401), never accepted."""
    server = answer()
    sipp = _sipp_register(sipp_factory, server, "client_register_refused.xml", WRONG_PASSWORD)
    rc = sipp.wait(15)
    assert rc == 0, sipp.report() + "\n--- server\n" + server.ladder()
    assert _statuses(server.exchanges("REGISTER")) == [(False, 401), (True, 401)], server.ladder()
    _assert_refused(server, "REGISTER")
    assert server.stop() == (0, 0, 0)


@pytest.mark.parametrize("proxy_role", [False, True], ids=["uas-401", "proxy-role-407"])
def test_sipp_call_wrong_password(
    answer: Callable[..., AnswerServer], sipp_factory: Callable[..., Sipp], proxy_role: bool
) -> None:
    """An INVITE with a wrong password is challenged again (401/407) and never answered."""
    server = answer(proxy_role=proxy_role)
    challenge = 407 if proxy_role else 401
    sipp = _sipp_call(sipp_factory, server, "client_call_refused.xml", WRONG_PASSWORD)
    rc = sipp.wait(15)
    assert rc == 0, sipp.report() + "\n--- server\n" + server.ladder()
    assert f"refused {challenge}" in sipp.logs(), sipp.logs()
    assert _statuses(server.exchanges("INVITE")) == [(False, challenge), (True, challenge)], server.ladder()
    _assert_refused(server, "INVITE", challenge)
    assert server.stop() == (0, 0, 0)


# ---------------------------------------------------------------------------------------------
# sipsak


def _sipsak(tmp_path: Path, peer_registry: _Peers, server: AnswerServer, password: str) -> tuple[int, str]:
    argv = sipsak_register_argv(server, user=USER, auth_user=AUTH_USER, password=password)
    process = run_client("sipsak", argv, tmp_path / "sipsak.log", timeout=15)
    peer_registry.add("sipsak", lambda: process.tail(80), process)
    assert process.returncode is not None
    return process.returncode, process.output()


def test_sipsak_register_md5(
    tmp_path: Path, answer: Callable[..., AnswerServer], peer_registry: _Peers
) -> None:
    """sipsak -U registers with -u AUTH_USER -a PASSWORD: exit 0, the server granted it."""
    server = answer()
    rc, out = _sipsak(tmp_path, peer_registry, server, PASSWORD)
    assert rc == 0, out[-3000:] + "\n--- server\n" + server.ladder()
    assert _statuses(server.exchanges("REGISTER")) == [(False, 401), (True, 200)], server.ladder()
    accepted = _assert_accepted(server, "REGISTER")
    assert accepted.final is not None and ";expires=120" in (accepted.final.get("contact") or "")
    assert server.stop() == (0, 0, 0)


def test_sipsak_register_wrong_password(
    tmp_path: Path, answer: Callable[..., AnswerServer], peer_registry: _Peers
) -> None:
    """sipsak with a wrong password: 401 again, exit status 1 (a non-2xx final response)."""
    server = answer()
    rc, out = _sipsak(tmp_path, peer_registry, server, WRONG_PASSWORD)
    # sipsak 0.9.8.1 exits 2 here, not the 1 its manual promises for a non-2xx final response
    assert rc == 2 and "error: authorization failed" in out, out[-3000:] + "\n--- server\n" + server.ladder()
    assert _statuses(server.exchanges("REGISTER")) == [(False, 401), (True, 401)], server.ladder()
    _assert_refused(server, "REGISTER")
    assert server.stop() == (0, 0, 0)


# ---------------------------------------------------------------------------------------------
# baresip


def _baresip(
    tmp_path: Path, peer_registry: _Peers, server: AnswerServer, password: str, quit_after: int
) -> str:
    """Run baresip: register, dial the server at once, quit (BYE, unREGISTER) after N s."""
    config = write_baresip_config(
        tmp_path / "baresip",
        sip_port=free_udp_port(),
        accounts=[baresip_account(server, user=USER, auth_user=AUTH_USER, password=password)],
    )
    argv = baresip_argv(
        config, commands=[f"/dial sip:{CALLEE}@{server.host}:{server.port}"], quit_after=quit_after
    )
    process = run_client("baresip", argv, tmp_path / "baresip.log", timeout=quit_after + 10)
    peer_registry.add("baresip", lambda: process.tail(60), process)
    assert process.returncode == 0, process.tail(40)
    return process.output()


@pytest.mark.parametrize("proxy_role", [False, True], ids=["uas-401", "proxy-role-407"])
def test_baresip_register_and_call_md5(
    tmp_path: Path, answer: Callable[..., AnswerServer], peer_registry: _Peers, proxy_role: bool
) -> None:
    """baresip registers (401, then 200) and dials: 401/407, 200, ACK; BYE/200 when it quits."""
    server = answer(proxy_role=proxy_role)
    out = _baresip(tmp_path, peer_registry, server, PASSWORD, quit_after=3)
    context = out[-3000:] + "\n--- server\n" + server.ladder()
    assert "200 OK (txsipua" in out, context  # baresip's own "registered" line
    assert "Call established" in out, context
    _assert_accepted(server, "REGISTER", (401, 407) if proxy_role else 401)  # see test_sipp_register_proxy_role
    _assert_accepted(server, "INVITE", 407 if proxy_role else 401)
    _assert_call_completed(server)
    assert server.stop() == (0, 1, 0)


def test_baresip_wrong_password(
    tmp_path: Path, answer: Callable[..., AnswerServer], peer_registry: _Peers
) -> None:
    """baresip with a wrong password: its REGISTER and INVITE are challenged again, never accepted."""
    server = answer()
    out = _baresip(tmp_path, peer_registry, server, WRONG_PASSWORD, quit_after=2)
    context = out[-3000:] + "\n--- server\n" + server.ladder()
    assert "Call established" not in out, context
    _assert_refused(server, "REGISTER")
    _assert_refused(server, "INVITE")
    assert server.stop() == (0, 0, 0)


# ---------------------------------------------------------------------------------------------
# linphonec (linphone-cli)


def _linphonec(
    tmp_path: Path,
    peer_registry: _Peers,
    server: AnswerServer,
    password: str,
    algorithm: str | None,
    register: bool = True,
) -> Linphonec:
    config = write_linphonerc(
        tmp_path / "linphonerc", server, sip_port=free_udp_port(), rtp_port=free_udp_port(),
        user=USER, auth_user=AUTH_USER, password=password, realm=REALM, algorithm=algorithm,
        register=register,
    )
    process = Linphonec(config, tmp_path / "linphone-home", tmp_path / "linphonec.log", lifetime=28)
    process.start()
    peer_registry.add(
        "linphonec", lambda: process.tail(60) + "\n--- core log\n" + _tail(process.core_log, 60), process
    )
    return process


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _authenticated(method: str, status: int) -> Callable[[AnswerServer], bool]:
    return lambda s: any(x.authenticated and x.final_status == status for x in s.exchanges(method))


@pytest.mark.parametrize(
    ("algorithm", "proxy_role"),
    [("MD5", False), ("SHA-256", False), ("MD5", True), ("SHA-256", True)],
    ids=["MD5-uas-401", "SHA-256-uas-401", "MD5-proxy-role-407", "SHA-256-proxy-role-407"],
)
def test_linphonec_register_and_call(
    tmp_path: Path,
    answer: Callable[..., AnswerServer],
    peer_registry: _Peers,
    algorithm: str,
    proxy_role: bool,
) -> None:
    """linphonec registers and calls, challenged with one algorithm; call answered, hung up."""
    server = answer(algorithms=(algorithm,), proxy_role=proxy_role)
    phone = _linphonec(tmp_path, peer_registry, server, PASSWORD, algorithm)
    server.wait_for(_authenticated("REGISTER", 200), 10, "REGISTER accepted")
    # see test_sipp_register_proxy_role for the 407 a REGISTER gets in the proxy role
    accepted = _assert_accepted(server, "REGISTER", (401, 407) if proxy_role else 401)
    assert accepted.request.digest_param("algorithm") == algorithm, accepted.request.text

    mark = len(phone.output())
    phone.send(f"call sip:{CALLEE}@{server.host}:{server.port}")
    phone.wait_output(r"Call \d+ with \S+ connected", 10, after=mark)
    invite = _assert_accepted(server, "INVITE", 407 if proxy_role else 401)
    assert invite.request.digest_param("algorithm") == algorithm, invite.request.text

    phone.send("terminate")
    server.wait_for(lambda s: bool(s.exchanges("BYE")) and s.exchanges("BYE")[0].final_status == 200,
                    10, "BYE answered")
    _assert_call_completed(server)
    phone.send("quit")
    assert phone.wait(10) == 0, phone.tail(30)
    assert server.stop() == (0, 1, 0)


def test_linphonec_offered_sha256_and_md5_accepted(
    tmp_path: Path, answer: Callable[..., AnswerServer], peer_registry: _Peers
) -> None:
    """Two challenges (SHA-256 first, then MD5): linphonec answers the first, once, accepted."""
    server = answer(algorithms=("SHA-256", "MD5"))
    phone = _linphonec(tmp_path, peer_registry, server, PASSWORD, None)
    server.wait_for(_authenticated("REGISTER", 200), 10, "REGISTER accepted")
    challenged, accepted = server.exchanges("REGISTER")[:2]
    assert challenged.final is not None
    offered = challenged.final.get_all("www-authenticate")
    assert len(offered) == 2 and "SHA-256" in offered[0] and "MD5" in offered[1], challenged.final.text
    assert len(accepted.request.authorization) == 1, accepted.request.text  # one answer only
    # RFC 8760 §2.4: the topmost algorithm the client supports; linphone 5.1 does that
    assert accepted.request.digest_param("algorithm") == "SHA-256", accepted.request.text
    phone.send("quit")
    assert phone.wait(10) == 0, phone.tail(30)
    assert server.stop() == (0, 0, 0)


@pytest.mark.parametrize("method", ["REGISTER", "INVITE"])
def test_linphonec_wrong_password(
    tmp_path: Path, answer: Callable[..., AnswerServer], peer_registry: _Peers, method: str
) -> None:
    """linphonec with a wrong password: its REGISTER or INVITE is challenged again, never accepted.

    After a refusal linphonec prompts on its terminal ("Password for alice on REALM:") and
    would take the next command line as the password, so each case is its own run: the
    INVITE case runs without registration.
    """
    server = answer()
    phone = _linphonec(tmp_path, peer_registry, server, WRONG_PASSWORD, "MD5", register=method == "REGISTER")
    if method == "INVITE":
        phone.send(f"call sip:{CALLEE}@{server.host}:{server.port}")
    server.wait_for(_authenticated(method, 401), 10, f"{method} with credentials refused")
    phone.wait_output(r"Password for \S+ on \S+:", 10)
    assert "connected" not in phone.output(), phone.tail(30)
    _assert_refused(server, method)
    assert not server.exchanges("INVITE" if method == "REGISTER" else "REGISTER"), server.ladder()
    phone.stop()
    assert server.stop() == (0, 0, 0)
