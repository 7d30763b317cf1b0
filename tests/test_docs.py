"""The Sphinx site builds with warnings as errors, and every code sample in it runs.

Code samples are files of ``docs/samples/`` (and ``examples/``) pulled in with
``literalinclude``; no page carries an inline code block, so each sample is
one of the files exercised here (``examples/`` by ``tests/test_examples.py``).
"""

from __future__ import annotations

import contextlib
import html
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SAMPLES = DOCS / "samples"


def _need(module: str) -> None:
    try:
        __import__(module)
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail(f"{module} is not installed (the test extra has it)")
        pytest.skip(f"{module} is not installed (pip install -e '.[docs]')")


def test_docs_build_with_warnings_as_errors(tmp_path: Path) -> None:
    """``sphinx-build -W``: every page, the generated CLI and state-machine pages, the API reference."""
    _need("sphinx")
    _need("furo")
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS),
                           str(tmp_path / "html")], capture_output=True, text=True, timeout=300, check=False,
                          env=dict(os.environ, COLUMNS="100"))
    assert proc.returncode == 0, proc.stderr
    api = (tmp_path / "html" / "api.html").read_text()
    import txsipua

    for name in txsipua.__all__:
        if not name.startswith("__"):
            assert f'id="txsipua.{name}"' in api, name
    machines = html.unescape(re.sub(r"<[^>]+>", "", (tmp_path / "html" / "architecture.html").read_text()))
    assert "RESPONSE_300_699 / ACK_AND_DELIVER" in machines  # drawn from ICT_TABLE
    assert "auth-check" in (tmp_path / "html" / "cli.html").read_text()


def test_code_samples_only_come_from_files_that_exist() -> None:
    """No inline code block in any page; every literalinclude names an existing file; every
    sample file is included somewhere."""
    included = set()
    for page in DOCS.glob("*.rst"):
        text = page.read_text()
        assert ".. code-block::" not in text and ".. code::" not in text, page.name
        assert not re.search(r"::\n\n {3}\S", text.replace(".. ", "")), f"{page.name}: a literal block"
        for target in re.findall(r"\.\. literalinclude:: (\S+)", text):
            path = (DOCS / target).resolve()
            assert path.exists(), f"{page.name}: {target}"
            included.add(path)
    for sample in SAMPLES.iterdir():
        assert sample.resolve() in included, f"{sample.name} is in no page"


def test_sample_account_and_users_file_fit_together(tmp_path: Path) -> None:
    """alice.toml loads; its credential's HA1 is the users file's; the users file lets alice-auth
    register alice."""
    import hashlib

    from txsipua.ua.account import Account
    from txsipua.ua.cred import HtdigestFileStore

    account = Account.from_toml(SAMPLES / "alice.toml")
    credential = account.credentials.credentials_for("voip.example.net")
    assert (account.user, credential.username) == ("alice", "alice-auth")
    store = HtdigestFileStore(SAMPLES / "users.htdigest")
    ha1 = hashlib.md5(f"alice-auth:voip.example.net:{credential.password}".encode()).hexdigest()
    assert store.get_ha1("alice-auth", "voip.example.net", "MD5") == ha1
    assert store.may_register("alice-auth") == {"alice"}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _workdir(tmp_path: Path, port: int) -> tuple[Path, dict[str, str]]:
    """The samples in a scratch directory (registrar port replaced) and a ``txsipua`` on PATH."""
    for sample in SAMPLES.iterdir():
        shutil.copy(sample, tmp_path / sample.name)
    account = tmp_path / "alice.toml"
    account.write_text(account.read_text().replace("127.0.0.1:5080", f"127.0.0.1:{port}"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "txsipua"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m txsipua.cli.main "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    env = dict(os.environ, PORT=str(port), PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(ROOT), os.environ.get("PYTHONPATH", "")] if p)
    return tmp_path, env


def test_tutorial_steps_3_and_4_run_as_written(tmp_path: Path) -> None:
    """The tutorial as a reader follows it: ``PORT=N sh first_call.sh`` (answer, auth-check,
    register, call with the ladder; every step exits 0) leaves ``txsipua answer`` up, then
    ``python call_bot.py alice.toml sip:bob@127.0.0.1:N`` registers, calls it, hangs up and
    unregisters; then ``kill PID`` (the pid the script printed) stops answer after its two calls."""
    port = _free_port()
    cwd, env = _workdir(tmp_path, port)
    log = tmp_path / "first_call.out"
    with open(log, "w") as out:  # a file, not a pipe: answer outlives the script and keeps writing
        proc = subprocess.run(["sh", "first_call.sh"], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                              text=True, timeout=60, check=False)
    text = log.read_text()
    pid = re.search(r"txsipua answer \(pid (\d+)\) stays up", text)
    try:
        assert proc.returncode == 0, text
        assert "OK: registered: realm voip.example.net as alice-auth" in text, text
        assert "registered sip:alice@example.com" in text
        assert re.search(r"-> 127\.0\.0\.1:\d+ +INVITE sip:bob@", text), text
        assert pid, text
        bot = subprocess.run([sys.executable, "call_bot.py", "alice.toml", f"sip:bob@127.0.0.1:{port}"],
                             cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False)
        assert bot.returncode == 0, bot.stdout + bot.stderr + log.read_text()
        assert bot.stdout.startswith("answered: ") and "ended: hangup" in bot.stdout, bot.stdout
    finally:
        if pid:  # `kill PID`, as the script says
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid.group(1)), signal.SIGTERM)
    deadline = time.monotonic() + 20
    while "answered=2 open_calls=0" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "answered=2 open_calls=0" in log.read_text(), log.read_text()
