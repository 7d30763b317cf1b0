"""Proof of the interop harness itself, independent of txsipua.

Each SIPp scenario and each Kamailio configuration used against txsipua is shown here to
accept a correct peer AND to reject the mistakes it exists to catch, driven by SIPp itself
or by ``peers.MiniUAC`` (stdlib sockets + hashlib).  A scenario that could not fail would
prove nothing about txsipua.
"""

from __future__ import annotations

import re
import signal
import socket
import time
from pathlib import Path

import pytest
from peers import (
    CALLEE_REALM,
    HOST,
    PROXY_REALM,
    ManagedProcess,
    MiniUAC,
    PeerError,
    digest_credentials,
    free_udp_port,
    parse_challenge,
    require_program,
    sip_options_ping,
    udp_port_bound,
)

pytestmark = pytest.mark.interop

CALLEE_AUTH = ("carol-auth", "carol-secret-3")
PROXY_AUTH = ("alice-proxy", "proxy-secret-5")


# ---------------------------------------------------------------------------------------------
# ports and processes


def test_free_udp_port_is_free_for_udp_and_tcp() -> None:
    """The port returned can be bound on 127.0.0.1 over both UDP and TCP."""
    port = free_udp_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind((HOST, port))
        assert udp_port_bound(port)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((HOST, port))
    assert not udp_port_bound(port)


def test_managed_process_stop_kills_the_whole_group(tmp_path: Path) -> None:
    """stop() leaves no child of the program behind (Kamailio forks workers)."""
    proc = ManagedProcess(
        "sh", ["sh", "-c", "sleep 30 & echo CHILD=$!; wait"], tmp_path / "sh.log"
    ).start()
    proc.wait_ready(lambda: re.search(r"CHILD=\d+", proc.output()) is not None, timeout=5)
    match = re.search(r"CHILD=(\d+)", proc.output())
    assert match is not None
    child = int(match.group(1))
    proc.stop(grace=2)
    assert proc.returncode is not None
    assert _dead(child, within=2.0)


def _dead(pid: int, within: float) -> bool:
    """Whether ``pid`` is gone or a zombie (killed, waiting for a reaper) within seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return True
        if "State:\tZ" in state:
            return True
        time.sleep(0.01)
    return False


def test_managed_process_watchdog_bounds_lifetime(tmp_path: Path) -> None:
    """A program that overstays its lifetime is stopped by the watchdog."""
    proc = ManagedProcess("sleep", ["sleep", "30"], tmp_path / "s.log", lifetime=0.3).start()
    assert proc.wait(5) == -signal.SIGTERM
    assert proc.killed_by_watchdog


def test_managed_process_not_ready_reports_exit_and_output(tmp_path: Path) -> None:
    """A program that dies before being ready raises PeerError with its output."""
    proc = ManagedProcess("false", ["sh", "-c", "echo boom; exit 3"], tmp_path / "f.log").start()
    with pytest.raises(PeerError, match=r"(?s)exited with status 3.*boom"):
        proc.wait_ready(lambda: False, timeout=5)


def test_missing_program_skips_locally_and_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing peer skips with the install hint, but fails when CI is set."""
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install no-such-pkg"):
        require_program("no-such-program-xyz", "no-such-pkg")
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        require_program("no-such-program-xyz", "no-such-pkg")


# ---------------------------------------------------------------------------------------------
# Kamailio


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_kamailio_registers_with_realm_and_auth_user_different(kamailio_factory, algorithm) -> None:
    """Kamailio challenges REGISTER with 401 in realm voip.example.net using the instance's
    algorithm, accepts auth user alice-auth (HA1 stored) for AOR alice@example.com, and
    reports the binding over RPC."""
    kam = kamailio_factory(algorithm)
    alice = kam.users["alice"]
    assert alice.realm != alice.domain and alice.auth_username != alice.user
    assert sip_options_ping(kam.host, kam.port) == "SIP/2.0 200 Ready"
    seen: list[str] = []
    with MiniUAC((kam.host, kam.port), user="alice") as uac:
        resp = uac.register(
            auth_username=alice.auth_username, password=alice.password, algorithm_seen=seen
        )
        assert resp.status == 200, resp.raw
        assert seen == [algorithm]
        bindings = kam.contacts("alice")
        assert [b.contact for b in bindings] == [f"sip:alice@{HOST}:{uac.port}"]
        assert 0 < bindings[0].expires <= 60
    assert kam.contacts("bob") == []


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_kamailio_rejects_wrong_password_and_foreign_auth_user(kamailio_factory, algorithm) -> None:
    """A wrong password gets a fresh 401; bob's valid credentials cannot register alice (403)."""
    kam = kamailio_factory(algorithm)
    with MiniUAC((kam.host, kam.port), user="alice") as uac:
        resp = uac.register(auth_username="alice-auth", password="not-the-password")
        assert resp.status == 401
    bob = kam.users["bob"]
    with MiniUAC((kam.host, kam.port), user="alice") as uac:
        resp = uac.register(auth_username=bob.auth_username, password=bob.password)
        assert resp.status == 403
    assert kam.contacts("alice") == []


def test_kamailio_accepts_a_sipsak_register(kamailio, tmp_path: Path) -> None:
    """sipsak (an independent digest implementation) registers alice with auth user
    alice-auth in realm voip.example.net; the binding it asked for appears in Kamailio.

    sipsak resolves the host of ``-s``, so the REGISTER is read from a file (``-f``) and
    sent to ``sip:127.0.0.1:PORT``; ``-i`` keeps sipsak from adding its own Via.
    """
    sipsak = require_program("sipsak", "sipsak")
    alice = kamailio.users["alice"]
    port, contact_port = free_udp_port(), free_udp_port()
    request = (
        "REGISTER sip:example.com SIP/2.0\n"
        f"Via: SIP/2.0/UDP {HOST}:{port};branch=z9hG4bKsipsak1;rport\n"
        "From: <sip:alice@example.com>;tag=sk1\n"
        "To: <sip:alice@example.com>\n"
        f"Call-ID: sipsak-{port}@{HOST}\n"
        "CSeq: 1 REGISTER\n"
        f"Contact: <sip:alice@{HOST}:{contact_port}>\n"
        "Expires: 60\nMax-Forwards: 70\nContent-Length: 0\n\n"
    )
    (tmp_path / "register.txt").write_text(request)
    argv = [
        sipsak,
        "-f",
        str(tmp_path / "register.txt"),
        "-s",
        f"sip:{HOST}:{kamailio.port}",
        "-l",
        str(port),
        "-i",
        "-u",
        alice.auth_username,
        "-a",
        alice.password,
        "-vv",
    ]
    proc = ManagedProcess("sipsak", argv, tmp_path / "sipsak.log", lifetime=10).start()
    assert proc.wait(10) == 0, proc.output()
    assert "200 OK" in proc.output()
    assert len(kamailio.received("REGISTER")) == 2  # challenged once, then accepted
    assert [b.contact for b in kamailio.contacts("alice")] == [f"sip:alice@{HOST}:{contact_port}"]


def test_kamailio_sipp_call_with_407_to_registered_sipp_callee(
    kamailio, registered_callee, sipp_factory
) -> None:
    """SIPp registers bob (MD5, 401), SIPp calls bob's AOR as alice through Kamailio (407,
    Proxy-Authorization), the SIPp callee answers, ACK and BYE follow the Record-Route."""
    callee = registered_callee(kamailio, "bob")
    assert [b.contact for b in kamailio.contacts("bob")] == [f"sip:bob@{HOST}:{callee.port}"]
    alice = kamailio.users["alice"]
    caller = sipp_factory(
        "uac_call_proxy_auth.xml",
        remote=(kamailio.host, kamailio.port),
        auth=(alice.auth_username, alice.password),
        timeout=10,
        extra=[
            "-s",
            "alice",
            "-key",
            "domain",
            alice.domain,
            "-key",
            "callee",
            "bob",
            "-auth_uri",
            f"bob@{alice.domain}",
        ],
    )
    assert caller.wait(15) == 0, caller.report()
    assert callee.wait(15) == 0, callee.report()
    assert callee.received("BYE") == 1


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_kamailio_minimal_uac_call_through_proxy(
    kamailio_factory, registered_callee, algorithm
) -> None:
    """The mini UAC calls bob through Kamailio: 407 in the instance's algorithm, then 200, and
    its routed ACK and BYE reach the callee; wrong proxy credentials get a second 407."""
    kam = kamailio_factory(algorithm)
    callee = registered_callee(kam, "bob")
    alice = kam.users["alice"]
    with MiniUAC((kam.host, kam.port), user="alice") as uac:
        statuses = uac.call(
            "sip:bob@example.com",
            credentials={alice.realm: (alice.auth_username, "wrong")},
        )
        assert statuses == [407, 407]
    with MiniUAC((kam.host, kam.port), user="alice") as uac:
        statuses = uac.call(
            "sip:bob@example.com", credentials={alice.realm: (alice.auth_username, alice.password)}
        )
        assert statuses == [407, 200, 200], uac.ladder
    assert callee.wait(10) == 0, callee.report()


# ---------------------------------------------------------------------------------------------
# SIPp callee scenarios


def _call(sipp, **kwargs) -> list[int]:
    with MiniUAC((HOST, sipp.port), user="alice") as uac:
        return uac.call(f"sip:carol@{HOST}:{sipp.port}", **kwargs)


def test_uas_auth_401_accepts_a_correct_caller(sipp_factory) -> None:
    """401 (MD5, qop=auth) answered correctly, ACK repeating the Authorization: SIPp exits 0."""
    sipp = sipp_factory("uas_auth_401.xml", auth=CALLEE_AUTH)
    assert _call(sipp, credentials={CALLEE_REALM: CALLEE_AUTH}) == [401, 200, 200]
    assert sipp.wait() == 0, sipp.report()


def test_uas_auth_401_rejects_a_wrong_password(sipp_factory) -> None:
    """verifyauth fails on a wrong password: 403 and SIPp exits 1."""
    sipp = sipp_factory("uas_auth_401.xml", auth=CALLEE_AUTH)
    assert _call(sipp, credentials={CALLEE_REALM: (CALLEE_AUTH[0], "wrong")}) == [401, 403]
    assert sipp.wait() == 1
    assert "verifyauth FAILED" in sipp.logs()


def test_uas_auth_401_rejects_an_ack_without_the_authorization(sipp_factory) -> None:
    """An ACK for the 200 that lacks the INVITE's Authorization makes SIPp exit 1."""
    sipp = sipp_factory("uas_auth_401.xml", auth=CALLEE_AUTH)
    statuses = _call(sipp, credentials={CALLEE_REALM: CALLEE_AUTH}, ack_credentials=False)
    assert statuses == [401, 200, 200]
    assert sipp.wait() == 1
    assert "differs from INVITE Authorization" in sipp.logs()


def test_uas_407_two_realms_accepts_both_answers(sipp_factory) -> None:
    """One 407 with Proxy-Authenticate + WWW-Authenticate, both answered: SIPp exits 0."""
    sipp = sipp_factory("uas_407_two_realms.xml", auth=CALLEE_AUTH)
    creds = {CALLEE_REALM: CALLEE_AUTH, PROXY_REALM: PROXY_AUTH}
    assert _call(sipp, credentials=creds) == [407, 200, 200]
    assert sipp.wait() == 0, sipp.report()


@pytest.mark.parametrize(
    "answer_only",
    [("Proxy-Authenticate",), ("WWW-Authenticate",)],
    ids=["proxy-only", "www-only"],
)
def test_uas_407_two_realms_rejects_a_single_answer(sipp_factory, answer_only) -> None:
    """Answering only one of the two challenges makes SIPp exit 1."""
    sipp = sipp_factory("uas_407_two_realms.xml", auth=CALLEE_AUTH)
    creds = {CALLEE_REALM: CALLEE_AUTH, PROXY_REALM: PROXY_AUTH}
    _call(sipp, credentials=creds, answer_only=answer_only)
    assert sipp.wait() == 1


def test_uas_407_two_realms_rejects_credentials_swapped_between_realms(sipp_factory) -> None:
    """Proxy credentials sent in Authorization (wrong header for the realm) make SIPp exit 1."""
    sipp = sipp_factory("uas_407_two_realms.xml", auth=CALLEE_AUTH)
    uri = f"sip:carol@{HOST}:{sipp.port}"
    with MiniUAC((HOST, sipp.port), user="alice") as uac:
        first = uac.transact(uac.build("INVITE", uri, to=f"<{uri}>", branch="z9hG4bKswap1", cseq=1))
        assert first.status == 407
        uac.send(uac.build("ACK", uri, to=first.get("To") or "", branch="z9hG4bKswap1", cseq=1))
        proxy_chal = parse_challenge(first.get("Proxy-Authenticate") or "")
        www_chal = parse_challenge(first.get("WWW-Authenticate") or "")
        swapped = [
            (
                "Proxy-Authorization",
                digest_credentials(
                    www_chal,
                    method="INVITE",
                    uri=uri,
                    username=CALLEE_AUTH[0],
                    password=CALLEE_AUTH[1],
                ),
            ),
            (
                "Authorization",
                digest_credentials(
                    proxy_chal,
                    method="INVITE",
                    uri=uri,
                    username=PROXY_AUTH[0],
                    password=PROXY_AUTH[1],
                ),
            ),
        ]
        resp = uac.transact(
            uac.build("INVITE", uri, to=f"<{uri}>", branch="z9hG4bKswap2", cseq=2, extra=swapped)
        )
        assert resp.status == 403
        uac.send(uac.build("ACK", uri, to=resp.get("To") or "", branch="z9hG4bKswap2", cseq=2))
    assert sipp.wait() == 1


def test_uas_407_two_realms_rejects_an_ack_with_a_recomputed_authorization(sipp_factory) -> None:
    """An ACK whose Authorization differs from the INVITE's (fresh cnonce) makes SIPp exit 1."""
    sipp = sipp_factory("uas_407_two_realms.xml", auth=CALLEE_AUTH)
    creds = {CALLEE_REALM: CALLEE_AUTH, PROXY_REALM: PROXY_AUTH}
    other = digest_credentials(
        {"realm": CALLEE_REALM, "nonce": "other", "qop": "auth"},
        method="INVITE",
        uri="sip:x",
        username=CALLEE_AUTH[0],
        password=CALLEE_AUTH[1],
    )
    proxy_only = digest_credentials(
        {"realm": PROXY_REALM, "nonce": "other", "qop": "auth"},
        method="INVITE",
        uri="sip:x",
        username=PROXY_AUTH[0],
        password=PROXY_AUTH[1],
    )
    _call(
        sipp,
        credentials=creds,
        ack_credentials=[("Proxy-Authorization", proxy_only), ("Authorization", other)],
    )
    assert sipp.wait() == 1
    assert "differs from INVITE" in sipp.logs()


def test_uas_auth_reject_accepts_a_client_that_gives_up_after_one_retry(sipp_factory) -> None:
    """Two INVITEs (original + one retry), both 401: SIPp exits 0 after 2 s of silence."""
    sipp = sipp_factory("uas_auth_reject.xml")
    assert _call(sipp, credentials={CALLEE_REALM: CALLEE_AUTH}, max_retries=1) == [401, 401]
    assert sipp.wait() == 0, sipp.report()
    assert sipp.received("INVITE") == 2


def test_uas_auth_reject_fails_a_client_that_retries_twice(sipp_factory) -> None:
    """A third INVITE after the second 401 makes SIPp exit 1."""
    sipp = sipp_factory("uas_auth_reject.xml")
    with pytest.raises(TimeoutError):  # SIPp aborts the call and never answers the third
        _call(sipp, credentials={CALLEE_REALM: CALLEE_AUTH}, max_retries=2, invite_timeout=2.0)
    assert sipp.wait() == 1
    assert "unexpected message" in sipp.errors()


def test_no_peer_left_running() -> None:
    """Nothing this module started is still alive (teardown stopped every peer)."""
    from peers import _LIVE

    assert [p for p in _LIVE if p.running] == []
