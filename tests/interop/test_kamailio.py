"""txsipua's CLI against a real Kamailio 5.6 registrar/proxy (issue 2 "Real input", issue 3).

Kamailio (see ``peers.KAMAILIO_CFG``) serves domain example.com, authenticates in realm
voip.example.net (realm != domain), knows alice by auth username alice-auth and bob by
bob-auth (auth username != SIP user), stores HA1s only, and uses one digest algorithm per
instance: MD5 or SHA-256.  REGISTER is challenged with 401/WWW-Authenticate, INVITE with
407/Proxy-Authenticate.
"""

from __future__ import annotations

import re
import signal
import time

import pytest

pytestmark = pytest.mark.interop

BIND = ("--bind", "127.0.0.1:0")


def _wait_until(predicate, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def _one_line_reason(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected a one-line reason\n{result}"
    return lines[0]


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_register_with_digest(kamailio_factory, txsipua_cli, algorithm) -> None:
    """`txsipua register` answers Kamailio's 401 (realm voip.example.net, auth user alice-auth,
    `algorithm`) and exits 0; Kamailio holds exactly one binding for alice@example.com with
    the expiry asked for; the CLI prints that binding; one challenge, one authenticated
    retry, no more."""
    kam = kamailio_factory(algorithm)
    account = txsipua_cli.account_for(kam.users["alice"], kam)
    result = txsipua_cli.run("register", "--account", str(account), "--expires", "60", *BIND)
    assert result.returncode == 0, result
    bindings = kam.contacts("alice")
    assert len(bindings) == 1, kam.log()
    assert 50 <= bindings[0].expires <= 60
    contact_hostport = re.sub(r"^sip:[^@]*@", "", bindings[0].contact).split(";")[0]
    assert contact_hostport in result.stdout, result
    assert len(kam.received("REGISTER")) == 2, kam.received("REGISTER")


def test_register_wrong_password_fails_after_one_retry(kamailio, txsipua_cli) -> None:
    """A wrong password: Kamailio challenges the retry again; txsipua stops after exactly one
    retry, exits non-zero with a one-line reason naming the realm, and nothing is bound."""
    account = txsipua_cli.account_for(kamailio.users["alice"], kamailio, password="wrong")
    result = txsipua_cli.run("register", "--account", str(account), "--expires", "60", *BIND)
    assert result.returncode != 0, result
    assert "voip.example.net" in _one_line_reason(result)
    assert len(kamailio.received("REGISTER")) == 2, kamailio.received("REGISTER")
    assert kamailio.contacts("alice") == []


def test_register_keep_refreshes_then_unregisters_on_sigterm(kamailio, txsipua_cli) -> None:
    """`register --keep --expires 4` refreshes before the granted 4 s run out (a new REGISTER
    within 6 s keeps the binding alive), and on SIGTERM sends Expires: 0 and exits 0: the
    binding is gone from Kamailio."""
    account = txsipua_cli.account_for(kamailio.users["alice"], kamailio)
    process = txsipua_cli.start(
        "register", "--account", str(account), "--expires", "4", "--keep", *BIND, lifetime=25
    )
    assert _wait_until(lambda: kamailio.contacts("alice") != [], 5), process.tail()
    registers = len(kamailio.received("REGISTER"))
    assert _wait_until(lambda: len(kamailio.received("REGISTER")) > registers, 6), process.tail()
    assert kamailio.contacts("alice") != []
    process.send_signal(signal.SIGTERM)
    assert process.wait(8) == 0, process.tail()
    assert kamailio.contacts("alice") == []


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_call_through_kamailio_to_registered_sipp_callee(
    kamailio_factory, registered_callee, txsipua_cli, algorithm
) -> None:
    """`txsipua call sip:bob@example.com` through Kamailio: the INVITE is challenged with 407
    (realm voip.example.net, `algorithm`), retried with Proxy-Authorization, routed by
    Kamailio to the SIPp callee registered as bob, answered 200 with SDP; txsipua ACKs, stays
    1 s, hangs up with BYE (routed by Record-Route), gets 200 and exits 0.  SIPp exits 0
    only if it saw INVITE, ACK and BYE in order."""
    kam = kamailio_factory(algorithm)
    callee = registered_callee(kam, "bob")
    account = txsipua_cli.account_for(kam.users["alice"], kam)
    result = txsipua_cli.run(
        "call",
        "sip:bob@example.com",
        "--account",
        str(account),
        "--duration",
        "1",
        *BIND,
        "-v",
        timeout=20,
    )
    assert result.returncode == 0, result
    assert callee.wait(10) == 0, callee.report()
    assert callee.received("INVITE") == 1
    assert callee.received("BYE") == 1
    assert len(kam.received("INVITE")) == 2, kam.received("INVITE")


def test_call_with_wrong_password_fails_at_the_proxy(
    kamailio, registered_callee, txsipua_cli
) -> None:
    """Wrong proxy password: Kamailio's second 407 ends the call attempt with an
    authentication error naming realm voip.example.net after one retry; bob is never rung."""
    callee = registered_callee(kamailio, "bob", timeout=6)
    account = txsipua_cli.account_for(kamailio.users["alice"], kamailio, password="wrong")
    result = txsipua_cli.run(
        "call",
        "sip:bob@example.com",
        "--account",
        str(account),
        "--duration",
        "1",
        *BIND,
        timeout=20,
    )
    assert result.returncode != 0, result
    assert "voip.example.net" in _one_line_reason(result)
    assert len(kamailio.received("INVITE")) == 2, kamailio.received("INVITE")
    callee.process.stop()
    assert callee.received("INVITE") == 0
