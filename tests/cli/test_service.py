"""The long-lived service: ``twist txsipua`` (plugin listed, registers, answers with a scripted bot,
unregisters on SIGTERM)."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from clirun import HOST, REALM, Cli, account_file, htdigest

REPO = Path(__file__).resolve().parents[2]

BOT = '''
from twisted.internet import reactor, task

def on_call(call):
    print("bot: call", call.call_id, flush=True)
    return task.deferLater(reactor, 0.3, call.hangup)
'''


class Twist:
    """``twist --log-format text ARGS`` with its output lines collected by a thread."""

    def __init__(self, *args: str, path: str = "", log_format: str = "text") -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(p for p in [path, str(REPO), os.environ.get("PYTHONPATH", "")] if p)
        self.proc = subprocess.Popen([sys.executable, "-m", "twisted", "--log-format", log_format, *args], cwd=REPO,
                                     env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_line(self, pattern: str, timeout: float = 15.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"{pattern!r} not seen:\n{''.join(self.seen)}") from None
            self.seen.append(line)
            m = re.search(pattern, line)
            if m:
                return m


def test_twist_lists_the_plugin_and_its_help() -> None:
    """``twist --help`` lists txsipua; ``twist txsipua --help`` describes it and its commands."""
    out = subprocess.run([sys.executable, "-m", "twisted", "--help"], cwd=REPO, capture_output=True, text=True,
                         timeout=60, check=False, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert re.search(r"^\s+txsipua\s+A SIP user agent as a service", out.stdout, re.M), out.stdout
    out = subprocess.run([sys.executable, "-m", "twisted", "txsipua", "--help"], cwd=REPO, capture_output=True,
                         text=True, timeout=60, check=False, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert out.returncode == 0, out
    assert "[answer|register]" in out.stdout and "--bot" not in out.stderr
    commands = out.stdout.split("Commands (")[1]
    assert re.search(r"^\s+answer\s", commands, re.M) and re.search(r"^\s+register\s", commands, re.M), out.stdout
    for other in ("call", "demo", "auth-check", "options", "bench-call"):
        assert not re.search(rf"^\s+{other}\s", out.stdout, re.M), out.stdout


def test_bare_twist_txsipua_is_a_usage_error() -> None:
    """``twist txsipua`` without a command: a usage error naming the commands, non-zero exit."""
    out = subprocess.run([sys.executable, "-m", "twisted", "txsipua"], cwd=REPO, capture_output=True, text=True,
                         timeout=60, check=False, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert out.returncode != 0, out
    assert "answer or register" in out.stdout + out.stderr, out


def test_twist_answer_registers_runs_the_bot_and_unregisters_on_sigterm(cli, tmp_path: Path) -> None:
    """``twist txsipua answer --account --register --bot``: registered at a ``txsipua answer``
    registrar, a call is answered and the bot hangs it up; SIGTERM unregisters, exit 0."""
    users = htdigest(tmp_path / "users.htdigest")
    registrar_proc: Cli = cli("answer", "--bind", f"{HOST}:0", "--realm", REALM, "--users", str(users),
                              "--owner", "bob-auth=bob", "--owner", "alice-auth=alice")
    registrar = "sip:" + registrar_proc.wait_for("ready ").split()[1]
    bob = account_file(tmp_path / "bob.toml", registrar, user="bob")
    (tmp_path / "mybot.py").write_text(BOT)
    twist = Twist("txsipua", "answer", "--bind", f"{HOST}:0", "--account", str(bob), "--register",
                  "--expires", "300", "--bot", "mybot:on_call", path=str(tmp_path))
    try:
        port = twist.wait_line(r"listening on 127\.0\.0\.1:(\d+)").group(1)
        twist.wait_line(r"registered sip:bob@example\.com: 300 s granted")
        alice = account_file(tmp_path / "alice.toml", registrar)
        call = cli("call", f"sip:bob@{HOST}:{port}", "--account", str(alice), "--duration", "10",
                   "--bind", f"{HOST}:0")
        assert call.wait(20) == 0, call
        assert "call ended by the peer (bye)" in call.stdout, call
        twist.wait_line(r"bot: call ")
        twist.proc.send_signal(signal.SIGTERM)
        twist.wait_line(r"unregistered")
        # after its clean shutdown twist ends itself with the signal it got (Twisted's convention)
        assert twist.proc.wait(20) in (0, -signal.SIGTERM), "".join(twist.seen)
    finally:
        if twist.proc.poll() is None:
            twist.proc.kill()
            twist.proc.wait()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_twist_stop_hangs_up_the_calls_in_progress(cli, tmp_path: Path, transport: str) -> None:
    """SIGTERM to ``twist txsipua answer`` while a call is up: the caller gets our BYE (over TCP
    too: the stop flushes the connection before closing it)."""
    twist = Twist("txsipua", "answer", "--bind", f"{HOST}:0", "--no-media", "--transport", transport)
    try:
        port = twist.wait_line(r"listening on 127\.0\.0\.1:(\d+)").group(1)
        acct = account_file(tmp_path / "alice.toml", f"sip:{HOST}:{port}")
        call = cli("call", f"sip:bob@{HOST}:{port};transport={transport}", "--account", str(acct), "--duration",
                   "30", "--bind", f"{HOST}:0", "--transport", transport)
        call.wait_for("answered; ")
        twist.proc.send_signal(signal.SIGTERM)
        assert call.wait(20) == 0, call
        assert "call ended by the peer (bye)" in call.stdout, call
        assert twist.proc.wait(20) in (0, -signal.SIGTERM), "".join(twist.seen)
    finally:
        if twist.proc.poll() is None:
            twist.proc.kill()
            twist.proc.wait()


def test_twist_verbose_ladder_and_json_go_through_twists_log(cli, tmp_path: Path) -> None:
    """``twist --log-format json txsipua answer -v --log-format json``: the ladder lines are
    twisted.logger events in twist's JSON stream (nothing printed beside it), and each SIP message
    event appears once (no second JSON stream of our own)."""
    twist = Twist("txsipua", "answer", "--bind", f"{HOST}:0", "--no-media", "-v", "--log-format", "json",
                  log_format="json")
    try:
        port = twist.wait_line(r'"port": (\d+).*"log_format": "listening on ').group(1)
        acct = account_file(tmp_path / "alice.toml", f"sip:{HOST}:{port}")
        call = cli("call", f"sip:bob@{HOST}:{port}", "--account", str(acct), "--duration", "0.2",
                   "--bind", f"{HOST}:0")
        assert call.wait(20) == 0, call
        twist.wait_line(r"200 OK \(BYE\)")
        twist.proc.send_signal(signal.SIGTERM)
        assert twist.proc.wait(20) in (0, -signal.SIGTERM), "".join(twist.seen)
        while not twist.lines.empty():
            twist.seen.append(twist.lines.get())
    finally:
        if twist.proc.poll() is None:
            twist.proc.kill()
            twist.proc.wait()
    lines = [line.strip("\x1e\n") for line in twist.seen if line.strip("\x1e\n")]
    events = [json.loads(line) for line in lines]  # every line is one of twist's JSON events
    assert all("log_namespace" in e for e in events), lines
    ladder = [e for e in events if "ladder" in e and "INVITE sip:bob@" in e["ladder"]]
    assert len(ladder) == 1, lines
    invites = [e for e in events if e.get("method") == "INVITE" and e.get("direction") == "recv"]
    assert len(invites) == 1, lines
