"""``txsipua answer`` against guessers and floods (issue 12), driven over UDP on 127.0.0.1.

A blocking stdlib socket plays svwar/svcrack: REGISTER and INVITE for an unknown user and for
a known one with a wrong password must get the same answer; past ``--auth-fail-limit``
failures the source gets 403 and stderr a lockout line; ``--max-bindings`` caps the registrar
with 503 + Retry-After and a log line; ``--help`` says what ``--registrar`` alone allows.
"""

from __future__ import annotations

import hashlib
import itertools
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from clirun import HOST, REALM, Cli, htdigest

from txsipua.auth.challenge import parse_challenges
from txsipua.sip.message import Response, parse_message

Start = Callable[..., Cli]
_branches = itertools.count(1)


class Peer:
    """A blocking UDP client that sends hand-written requests and reads the final response."""

    def __init__(self, server: tuple[str, int]) -> None:
        self.server = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.settimeout(5.0)
        self.port = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()

    def request(self, method: str, uri: str, user: str, *, authorization: str | None = None,
                contact_user: str | None = None, expires: int = 300, call_id: str = "g1") -> Response:
        branch = f"z9hG4bK-guard-{next(_branches)}"
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/UDP {HOST}:{self.port};branch={branch};rport",
            "Max-Forwards: 70",
            f"From: <sip:{user}@example.com>;tag=g{branch[-4:]}",
            f"To: <sip:{user}@example.com>",
            f"Call-ID: {call_id}-{branch}@{HOST}",
            f"CSeq: 1 {method}",
            f"Contact: <sip:{contact_user or user}@{HOST}:{self.port}>",
        ]
        if method == "REGISTER":
            lines.append(f"Expires: {expires}")
        if authorization:
            lines.append(f"Authorization: {authorization}")
        lines += ["Content-Length: 0", "", ""]
        self.sock.sendto("\r\n".join(lines).encode(), self.server)
        while True:
            data, _ = self.sock.recvfrom(65535)
            message = parse_message(data)
            assert isinstance(message, Response)
            if message.status >= 200:
                return message

    def with_digest(self, method: str, uri: str, user: str, password: str, **kw: object) -> Response:
        challenge = self.request(method, uri, user, **kw)  # type: ignore[arg-type]
        if challenge.status != 401:
            return challenge
        c = parse_challenges(challenge.headers.get("WWW-Authenticate") or "")[0]
        ha1 = hashlib.md5(f"{user}:{REALM}:{password}".encode()).hexdigest()
        ha2 = hashlib.md5(f"{method}:{uri}".encode()).hexdigest()
        response = hashlib.md5(f"{ha1}:{c.nonce}:00000001:abcdef:auth:{ha2}".encode()).hexdigest()
        auth = (f'Digest username="{user}", realm="{REALM}", nonce="{c.nonce}", uri="{uri}", '
                f'response="{response}", algorithm=MD5, qop=auth, nc=00000001, cnonce="abcdef"')
        return self.request(method, uri, user, authorization=auth, **kw)  # type: ignore[arg-type]


def wait_for_stderr(proc: Cli, text: str, timeout: float = 5.0) -> None:
    """Wait until ``text`` appears on the process's stderr."""
    deadline = time.monotonic() + timeout
    while text not in proc.stderr:
        assert time.monotonic() < deadline, f"{text!r} not logged; {proc}"
        time.sleep(0.05)


def shape(response: Response) -> tuple[int, str, list[str], list[list[str]]]:
    """What a guesser can compare: status, reason, header names, challenge parameters."""
    challenges = [sorted(c.params) for v in response.headers.get_all("WWW-Authenticate")
                  for c in parse_challenges(v)]
    return response.status, response.reason, [n for n, _ in response.headers.items()], challenges


def start_answer(cli: Start, tmp_path: Path, *extra: str) -> tuple[Cli, tuple[str, int]]:
    users = htdigest(tmp_path / "users.htdigest")
    proc = cli("answer", "--bind", f"{HOST}:0", "--realm", REALM, "--users", str(users),
               "--owner", "alice-auth=alice", *extra)
    hostport = proc.wait_for("ready ").split()[1]
    return proc, (HOST, int(hostport.rsplit(":", 1)[1]))


def test_unknown_user_looks_like_a_wrong_password_then_lockout(cli: Start, tmp_path: Path) -> None:
    """svwar sees no difference; svcrack is locked out (403) after the limit, and it is logged."""
    proc, server = start_answer(cli, tmp_path, "--auth-fail-limit", "6")
    peer = Peer(server)
    try:
        uri_of = {"REGISTER": f"sip:{HOST}:{server[1]}", "INVITE": f"sip:alice@{HOST}:{server[1]}"}
        for method, uri in uri_of.items():
            known = peer.with_digest(method, uri, "alice-auth", "wrong-password")
            unknown = peer.with_digest(method, uri, "nobody-auth", "wrong-password")
            assert known.status == 401, known
            assert shape(known) == shape(unknown), method
        # no credentials at all: the same challenge as well
        assert shape(peer.request("REGISTER", uri_of["REGISTER"], "nobody-auth")) == shape(known)
        # failures 5 and 6 are still challenged; the 6th starts the lockout
        for _ in range(2):
            assert peer.with_digest("REGISTER", uri_of["REGISTER"], "alice-auth", "guess").status == 401
        locked = peer.with_digest("REGISTER", uri_of["REGISTER"], "alice-auth", "alice-secret")
        assert locked.status == 403 and "too many failed" in locked.reason, locked
        wait_for_stderr(proc, "locked out")
    finally:
        peer.close()
    assert "source 127.0.0.1 locked out" in proc.stderr, proc


def test_right_password_still_works_under_the_limit(cli: Start, tmp_path: Path) -> None:
    """The limit is on by default and a few wrong guesses do not lock the right password out."""
    proc, server = start_answer(cli, tmp_path)
    peer = Peer(server)
    try:
        uri = f"sip:{HOST}:{server[1]}"
        for _ in range(3):
            assert peer.with_digest("REGISTER", uri, "alice-auth", "typo").status == 401
        ok = peer.with_digest("REGISTER", uri, "alice-auth", "alice-secret")
        assert ok.status == 200, ok
    finally:
        peer.close()


def test_registrar_cap_answers_503_with_retry_after(cli: Start, tmp_path: Path) -> None:
    """``--registrar --max-bindings 2``: the third binding gets 503 + Retry-After; a refresh still fits."""
    proc = cli("answer", "--bind", f"{HOST}:0", "--registrar", "--max-bindings", "2")
    server = (HOST, int(proc.wait_for("ready ").split()[1].rsplit(":", 1)[1]))
    peer = Peer(server)
    try:
        uri = f"sip:{HOST}:{server[1]}"
        assert peer.request("REGISTER", uri, "u1", call_id="c1").status == 200
        assert peer.request("REGISTER", uri, "u2", call_id="c2").status == 200
        full = peer.request("REGISTER", uri, "u3", call_id="c3")
        assert full.status == 503 and full.headers.get("Retry-After") == "60", full
        again = peer.request("REGISTER", uri, "u1", call_id="c1-refresh")  # a refresh adds nothing
        assert again.status == 200
        wait_for_stderr(proc, "binding store is full")
    finally:
        peer.close()


def test_help_says_registrar_alone_lets_anyone_register() -> None:
    out = subprocess.run([sys.executable, "-m", "txsipua.cli.main", "answer", "--help"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    flat = " ".join(out.split())
    assert "ANYONE may register ANY address-of-record" in flat
    for option in ("--max-bindings", "--strict-digest-uri", "--auth-fail-limit", "--auth-lockout"):
        assert option in flat


@pytest.mark.parametrize("bad", [["--auth-fail-window", "0"], ["--auth-lockout", "-1"], ["--max-bindings", "x"]])
def test_bad_guard_options_are_usage_errors(bad: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "txsipua.cli.main", "answer", *bad],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2, proc
