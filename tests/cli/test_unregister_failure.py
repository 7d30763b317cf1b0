"""``register --keep`` whose un-REGISTER is refused: the reason on one line, exit 1.

``Registration.stop()`` fires with ``None`` when unregistering fails and keeps
the error in ``unregister_error``; the service (and so the command) reads it
from there: the command line behaves as before.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

from clirun import HOST, Cli, RingingCallee, account_file

Start = Callable[..., Cli]


def test_register_keep_reports_a_refused_unregister(cli: Start, tmp_path: Path) -> None:
    registrar = RingingCallee()
    try:
        acct = account_file(tmp_path / "alice.toml", f"sip:{HOST}:{registrar.address[1]}")
        proc = cli("register", "--account", str(acct), "--keep", "--expires", "60", "--bind", f"{HOST}:0")
        register, source = registrar.recv_request("REGISTER")
        contact = register.headers.get("Contact") or ""
        registrar.respond(register, 200, source, extra=[("Contact", f"{contact};expires=60")])
        proc.wait_for("staying registered")
        proc.signal(signal.SIGTERM)
        unregister, source = registrar.recv_request("REGISTER")
        assert unregister.headers.get("Expires") == "0"
        registrar.respond(unregister, 500, source)
        assert proc.wait() == 1, proc
        assert proc.err == ["registration failed: 500 Server Internal Error"], proc
        assert "unregistered" not in proc.out, proc
    finally:
        registrar.close()
