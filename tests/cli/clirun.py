"""Run the ``txsipua`` command as a subprocess, bounded in time, and a tiny blocking SIP peer.

:class:`Cli` starts ``sys.executable -m txsipua.cli.main`` with unbuffered
output; a reader thread per stream keeps every line so a test can wait for one
(``wait_for("ready ")``) without blocking forever.  Every process is stopped
by its own pid at teardown (SIGTERM, then SIGKILL).

:class:`RingingCallee` is a UAS written with the standard library's blocking
UDP socket: it answers an INVITE with 100 and 180 and never with a final
response, so the test can interrupt a ringing ``txsipua call``.  Responses are
built with :mod:`txsipua.sip.message` (RFC 3261 §8.2.6).
"""

from __future__ import annotations

import hashlib
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from txsipua.sip.message import Request, Response, parse_message

HOST = "127.0.0.1"
REALM = "voip.example.net"
USERS = {"alice-auth": "alice-secret", "bob-auth": "bob-secret"}


def htdigest(path: Path, realm: str = REALM, users: dict[str, str] | None = None) -> Path:
    """Write an Apache htdigest file ``user:realm:MD5(user:realm:password)``."""
    lines = []
    for user, password in (users or USERS).items():
        ha1 = hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()
        lines.append(f"{user}:{realm}:{ha1}\n")
    path.write_text("".join(lines))
    return path


def account_file(path: Path, registrar: str, *, user: str = "alice", password: str | None = None,
                 realm: str = REALM) -> Path:
    """Write an account TOML whose registrar is ``registrar`` (``sip:127.0.0.1:PORT``)."""
    auth = f"{user}-auth"
    path.write_text(
        f'user = "{user}"\n'
        'domain = "example.com"\n'
        f'registrar = "{registrar}"\n'
        "[[credentials]]\n"
        f'realm = "{realm}"\n'
        f'username = "{auth}"\n'
        f'password = "{password or USERS[auth]}"\n'
        f'hosts = ["{HOST}"]\n'
    )
    return path


class Cli:
    """One ``txsipua`` process.

    Attributes:
        proc: the :class:`subprocess.Popen`.
        out, err: every line read so far from stdout / stderr (newline stripped).
    """

    def __init__(self, args: Sequence[str], cwd: Path) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.args = list(args)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "txsipua.cli.main", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
            cwd=cwd, env=env, text=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._lines: queue.Queue[tuple[str, str]] = queue.Queue()
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out, "out"), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.err, "err"), daemon=True),
        ]
        for t in self._readers:
            t.start()

    def _read(self, stream: object, sink: list[str], name: str) -> None:
        for line in stream:  # type: ignore[attr-defined]
            line = line.rstrip("\n")
            sink.append(line)
            self._lines.put((name, line))

    def wait_for(self, prefix: str, timeout: float = 10.0) -> str:
        """The first stdout line starting with ``prefix`` (already read or still to come)."""
        deadline = time.monotonic() + timeout
        for line in list(self.out):
            if line.startswith(prefix):
                return line
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line starting {prefix!r} within {timeout} s; {self}")
            try:
                name, line = self._lines.get(timeout=left)
            except queue.Empty:
                continue
            if name == "out" and line.startswith(prefix):
                return line
            if self.proc.poll() is not None and self._lines.empty():
                for t in self._readers:
                    t.join(1.0)
                for line in self.out:
                    if line.startswith(prefix):
                        return line
                raise AssertionError(f"exited before printing {prefix!r}; {self}")

    def wait(self, timeout: float = 15.0) -> int:
        """Wait for the exit status (kill and fail after ``timeout`` s); output fully read."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"did not exit within {timeout} s; {self}") from None
        for t in self._readers:
            t.join(5.0)
        return code

    def signal(self, signum: int) -> None:
        """Send ``signum`` to this process (by its pid)."""
        self.proc.send_signal(signum)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 3 s; nothing if it already ended."""
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(3.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(3.0)

    @property
    def stdout(self) -> str:
        return "\n".join(self.out)

    @property
    def stderr(self) -> str:
        return "\n".join(self.err)

    def __str__(self) -> str:
        return (f"txsipua {' '.join(self.args)} (exit {self.proc.poll()})\n"
                f"--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}")


class RingingCallee:
    """A blocking UDP UAS on 127.0.0.1 that rings and never answers.

    Attributes:
        address: ``(host, port)``.
        received: every message received, in order.
    """

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.address: tuple[str, int] = self.sock.getsockname()
        self.received: list[Request | Response] = []
        self.to_tag = "ring1ng"

    def close(self) -> None:
        self.sock.close()

    def recv_request(self, method: str, timeout: float = 10.0) -> tuple[Request, tuple[str, int]]:
        """The next request of ``method`` (others are kept in :attr:`received` and skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {method} within {timeout} s; got {self.received}")
            self.sock.settimeout(left)
            try:
                data, source = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            msg = parse_message(data)
            self.received.append(msg)
            if isinstance(msg, Request) and msg.method == method:
                return msg, source

    def respond(self, request: Request, status: int, source: tuple[str, int], *, tag: bool = True,
                extra: list[tuple[str, str]] | None = None) -> None:
        """Send a response to ``request`` back to ``source`` (RFC 3261 §8.2.6, §18.2.2)."""
        headers = [("Via", v) for v in request.headers.get_all("Via")]
        to = request.headers.get("To") or ""
        if tag and status > 100 and ";tag=" not in to:
            to += f";tag={self.to_tag}"
        headers += [("From", request.headers.get("From") or ""), ("To", to),
                    ("Call-ID", request.call_id), ("CSeq", request.headers.get("CSeq") or "")]
        if request.method == "INVITE" and 100 < status < 200:
            headers.append(("Contact", f"<sip:bob@{self.address[0]}:{self.address[1]}>"))
        headers += extra or []
        self.sock.sendto(Response(status, None, headers).to_bytes(), source)
