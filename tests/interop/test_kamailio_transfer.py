"""In-dialog REFER through Kamailio 5.6 with ``record_route()``: the REFER follows the route set
(RFC 3261 §12.2.1.1) the INVITE recorded, like the ACK and the BYE, and the transfer completes."""

from __future__ import annotations

import re

import pytest
from peers import start_registered_callee

pytestmark = pytest.mark.interop


def _sent_blocks(verbose: str, method: str) -> list[tuple[str, str]]:
    """``(destination, message text)`` of every ``method`` request txsipua's ``-v`` shows it sent."""
    blocks = re.split(r"\n(?=>>> sent to |<<< received from )", "\n" + verbose)
    found = []
    for block in blocks:
        head, _, text = block.strip().partition("\n")
        if head.startswith(">>> sent to ") and text.startswith(f"{method} "):
            found.append((head.removeprefix(">>> sent to "), text))
    return found


def test_refer_follows_kamailios_record_route(kamailio, tmp_path, peer_registry, txsipua_cli) -> None:
    """alice calls bob through Kamailio (407 answered), Kamailio record-routes; alice's REFER goes
    to Kamailio with Route: <sip:KAMAILIO;lr> and reaches bob (SIPp checks Refer-To and
    Referred-By), bob's NOTIFYs come back through Kamailio, alice BYEs through it; exit 0."""
    callee = start_registered_callee(tmp_path, kamailio, "bob", scenario="uas_transferee.xml")
    peer_registry.add(f"sipp transferee :{callee.port}", callee.report, callee.process)
    account = txsipua_cli.account_for(kamailio.users["alice"], kamailio)
    result = txsipua_cli.run("call", "sip:bob@example.com", "--account", str(account), "--transfer-to",
                             "sip:dave@192.0.2.99", "--bind", "127.0.0.1:0", "-vv", timeout=25)
    assert result.returncode == 0, result
    assert callee.wait(10) == 0, callee.report()
    proxy = f"{kamailio.host}:{kamailio.port}"
    (refer,) = _sent_blocks(result.stdout, "REFER")
    assert refer[0] == proxy, refer
    routes = re.findall(r"^Route: (.*)$", refer[1], re.M)
    assert len(routes) == 1 and f"sip:{proxy};lr" in routes[0], refer[1]
    assert re.search(rf"^REFER sip:carol@127\.0\.0\.1:{callee.port} ", refer[1]), refer[1]  # the remote target
    (bye,) = _sent_blocks(result.stdout, "BYE")
    assert bye[0] == proxy and f"sip:{proxy};lr" in bye[1]
    log = kamailio.process.output()
    assert "RX REFER" in log and "RX NOTIFY" in log, kamailio.process.tail(40)
