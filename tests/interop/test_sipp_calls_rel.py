"""PRACK (RFC 3262), UPDATE (RFC 3311) and session timers (RFC 4028) against SIPp 3.6, both sides.

SIPp's exit status is the far side's verdict: each scenario checks with ``ereg check_it`` the
fields RFC 3262/3311/4028 ask for (Supported, Require, RSeq/RAck, Session-Expires, Min-SE, the
SDP answer), and fails on a missing or unexpected message.
"""

from __future__ import annotations

import contextlib
import re

import pytest
from peers import HOST, MiniUAC, PeerError

pytestmark = pytest.mark.interop

BIND = ("--bind", "127.0.0.1:0")


def _account(cli, sipp):
    return cli.account(f"alice-{sipp.port}", user="alice", domain="example.com", registrar=sipp.uri,
                       credentials=[])


def test_call_with_reliable_183_update_and_peer_refreshed_session_timer(sipp_factory, txsipua_cli) -> None:
    """txsipua calls asking a 1800 s session; SIPp answers 183 + SDP reliably (RSeq 1) and txsipua
    PRACKs it (RAck 1 1 INVITE); the 200 (no SDP: the 183's answer holds) names SIPp the refresher
    of 90 s; SIPp refreshes by UPDATE (our 200 keeps 90;refresher=uas, Require timer, Contact) and
    puts us on hold by UPDATE (our 200 answers recvonly); our BYE ends it, exit 0 both sides."""
    sipp = sipp_factory("uas_100rel_update.xml", timeout=15)
    account = _account(txsipua_cli, sipp)
    result = txsipua_cli.run("call", f"sip:carol@{HOST}:{sipp.port}", "--account", str(account),
                             "--duration", "2", "--session-expires", "1800", *BIND, "-v", timeout=20)
    assert result.returncode == 0, result
    assert sipp.wait(10) == 0, sipp.report()
    assert sipp.received("PRACK") == 1
    assert sipp.received("BYE") == 1


def test_422_min_se_is_retried_with_the_larger_interval(sipp_factory, txsipua_cli) -> None:
    """SIPp answers the INVITE asking 100 s with 422 Min-SE 1800; txsipua ACKs it and sends the
    INVITE again (CSeq 2) with Session-Expires 1800 and Min-SE 1800, which is answered."""
    sipp = sipp_factory("uas_422_min_se.xml", timeout=15)
    account = _account(txsipua_cli, sipp)
    result = txsipua_cli.run("call", f"sip:carol@{HOST}:{sipp.port}", "--account", str(account),
                             "--duration", "1", "--session-expires", "100", *BIND, timeout=20)
    assert result.returncode == 0, result
    assert sipp.wait(10) == 0, sipp.report()
    assert sipp.received("INVITE") == 2


def test_sipp_requiring_100rel_gets_a_reliable_180_and_a_session_timer(sipp_factory, txsipua_cli) -> None:
    """SIPp calls ``txsipua answer --ring 1`` requiring 100rel with Session-Expires 90;refresher=uac:
    the 180 is reliable (Require 100rel, RSeq), SIPp's PRACK gets 200, the 200 to the INVITE keeps
    90;refresher=uac with Require timer, SIPp's refreshing UPDATE gets the same, BYE/200."""
    server = txsipua_cli.start("answer", "--bind", "127.0.0.1:0", "--ring", "1", "--count", "1", lifetime=20)
    ready = re.compile(r"^ready (\S+):(\d+)$", re.MULTILINE)
    server.wait_ready(lambda: ready.search(server.output()) is not None, timeout=10)
    m = ready.search(server.output())
    assert m is not None
    sipp = sipp_factory("uac_100rel_call.xml", remote=(m.group(1), int(m.group(2))), timeout=12,
                        extra=["-s", "bob"])
    assert sipp.wait(15) == 0, sipp.report() + "\n--- answer\n" + server.output()
    messages = sipp.messages()
    assert "PRACK sip:" in messages and "RAck: " in messages


@pytest.mark.parametrize("scenario", ["uas_100rel_update.xml", "uas_422_min_se.xml"])
def test_the_scenarios_fail_a_caller_without_100rel_or_timer(sipp_factory, scenario) -> None:
    """Proof of the harness: a plain RFC 3261 caller (``peers.MiniUAC``: no Supported, no
    Session-Expires, no PRACK) makes each callee scenario exit non-zero, so a pass above is
    SIPp's verdict on txsipua's extensions."""
    sipp = sipp_factory(scenario, timeout=4)
    # no final response comes when SIPp aborts the call at the INVITE
    with MiniUAC((HOST, sipp.port), user="alice") as uac, contextlib.suppress(PeerError, TimeoutError):
        uac.call(f"sip:carol@{HOST}:{sipp.port}", credentials={}, invite_timeout=3.0)
    assert sipp.wait(10) != 0, sipp.report()
