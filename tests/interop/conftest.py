"""Fixtures starting real SIP peers (Kamailio, SIPp) and running the txsipua CLI.

Every fixture stops what it started at teardown, whether the test passed or failed, and a
failed test gets the tail of each peer's log appended to its report.  See ``peers.py`` for
the process rules (free ports on 127.0.0.1, lifetimes, SIGTERM then SIGKILL, skip when a
program is missing unless ``CI`` is set).
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from peers import (
    HOST,
    Kamailio,
    ManagedProcess,
    Sipp,
    SipUser,
    start_kamailio,
    start_registered_callee,
    start_sipp,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[Any]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the item, so fixtures know at teardown if the test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


# ---------------------------------------------------------------------------------------------
# The interop matrix (peer x flow), printed at the end of the run

_PEER_OF_MODULE = {
    "test_kamailio": "Kamailio 5.6",
    "test_kamailio_ws": "Kamailio 5.6",
    "test_sipp_callee": "SIPp 3.6",
    "test_sipp_offer_answer": "SIPp 3.6",
    "test_sipp_transfer": "SIPp 3.6",
    "test_kamailio_transfer": "Kamailio 5.6",
    "test_baresip_transfer": "baresip",
    "test_harness": "harness",
}
_MATRIX: list[tuple[str, str, str]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Record each interop test's outcome (call phase, or a skip/error at setup)."""
    if "interop" not in report.keywords:
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        path, _, name = report.nodeid.partition("::")
        module = Path(path).stem
        peer = _PEER_OF_MODULE.get(module, module.removeprefix("test_"))
        outcome: str = report.outcome
        if report.skipped and isinstance(report.longrepr, tuple):
            outcome = f"skipped ({report.longrepr[2].removeprefix('Skipped: ')})"
        _MATRIX.append((peer, name.removeprefix("test_"), outcome))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _MATRIX:
        return
    terminalreporter.write_sep("-", "interop matrix (peer x flow)")
    width = max(len(flow) for _, flow, _ in _MATRIX)
    for peer, flow, outcome in sorted(_MATRIX):
        terminalreporter.write_line(f"{peer:<14} {flow:<{width}}  {outcome}")


def _failed(request: pytest.FixtureRequest) -> bool:
    rep = getattr(request.node, "rep_call", None)
    return rep is None or rep.failed


class _Peers:
    """What one test started; stopped (and reported on failure) at teardown."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self.request = request
        self.processes: list[tuple[str, Callable[[], str], ManagedProcess]] = []

    def add(self, label: str, describe: Callable[[], str], process: ManagedProcess) -> None:
        self.processes.append((label, describe, process))

    def close(self) -> None:
        for _, _, process in reversed(self.processes):
            process.stop()
        if _failed(self.request):
            for label, describe, _ in self.processes:
                self.request.node.add_report_section("call", f"peer {label}", describe())


@pytest.fixture
def peer_registry(request: pytest.FixtureRequest) -> Iterator[_Peers]:
    registry = _Peers(request)
    yield registry
    registry.close()


@pytest.fixture
def kamailio_factory(tmp_path: Path, peer_registry: _Peers) -> Callable[..., Kamailio]:
    """Start Kamailio registrar/proxies: ``kamailio_factory(algorithm="MD5"|"SHA-256", ...)``.

    Keyword arguments go to :func:`peers.start_kamailio` (``users``, ``domain``, ``realm``,
    ``lifetime``).  Returns a :class:`peers.Kamailio`; each instance gets its own directory.
    """
    count = 0

    def factory(algorithm: str = "MD5", **kwargs: Any) -> Kamailio:
        nonlocal count
        count += 1
        kam = start_kamailio(tmp_path / f"kamailio-{count}", algorithm=algorithm, **kwargs)
        peer_registry.add(
            f"kamailio {algorithm} :{kam.port}",
            lambda: f"config: {kam.config_path}\n{kam.process.tail(60)}",
            kam.process,
        )
        return kam

    return factory


@pytest.fixture
def kamailio(kamailio_factory: Callable[..., Kamailio]) -> Kamailio:
    """One MD5 Kamailio with the default users (alice, bob)."""
    return kamailio_factory()


@pytest.fixture
def sipp_factory(tmp_path: Path, peer_registry: _Peers) -> Callable[..., Sipp]:
    """Start SIPp: ``sipp_factory(scenario, *, remote=None, port=None, auth=None, ...)``.

    Arguments as :func:`peers.start_sipp`.  A server (no ``remote``) is returned once its
    port is bound; call ``.wait()`` for its exit status.
    """

    def factory(scenario: str, **kwargs: Any) -> Sipp:
        sipp = start_sipp(tmp_path, scenario, **kwargs)
        peer_registry.add(f"sipp {scenario} :{sipp.port}", sipp.report, sipp.process)
        return sipp

    return factory


@pytest.fixture
def registered_callee(tmp_path: Path, peer_registry: _Peers) -> Callable[..., Sipp]:
    """``registered_callee(kamailio, user="bob")``: a SIPp UAS bound at Kamailio as ``user``."""

    def factory(kam: Kamailio, user: str = "bob", **kwargs: Any) -> Sipp:
        sipp = start_registered_callee(tmp_path, kam, user, **kwargs)
        peer_registry.add(f"sipp callee {user} :{sipp.port}", sipp.report, sipp.process)
        return sipp

    return factory


# ---------------------------------------------------------------------------------------------
# The txsipua command line, as a subprocess (contract: issue 2 "Command line")


@dataclass(frozen=True)
class CliResult:
    """One finished ``txsipua`` run."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __str__(self) -> str:
        return (
            f"$ {' '.join(self.argv)}\nexit status {self.returncode}\n--- stdout\n"
            f"{self.stdout[-6000:]}\n--- stderr\n{self.stderr[-6000:]}"
        )


class TxsipuaCli:
    """Runs ``python -m txsipua.cli.main`` with a hard timeout; writes account files."""

    def __init__(self, tmp_path: Path, registry: _Peers) -> None:
        self.tmp_path = tmp_path
        self.registry = registry
        self.runs = 0
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
        )
        self.env = env

    def account(
        self,
        name: str,
        *,
        user: str,
        domain: str,
        credentials: list[tuple[str, str, str]],
        registrar: str | None = None,
        outbound_proxy: str | None = None,
    ) -> Path:
        """Write an account TOML file; ``credentials`` are (realm, username, password)."""
        lines = [f'user = "{user}"', f'domain = "{domain}"']
        if registrar:
            lines.append(f'registrar = "{registrar}"')
        if outbound_proxy:
            lines.append(f'outbound_proxy = "{outbound_proxy}"')
        for realm, username, password in credentials:
            lines += [
                "",
                "[[credentials]]",
                f'realm = "{realm}"',
                f'username = "{username}"',
                f'password = "{password}"',
            ]
        path = self.tmp_path / f"{name}.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def account_for(self, user: SipUser, kam: Kamailio, *, password: str | None = None) -> Path:
        """The account of a Kamailio subscriber, Kamailio as registrar and outbound proxy."""
        return self.account(
            f"{user.user}-{kam.port}",
            user=user.user,
            domain=user.domain,
            registrar=kam.uri,
            outbound_proxy=kam.uri,
            credentials=[
                (
                    user.realm,
                    user.auth_username,
                    password if password is not None else user.password,
                )
            ],
        )

    def argv(self, *args: str) -> list[str]:
        """``python -m txsipua.cli.main ARGS``, or ``$TXSIPUA_CLI ARGS`` when that is set
        (e.g. ``TXSIPUA_CLI=txsipua`` to test the installed console script)."""
        override = os.environ.get("TXSIPUA_CLI")
        if override:
            return [*shlex.split(override), *args]
        return [sys.executable, "-m", "txsipua.cli.main", *args]

    def run(self, *args: str, timeout: float = 20.0) -> CliResult:
        """Run to completion; on timeout the process group is killed and the test fails."""
        argv = self.argv(*args)
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
            cwd=self.tmp_path,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            pytest.fail(
                f"txsipua did not finish in {timeout} s\n"
                + str(CliResult(argv, proc.returncode, out, err)),
                pytrace=False,
            )
        return CliResult(argv, proc.returncode, out, err)

    def start(self, *args: str, lifetime: float = 25.0) -> ManagedProcess:
        """Start a long-running command (``register --keep``); stopped at teardown."""
        self.runs += 1
        process = ManagedProcess(
            f"txsipua {args[0] if args else ''}",
            self.argv(*args),
            self.tmp_path / f"txsipua-{self.runs}.log",
            lifetime=lifetime,
            cwd=self.tmp_path,
            env=self.env,
        )
        process.start()
        self.registry.add(process.name, lambda: process.tail(80), process)
        return process


@pytest.fixture
def txsipua_cli(tmp_path: Path, peer_registry: _Peers) -> TxsipuaCli:
    """The ``txsipua`` command; skips while ``txsipua.cli.main`` does not exist yet.

    Only a *missing* module skips: once the file exists, an import error in it fails the
    test (the subprocess reports it), so the skip disappears by itself and cannot hide bugs.
    """
    if not os.environ.get("TXSIPUA_CLI") and importlib.util.find_spec("txsipua.cli.main") is None:
        pytest.skip("CLI not built yet")
    return TxsipuaCli(tmp_path, peer_registry)


__all__ = ["HOST", "CliResult", "TxsipuaCli"]
