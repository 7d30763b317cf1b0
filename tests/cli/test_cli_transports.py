"""The command line over TCP and TLS: ``answer`` and ``call`` with --transport (127.0.0.1 only)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from clirun import HOST, Cli, account_file, htdigest

Start = Callable[..., Cli]


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_call_over_a_stream_transport(cli: Start, tmp_path: Path, transport: str) -> None:
    """``answer --transport T`` challenges, ``call --transport T`` answers the 401 and hangs up."""
    extra: list[str] = []
    client_extra: list[str] = []
    scheme = "sip"
    if transport == "tls":
        pytest.importorskip("OpenSSL")
        from txsipua.testing.tls import self_signed_pem

        cert, key = self_signed_pem(HOST)
        (tmp_path / "server.pem").write_bytes(cert + key)
        (tmp_path / "ca.pem").write_bytes(cert)
        extra = ["--tls-cert", str(tmp_path / "server.pem")]
        client_extra = ["--tls-ca", str(tmp_path / "ca.pem")]
        scheme = "sips"
    users = htdigest(tmp_path / "users.htdigest")
    answerer = cli("answer", "--bind", f"{HOST}:0", "--realm", "voip.example.net", "--users", str(users),
                   "--transport", transport, *extra)
    hostport = answerer.wait_for("ready ").split()[1]
    registrar = f"{scheme}:{hostport};transport=tcp"
    acct = account_file(tmp_path / "alice.toml", registrar)
    proc = cli("call", f"{scheme}:bob@{hostport};transport=tcp", "--account", str(acct), "--duration", "0.3",
               "--bind", f"{HOST}:0", "--transport", transport, "-vv", *client_extra)
    assert proc.wait() == 0, proc
    text = "\n".join(proc.out)
    assert f"SIP/2.0/{transport.upper()} " in text, proc
    assert "hung up (hangup)" in proc.out, proc


def test_tls_answer_without_certificate_is_a_usage_error(cli: Start, tmp_path: Path) -> None:
    """Listening for TLS needs a certificate: exit 2 with a one-line reason."""
    users = htdigest(tmp_path / "users.htdigest")
    proc = cli("answer", "--bind", f"{HOST}:0", "--realm", "r", "--users", str(users), "--transport", "tls")
    assert proc.wait() == 2, proc


def test_bench_call_places_every_call(cli: Start, tmp_path: Path) -> None:
    """``bench-call`` at 50 calls/s against ``answer``: 20 calls answered, hung up, exit 0."""
    answerer = cli("answer", "--bind", f"{HOST}:0", "--no-media")
    hostport = answerer.wait_for("ready ").split()[1]
    proc = cli("bench-call", f"sip:bot@{hostport}", "--rate", "50", "--calls", "20", "--bind", f"{HOST}:0")
    assert proc.wait() == 0, proc
    assert proc.out[-1].startswith("calls=20 ok=20 failed=0 "), proc
