"""txsipua's CLI calling real SIPp 3.6 callees that authenticate it (issues 2 and 3).

Each scenario is in ``scenarios/`` and is proven, independently of txsipua, by
``test_harness.py``: it accepts a correct caller and fails on the fault it is written for.
SIPp's exit status is the verdict on the far side: 0 only if every check passed.

The caller's account names the SIPp callee as its registrar, so the callee is a hop the
credentials are meant for (issue 3's digest-leak guard); nothing is registered.
"""

from __future__ import annotations

import pytest
from peers import CALLEE_REALM, HOST, PROXY_REALM

pytestmark = pytest.mark.interop

BIND = ("--bind", "127.0.0.1:0")
CALLEE_AUTH = ("alice-at-callee", "callee-pass-4")  # alice's credentials for the callee realm
PROXY_AUTH = ("alice-at-proxy", "proxy-pass-6")  # and for the proxy realm of the 407


def _account(cli, sipp, credentials):
    return cli.account(
        f"alice-{sipp.port}",
        user="alice",
        domain="example.com",
        registrar=sipp.uri,
        credentials=[(realm, user, password) for realm, (user, password) in credentials.items()],
    )


def _one_line_reason(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected a one-line reason\n{result}"
    return lines[0]



def _call_carol(txsipua_cli, sipp, account):
    """``txsipua call sip:carol@<SIPp>`` with the account, up for 1 s, ``-v``, bounded to 20 s."""
    return txsipua_cli.run(
        "call", f"sip:carol@{HOST}:{sipp.port}", "--account", str(account), "--duration", "1", *BIND, "-v",
        timeout=20,
    )

def test_call_answered_after_401_from_the_callee(sipp_factory, txsipua_cli) -> None:
    """The callee answers the INVITE with 401 (realm callee.example.org, MD5, qop=auth,
    opaque); txsipua ACKs the 401, retries with CSeq+1 and an Authorization that SIPp's
    verifyauth accepts, gets 200 with SDP, sends an ACK repeating that exact Authorization,
    stays 1 s, hangs up with BYE and exits 0.  SIPp exits 0 only if all of that held."""
    sipp = sipp_factory("uas_auth_401.xml", auth=CALLEE_AUTH)
    account = _account(txsipua_cli, sipp, {CALLEE_REALM: CALLEE_AUTH})
    result = _call_carol(txsipua_cli, sipp, account)
    assert result.returncode == 0, result
    assert sipp.wait(10) == 0, sipp.report()
    assert sipp.received("INVITE") == 2
    assert sipp.received("BYE") == 1


def test_call_answers_407_carrying_two_realms(sipp_factory, txsipua_cli) -> None:
    """One 407 carries Proxy-Authenticate (realm proxy.example.net) and WWW-Authenticate
    (realm callee.example.org): txsipua's single retry carries Proxy-Authorization for the
    first and Authorization for the second (verified by SIPp), the ACK for the 200 repeats
    both, and the call ends with BYE/200, exit 0."""
    sipp = sipp_factory("uas_407_two_realms.xml", auth=CALLEE_AUTH)
    account = _account(txsipua_cli, sipp, {PROXY_REALM: PROXY_AUTH, CALLEE_REALM: CALLEE_AUTH})
    result = _call_carol(txsipua_cli, sipp, account)
    assert result.returncode == 0, result
    assert sipp.wait(10) == 0, sipp.report()
    assert sipp.received("INVITE") == 2


def test_wrong_password_fails_after_exactly_one_retry(sipp_factory, txsipua_cli) -> None:
    """The callee challenges the retried INVITE again (new nonce, not stale): txsipua gives up
    after that one retry with a one-line authentication error naming realm
    callee.example.org and a non-zero exit status.  SIPp exits 0 only if no third INVITE
    arrived within 2 s of its second 401."""
    sipp = sipp_factory("uas_auth_reject.xml")
    account = _account(txsipua_cli, sipp, {CALLEE_REALM: (CALLEE_AUTH[0], "wrong-password")})
    result = txsipua_cli.run(
        "call",
        f"sip:carol@{HOST}:{sipp.port}",
        "--account",
        str(account),
        "--duration",
        "1",
        *BIND,
        timeout=20,
    )
    assert result.returncode != 0, result
    assert CALLEE_REALM in _one_line_reason(result)
    assert sipp.wait(10) == 0, sipp.report()
    assert sipp.received("INVITE") == 2


def test_no_credentials_for_the_challenged_realm(sipp_factory, txsipua_cli) -> None:
    """Challenged in realm callee.example.org with credentials only for voip.example.net:
    txsipua sends no retry (credentials never go to another realm) and fails with one line
    naming both the realm challenged and the realm it has."""
    sipp = sipp_factory("uas_auth_401.xml", auth=CALLEE_AUTH, timeout=8)
    account = _account(txsipua_cli, sipp, {"voip.example.net": ("alice-auth", "alice-secret-7")})
    result = txsipua_cli.run(
        "call",
        f"sip:carol@{HOST}:{sipp.port}",
        "--account",
        str(account),
        "--duration",
        "1",
        *BIND,
        timeout=20,
    )
    assert result.returncode != 0, result
    reason = _one_line_reason(result)
    assert CALLEE_REALM in reason and "voip.example.net" in reason, reason
    sipp.process.stop()
    assert sipp.received("INVITE") == 1
    assert "Authorization:" not in sipp.messages()
