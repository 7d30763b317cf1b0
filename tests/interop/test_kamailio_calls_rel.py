"""PRACK and UPDATE follow the route set through a record-routing Kamailio (RFC 3262, RFC 3311, RFC 3261 §12).

Alice is a txsipua UserAgent (``update_caller.py``: call, UPDATE putting the callee on hold,
hang up), Kamailio (``record_route()`` on INVITE, ``loose_route()`` for in-dialog requests) is
her registrar and outbound proxy, and bob is ``txsipua answer --register --ring 1`` registered
there (a reliable 180, answered a second later, RFC 3262).  Alice's PRACK, UPDATE and BYE must
carry the proxy's Route and go to it, and Kamailio must relay each to bob.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.interop

CALLER = Path(__file__).with_name("update_caller.py")


def test_prack_and_update_follow_kamailios_route_set(kamailio, txsipua_cli, tmp_path) -> None:
    """The 407-challenged INVITE goes through Kamailio to bob; bob's reliable 180 is PRACKed and,
    once answered, alice's UPDATE (hold) is answered by bob's CallMedia (alice: sendonly):
    PRACK, UPDATE and BYE all carry Route: <Kamailio;lr>, are sent to Kamailio's address, and
    Kamailio relays each once; bob counts one answered call."""
    bob_account = txsipua_cli.account_for(kamailio.users["bob"], kamailio)
    callee = txsipua_cli.start("answer", "--account", str(bob_account), "--register", "--expires", "60",
                               "--ring", "1", "--count", "1", "--bind", "127.0.0.1:0", lifetime=30)
    ready = re.compile(r"^ready (\S+):(\d+)$", re.MULTILINE)
    callee.wait_ready(lambda: ready.search(callee.output()) is not None, timeout=10)
    account = txsipua_cli.account_for(kamailio.users["alice"], kamailio)
    proc = subprocess.Popen([sys.executable, str(CALLER), str(account), "sip:bob@example.com"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=txsipua_cli.env,
                            cwd=tmp_path)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the caller did not finish in 30 s\n{out}{err}\n{callee.output()}\n{kamailio.log()[-3000:]}")
    result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    assert result.returncode == 0, result.stdout + result.stderr + callee.output()
    assert "UPDATE 200 sendonly" in result.stdout, result.stdout
    hop = f"{kamailio.host}:{kamailio.port}"
    for method in ("PRACK", "UPDATE", "BYE"):
        lines = [line.split(" ", 3) for line in result.stdout.splitlines() if line.startswith(f"SENT {method} ")]
        assert lines, (method, result.stdout)
        for _, _, peer, route in lines:
            assert peer == hop and hop in route and ";lr" in route, (method, peer, route)
        assert len(kamailio.received(method)) == 1, kamailio.received(method)
    deadline = time.monotonic() + 10
    while "answered=1" not in callee.output() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "answered=1" in callee.output(), callee.output()
