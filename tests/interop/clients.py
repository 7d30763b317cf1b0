"""Real SIP *clients* against ``txsipua answer``: the server side of issue 3's interop matrix.

Theory of operation
-------------------
``txsipua answer`` is started as a subprocess on ``127.0.0.1:0`` with ``-v``; it prints
``ready HOST:PORT`` once listening (the port the kernel chose is read from that line), traces
every SIP message it sends and receives, and prints ``answered=N open_calls=N`` when stopped
with SIGTERM.  :class:`AnswerServer` parses that trace into :class:`TracedMessage` values and
pairs each received request with the responses sent for it (:class:`Exchange`: same top Via
branch and CSeq), so a test asserts on what the *server* did - e.g. "every REGISTER carrying
Authorization was answered 401" - independently of how each client reports it.

Each client program comes from a Debian package and is driven headless, bounded in time,
started on 127.0.0.1 with free ports and stopped by its process id (the
:class:`peers.ManagedProcess` rules):

* SIPp: scenario files ``scenarios/client_*.xml`` (plus ``uac_register.xml``), through
  :func:`peers.start_sipp`.
* sipsak: usrloc mode (``-U``), one REGISTER; numeric addresses only (``-H``, ``-k``).
* baresip: a config directory written by :func:`write_baresip_config` (no sound card:
  ``ausine`` as the source, ``aufile`` as the player; loopback ``dns_server``), commands given
  with ``-e`` and a quit timer ``-t``.
* linphonec: needs a terminal on standard input (without one its main loop never iterates the
  core, so no socket is opened); :class:`Linphonec` gives it a pseudo-terminal and writes
  commands to it.

This module uses nothing from txsipua either: the digest values are written by hashlib here.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import subprocess
import termios
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import peers
from peers import HOST, ManagedProcess, PeerError, free_udp_port, require_program

REPO_ROOT = Path(__file__).resolve().parents[2]

_HASHLIB = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}


# ---------------------------------------------------------------------------------------------
# Users file (htdigest, plus txsipua's ":ALGORITHM" extension; see txsipua/ua/cred.py)


@dataclass(frozen=True)
class HtdigestUser:
    """One line per algorithm in the ``--users`` file: ``username:realm:HA1[:ALGORITHM]``."""

    username: str
    realm: str
    password: str

    def ha1(self, algorithm: str = "MD5") -> str:
        """H(username ":" realm ":" password) in hex (RFC 7616 §3.4.2)."""
        text = f"{self.username}:{self.realm}:{self.password}".encode()
        return hashlib.new(_HASHLIB[algorithm], text).hexdigest()

    def lines(self, algorithms: Iterable[str] = ("MD5",)) -> list[str]:
        """The htdigest lines: MD5 in Apache's 3-field form, others with a 4th field."""
        out = []
        for algorithm in algorithms:
            line = f"{self.username}:{self.realm}:{self.ha1(algorithm)}"
            out.append(line if algorithm == "MD5" else f"{line}:{algorithm}")
        return out


def write_users(path: Path, users: Iterable[HtdigestUser], algorithms: Iterable[str] = ("MD5",)) -> Path:
    """Write an htdigest ``--users`` file holding each user's HA1 for each algorithm."""
    algorithms = tuple(algorithms)
    lines = ["# written by tests/interop/clients.py"]
    for user in users:
        lines += user.lines(algorithms)
    path.write_text("\n".join(lines) + "\n")
    return path


# ---------------------------------------------------------------------------------------------
# The -v trace of txsipua answer

_TRACE_HEAD = re.compile(r"^(>>> sent to|<<< received from) (\S+):(\d+)$")
_COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact", "l": "content-length"}


@dataclass(frozen=True)
class TracedMessage:
    """One SIP message as ``txsipua answer -v`` printed it.

    Attributes:
        direction: ``"in"`` (received by the server) or ``"out"`` (sent by it).
        peer: the (host, port) it came from or went to.
        start_line: request line or status line.
        headers: (lower-case name, value) pairs in order; compact names expanded.
        text: the whole message as printed.
    """

    direction: str
    peer: tuple[str, int]
    start_line: str
    headers: tuple[tuple[str, str], ...]
    text: str

    @property
    def is_request(self) -> bool:
        return not self.start_line.startswith("SIP/2.0 ")

    @property
    def method(self) -> str:
        """Request method, or the CSeq method of a response."""
        if self.is_request:
            return self.start_line.split(" ", 1)[0]
        return self.cseq[1]

    @property
    def status(self) -> int:
        """Status code of a response (0 for a request)."""
        return 0 if self.is_request else int(self.start_line.split(" ", 2)[1])

    def get_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for n, v in self.headers if n == name]

    def get(self, name: str) -> str | None:
        values = self.get_all(name)
        return values[0] if values else None

    @property
    def branch(self) -> str:
        via = self.get("via") or ""
        m = re.search(r";\s*branch=([^;,\s]+)", via)
        return m.group(1) if m else ""

    @property
    def cseq(self) -> tuple[int, str]:
        number, _, method = (self.get("cseq") or "0 ?").partition(" ")
        return int(number), method.strip()

    @property
    def authorization(self) -> list[str]:
        """Authorization and Proxy-Authorization values (a request's credentials)."""
        return self.get_all("authorization") + self.get_all("proxy-authorization")

    def digest_param(self, name: str) -> str | None:
        """A parameter of the first credentials value (unquoted), e.g. ``algorithm``."""
        for value in self.authorization:
            m = re.search(rf'(?i)[\s,]{name}\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]+)', value)
            if m:
                v = m.group(1)
                return v[1:-1] if v.startswith('"') else v
        return None

    def summary(self) -> str:
        arrow = "->" if self.direction == "in" else "<-"
        creds = " +creds" if self.is_request and self.authorization else ""
        return f"{arrow} {self.start_line}{creds}"


def parse_trace(output: str) -> list[TracedMessage]:
    """Split ``txsipua answer -v`` output into messages (other lines are ignored)."""
    messages: list[TracedMessage] = []
    lines = output.splitlines()
    i = 0
    while i < len(lines):
        head = _TRACE_HEAD.match(lines[i])
        i += 1
        if not head:
            continue
        block: list[str] = []
        while i < len(lines) and lines[i].strip() != "" and not _TRACE_HEAD.match(lines[i]):
            block.append(lines[i])
            i += 1
        # a body follows the blank line after the headers; skip it up to the next trace head
        body_start = i
        while i < len(lines) and not _TRACE_HEAD.match(lines[i]):
            i += 1
        if not block:
            continue
        headers: list[tuple[str, str]] = []
        for line in block[1:]:
            if line[:1] in (" ", "\t") and headers:
                headers[-1] = (headers[-1][0], headers[-1][1] + " " + line.strip())
                continue
            name, _, value = line.partition(":")
            name = name.strip().lower()
            headers.append((_COMPACT.get(name, name), value.strip()))
        direction = "out" if head.group(1).startswith(">>>") else "in"
        text = "\n".join(block + lines[body_start:i])
        messages.append(
            TracedMessage(direction, (head.group(2), int(head.group(3))), block[0], tuple(headers), text)
        )
    return messages


@dataclass
class Exchange:
    """A request the server received and every response it sent to it (retransmissions too)."""

    request: TracedMessage
    responses: list[TracedMessage] = field(default_factory=list)

    @property
    def final(self) -> TracedMessage | None:
        finals = [r for r in self.responses if r.status >= 200]
        return finals[0] if finals else None

    @property
    def final_status(self) -> int | None:
        return self.final.status if self.final is not None else None

    @property
    def authenticated(self) -> bool:
        """Whether the request carried Authorization or Proxy-Authorization."""
        return bool(self.request.authorization)

    def __str__(self) -> str:
        statuses = ",".join(str(r.status) for r in self.responses) or "no response"
        creds = " +creds" if self.authenticated else ""
        return f"{self.request.start_line}{creds} (CSeq {self.request.cseq[0]}) -> {statuses}"


def exchanges(messages: Sequence[TracedMessage], method: str | None = None) -> list[Exchange]:
    """Pair received requests with sent responses by (top Via branch, CSeq); in arrival order.

    ACK gets no response and is listed with none.  ``method`` keeps only that method.
    """
    by_key: dict[tuple[str, int, str], Exchange] = {}
    order: list[Exchange] = []
    for msg in messages:
        key = (msg.branch, *msg.cseq)
        if msg.direction == "in" and msg.is_request:
            if key not in by_key:  # a retransmission joins the first copy
                by_key[key] = Exchange(msg)
                order.append(by_key[key])
        elif msg.direction == "out" and not msg.is_request and key in by_key:
            by_key[key].responses.append(msg)
    return [x for x in order if method is None or x.request.method == method]


# ---------------------------------------------------------------------------------------------
# txsipua answer


_SUMMARY = re.compile(r"^answered=(\d+) open_calls=(\d+)$", re.MULTILINE)


@dataclass
class AnswerServer:
    """A running ``txsipua answer`` (see :func:`start_answer`)."""

    process: ManagedProcess
    host: str
    port: int
    realm: str

    @property
    def uri(self) -> str:
        return f"sip:{self.host}:{self.port}"

    def output(self) -> str:
        return self.process.output()

    def trace(self) -> list[TracedMessage]:
        return parse_trace(self.output())

    def exchanges(self, method: str | None = None) -> list[Exchange]:
        return exchanges(self.trace(), method)

    def ladder(self) -> str:
        """Every exchange on one line each, for assertion messages."""
        return "\n".join(str(x) for x in self.exchanges()) or "(no request received)"

    def wait_for(self, predicate: Callable[[AnswerServer], bool], timeout: float, what: str) -> None:
        """Poll the trace until ``predicate(self)`` holds.

        Raises:
            PeerError: not within ``timeout`` seconds, or the server exited.
        """
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if not self.process.running:
                raise PeerError(f"txsipua answer exited waiting for {what}:\n{self.process.tail(40)}")
            if time.monotonic() >= deadline:
                raise PeerError(f"no {what} after {timeout} s; server ladder:\n{self.ladder()}")
            time.sleep(0.05)

    def stop(self) -> tuple[int | None, int, int]:
        """SIGTERM; return (exit status, answered, open_calls) from its summary line.

        Raises:
            AssertionError: no ``answered=N open_calls=N`` line was printed.
        """
        rc = self.process.stop()
        m = _SUMMARY.search(self.output())
        assert m is not None, (
            f"txsipua answer printed no 'answered=N open_calls=N' on SIGTERM (exit {rc}):\n"
            f"{self.process.tail(20)}"
        )
        return rc, int(m.group(1)), int(m.group(2))


def answer_argv(
    *,
    realm: str,
    users: Path,
    algorithms: Sequence[str] = (),
    proxy_role: bool = False,
    extra: Sequence[str] = (),
    owners: Mapping[str, str] | None = None,
) -> list[str]:
    """Arguments of ``txsipua answer`` on ``127.0.0.1:0`` with ``-vv`` (after the module name).

    ``owners`` maps an auth username to the AOR user it may register (``--owner``).
    """
    argv = ["answer", "--bind", f"{HOST}:0", "--realm", realm, "--users", str(users), "-vv"]
    for auth_user, aor_user in (owners or {}).items():
        argv += ["--owner", f"{auth_user}={aor_user}"]
    for algorithm in algorithms:
        argv += ["--algorithm", algorithm]
    if proxy_role:
        argv.append("--proxy-role")
    return argv + list(extra)


def start_answer(
    start: Callable[..., ManagedProcess],
    *,
    realm: str,
    users: Path,
    algorithms: Sequence[str] = (),
    proxy_role: bool = False,
    lifetime: float = 30.0,
    ready_timeout: float = 10.0,
    owners: Mapping[str, str] | None = None,
    extra: Sequence[str] = (),
) -> AnswerServer:
    """Start ``txsipua answer`` through ``start`` (``TxsipuaCli.start``) and wait for ``ready``.

    ``extra`` arguments are appended (``--strict-digest-uri``...).

    Raises:
        PeerError: it exited or printed no ``ready HOST:PORT`` within ``ready_timeout`` s.
    """
    process = start(
        *answer_argv(realm=realm, users=users, algorithms=algorithms, proxy_role=proxy_role, owners=owners,
                     extra=extra),
        lifetime=lifetime,
    )
    ready = re.compile(r"^ready (\S+):(\d+)$", re.MULTILINE)
    process.wait_ready(lambda: ready.search(process.output()) is not None, timeout=ready_timeout)
    m = ready.search(process.output())
    assert m is not None
    return AnswerServer(process, m.group(1), int(m.group(2)), realm)


# ---------------------------------------------------------------------------------------------
# sipsak


def sipsak_register_argv(
    server: AnswerServer, *, user: str, auth_user: str, password: str, expires: int = 120
) -> list[str]:
    """``sipsak -U``: one REGISTER of ``sip:user@HOST:PORT``, answering the 401 (usrloc mode).

    ``-H``/``-k`` give the local name and address so sipsak resolves nothing; ``-vvv`` prints
    every message.  Exit status 0 means a 200 was received, 1 another final status.
    """
    binary = require_program("sipsak", "sipsak")
    return [
        binary, "-U", "-s", f"sip:{user}@{server.host}:{server.port}",
        "-a", password, "-u", auth_user, "-x", str(expires),
        "-H", HOST, "-k", HOST, "-i", "-vvv",
    ]


def run_client(name: str, argv: Sequence[str], log: Path, timeout: float = 15.0) -> ManagedProcess:
    """Run a client program to its end (bounded: stopped by pid after ``timeout`` s).

    Raises:
        PeerError: still running after ``timeout`` seconds.
    """
    process = ManagedProcess(name, argv, log, lifetime=timeout + 5, cwd=log.parent)
    process.start()
    process.wait(timeout)
    return process


# ---------------------------------------------------------------------------------------------
# baresip

BARESIP_MODULES = Path("/usr/lib/baresip/modules")


def write_baresip_config(
    directory: Path,
    *,
    sip_port: int,
    accounts: Iterable[str],
    rtp_ports: tuple[int, int] | None = None,
) -> Path:
    """Write ``config`` and ``accounts`` for a headless baresip in ``directory``.

    No sound card: ``ausine`` feeds the microphone (it only does 48 kHz stereo, so the
    source rate and channels say so; baresip resamples to 8 kHz PCMU), ``aufile`` plays into
    WAV files in ``directory``.  ``net_interface`` is the loopback *address* (baresip 1.0
    cannot find the interface called ``lo``) and the resolver is a loopback address too, so
    nothing is ever looked up outside; every URI is numeric anyway.
    """
    directory.mkdir(parents=True, exist_ok=True)
    # baresip picks a free port pair inside the range, so a few spare ports make it robust
    low, high = rtp_ports or (free_udp_port(), 0)
    high = high or low + 9
    config = f"""\
# written by tests/interop/clients.py: headless, loopback only
poll_method		epoll
sip_listen		{HOST}:{sip_port}
sip_transports		udp
dns_server		{HOST}:53
net_interface		{HOST}
module_path		{BARESIP_MODULES}
module			g711.so
module			ausine.so
module			aufile.so
module			account.so
module			menu.so
audio_source		ausine,440
ausrc_srate		48000
ausrc_channels		2
audio_player		aufile,{directory / "played.wav"}
audio_alert		aufile,{directory / "alert.wav"}
rtp_ports		{low}-{high}
"""
    (directory / "config").write_text(config)
    (directory / "accounts").write_text("\n".join(accounts) + "\n")
    return directory


def baresip_account(server: AnswerServer, *, user: str, auth_user: str, password: str, regint: int = 120) -> str:
    """An accounts line: ``sip:user@HOST:PORT`` registering at the answer command."""
    return (
        f"<sip:{user}@{server.host}:{server.port}>;auth_user={auth_user};auth_pass={password};"
        f"regint={regint};answermode=manual"
    )


def baresip_argv(config_dir: Path, *, commands: Sequence[str] = (), quit_after: int = 4) -> list[str]:
    """``baresip -f DIR -e CMD... -t SECONDS`` (commands run at start; quits after SECONDS)."""
    binary = require_program("baresip", "baresip")
    argv = [binary, "-f", str(config_dir)]
    for command in commands:
        argv += ["-e", command]
    return argv + ["-t", str(quit_after)]


# ---------------------------------------------------------------------------------------------
# linphonec


def write_linphonerc(
    path: Path,
    server: AnswerServer,
    *,
    sip_port: int,
    rtp_port: int,
    user: str,
    auth_user: str,
    password: str,
    realm: str,
    algorithm: str | None = None,
    expires: int = 120,
    register: bool = True,
) -> Path:
    """A linphonec configuration: one account registering at ``server``, UDP only, loopback.

    ``algorithm`` (``MD5``/``SHA-256``) pins the auth info to one algorithm; without it
    linphone answers whatever it is challenged with.  ``register=False`` keeps the account
    (the server is still its outbound proxy and the credentials are kept) but sends no
    REGISTER.  ``username`` of the auth info is the SIP user, ``userid`` the auth username.  linphonec rewrites this file (it
    replaces ``passwd`` by the ``ha1`` it computed), so write it afresh for each run.
    """
    auth = [
        "[auth_info_0]", f"username={user}", f"userid={auth_user}", f"passwd={password}",
        f"realm={realm}",
    ]
    if algorithm:
        auth += [f"algorithm={algorithm}", f"available_algorithms={algorithm}"]
    text = "\n".join(
        [
            "[sip]",
            f"sip_port={sip_port}", "sip_tcp_port=0", "sip_tls_port=0", f"bind_address={HOST}",
            "ipv6_enabled=0", "default_proxy=0", "guess_hostname=0",
            f"contact=sip:{user}@{HOST}:{sip_port}",
            "",
            "[rtp]", f"audio_rtp_port={rtp_port}", "video_rtp_port=0", "text_rtp_port=0",
            "",
            "[video]", "enabled=0", "capture=0", "display=0",
            "",
            "[proxy_0]",
            f"reg_proxy=<sip:{server.host}:{server.port}>",
            f"reg_identity=sip:{user}@{server.host}",
            f"reg_expires={expires}", f"reg_sendregister={int(register)}", f"realm={realm}",
            "",
            *auth,
            "",
        ]
    )
    path.write_text(text)
    return path


class Linphonec(ManagedProcess):
    """linphonec driven through a pseudo-terminal.

    linphonec 5.1 iterates its core from readline's event hook, which runs only when
    standard input is a terminal; from a pipe or /dev/null it never opens its SIP socket.  So
    stdin is the slave side of a pty (echo off) and :meth:`send` writes command lines to the
    master side.  Output (the ``linphonec>`` prompt, call and registration states) goes to the
    log file like any :class:`peers.ManagedProcess`; ``-l`` keeps liblinphone's own log.

    Args:
        config: linphonerc path (``-c``); ``home``: ``HOME`` for its database and caches.
    """

    def __init__(self, config: Path, home: Path, log_path: Path, *, lifetime: float = 30.0) -> None:
        binary = require_program("linphonec", "linphone-cli")
        home.mkdir(parents=True, exist_ok=True)
        (home / ".local" / "share" / "linphone").mkdir(parents=True, exist_ok=True)
        self.core_log = log_path.with_name(log_path.stem + "-core.log")
        env = dict(os.environ, HOME=str(home), TERM="dumb")
        env.pop("DISPLAY", None)
        super().__init__(
            "linphonec",
            [binary, "-c", str(config), "-S", "-d", "5", "-l", str(self.core_log)],
            log_path, lifetime=lifetime, cwd=home, env=env,
        )
        self._master: int | None = None

    def start(self) -> Linphonec:
        """Start with a pty on stdin (ManagedProcess.start offers only /dev/null)."""
        if self.popen is not None:
            raise PeerError("linphonec already started")
        master, slave = os.openpty()
        attrs = termios.tcgetattr(slave)
        attrs[3] &= ~termios.ECHO  # lflag: no echo, so nothing piles up unread on the master
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(self.log_path, "wb") as log:
                log.write(("$ " + " ".join(self.argv) + "\n").encode())
                log.flush()
                self.popen = subprocess.Popen(
                    self.argv, stdin=slave, stdout=log, stderr=subprocess.STDOUT,
                    cwd=self.cwd, env=self.env, start_new_session=True,
                )
        finally:
            os.close(slave)
        self._master = master
        # the same bookkeeping as ManagedProcess.start: stopped at exit, bounded by a watchdog
        with peers._LIVE_LOCK:
            peers._LIVE.add(self)
        self._watchdog = threading.Timer(self.lifetime, self._expire)
        self._watchdog.daemon = True
        self._watchdog.start()
        return self

    def send(self, command: str) -> None:
        """Type one command line (e.g. ``call sip:bob@127.0.0.1:5060``)."""
        if self._master is None:
            raise PeerError("linphonec not started")
        os.write(self._master, command.encode() + b"\n")

    def wait_output(self, pattern: str, timeout: float = 10.0, after: int = 0) -> re.Match[str]:
        """Wait until the output (from character ``after``) matches ``pattern``.

        Raises:
            PeerError: not within ``timeout`` seconds, or linphonec exited.
        """
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = regex.search(self.output(), after)
            if m:
                return m
            if not self.running:
                raise PeerError(f"linphonec exited before {pattern!r}:\n{self.tail(30)}")
            if time.monotonic() >= deadline:
                raise PeerError(f"linphonec: no {pattern!r} after {timeout} s:\n{self.tail(30)}")
            time.sleep(0.05)

    def stop(self, grace: float = peers.STOP_GRACE) -> int | None:
        rc = super().stop(grace)
        if self._master is not None:
            with contextlib.suppress(OSError):
                os.close(self._master)
            self._master = None
        return rc


__all__ = [
    "REPO_ROOT",
    "AnswerServer",
    "Exchange",
    "HtdigestUser",
    "Linphonec",
    "TracedMessage",
    "answer_argv",
    "baresip_account",
    "baresip_argv",
    "exchanges",
    "parse_trace",
    "run_client",
    "sipsak_register_argv",
    "start_answer",
    "write_baresip_config",
    "write_linphonerc",
    "write_users",
]
