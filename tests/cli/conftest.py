"""Fixtures for the command-line tests: ``txsipua`` subprocesses on 127.0.0.1, stopped by pid."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from clirun import HOST, Cli, htdigest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli() -> Iterator[Callable[..., Cli]]:
    """Start ``txsipua ARGS...``; every process still running at teardown is stopped."""
    started: list[Cli] = []

    def start(*args: str) -> Cli:
        c = Cli(args, REPO)
        started.append(c)
        return c

    yield start
    for c in started:
        c.stop()


@pytest.fixture
def answer(cli: Callable[..., Cli], tmp_path: Path) -> tuple[Cli, str]:
    """``txsipua answer`` challenging in realm voip.example.net; ``(process, "sip:127.0.0.1:PORT")``."""
    users = htdigest(tmp_path / "users.htdigest")
    proc = cli("answer", "--bind", f"{HOST}:0", "--realm", "voip.example.net", "--users", str(users),
               "--owner", "alice-auth=alice", "--owner", "bob-auth=bob")
    line = proc.wait_for("ready ")
    hostport = line.split()[1]
    assert hostport.startswith(f"{HOST}:") and int(hostport.rsplit(":", 1)[1]) > 0
    return proc, f"sip:{hostport}"
