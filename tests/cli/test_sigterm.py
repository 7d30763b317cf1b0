"""SIGTERM at any step: the CLI commands and the examples wind down cleanly.

Each program is started as a subprocess against :class:`Peer`, a scripted
registrar and callee on 127.0.0.1 (a UDP socket served by a thread), and gets
SIGTERM at one point: while registering (the peer holds the REGISTER until
the signal was sent), while ringing (the peer answers 100 and 180 and never a
final response), or while connected (the peer answered 200).  Then:

* the wire shows the clean-up: REGISTER with Expires: 0 after a registration
  (also one that was still in progress at the signal), CANCEL while ringing,
  BYE once connected; no new request after a signal while registering;
* the process exits by itself within the time limit, with no traceback,
  "generator ignored GeneratorExit" or "Unhandled error" on stderr (nor on
  stdout, where ``auto_answer`` logs).

``txsipua answer`` and ``examples/auto_answer.py`` are the callee: there the
caller is ``txsipua call``, which must see the BYE (``call ended by the peer``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from clirun import HOST, Cli, account_file

from txsipua.errors import SIPError
from txsipua.sip.message import Request, Response, parse_message

REPO = Path(__file__).resolve().parents[2]
DIRTY = ("Traceback", "GeneratorExit", "Unhandled", "Exception ignored")

Start = Callable[..., Cli]


class Peer:
    """A scripted registrar and callee on 127.0.0.1, served by a thread.

    REGISTER: 200 echoing the Contact with ``expires`` (0 for an unregistration),
    held while :attr:`hold_register` is set.  INVITE: 100, 180, then 200 with an
    SDP answer when :attr:`answer` is True.  CANCEL: 200, and 487 for the INVITE.
    BYE: 200.  ACK: nothing.

    Attributes:
        address: ``(host, port)``.
        log: ``(method, expires)`` of every request received, in order
            (``expires`` from the Expires header or the Contact's parameter).
    """

    def __init__(self, answer: bool = False) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.settimeout(0.1)
        self.address: tuple[str, int] = self.sock.getsockname()
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # where our RTP goes
        self.rtp.bind((HOST, 0))
        self.answer = answer
        self.hold_register = threading.Event()
        self.log: list[tuple[str, str | None]] = []
        self.held: list[tuple[Request, tuple[str, int]]] = []
        self._invites: dict[str, tuple[Request, tuple[str, int]]] = {}
        self._seen: set[tuple[str | None, str]] = set()
        self._changed = threading.Condition()
        self._running = True
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def uri(self) -> str:
        return f"sip:{HOST}:{self.address[1]}"

    def close(self) -> None:
        self._running = False
        self._thread.join(2)
        self.sock.close()
        self.rtp.close()

    def methods(self) -> list[str]:
        return [m for m, _ in self.log]

    def wait_for(self, method: str, count: int = 1, timeout: float = 15.0) -> None:
        """Until ``count`` requests of ``method`` were received."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.methods().count(method) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {count} x {method} within {timeout} s: {self.log}")
                self._changed.wait(left)

    def release(self) -> None:
        """Answer the held REGISTERs and stop holding."""
        self.hold_register.clear()
        with self._changed:
            held, self.held = self.held, []
        for request, source in held:
            self._register_ok(request, source)

    def _serve(self) -> None:
        while self._running:
            try:
                data, source = self.sock.recvfrom(65535)
            except (TimeoutError, OSError):
                continue
            try:
                msg = parse_message(data)
            except SIPError:
                continue
            if isinstance(msg, Request):
                self._handle(msg, source)

    def _handle(self, request: Request, source: tuple[str, int]) -> None:
        key = (request.top_via.branch, request.method)
        if key in self._seen:  # a retransmission: answered again, not logged again
            if request.method != "REGISTER" or not self.hold_register.is_set():
                self._answer(request, source)
            return
        self._seen.add(key)
        expires = request.headers.get("Expires")
        if request.method == "REGISTER":
            contact = request.headers.get("Contact") or ""
            if "expires=" in contact:
                expires = contact.rsplit("expires=", 1)[1].split(";")[0]
        with self._changed:
            self.log.append((request.method, expires))
            if request.method == "REGISTER" and self.hold_register.is_set():
                self.held.append((request, source))
                request = None  # type: ignore[assignment]
            self._changed.notify_all()
        if request is not None:
            self._answer(request, source)

    def _answer(self, request: Request, source: tuple[str, int]) -> None:
        if request.method == "REGISTER":
            self._register_ok(request, source)
        elif request.method == "INVITE":
            self._invites[request.call_id] = (request, source)
            self._respond(request, 100, source)
            self._respond(request, 180, source)
            if self.answer:
                sdp = (f"v=0\r\no=- 1 1 IN IP4 {HOST}\r\ns=-\r\nc=IN IP4 {HOST}\r\nt=0 0\r\n"
                       f"m=audio {self.rtp.getsockname()[1]} RTP/AVP 0 101\r\n"
                       "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
                       "a=sendrecv\r\n").encode()
                self._respond(request, 200, source, body=sdp)
        elif request.method == "CANCEL":
            self._respond(request, 200, source)
            invite = self._invites.get(request.call_id)
            if invite is not None:
                self._respond(invite[0], 487, invite[1])
        elif request.method in ("BYE", "OPTIONS", "INFO"):
            self._respond(request, 200, source)

    def _register_ok(self, request: Request, source: tuple[str, int]) -> None:
        expires = request.headers.get("Expires") or "60"
        contact = (request.headers.get("Contact") or "").split(";expires=")[0]
        extra = [("Contact", f"{contact};expires={0 if expires == '0' else 60}")]
        self._respond(request, 200, source, extra=extra)

    def _respond(self, request: Request, status: int, source: tuple[str, int], *,
                 extra: list[tuple[str, str]] | None = None, body: bytes = b"") -> None:
        headers = [("Via", v) for v in request.headers.get_all("Via")]
        to = request.headers.get("To") or ""
        if status > 100 and ";tag=" not in to:
            to += ";tag=peer1"
        headers += [("From", request.headers.get("From") or ""), ("To", to),
                    ("Call-ID", request.call_id), ("CSeq", request.headers.get("CSeq") or "")]
        if request.method == "INVITE" and 100 < status < 300:
            headers.append(("Contact", f"<sip:bob@{HOST}:{self.address[1]}>"))
        if body:
            headers.append(("Content-Type", "application/sdp"))
        headers += extra or []
        self.sock.sendto(Response(status, None, headers, body).to_bytes(), source)


class Example:
    """``python examples/NAME.py ARGS`` with its output collected (the Cli interface)."""

    def __init__(self, name: str, *args: str) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1", DISPLAY="")
        self.args = [name, *args]
        self.proc = subprocess.Popen([sys.executable, str(REPO / "examples" / f"{name}.py"), *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, cwd=REPO, env=env, text=True)
        self.out: list[str] = []
        self.err: list[str] = []
        self._threads = [threading.Thread(target=self._read, args=(s, sink), daemon=True)
                         for s, sink in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for t in self._threads:
            t.start()

    def _read(self, stream: object, sink: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            sink.append(line.rstrip("\n"))

    def wait_for(self, prefix: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.out):
                if line.startswith(prefix):
                    return line
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no {prefix!r} line; {self}")

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 20.0) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"did not exit within {timeout} s; {self}") from None
        for t in self._threads:
            t.join(5)
        return code

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def __repr__(self) -> str:
        return (f"{' '.join(self.args)} (exit {self.proc.poll()})\n--- stdout\n"
                + "\n".join(self.out) + "\n--- stderr\n" + "\n".join(self.err))


@pytest.fixture
def peer() -> Iterator[Callable[..., Peer]]:
    made: list[Peer] = []

    def make(answer: bool = False) -> Peer:
        p = Peer(answer)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


@pytest.fixture
def example() -> Iterator[Callable[..., Example]]:
    started: list[Example] = []

    def start(name: str, *args: str) -> Example:
        e = Example(name, *args)
        started.append(e)
        return e

    yield start
    for e in started:
        e.stop()


def assert_clean(proc: Cli | Example) -> None:
    """No traceback or unhandled error anywhere in the output."""
    text = "\n".join(proc.out + proc.err)
    assert not [word for word in DIRTY if word in text], proc


def signal_while_registering(proc: Cli | Example, registrar: Peer) -> None:
    """SIGTERM while the REGISTER is unanswered; then let it complete."""
    registrar.wait_for("REGISTER")
    proc.signal(signal.SIGTERM)
    time.sleep(1.0)  # the signal is handled (a few ms on an idle reactor) before the 200 arrives
    registrar.release()


# ---------------------------------------------------------------- the CLI

@pytest.mark.parametrize("keep", [True, False], ids=["keep", "once"])
def test_register_sigterm_while_registering_unregisters(cli: Start, peer: Callable[..., Peer],
                                                          tmp_path: Path, keep: bool) -> None:
    """``register [--keep]``: SIGTERM before the 200: the binding made is removed, exit 1."""
    registrar = peer()
    registrar.hold_register.set()
    acct = account_file(tmp_path / "a.toml", registrar.uri)
    proc = cli("register", "--account", str(acct), "--bind", f"{HOST}:0",
               *(["--keep"] if keep else []))
    signal_while_registering(proc, registrar)
    assert proc.wait() == 1, proc
    assert registrar.log == [("REGISTER", "3600"), ("REGISTER", "0")], registrar.log
    assert "unregistered" in proc.out, proc
    assert proc.err == ["interrupted while registering: unregistering"], proc
    assert_clean(proc)


def test_register_keep_sigterm_while_registered_unregisters(cli: Start, peer: Callable[..., Peer],
                                                             tmp_path: Path) -> None:
    """``register --keep``: SIGTERM while kept: REGISTER Expires: 0, exit 0."""
    registrar = peer()
    acct = account_file(tmp_path / "a.toml", registrar.uri)
    proc = cli("register", "--account", str(acct), "--bind", f"{HOST}:0", "--keep")
    proc.wait_for("staying registered")
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0, proc
    assert registrar.log == [("REGISTER", "3600"), ("REGISTER", "0")], registrar.log
    assert_clean(proc)


@pytest.mark.parametrize("point", ["ringing", "connected"])
def test_call_sigterm(cli: Start, peer: Callable[..., Peer], tmp_path: Path, point: str) -> None:
    """``call``: SIGTERM while ringing sends CANCEL (exit 1); once connected, BYE (exit 0)."""
    callee = peer(answer=point == "connected")
    acct = account_file(tmp_path / "a.toml", f"sip:{HOST}:9")
    proc = cli("call", f"sip:bob@{HOST}:{callee.address[1]}", "--account", str(acct),
               "--duration", "30", "--bind", f"{HOST}:0")
    proc.wait_for("answered; " if point == "connected" else "progress: 180")
    proc.signal(signal.SIGTERM)
    if point == "ringing":
        assert proc.wait() == 1, proc
        assert proc.err == ["call cancelled"], proc
        callee.wait_for("ACK")  # for the 487
        assert callee.methods() == ["INVITE", "CANCEL", "ACK"], callee.log
    else:
        assert proc.wait() == 0, proc
        assert "hung up (hangup)" in proc.out, proc
        assert callee.methods() == ["INVITE", "ACK", "BYE"], callee.log
    assert_clean(proc)


def test_answer_register_sigterm_while_registering_unregisters(cli: Start, peer: Callable[..., Peer],
                                                                 tmp_path: Path) -> None:
    """``answer --register``: SIGTERM before the 200: once registered, unregistered; exit 0."""
    registrar = peer()
    registrar.hold_register.set()
    acct = account_file(tmp_path / "a.toml", registrar.uri)
    proc = cli("answer", "--account", str(acct), "--register", "--bind", f"{HOST}:0")
    signal_while_registering(proc, registrar)
    assert proc.wait() == 0, proc
    assert registrar.log == [("REGISTER", "3600"), ("REGISTER", "0")], registrar.log
    assert "answered=0 open_calls=0" in proc.out, proc
    assert_clean(proc)


def test_answer_sigterm_while_connected_sends_bye(cli: Start, peer: Callable[..., Peer],
                                                  tmp_path: Path) -> None:
    """``answer --register`` with a call up: SIGTERM: BYE to the caller, then unregister."""
    registrar = peer()
    acct = account_file(tmp_path / "a.toml", registrar.uri)
    answerer = cli("answer", "--account", str(acct), "--register", "--bind", f"{HOST}:0")
    hostport = answerer.wait_for("ready ").split()[1]
    caller = cli("call", f"sip:bob@{hostport}", "--account", str(acct), "--duration", "30",
                 "--bind", f"{HOST}:0")
    caller.wait_for("answered; ")
    answerer.signal(signal.SIGTERM)
    assert answerer.wait() == 0, answerer
    assert "answered=1 open_calls=1" in answerer.out, answerer
    assert caller.wait() == 0, caller
    assert "call ended by the peer (bye)" in caller.out, caller
    assert registrar.log == [("REGISTER", "3600"), ("REGISTER", "0")], registrar.log
    assert_clean(answerer)
    assert_clean(caller)


# ---------------------------------------------------------------- the examples

@pytest.mark.parametrize("point", ["registering", "ringing", "connected"])
def test_headless_client_sigterm(example: Callable[..., Example], peer: Callable[..., Peer],
                                 tmp_path: Path, point: str) -> None:
    """headless_client: every step undone: unregister always, CANCEL while ringing, BYE connected."""
    p = peer(answer=point == "connected")
    acct = account_file(tmp_path / "a.toml", p.uri)
    if point == "registering":
        p.hold_register.set()
    proc = example("headless_client", "--account", str(acct), f"sip:bob@{HOST}:{p.address[1]}",
                   "--duration", "30", "--expires", "120")
    if point == "registering":
        signal_while_registering(proc, p)
        assert proc.wait() == 1, proc
        assert p.log == [("REGISTER", "120"), ("REGISTER", "0")], p.log  # and no INVITE
        assert proc.err == ["interrupted"], proc
    elif point == "ringing":
        p.wait_for("INVITE")
        time.sleep(0.3)  # the 180 is in
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 1, proc
        assert p.methods() == ["REGISTER", "INVITE", "CANCEL", "ACK", "REGISTER"], p.log
        assert p.log[-1] == ("REGISTER", "0")
        assert proc.err == ["call cancelled"], proc
    else:
        proc.wait_for("answered ")
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0, proc
        assert p.methods() == ["REGISTER", "INVITE", "ACK", "BYE", "REGISTER"], p.log
        assert p.log[-1] == ("REGISTER", "0")
        assert "hung up (hangup)" in proc.out, proc
    assert "unregistered" in proc.out, proc
    assert_clean(proc)


@pytest.mark.parametrize("point", ["ringing", "connected"])
def test_call_bot_sigterm(example: Callable[..., Example], peer: Callable[..., Peer],
                          tmp_path: Path, point: str) -> None:
    """call_bot: CANCEL while ringing (exit 1); BYE at once while listening (exit 0)."""
    callee = peer(answer=point == "connected")
    acct = account_file(tmp_path / "a.toml", f"sip:{HOST}:9")
    proc = example("call_bot", f"sip:bob@{HOST}:{callee.address[1]}", "--account", str(acct),
                   "--tone", "0.2", "--dtmf", "1", "--listen", "30")
    if point == "ringing":
        callee.wait_for("INVITE")
        time.sleep(0.3)
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 1, proc
        callee.wait_for("ACK")
        assert callee.methods() == ["INVITE", "CANCEL", "ACK"], callee.log
        assert proc.err == ["call cancelled"], proc
    else:
        proc.wait_for("dtmf 1: ")
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0, proc
        assert callee.methods() == ["INVITE", "ACK", "BYE"], callee.log
        assert any(line.startswith("hung up (hangup)") for line in proc.out), proc
    assert_clean(proc)


@pytest.mark.parametrize("point", ["ringing", "connected"])
def test_gui_loop_asyncio_sigterm(example: Callable[..., Example], peer: Callable[..., Peer],
                                  tmp_path: Path, point: str) -> None:
    """gui_loop --asyncio: CANCEL while ringing (exit 1); BYE once connected (exit 0)."""
    callee = peer(answer=point == "connected")
    acct = account_file(tmp_path / "a.toml", f"sip:{HOST}:9")
    proc = example("gui_loop", "--asyncio", "--account", str(acct), "--target",
                   f"sip:bob@{HOST}:{callee.address[1]}", "--duration", "30")
    proc.wait_for("connected" if point == "connected" else "180 ")
    proc.signal(signal.SIGTERM)
    if point == "ringing":
        assert proc.wait() == 1, proc
        callee.wait_for("ACK")
        assert callee.methods() == ["INVITE", "CANCEL", "ACK"], callee.log
    else:
        assert proc.wait() == 0, proc
        assert callee.methods() == ["INVITE", "ACK", "BYE"], callee.log
        assert "call ended (hangup)" in proc.out, proc
    assert_clean(proc)


@pytest.mark.parametrize("point", ["registering", "connected"])
def test_auto_answer_sigterm(example: Callable[..., Example], cli: Start, peer: Callable[..., Peer],
                             tmp_path: Path, point: str) -> None:
    """auto_answer --register: unregistered at any step; a live call gets a BYE."""
    registrar = peer()
    acct = account_file(tmp_path / "a.toml", registrar.uri)
    if point == "registering":
        registrar.hold_register.set()
    proc = example("auto_answer", "--account", str(acct), "--register")
    if point == "registering":
        signal_while_registering(proc, registrar)
    else:
        hostport = proc.wait_for("ready ").split()[1]
        caller = cli("call", f"sip:robot@{hostport}", "--account", str(acct), "--duration", "30",
                     "--bind", f"{HOST}:0")
        caller.wait_for("answered; ")
        proc.signal(signal.SIGTERM)
        assert caller.wait() == 0, caller
        assert "call ended by the peer (bye)" in caller.out, caller
        assert_clean(caller)
    assert proc.wait() == 0, proc
    assert registrar.log == [("REGISTER", "3600"), ("REGISTER", "0")], registrar.log
    assert any(line.startswith("answered=") for line in proc.out), proc
    assert_clean(proc)
