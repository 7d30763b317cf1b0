"""``txsipua options``, ``message``, ``subscribe`` and ``call --transfer-to`` as subprocesses:
their output and exit statuses, against ``txsipua answer`` and peers played by hand on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from clirun import HOST, Cli, RingingCallee, account_file

from txsipua.sip.message import Request

Start = Callable[..., Cli]
MWI = b"Messages-Waiting: yes\r\nVoice-Message: 2/8 (0/2)\r\n"


def plain_answer(cli: Start, *extra: str) -> tuple[Cli, str]:
    """``txsipua answer`` without authentication; ``(process, "127.0.0.1:PORT")``."""
    proc = cli("answer", "--bind", f"{HOST}:0", "--no-media", *extra)
    return proc, proc.wait_for("ready ").split()[1]


def test_options_2xx_exits_0_and_prints_the_capabilities(cli: Start) -> None:
    """OPTIONS to ``answer``: exit 0, the status line, then Allow/Accept/Supported."""
    _, hostport = plain_answer(cli)
    proc = cli("options", f"sip:{hostport}", "--bind", f"{HOST}:0")
    assert proc.wait() == 0, proc
    assert proc.out[0] == "200 OK", proc
    from txsipua.core import capabilities

    assert f"Allow: {capabilities.ALLOW}" in proc.out, proc
    assert capabilities.ALLOW == "INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, INFO, REFER, NOTIFY, UPDATE, PRACK"
    assert "Supported: 100rel, timer, replaces" in proc.out, proc


def test_options_non_2xx_exits_1(cli: Start) -> None:
    """A 404 to OPTIONS: the status is printed and the exit status is 1."""
    peer = RingingCallee()
    try:
        proc = cli("options", f"sip:{peer.address[0]}:{peer.address[1]}", "--bind", f"{HOST}:0")
        request, source = peer.recv_request("OPTIONS")
        peer.respond(request, 404, source)
        assert proc.wait() == 1, proc
        assert proc.out == ["404 Not Found"], proc
    finally:
        peer.close()


def test_message_exit_status_follows_the_response(cli: Start, tmp_path: Path) -> None:
    """MESSAGE carries TEXT as text/plain; 200: "200 OK" and exit 0; 480: the status and exit 1."""
    peer = RingingCallee()
    try:
        acct = account_file(tmp_path / "alice.toml", f"sip:{peer.address[0]}:{peer.address[1]}")
        proc = cli("message", f"sip:bob@{peer.address[0]}:{peer.address[1]}", "hello bob", "--account", str(acct),
                   "--bind", f"{HOST}:0")
        request, source = peer.recv_request("MESSAGE")
        assert request.body == b"hello bob" and request.content_type == "text/plain"
        peer.respond(request, 200, source)
        assert proc.wait() == 0, proc
        assert proc.out == ["200 OK"], proc
        proc = cli("message", f"sip:bob@{peer.address[0]}:{peer.address[1]}", "again", "--account", str(acct),
                   "--bind", f"{HOST}:0")
        request, source = peer.recv_request("MESSAGE")
        peer.respond(request, 480, source)
        assert proc.wait() == 1, proc
        assert proc.out == ["480 Temporarily Unavailable"], proc
    finally:
        peer.close()


def _notify(peer: RingingCallee, subscribe: Request, to: tuple[str, int], state: str, seq: int,
            body: bytes = MWI) -> None:
    notify = Request("NOTIFY", f"sip:alice@{to[0]}:{to[1]}", [
        ("Via", f"SIP/2.0/UDP {peer.address[0]}:{peer.address[1]};branch=z9hG4bKcli{seq}"), ("Max-Forwards", "70"),
        ("From", f"<{subscribe.uri}>;tag={peer.to_tag}"), ("To", subscribe.headers.get("From") or ""),
        ("Call-ID", subscribe.call_id), ("CSeq", f"{seq} NOTIFY"),
        ("Contact", f"<sip:mwi@{peer.address[0]}:{peer.address[1]}>"), ("Event", "message-summary"),
        ("Subscription-State", state), ("Content-Type", "application/simple-message-summary"),
    ], body)
    peer.sock.sendto(notify.to_bytes(), to)


def test_subscribe_mwi_prints_each_notify_and_unsubscribes(cli: Start, tmp_path: Path) -> None:
    """SUBSCRIBE 200, NOTIFY active, --duration ends it with Expires: 0, final NOTIFY; exit 0."""
    peer = RingingCallee()
    try:
        target = f"sip:alice@{peer.address[0]}:{peer.address[1]}"
        acct = account_file(tmp_path / "alice.toml", f"sip:{peer.address[0]}:{peer.address[1]}")
        proc = cli("subscribe", "mwi", target, "--account", str(acct), "--duration", "1", "--bind", f"{HOST}:0")
        subscribe, source = peer.recv_request("SUBSCRIBE")
        assert subscribe.headers.get("Event") == "message-summary"
        contact = [("Contact", f"<sip:mwi@{peer.address[0]}:{peer.address[1]}>"), ("Expires", "3600")]
        peer.respond(subscribe, 200, source, extra=contact)
        _notify(peer, subscribe, source, "active;expires=3600", 1)
        assert proc.wait_for("notify: ") == "notify: active (expires=3600) waiting voice=2/8(0/2)", proc
        unsubscribe, source = peer.recv_request("SUBSCRIBE")
        assert unsubscribe.headers.get("Expires") == "0"
        peer.respond(unsubscribe, 200, source, extra=contact)
        _notify(peer, subscribe, source, "terminated;reason=timeout", 2, b"Messages-Waiting: no\r\n")
        assert proc.wait() == 0, proc
        assert proc.out[-2:] == ["notify: terminated (reason=timeout) no messages", "unsubscribed (timeout)"], proc
    finally:
        peer.close()


def test_subscribe_refused_exits_1(cli: Start, tmp_path: Path) -> None:
    """489 Bad Event to SUBSCRIBE: one line on stderr, exit 1."""
    peer = RingingCallee()
    try:
        acct = account_file(tmp_path / "alice.toml", f"sip:{peer.address[0]}:{peer.address[1]}")
        proc = cli("subscribe", "dialog", f"sip:bob@{peer.address[0]}:{peer.address[1]}", "--account", str(acct),
                   "--bind", f"{HOST}:0")
        subscribe, source = peer.recv_request("SUBSCRIBE")
        assert subscribe.headers.get("Event") == "dialog"
        peer.respond(subscribe, 489, source)
        assert proc.wait() == 1, proc
        assert proc.err == ["SUBSCRIBE failed: 489 Bad Event"], proc
    finally:
        peer.close()


def test_call_transfer_to_succeeds(cli: Start, tmp_path: Path) -> None:
    """alice calls bob (``answer``), transfers him to carol (another ``answer``): REFER accepted,
    progress printed, exit 0 once bob reports 200."""
    _, carol = plain_answer(cli)
    bob_acct = account_file(tmp_path / "bob.toml", f"sip:{carol}", user="bob")
    _, bob = plain_answer(cli, "--account", str(bob_acct))
    acct = account_file(tmp_path / "alice.toml", f"sip:{bob}")
    proc = cli("call", f"sip:bob@{bob}", "--account", str(acct), "--transfer-to", f"sip:carol@{carol}",
               "--after", "0.2", "--bind", f"{HOST}:0")
    assert proc.wait(20) == 0, proc
    assert "transfer: accepted 202 Accepted" in proc.out, proc
    assert "transfer: succeeded 200 OK" in proc.out, proc
    assert proc.out[-1] == f"transferred to sip:carol@{carol}", proc


def test_call_transfer_to_a_busy_target_exits_1(cli: Start, tmp_path: Path) -> None:
    """The target answers bob's INVITE 486: alice prints the failure, hangs up, exits 1."""
    peer = RingingCallee()
    try:
        target = f"{peer.address[0]}:{peer.address[1]}"
        bob_acct = account_file(tmp_path / "bob.toml", f"sip:{target}", user="bob")
        _, bob = plain_answer(cli, "--account", str(bob_acct))
        acct = account_file(tmp_path / "alice.toml", f"sip:{bob}")
        proc = cli("call", f"sip:bob@{bob}", "--account", str(acct), "--transfer-to", f"sip:carol@{target}",
                   "--bind", f"{HOST}:0")
        invite, source = peer.recv_request("INVITE")
        assert invite.headers.get("Referred-By") == "<sip:alice@example.com>"
        peer.respond(invite, 486, source)
        assert proc.wait(20) == 1, proc
        assert proc.err == ["transfer failed: 486 Busy Here"], proc
    finally:
        peer.close()


def test_a_target_that_is_not_a_uri_is_a_usage_error(cli: Start, tmp_path: Path) -> None:
    """options/message/subscribe with a TARGET that is not a SIP URI: one line on stderr, exit 2."""
    acct = account_file(tmp_path / "alice.toml", f"sip:{HOST}:9")
    for args in (("options", "not a uri"), ("message", "sip:bob@ex ample.com", "hi", "--account", str(acct)),
                 ("subscribe", "mwi", "sip:not a uri", "--account", str(acct))):
        proc = cli(*args, "--bind", f"{HOST}:0")
        assert proc.wait() == 2, proc
        assert len(proc.err) == 1 and proc.err[0].startswith(f"txsipua {args[0]}: error: TARGET "), proc
        assert "is not a SIP URI" in proc.err[0] and proc.out == [], proc


def test_subscribe_waits_a_bounded_time_for_the_final_notify(cli: Start, tmp_path: Path) -> None:
    """--duration ends the subscription; the unsubscribe is answered 200 but no final NOTIFY comes:
    the command exits 0 after UNSUBSCRIBE_WAIT (5 s), not Timer N (32 s)."""
    import time

    from txsipua.cli.requests import UNSUBSCRIBE_WAIT

    assert UNSUBSCRIBE_WAIT == 5.0
    peer = RingingCallee()
    try:
        target = f"sip:alice@{peer.address[0]}:{peer.address[1]}"
        acct = account_file(tmp_path / "alice.toml", f"sip:{peer.address[0]}:{peer.address[1]}")
        proc = cli("subscribe", "mwi", target, "--account", str(acct), "--duration", "0.5", "--bind", f"{HOST}:0")
        subscribe, source = peer.recv_request("SUBSCRIBE")
        contact = [("Contact", f"<sip:mwi@{peer.address[0]}:{peer.address[1]}>"), ("Expires", "3600")]
        peer.respond(subscribe, 200, source, extra=contact)
        unsubscribe, source = peer.recv_request("SUBSCRIBE")
        began = time.monotonic()
        assert unsubscribe.headers.get("Expires") == "0"
        peer.respond(unsubscribe, 200, source, extra=contact)
        assert proc.wait() == 0, proc
        assert 4.0 < time.monotonic() - began < 15.0, proc
        assert proc.out[-1] == "unsubscribed (no answer)", proc
    finally:
        peer.close()
