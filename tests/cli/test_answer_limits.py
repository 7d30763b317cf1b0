"""``txsipua answer --max-calls`` and ``--max-call-duration`` (issue 12), over UDP on 127.0.0.1.

Without media nothing else bounds the calls held: past ``--max-calls`` a new INVITE gets 503
with Retry-After and a log line; a call ACKed and never hung up gets our BYE after
``--max-call-duration`` seconds.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

from clirun import HOST, Cli
from test_answer_guard import Peer, wait_for_stderr

from txsipua.sip.message import Request, Response, parse_message

Start = Callable[..., Cli]


def start(cli: Start, *extra: str) -> tuple[Cli, tuple[str, int]]:
    proc = cli("answer", "--bind", f"{HOST}:0", "--no-media", *extra)
    return proc, (HOST, int(proc.wait_for("ready ").split()[1].rsplit(":", 1)[1]))


def ack(peer: Peer, ok: Response) -> None:
    """The ACK of a 2xx (RFC 3261 §13.2.2.4), sent to the Contact the 200 names."""
    lines = [
        f"ACK {ok.headers.get('Contact', '').strip('<>')} SIP/2.0",
        f"Via: SIP/2.0/UDP {HOST}:{peer.port};branch=z9hG4bK-limits-ack",
        "Max-Forwards: 70",
        f"From: {ok.headers.get('From')}",
        f"To: {ok.headers.get('To')}",
        f"Call-ID: {ok.call_id}",
        f"CSeq: {ok.cseq.seq} ACK",
        "Content-Length: 0", "", "",
    ]
    peer.sock.sendto("\r\n".join(lines).encode(), peer.server)


def test_past_max_calls_a_new_invite_gets_503_and_a_log_line(cli: Start) -> None:
    proc, server = start(cli, "--max-calls", "1")
    peer = Peer(server)
    try:
        uri = f"sip:bob@{HOST}:{server[1]}"
        first = peer.request("INVITE", uri, "alice", call_id="held")
        assert first.status == 200, first
        ack(peer, first)
        refused = peer.request("INVITE", uri, "alice", call_id="one-too-many")
        assert refused.status == 503 and refused.headers.get("Retry-After") == "5", refused
        wait_for_stderr(proc, "max_calls")
    finally:
        peer.close()


def test_a_call_never_hung_up_gets_our_bye_after_max_call_duration(cli: Start) -> None:
    proc, server = start(cli, "--max-call-duration", "1")
    peer = Peer(server)
    try:
        ok = peer.request("INVITE", f"sip:bob@{HOST}:{server[1]}", "alice", call_id="forever")
        assert ok.status == 200, ok
        ack(peer, ok)
        while True:  # retransmitted 200s until our ACK lands, then the BYE
            data, source = peer.sock.recvfrom(65535)
            bye = parse_message(data)
            if isinstance(bye, Request):
                break
        assert bye.method == "BYE" and bye.call_id == ok.call_id, bye
    finally:
        peer.close()


def test_help_names_the_limits_and_their_defaults() -> None:
    out = subprocess.run([sys.executable, "-m", "txsipua.cli.main", "answer", "--help"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    flat = " ".join(out.split())
    assert "--max-calls N" in flat and "default 10000" in flat
    assert "--max-call-duration SECONDS" in flat and "default 14400: 4 hours; 0: no limit" in flat


def test_the_answer_configuration_carries_the_limits() -> None:
    from txsipua.cli.main import build_parser

    args = build_parser().parse_args(["answer"])
    assert (args.max_calls, args.max_call_duration) == (10_000, 14_400.0)
    args = build_parser().parse_args(["answer", "--max-calls", "7", "--max-call-duration", "0"])
    assert (args.max_calls, args.max_call_duration) == (7, 0.0)


def test_a_cap_reached_in_the_transport_is_logged_on_stderr_and_stdout_is_unchanged(cli: Start) -> None:
    """Warnings of txsipua's other loggers reach answer's stderr too, rate-limited (issue 12 review F5).

    Here the TCP per-source connection cap (32): the 33rd connection from 127.0.0.1 is refused.
    """
    import socket

    proc = cli("answer", "--bind", f"{HOST}:0", "--no-media", "--transport", "tcp")
    port = int(proc.wait_for("ready ").split()[1].rsplit(":", 1)[1])
    socks = []
    try:
        for _ in range(40):
            s = socket.create_connection((HOST, port), timeout=5)
            socks.append(s)
        wait_for_stderr(proc, "per-source cap")
        refusals = [line for line in proc.err if "per-source cap" in line]
        assert 1 <= len(refusals) <= 8  # the first five, then one in a hundred
    finally:
        for s in socks:
            s.close()
    proc.stop()
    assert [line.split()[0] for line in proc.out] in (["ready"], ["ready", "answered=0"])


def test_an_algorithm_no_user_has_an_ha1_for_is_warned_at_start(cli: Start, tmp_path: Any) -> None:
    """--algorithm SHA-256 over an MD5-only users file: a warning naming SHA-256 (issue 12 review F8)."""
    users = tmp_path / "users.htdigest"
    users.write_text("alice:test.example.net:d495a92f63a26e3eb1dcf32521edd7c0\n")
    proc, _ = start(cli, "--realm", "test.example.net", "--users", str(users),
                    "--algorithm", "SHA-256", "--algorithm", "MD5")
    wait_for_stderr(proc, "SHA-256")
    warning = next(line for line in proc.err if "SHA-256" in line)
    assert "warning" in warning and "MD5" not in warning.split("(")[0]
    quiet, _ = start(cli, "--realm", "test.example.net", "--users", str(users))
    quiet.stop()
    assert not any("warning" in line for line in quiet.err), quiet
