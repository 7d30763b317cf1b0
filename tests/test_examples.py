"""Smoke tests of examples/: each imports without side effects, answers ``--help``, and really works.

The working runs use only 127.0.0.1: ``auto_answer.py`` answers ``call_bot.py``
(tone, DTMF, recording) and ``gui_loop.py --asyncio``; ``txsipua answer`` is
the registrar and callee of ``headless_client.py``.  The Tk front end of
``gui_loop.py`` needs a display and is only imported here (its logic, the
``Softphone`` class, runs in the asyncio variant).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import queue
import signal
import subprocess
import sys
import threading
import wave
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ["headless_client", "call_bot", "auto_answer", "gui_loop", "ivr_bot", "asyncio_call"]


def load(name: str) -> ModuleType:
    """Import examples/<name>.py by path."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", ROOT / "examples" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Proc:
    """A subprocess whose stdout lines are collected by a thread (so waits can time out)."""

    def __init__(self, *argv: str) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1", DISPLAY="")
        self.p = subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.lines: list[str] = []
        self._q: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            self.lines.append(line.rstrip("\n"))
            self._q.put(line)

    def wait_for(self, prefix: str, timeout: float = 10.0) -> str:
        while True:
            try:
                line = self._q.get(timeout=timeout).rstrip("\n")
            except queue.Empty:
                raise AssertionError(f"no {prefix!r} line; output so far: {self.lines}") from None
            if line.startswith(prefix):
                return line

    def finish(self, timeout: float = 15.0) -> int:
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise AssertionError(f"still running after {timeout} s: {self.lines}") from None

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(3)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


@pytest.fixture
def procs() -> Any:
    """Start example processes; whatever still runs at teardown is stopped by pid."""
    started: list[Proc] = []

    def start(*argv: str) -> Proc:
        proc = Proc(*argv)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


def account(path: Path, registrar: str) -> Path:
    path.write_text(
        'user = "alice"\ndomain = "example.com"\n'
        f'registrar = "{registrar}"\n'
        '[[credentials]]\nrealm = "voip.example.net"\nusername = "alice-auth"\n'
        'password = "alice-secret"\nhosts = ["127.0.0.1"]\n'
    )
    return path


@pytest.mark.parametrize("name", EXAMPLES)
def test_imports_without_side_effects(name: str) -> None:
    """Importing an example opens no window, installs no reactor, parses no argv."""
    had_tk = "tkinter" in sys.modules
    module = load(name)
    assert module.__doc__ and len(module.__doc__) > 200, "documented at the top"
    assert callable(module.parse_args)
    if not had_tk:
        assert "tkinter" not in sys.modules


def test_help_of_every_example(procs: Any) -> None:
    """``--help`` exits 0 for each example (run side by side, no display)."""
    running = [(name, procs(f"examples/{name}.py", "--help")) for name in EXAMPLES]
    for name, proc in running:
        assert proc.finish() == 0, proc.text
        assert proc.text.startswith(f"usage: {name}.py"), proc.text


def test_call_bot_against_auto_answer(procs: Any, tmp_path: Path) -> None:
    """call_bot plays a tone, sends 1 2 #, records, hangs up; auto_answer logs the three digits."""
    answerer = procs("examples/auto_answer.py", "--calls", "1")
    hostport = answerer.wait_for("ready ").split()[1]
    record = tmp_path / "heard.wav"
    bot = procs("examples/call_bot.py", f"sip:robot@{hostport}", "--account",
                str(account(tmp_path / "a.toml", f"sip:{hostport}")), "--tone", "0.2",
                "--dtmf", "12#", "--record", str(record), "--listen", "0.2")
    assert bot.finish() == 0, bot.text
    assert "played: True" in bot.lines and "dtmf 12#: sent" in bot.lines, bot.text
    assert answerer.finish() == 0, answerer.text
    digits = [line.rsplit("DTMF ", 1)[1] for line in answerer.lines if ": DTMF " in line]
    assert digits == ["1", "2", "#"], answerer.text
    assert "answered=1" in answerer.lines
    with wave.open(str(record)) as w:
        assert w.getframerate() == 8000


def test_gui_loop_asyncio_variant_against_auto_answer(procs: Any, tmp_path: Path) -> None:
    """gui_loop --asyncio: the Softphone glue on the asyncio reactor connects and hangs up."""
    answerer = procs("examples/auto_answer.py", "--calls", "1")
    hostport = answerer.wait_for("ready ").split()[1]
    gui = procs("examples/gui_loop.py", "--asyncio", "--account", str(account(tmp_path / "a.toml", f"sip:{hostport}")),
                "--target", f"sip:robot@{hostport}", "--duration", "0.2")
    assert gui.finish() == 0, gui.text
    assert "connected" in gui.lines and "call ended (hangup)" in gui.lines, gui.text
    assert answerer.finish() == 0, answerer.text


def test_headless_client_against_txsipua_answer(procs: Any, tmp_path: Path) -> None:
    """headless_client registers (401), calls (401), hangs up and unregisters against ``txsipua answer``."""
    users = tmp_path / "users.htdigest"
    ha1 = hashlib.md5(b"alice-auth:voip.example.net:alice-secret").hexdigest()
    users.write_text(f"alice-auth:voip.example.net:{ha1}\n")
    answerer = procs("-m", "txsipua.cli.main", "answer", "--bind", "127.0.0.1:0", "--realm", "voip.example.net",
                     "--users", str(users), "--owner", "alice-auth=alice")  # no --count: it must outlive the unregistration
    hostport = answerer.wait_for("ready ").split()[1]
    client = procs("examples/headless_client.py", "--account", str(account(tmp_path / "a.toml", f"sip:{hostport}")),
                   f"sip:bob@{hostport}", "--duration", "0.2", "--expires", "120")
    assert client.finish() == 0, client.text
    assert "registered for 120 s" in client.lines, client.text
    assert any(line.startswith("answered (PCMU)") for line in client.lines), client.text
    assert "hung up (hangup)" in client.lines and "unregistered" in client.lines, client.text
    answerer.p.send_signal(signal.SIGTERM)
    assert answerer.finish() == 0, answerer.text
    assert "answered=1 open_calls=0" in answerer.lines, answerer.text


def test_asyncio_call_places_a_call_from_asyncio_run(procs: Any) -> None:
    """asyncio_call.py: ``asyncio.run`` drives the asyncio reactor; a call is answered (after an
    asyncio.sleep in the callee) and hung up, in a subprocess (this process has its own reactor)."""
    proc = procs("examples/asyncio_call.py", "--duration", "0.2")
    assert proc.finish() == 0, proc.text
    assert proc.lines[0].startswith("answered; Call-ID "), proc.text
    assert proc.lines[1] == "call ended: hangup", proc.text


def test_aio_refuses_a_second_reactor() -> None:
    """start_reactor() with another reactor already installed (this process's) raises RuntimeError."""
    import asyncio

    from txsipua import aio

    async def main() -> None:
        aio.start_reactor()

    with pytest.raises(RuntimeError, match="already installed"):
        asyncio.run(main())
