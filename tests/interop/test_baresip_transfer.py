"""baresip calls ``txsipua answer --transfer-to`` and is transferred by it (RFC 3515): txsipua
sends REFER once the call is up, baresip answers 202, calls the target (a second ``txsipua
answer``) and NOTIFYs its progress; txsipua reports the success and hangs up."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest
from clients import baresip_argv, run_client, write_baresip_config
from peers import free_udp_port

pytestmark = pytest.mark.interop

BIND = ("--bind", "127.0.0.1:0")


def _answer(txsipua_cli, *extra: str):
    process = txsipua_cli.start("answer", *BIND, "--no-media", *extra)
    process.wait_ready(lambda: "ready " in process.output())
    found = re.search(r"ready (\S+)", process.output())
    assert found, process.output()
    return process, found.group(1)


def test_baresip_is_transferred_by_txsipua(tmp_path: Path, txsipua_cli, peer_registry) -> None:
    """REFER to baresip: 202, NOTIFY 100 and 200 answered, "transferred to", baresip's new call
    to carol established and carol's answer counted; bob's call with baresip hung up."""
    carol, carol_at = _answer(txsipua_cli, "-vv")
    bob_account = txsipua_cli.account("bob", user="bob", domain="example.com", registrar=f"sip:{carol_at}",
                                      credentials=[])
    bob, bob_at = _answer(txsipua_cli, "--account", str(bob_account), "--transfer-to", f"sip:carol@{carol_at}",
                          "--after", "0.3", "-vv")
    config = write_baresip_config(tmp_path / "baresip", sip_port=free_udp_port(),
                                  accounts=["<sip:alice@127.0.0.1>;regint=0;answermode=manual"])
    process = run_client("baresip", baresip_argv(config, commands=[f"/dial sip:bob@{bob_at}"], quit_after=3),
                         tmp_path / "baresip.log", timeout=15)
    peer_registry.add("baresip", lambda: process.tail(60), process)
    out = process.output()
    assert f"Call established: sip:carol@{carol_at}" in out, out[-3000:]
    for answerer in (bob, carol):
        answerer.send_signal(signal.SIGTERM)
        assert answerer.wait(10) == 0, answerer.tail(40)
    bob_out, carol_out = bob.output(), carol.output()
    for line in ("transfer: accepted 202 Accepted", "transfer: succeeded 200 OK",
                 f"transferred to sip:carol@{carol_at}", "answered=1 open_calls=0"):
        assert line in bob_out, bob.tail(80)
    assert re.search(rf"^INVITE sip:carol@{re.escape(carol_at)} SIP/2.0$", carol_out, re.M), carol.tail(80)
    assert "answered=1" in carol_out, carol.tail(40)
