"""REFER both ways against SIPp 3.6 (RFC 3515): txsipua transfers a SIPp callee, and a SIPp
caller transfers txsipua.  SIPp's exit status is the verdict on the far side (0 only if every
header it checks was right and every message came in order).
"""

from __future__ import annotations

import re

import pytest
from peers import HOST

pytestmark = pytest.mark.interop

BIND = ("--bind", "127.0.0.1:0")


def _answer(txsipua_cli, *extra: str) -> str:
    """Start ``txsipua answer`` (no authentication, no media); its ``HOST:PORT``."""
    process = txsipua_cli.start("answer", *BIND, "--no-media", *extra)
    process.wait_ready(lambda: "ready " in process.output())
    found = re.search(r"ready (\S+)", process.output())
    assert found, process.output()
    return found.group(1)


def test_txsipua_transfers_a_sipp_callee(sipp_factory, txsipua_cli) -> None:
    """``txsipua call --transfer-to``: REFER with Refer-To and Referred-By in the call (checked by
    SIPp), 202, NOTIFY 100 (active) and 200 (terminated) each answered 200, then BYE; exit 0."""
    sipp = sipp_factory("uas_transferee.xml")
    account = txsipua_cli.account(f"alice-{sipp.port}", user="alice", domain="example.com",
                                  registrar=sipp.uri, credentials=[])
    result = txsipua_cli.run("call", f"sip:carol@{HOST}:{sipp.port}", "--account", str(account),
                             "--transfer-to", "sip:dave@192.0.2.99", "--after", "0.2", *BIND, "-v", timeout=20)
    assert result.returncode == 0, result
    assert "transfer: succeeded 200 OK" in result.stdout, result
    assert sipp.wait(10) == 0, sipp.report()
    assert sipp.received("REFER") == 1 and sipp.received("BYE") == 1


def test_sipp_caller_transfers_txsipua(sipp_factory, txsipua_cli) -> None:
    """SIPp calls ``txsipua answer`` and REFERs it to a second ``txsipua answer``: txsipua
    answers 202, calls the target with Referred-By, NOTIFYs the progress as message/sipfrag
    with Event: refer;id=2, and ends the subscription with a 200 sipfrag (terminated)."""
    carol = _answer(txsipua_cli)
    bob_account = txsipua_cli.account("bob", user="bob", domain="example.com", registrar=f"sip:{carol}",
                                      credentials=[])
    bob = _answer(txsipua_cli, "--account", str(bob_account), "-v")
    host, port = bob.rsplit(":", 1)
    sipp = sipp_factory("uac_transferor.xml", remote=(host, int(port)), timeout=15,
                        extra=["-s", "bob", "-key", "carol", carol])
    assert sipp.wait(20) == 0, sipp.report()
    messages = sipp.messages()
    assert "Subscription-State: terminated;reason=noresource" in messages
    assert "SIP/2.0 100 Trying" in messages  # the first NOTIFY's sipfrag
