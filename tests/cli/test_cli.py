"""The ``txsipua`` command end to end: subprocesses on 127.0.0.1, exit statuses and output.

The contract is README.md's "The command line": exit 0 on success, 1 with a
one-line reason on failure, 2 for usage errors; ``answer`` prints ``ready
HOST:PORT`` and ``answered=N open_calls=N``; SIGINT/SIGTERM end a call the
SIP way (CANCEL while ringing, BYE once connected) and end ``register --keep``
with an unregistration.
"""

from __future__ import annotations

import re
import signal
import wave
from collections.abc import Callable
from pathlib import Path

from clirun import HOST, REALM, Cli, RingingCallee, account_file, htdigest

from txsipua.sip.message import Request

Start = Callable[..., Cli]


COMMANDS = [[], ["demo"], ["register"], ["call"], ["answer"]]


def test_help_exits_0(cli: Start) -> None:
    """``--help`` works for the command and every subcommand (the processes run side by side)."""
    procs = [(command, cli(*command, "--help")) for command in COMMANDS]
    for command, proc in procs:
        assert proc.wait() == 0, proc
        assert proc.stdout.startswith("usage: txsipua"), proc
        if command:
            assert "--bind" in proc.stdout and "-v" in proc.stdout, proc


def test_no_subcommand_is_a_usage_error(cli: Start) -> None:
    """``txsipua`` alone prints the help and exits 2."""
    proc = cli()
    assert proc.wait() == 2, proc
    assert "register" in proc.stdout and "answer" in proc.stdout


BAD_BINDS = ["127.0.0.1:x", "127.0.0.1:70000", "[::1", "host.example:5060", "1:2:3:4:5", "127.0.0.1:-1"]


def test_bad_bind_exits_2(cli: Start, tmp_path: Path) -> None:
    """A malformed ``--bind`` is a usage error for every command: exit 2, one line naming it."""
    acct = account_file(tmp_path / "a.toml", f"sip:{HOST}:9")
    args = {"register": ["--account", str(acct)], "call": ["sip:bob@192.0.2.9", "--account", str(acct)],
            "answer": []}
    commands = list(args)
    procs = [cli(commands[i % 3], *args[commands[i % 3]], "--bind", bind) for i, bind in enumerate(BAD_BINDS)]
    for proc in procs:
        assert proc.wait() == 2, proc
        assert len(proc.err) == 1 and "--bind" in proc.err[0], proc


def test_missing_account_file_is_a_usage_error(cli: Start, tmp_path: Path) -> None:
    """An unreadable account file: exit 2 naming the file."""
    proc = cli("register", "--account", str(tmp_path / "nope.toml"), "--bind", f"{HOST}:0")
    assert proc.wait() == 2, proc
    assert "nope.toml" in proc.stderr


def test_demo_passes(cli: Start) -> None:
    """``txsipua demo`` runs the whole challenged call and says PASS."""
    proc = cli("demo", "--hold", "0.2")
    assert proc.wait(30) == 0, proc
    assert "PASS" in proc.stdout, proc
    assert "407 Proxy Authentication Required" in proc.stdout


def test_register_prints_bindings_and_granted_expiry(cli: Start, answer: tuple[Cli, str], tmp_path: Path) -> None:
    """``register`` against ``answer``: 401 answered, 200; our binding and its expiry printed."""
    _, registrar = answer
    acct = account_file(tmp_path / "alice.toml", registrar)
    proc = cli("register", "--account", str(acct), "--expires", "600", "--bind", f"{HOST}:0", "-vv")
    assert proc.wait() == 0, proc
    assert f"registered sip:alice@example.com at {registrar}: 200 OK" in proc.stdout, proc
    assert re.search(r"binding <sip:alice@127\.0\.0\.1:\d+> expires in 600 s  \(ours\)", proc.stdout), proc
    assert "granted expiry for our contact: 600 s" in proc.stdout
    # -v printed the exchange: the challenge and the retried REGISTER with credentials
    assert "SIP/2.0 401 Unauthorized" in proc.stdout
    assert f'realm="{REALM}"' in proc.stdout and 'username="alice-auth"' in proc.stdout


def test_register_interval_too_brief(cli: Start, answer: tuple[Cli, str], tmp_path: Path) -> None:
    """``--expires 30`` below the registrar's 60 s minimum: 423, retried with Min-Expires (§10.2.8)."""
    _, registrar = answer
    acct = account_file(tmp_path / "alice.toml", registrar)
    proc = cli("register", "--account", str(acct), "--expires", "30", "--bind", f"{HOST}:0")
    assert proc.wait() == 0, proc
    assert "granted expiry for our contact: 60 s" in proc.stdout, proc


def _bindings(proc: Cli) -> list[str]:
    return re.findall(r"binding <(sip:[^>]+)>", proc.stdout)


def test_register_keep_then_sigterm_unregisters(cli: Start, answer: tuple[Cli, str], tmp_path: Path) -> None:
    """``register --keep`` holds the binding until SIGTERM, then sends Expires: 0 and exits 0."""
    _, registrar = answer
    acct = account_file(tmp_path / "alice.toml", registrar)
    keep = cli("register", "--account", str(acct), "--keep", "--bind", f"{HOST}:0")
    keep.wait_for("staying registered")
    kept = _bindings(keep)
    assert len(kept) == 1
    # a second device of the same AOR sees the kept binding next to its own
    other = cli("register", "--account", str(acct), "--bind", f"{HOST}:0")
    assert other.wait() == 0, other
    assert kept[0] in _bindings(other) and len(_bindings(other)) == 2, other
    keep.signal(signal.SIGTERM)
    assert keep.wait() == 0, keep
    assert "unregistered" in keep.out, keep
    # the registrar no longer lists it
    third = cli("register", "--account", str(acct), "--bind", f"{HOST}:0")
    assert third.wait() == 0, third
    assert kept[0] not in _bindings(third), third


def test_call_answered_then_answer_stopped(cli: Start, answer: tuple[Cli, str], tmp_path: Path) -> None:
    """``call`` to ``answer``: 401 answered, call up for --duration, BYE, exit 0; then SIGTERM to answer."""
    answerer, registrar = answer
    acct = account_file(tmp_path / "alice.toml", registrar)
    target = registrar.replace("sip:", "sip:bob@")
    record = tmp_path / "heard.wav"
    proc = cli("call", target, "--account", str(acct), "--duration", "0.5", "--dtmf", "12",
               "--record", str(record), "--bind", f"{HOST}:0")
    assert proc.wait() == 0, proc
    assert any(line.startswith("answered; Call-ID ") for line in proc.out), proc
    assert "hung up (hangup)" in proc.out, proc
    with wave.open(str(record)) as w:  # the recording is a valid 8 kHz mono WAV
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
    answerer.signal(signal.SIGTERM)
    assert answerer.wait() == 0, answerer
    assert "answered=1 open_calls=0" in answerer.out, answerer


def test_call_with_wrong_password_fails_naming_the_realm(
    cli: Start, answer: tuple[Cli, str], tmp_path: Path
) -> None:
    """Wrong password: exit 1 and one line on stderr naming the realm challenged."""
    _, registrar = answer
    acct = account_file(tmp_path / "bad.toml", registrar, password="guess")
    proc = cli("call", registrar.replace("sip:", "sip:bob@"), "--account", str(acct), "--bind", f"{HOST}:0")
    assert proc.wait() == 1, proc
    assert len(proc.err) == 1, proc
    assert proc.err[0].startswith("authentication failed: 401"), proc
    assert f"'{REALM}'" in proc.err[0]
    proc = cli("register", "--account", str(acct), "--bind", f"{HOST}:0")
    assert proc.wait() == 1, proc
    assert len(proc.err) == 1 and f"'{REALM}'" in proc.err[0], proc


def test_call_to_a_missing_realm_names_both(cli: Start, answer: tuple[Cli, str], tmp_path: Path) -> None:
    """Credentials for another realm: the reason names the server's realm and the account's."""
    _, registrar = answer
    acct = account_file(tmp_path / "other.toml", registrar, realm="other.example.org")
    proc = cli("call", registrar.replace("sip:", "sip:bob@"), "--account", str(acct), "--bind", f"{HOST}:0")
    assert proc.wait() == 1, proc
    assert len(proc.err) == 1 and REALM in proc.err[0] and "other.example.org" in proc.err[0], proc


def test_sigint_while_ringing_sends_cancel(cli: Start, tmp_path: Path) -> None:
    """SIGINT while the callee rings: CANCEL (same branch, no credentials), then ACK for the 487.

    The callee first challenges the INVITE (401), so the INVITE being cancelled carries
    an Authorization: the CANCEL must not.
    """
    callee = RingingCallee()
    try:
        acct = account_file(tmp_path / "alice.toml", f"sip:{HOST}:9")
        target = f"sip:bob@{HOST}:{callee.address[1]}"
        proc = cli("call", target, "--account", str(acct), "--bind", f"{HOST}:0")
        first, source = callee.recv_request("INVITE")
        callee.respond(first, 401, source, extra=[
            ("WWW-Authenticate", f'Digest realm="{REALM}", nonce="ring-nonce-1", qop="auth", algorithm=MD5')])
        callee.recv_request("ACK")
        invite, source = callee.recv_request("INVITE")
        assert "Authorization" in invite.headers  # the INVITE being cancelled is authenticated
        callee.respond(invite, 100, source)
        callee.respond(invite, 180, source)
        proc.wait_for("progress: 180")
        proc.signal(signal.SIGINT)
        cancel, csource = callee.recv_request("CANCEL")
        assert cancel.top_via.branch == invite.top_via.branch
        assert cancel.cseq.seq == invite.cseq.seq and cancel.cseq.method == "CANCEL"
        assert "Authorization" not in cancel.headers and "Proxy-Authorization" not in cancel.headers
        callee.respond(cancel, 200, csource)
        callee.respond(invite, 487, source)
        ack, _ = callee.recv_request("ACK")
        assert ack.top_via.branch == invite.top_via.branch and ack.to.tag == callee.to_tag
        assert proc.wait() == 1, proc
        assert proc.err == ["call cancelled"], proc
        assert not [m for m in callee.received if isinstance(m, Request) and m.method == "BYE"]
    finally:
        callee.close()


def test_sigterm_while_connected_sends_bye(cli: Start, answer: tuple[Cli, str], tmp_path: Path) -> None:
    """SIGTERM once answered: BYE, exit 0; the answerer then has no open call."""
    answerer, registrar = answer
    acct = account_file(tmp_path / "alice.toml", registrar)
    proc = cli("call", registrar.replace("sip:", "sip:bob@"), "--account", str(acct), "--duration", "30",
               "--bind", f"{HOST}:0", "-vv")
    proc.wait_for("answered; ")
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0, proc
    assert any(line.startswith("BYE sip:") for line in proc.out), proc
    assert "hung up (hangup)" in proc.out, proc
    answerer.signal(signal.SIGTERM)
    assert answerer.wait() == 0, answerer
    assert "answered=1 open_calls=0" in answerer.out, answerer


def test_peer_hangs_up_first(cli: Start, tmp_path: Path) -> None:
    """``answer --duration`` hangs up before the caller's --duration: the caller reports the peer's BYE."""
    users = htdigest(tmp_path / "users.htdigest")
    answerer = cli("answer", "--bind", f"{HOST}:0", "--realm", REALM, "--users", str(users),
                   "--duration", "0.3", "--count", "1")
    registrar = "sip:" + answerer.wait_for("ready ").split()[1]
    acct = account_file(tmp_path / "alice.toml", registrar)
    proc = cli("call", registrar.replace("sip:", "sip:bob@"), "--account", str(acct), "--duration", "20",
               "--bind", f"{HOST}:0")
    assert proc.wait() == 0, proc
    assert "call ended by the peer (bye)" in proc.out, proc
    # --count 1: the answerer exits by itself once its one call ended
    assert answerer.wait() == 0, answerer
    assert "answered=1 open_calls=0" in answerer.out, answerer
