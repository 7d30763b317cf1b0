"""Real SIP peers for the interop tests: process management, Kamailio, SIPp, a mini UAC.

Theory of operation
-------------------
Every peer is a real program from a Debian package, started by a fixture on 127.0.0.1 with a
free port and a configuration written into the test's ``tmp_path``.  A :class:`ManagedProcess`
owns each one: it captures the program's output into a file, waits until the peer is ready (a
probe: an OPTIONS answered, a UDP port bound), bounds its lifetime with a watchdog, and stops it
by process id (SIGTERM, then SIGKILL after 5 s) at teardown, on test failure, and at interpreter
exit as a last resort.  Each program is started in its own session, so it and whatever it forks
form one process group whose id is the pid we started; stopping signals that group only.

A program that is not installed makes the test skip with the ``apt-get install`` that fixes it,
except when the environment variable ``CI`` is set: in CI a missing peer is a failure, because
CI must run the interop tests, never skip them.

This module deliberately uses nothing from txsipua: it is the independent yardstick.  The small
blocking :class:`MiniUAC` (stdlib sockets and hashlib) exists only to prove the harness itself
(each SIPp scenario accepts a correct caller and rejects a wrong one; each Kamailio instance
authenticates as configured) before and independently of txsipua's own client.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

HOST = "127.0.0.1"
SCENARIOS = Path(__file__).parent / "scenarios"
KAMAILIO_MODULES = Path("/usr/lib/x86_64-linux-gnu/kamailio/modules")

#: Realms hard-coded in the SIPp scenarios (SIPp regexps cannot take keywords).
CALLEE_REALM = "callee.example.org"
PROXY_REALM = "proxy.example.net"

STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL


class PeerError(RuntimeError):
    """A peer did not start, did not become ready, or did not finish in time."""


# ---------------------------------------------------------------------------------------------
# Programs and ports


def require_program(program: str, package: str) -> str:
    """Return the absolute path of ``program``; skip (or fail under CI) when it is missing.

    Args:
        program: executable name looked up on ``PATH`` (``/usr/sbin`` included).
        package: the Debian package that provides it, named in the message.

    Raises:
        pytest.skip.Exception: not installed and ``CI`` unset.
        pytest.fail.Exception: not installed and ``CI`` set (CI must never skip interop).
    """
    path = shutil.which(program, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if path is not None:
        return path
    reason = f"{program} not installed: apt-get install {package}"
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: interop peers must be present)", pytrace=False)
    pytest.skip(reason)


def free_udp_port(host: str = HOST, attempts: int = 50) -> int:
    """Return a port that is free for both UDP and TCP on ``host`` right now.

    The kernel picks the UDP port (bind to port 0); the same port is then bound over TCP to
    check that it is free there too.  Both sockets are closed before returning, so there is a
    small window in which another process may take it; peers are started right away.

    Raises:
        PeerError: no port found in ``attempts`` tries.
    """
    for _ in range(attempts):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
            return int(port)
    raise PeerError(f"no port free for both UDP and TCP on {host}")


def udp_port_bound(port: int, host: str = HOST) -> bool:
    """Whether some process has a UDP socket bound to ``host:port`` (from /proc/net/udp).

    Used as the readiness probe of SIPp in server mode, which must not be sent a probe
    message (it would count as an unexpected call).
    """
    want_port = f"{port:04X}"
    want_host = "".join(f"{int(octet):02X}" for octet in reversed(host.split(".")))
    try:
        lines = Path("/proc/net/udp").read_text().splitlines()[1:]
    except OSError:
        return False
    for line in lines:
        local = line.split()[1]
        addr, _, p = local.partition(":")
        if p == want_port and addr in (want_host, "00000000"):
            return True
    return False


def sip_options_ping(host: str, port: int, timeout: float = 0.2) -> str | None:
    """Send one OPTIONS to ``host:port`` over UDP; return the status line of the answer.

    Returns None when nothing came back within ``timeout`` seconds (or the port refused).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        lport = sock.getsockname()[1]
        sock.settimeout(timeout)
        tag = secrets.token_hex(4)
        msg = (
            f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {HOST}:{lport};branch=z9hG4bK{secrets.token_hex(8)};rport\r\n"
            f"From: <sip:probe@{HOST}:{lport}>;tag={tag}\r\n"
            f"To: <sip:{host}:{port}>\r\n"
            f"Call-ID: probe-{tag}@{HOST}\r\n"
            "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
        try:
            sock.sendto(msg.encode(), (host, port))
            data = sock.recv(65535)
        except OSError:  # timeout or ICMP port unreachable
            return None
    return data.split(b"\r\n", 1)[0].decode("utf-8", "replace")


# ---------------------------------------------------------------------------------------------
# Processes

_LIVE: set[ManagedProcess] = set()
_LIVE_LOCK = threading.Lock()


@atexit.register
def _stop_leftovers() -> None:  # last resort: a fixture's teardown normally did this
    with _LIVE_LOCK:
        leftovers = list(_LIVE)
    for proc in leftovers:
        proc.stop()


class ManagedProcess:
    """One peer program, bounded in time, with its output captured to a file.

    Args:
        name: short label used in messages (``"kamailio"``, ``"sipp uas_auth_401"``).
        argv: the command line; ``argv[0]`` should come from :func:`require_program`.
        log_path: file receiving the program's stdout and stderr.
        lifetime: seconds after :meth:`start` at which a watchdog stops the program anyway.
        cwd: working directory (SIPp writes its trace files there by default).
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        lifetime: float = 60.0,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        self.lifetime = lifetime
        self.cwd = cwd
        self.env = dict(env) if env is not None else None
        self.popen: subprocess.Popen[bytes] | None = None
        self.killed_by_watchdog = False
        self._watchdog: threading.Timer | None = None

    def __repr__(self) -> str:
        return f"<ManagedProcess {self.name} pid={self.pid} rc={self.returncode}>"

    @property
    def pid(self) -> int | None:
        """The pid of the started program (also its process group id), or None."""
        return self.popen.pid if self.popen is not None else None

    @property
    def returncode(self) -> int | None:
        """Exit status once finished (negative: killed by that signal), else None."""
        return self.popen.poll() if self.popen is not None else None

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self) -> ManagedProcess:
        """Start the program in its own session; return self."""
        if self.popen is not None:
            raise PeerError(f"{self.name} already started")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            log.write(("$ " + " ".join(self.argv) + "\n").encode())
            log.flush()
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                env=self.env,
                start_new_session=True,
            )
        with _LIVE_LOCK:
            _LIVE.add(self)
        self._watchdog = threading.Timer(self.lifetime, self._expire)
        self._watchdog.daemon = True
        self._watchdog.start()
        return self

    def _expire(self) -> None:
        if self.running:
            self.killed_by_watchdog = True
            self.stop()

    def output(self) -> str:
        """Everything the program printed so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def wait_ready(
        self, probe: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05
    ) -> None:
        """Poll ``probe`` until it returns True.

        Raises:
            PeerError: the program exited first, or ``timeout`` seconds passed (the program
                is stopped and its output tail is in the message).
        """
        deadline = time.monotonic() + timeout
        while True:
            if not self.running:
                raise PeerError(
                    f"{self.name} exited with status {self.returncode} before it was ready;"
                    f" output:\n{self.tail()}"
                )
            if probe():
                return
            if time.monotonic() >= deadline:
                self.stop()
                raise PeerError(f"{self.name} not ready after {timeout} s; output:\n{self.tail()}")
            time.sleep(interval)

    def wait(self, timeout: float) -> int:
        """Wait for the program to end by itself; return its exit status.

        Raises:
            PeerError: still running after ``timeout`` seconds (it is then stopped).
        """
        assert self.popen is not None, "not started"
        try:
            rc = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise PeerError(
                f"{self.name} still running after {timeout} s; output:\n{self.tail()}"
            ) from None
        self._forget()
        return rc

    def send_signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the program itself (e.g. SIGTERM to test a clean shutdown)."""
        assert self.popen is not None, "not started"
        self.popen.send_signal(sig)

    def stop(self, grace: float = STOP_GRACE) -> int | None:
        """Stop the program's process group: SIGTERM, then SIGKILL after ``grace`` seconds.

        Idempotent; returns the exit status (None if never started).
        """
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.popen.wait(grace)
        # children forked by the program (Kamailio's workers) die with their parent's
        # SIGTERM; make sure none is left behind in the group.
        self._signal_group(signal.SIGKILL)
        self._forget()
        return self.popen.returncode

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self.popen is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)

    def _forget(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        with _LIVE_LOCK:
            _LIVE.discard(self)


# ---------------------------------------------------------------------------------------------
# Digest (RFC 2617 §3.2.2, RFC 7616 §3.4), written here independently of txsipua.auth

_HASHES = {"MD5": "md5", "SHA-256": "sha256"}


def digest_hash(algorithm: str, text: str) -> str:
    """Hex digest of ``text`` by the Digest ``algorithm`` ("MD5" or "SHA-256")."""
    return hashlib.new(_HASHES[algorithm.upper()], text.encode()).hexdigest()


def ha1(algorithm: str, username: str, realm: str, password: str) -> str:
    """HA1 = H(username ":" realm ":" password) (RFC 7616 §3.4.2)."""
    return digest_hash(algorithm, f"{username}:{realm}:{password}")


_PARAM = re.compile(r'([A-Za-z][\w-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]+)')


def parse_challenge(value: str) -> dict[str, str]:
    """Parameters of one ``Digest`` challenge header value (names lower-cased, unquoted)."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise ValueError(f"not a Digest challenge: {value!r}")
    return {
        name.lower(): (val[1:-1].replace('\\"', '"') if val.startswith('"') else val)
        for name, val in _PARAM.findall(rest)
    }


def digest_credentials(
    challenge: Mapping[str, str],
    *,
    method: str,
    uri: str,
    username: str,
    password: str,
    nc: int = 1,
    cnonce: str | None = None,
) -> str:
    """The Authorization / Proxy-Authorization value answering ``challenge``."""
    algorithm = challenge.get("algorithm", "MD5")
    realm, nonce = challenge["realm"], challenge["nonce"]
    h1 = ha1(algorithm, username, realm, password)
    h2 = digest_hash(algorithm, f"{method}:{uri}")
    parts = [f'username="{username}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"']
    qops = [q.strip() for q in challenge.get("qop", "").split(",") if q.strip()]
    if "auth" in qops:
        cnonce = cnonce or secrets.token_hex(8)
        ncs = f"{nc:08x}"
        response = digest_hash(algorithm, f"{h1}:{nonce}:{ncs}:{cnonce}:auth:{h2}")
        parts += [f'cnonce="{cnonce}"', f"nc={ncs}", "qop=auth"]
    else:
        response = digest_hash(algorithm, f"{h1}:{nonce}:{h2}")
    parts += [f'response="{response}"', f"algorithm={algorithm}"]
    if "opaque" in challenge:
        parts.append(f'opaque="{challenge["opaque"]}"')
    return "Digest " + ", ".join(parts)


# ---------------------------------------------------------------------------------------------
# A deliberately small blocking UAC, to prove the harness (never used to test txsipua)


@dataclass
class SipResponse:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    raw: bytes

    def get_all(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def get(self, name: str) -> str | None:
        values = self.get_all(name)
        return values[0] if values else None


_COMPACT = {
    "v": "Via",
    "f": "From",
    "t": "To",
    "i": "Call-ID",
    "m": "Contact",
    "l": "Content-Length",
}


def parse_response(data: bytes) -> SipResponse:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("utf-8", "replace").split("\r\n")
    _, status, reason = (lines[0].split(" ", 2) + [""])[:3]
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:
            headers[-1] = (headers[-1][0], headers[-1][1] + " " + line.strip())
            continue
        name, _, value = line.partition(":")
        name = _COMPACT.get(name.strip(), name.strip())
        headers.append((name, value.strip()))
    return SipResponse(int(status), reason, headers, body, data)


@dataclass
class MiniUAC:
    """A minimal UDP UAC (RFC 3261 §8.1) used to exercise the peers; blocking, one at a time.

    It handles exactly what the harness self-tests need: REGISTER and INVITE transactions with
    retransmission every 0.5 s, ACK for non-2xx (same branch) and for 2xx (new branch, route
    set from Record-Route), BYE, and digest answers computed by :func:`digest_credentials`.
    """

    target: tuple[str, int]
    user: str = "mini"
    domain: str = "example.com"
    sock: socket.socket = field(init=False)
    ladder: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.port = self.sock.getsockname()[1]
        self.call_id = f"{secrets.token_hex(8)}@{HOST}"
        self.from_tag = secrets.token_hex(4)
        self.cseq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> MiniUAC:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def build(
        self,
        method: str,
        ruri: str,
        *,
        to: str,
        branch: str,
        cseq: int,
        extra: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> bytes:
        lines = [
            f"{method} {ruri} SIP/2.0",
            f"Via: SIP/2.0/UDP {HOST}:{self.port};branch={branch};rport",
            "Max-Forwards: 70",
            f"From: <sip:{self.user}@{self.domain}>;tag={self.from_tag}",
            f"To: {to}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq} {method}",
        ]
        extra = list(extra)
        if not any(n == "Contact" for n, _ in extra):
            lines.append(f"Contact: <sip:{self.user}@{HOST}:{self.port}>")
        lines += [f"{n}: {v}" for n, v in extra]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def send(self, data: bytes, destination: tuple[str, int] | None = None) -> None:
        self.ladder.append("> " + data.split(b" ", 1)[0].decode())
        self.sock.sendto(data, destination or self.target)

    def transact(self, data: bytes, timeout: float = 5.0) -> SipResponse:
        """Send a request and return its final response (1xx skipped; retransmit every 0.5 s).

        Raises:
            TimeoutError: no final response in ``timeout`` seconds.
        """
        branch = re.search(rb"branch=([^;\r\n]+)", data)
        assert branch is not None
        deadline = time.monotonic() + timeout
        self.send(data)
        next_retransmit = time.monotonic() + 0.5
        while True:
            now = time.monotonic()
            if now >= deadline:
                raise TimeoutError(f"no final response to {data.split(b' ', 1)[0]!r}")
            self.sock.settimeout(max(0.01, min(deadline, next_retransmit) - now))
            try:
                raw = self.sock.recv(65535)
            except TimeoutError:
                if time.monotonic() >= next_retransmit:
                    self.sock.sendto(data, self.target)
                    next_retransmit = time.monotonic() + 0.5
                continue
            if raw.startswith(b"SIP/2.0 ") and branch.group(1) in raw:
                resp = parse_response(raw)
                self.ladder.append(f"< {resp.status}")
                if resp.status >= 200:
                    return resp
                next_retransmit = deadline  # provisional: stop retransmitting INVITE

    def register(
        self,
        *,
        auth_username: str,
        password: str,
        expires: int = 60,
        to_user: str | None = None,
        contact_port: int | None = None,
        algorithm_seen: list[str] | None = None,
    ) -> SipResponse:
        """REGISTER ``sip:user@domain`` at the target, answering one 401; the final response.

        ``contact_port`` registers ``sip:user@127.0.0.1:contact_port`` (another program's
        port, e.g. a SIPp UAS) instead of this UAC's own address.
        """
        to = f"<sip:{to_user or self.user}@{self.domain}>"
        extra: list[tuple[str, str]] = [("Expires", str(expires))]
        if contact_port is not None:
            extra.append(("Contact", f"<sip:{to_user or self.user}@{HOST}:{contact_port}>"))
        ruri = f"sip:{self.domain}"
        self.cseq += 1
        branch = "z9hG4bK" + secrets.token_hex(8)
        resp = self.transact(
            self.build("REGISTER", ruri, to=to, branch=branch, cseq=self.cseq, extra=extra)
        )
        if resp.status == 401:
            chal = parse_challenge(resp.get("WWW-Authenticate") or "")
            if algorithm_seen is not None:
                algorithm_seen.append(chal.get("algorithm", "MD5"))
            auth = digest_credentials(
                chal, method="REGISTER", uri=ruri, username=auth_username, password=password
            )
            self.cseq += 1
            branch = "z9hG4bK" + secrets.token_hex(8)
            resp = self.transact(
                self.build(
                    "REGISTER",
                    ruri,
                    to=to,
                    branch=branch,
                    cseq=self.cseq,
                    extra=[*extra, ("Authorization", auth)],
                )
            )
        return resp

    def call(
        self,
        ruri: str,
        *,
        credentials: Mapping[str, tuple[str, str]],
        max_retries: int = 1,
        ack_credentials: bool | Sequence[tuple[str, str]] = True,
        answer_only: Sequence[str] = ("Proxy-Authenticate", "WWW-Authenticate"),
        hangup_after: float = 0.1,
        invite_timeout: float = 8.0,
    ) -> list[int]:
        """INVITE ``ruri``; answer challenges with ``credentials`` (realm -> (user, password)).

        Returns the final status of every INVITE sent (e.g. ``[401, 200]``); after a 2xx the
        call is ACKed (with the INVITE's credentials; none if ``ack_credentials`` is False; the
        given headers if it is a sequence) and hung up with BYE, whose final status is appended.
        """
        to = f"<{ruri}>"
        sdp = (
            f"v=0\r\no=mini 1 1 IN IP4 {HOST}\r\ns=-\r\nc=IN IP4 {HOST}\r\nt=0 0\r\n"
            f"m=audio {self.port + 2} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        ).encode()
        statuses: list[int] = []
        auth_headers: list[tuple[str, str]] = []
        for attempt in range(max_retries + 1):
            self.cseq += 1
            branch = "z9hG4bK" + secrets.token_hex(8)
            invite = self.build(
                "INVITE", ruri, to=to, branch=branch, cseq=self.cseq, extra=auth_headers, body=sdp
            )
            resp = self.transact(invite, timeout=invite_timeout)
            statuses.append(resp.status)
            if resp.status < 300:
                break
            # ACK for a non-2xx final response: same branch, To with the response's tag
            self.send(
                self.build("ACK", ruri, to=resp.get("To") or to, branch=branch, cseq=self.cseq)
            )
            if resp.status not in (401, 407) or attempt == max_retries:
                return statuses
            auth_headers = []
            for chal_name in answer_only:
                for value in resp.get_all(chal_name):
                    chal = parse_challenge(value)
                    if chal["realm"] not in credentials:
                        continue
                    user, password = credentials[chal["realm"]]
                    answer = digest_credentials(
                        chal, method="INVITE", uri=ruri, username=user, password=password
                    )
                    auth_headers.append((_ANSWER_HEADER[chal_name], answer))
        # 2xx: ACK and BYE within the dialog (RFC 3261 §13.2.2.4, §12.2.1.1)
        remote_to = resp.get("To") or to
        contact = re.search(r"<([^>]+)>", resp.get("Contact") or "")
        target_uri = contact.group(1) if contact else ruri
        route = [v for rr in reversed(resp.get_all("Record-Route")) for v in _split_commas(rr)]
        route_hdrs = [("Route", r) for r in route]
        if isinstance(ack_credentials, bool):
            ack_auth = auth_headers if ack_credentials else []
        else:
            ack_auth = list(ack_credentials)
        ack_extra = route_hdrs + ack_auth
        ack = self.build(
            "ACK",
            target_uri,
            to=remote_to,
            branch="z9hG4bK" + secrets.token_hex(8),
            cseq=self.cseq,
            extra=ack_extra,
        )
        self.send(ack)
        if hangup_after:
            # a proxy with several worker processes may forward the BYE before
            # the ACK if they leave together; the callee would see the BYE first
            time.sleep(hangup_after)
        self.cseq += 1
        bye = self.build(
            "BYE",
            target_uri,
            to=remote_to,
            branch="z9hG4bK" + secrets.token_hex(8),
            cseq=self.cseq,
            extra=route_hdrs,
        )
        statuses.append(self.transact(bye).status)
        return statuses

    def expect_silence(self, seconds: float) -> bytes | None:
        """Wait ``seconds``; return the first datagram received, or None (used after a give-up)."""
        self.sock.settimeout(seconds)
        try:
            return self.sock.recv(65535)
        except TimeoutError:
            return None


_ANSWER_HEADER = {"WWW-Authenticate": "Authorization", "Proxy-Authenticate": "Proxy-Authorization"}


def _split_commas(value: str) -> list[str]:
    return [part.strip() for part in re.findall(r'(?:[^,"<]|"[^"]*"|<[^>]*>)+', value)]


# ---------------------------------------------------------------------------------------------
# Kamailio


@dataclass(frozen=True)
class SipUser:
    """One subscriber: SIP identity (user@domain) and its digest credentials for one realm."""

    user: str
    domain: str
    realm: str
    auth_username: str
    password: str

    @property
    def aor(self) -> str:
        return f"sip:{self.user}@{self.domain}"

    def account_toml(self, *, registrar: str, password: str | None = None) -> str:
        """The txsipua account file (issue 2 format) for this user at ``registrar``."""
        return (
            f'user = "{self.user}"\n'
            f'domain = "{self.domain}"\n'
            f'registrar = "{registrar}"\n'
            f'outbound_proxy = "{registrar}"\n'
            "[[credentials]]\n"
            f'realm = "{self.realm}"\n'
            f'username = "{self.auth_username}"\n'
            f'password = "{password if password is not None else self.password}"\n'
        )


@dataclass(frozen=True)
class Binding:
    """One registered contact as Kamailio's usrloc reports it."""

    contact: str
    expires: int  # seconds left


@dataclass
class Kamailio:
    """A running Kamailio registrar + proxy (see :func:`start_kamailio`)."""

    host: str
    port: int
    rpc_port: int
    domain: str
    realm: str
    algorithm: str
    users: dict[str, SipUser]
    process: ManagedProcess
    config_path: Path
    ws_port: int = 0
    """The SIP over WebSocket port (``websocket=True``), else 0."""

    @property
    def uri(self) -> str:
        """``sip:127.0.0.1:PORT`` - the registrar and outbound proxy address."""
        return f"sip:{self.host}:{self.port}"

    @property
    def ws_uri(self) -> str:
        """``sip:127.0.0.1:WSPORT;transport=ws`` - the registrar over WebSocket (RFC 7118)."""
        return f"sip:{self.host}:{self.ws_port};transport=ws"

    def rpc(self, method: str, *params: Any, timeout: float = 2.0) -> Any:
        """Call a Kamailio RPC over jsonrpcs' UDP datagram transport; return ``result``.

        Raises:
            PeerError: no answer, or a JSON-RPC error (its code and message included).
        """
        request = {"jsonrpc": "2.0", "method": method, "params": list(params), "id": 1}
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((HOST, 0))
            sock.settimeout(timeout)
            sock.sendto(json.dumps(request).encode(), (self.host, self.rpc_port))
            try:
                reply = json.loads(sock.recv(65535))
            except TimeoutError:
                raise PeerError(f"kamailio RPC {method} unanswered") from None
        if "error" in reply:
            raise PeerError(f"kamailio RPC {method}: {reply['error']}")
        return reply.get("result")

    def contacts(self, user: str) -> list[Binding]:
        """Contacts registered for ``user@domain`` (empty list when none)."""
        try:
            result = self.rpc("ul.lookup", "location", f"{user}@{self.domain}")
        except PeerError as exc:
            if "not found" in str(exc).lower():
                return []
            raise
        return [
            Binding(contact=c["Contact"]["Address"], expires=int(c["Contact"]["Expires"]))
            for c in result.get("Contacts", [])
        ]

    def log(self) -> str:
        return self.process.output()

    def received(self, method: str) -> list[str]:
        """The distinct requests of ``method`` the routing script saw, in order of arrival.

        Each is the log line "RX <method> <ruri> from <ip:port> cseq=<n> callid=<id>";
        retransmissions give identical lines and are counted once, so a REGISTER challenged
        and then retried with credentials gives two entries.
        """
        lines = re.findall(rf"RX {re.escape(method)} [^\n]*", self.log())
        return list(dict.fromkeys(line.strip() for line in lines))


KAMAILIO_WS_GLOBALS = """\
# SIP over WebSocket (RFC 7118): HTTP upgrade on a TCP port, no Content-Length needed
listen=tcp:{host}:{ws_port}
tcp_accept_no_cl=yes
tcp_connection_lifetime=3605
"""
KAMAILIO_WS_MODULES = """\
loadmodule "xhttp.so"
loadmodule "websocket.so"
"""
KAMAILIO_WS_ROUTE = """
event_route[xhttp:request] {
    if ($hdr(Upgrade) =~ "websocket" && $hdr(Connection) =~ "Upgrade" && $rm =~ "GET") {
        if (ws_handle_handshake()) {
            exit;
        }
    }
    xhttp_reply("404", "Not Found", "", "");
}
"""

DEFAULT_DOMAIN = "example.com"
DEFAULT_REALM = "voip.example.net"


def default_users(domain: str = DEFAULT_DOMAIN, realm: str = DEFAULT_REALM) -> dict[str, SipUser]:
    """alice and bob; auth usernames differ from SIP users, the realm from the domain."""
    return {
        "alice": SipUser("alice", domain, realm, "alice-auth", "alice-secret-7"),
        "bob": SipUser("bob", domain, realm, "bob-auth", "bob-secret-9"),
    }


def _dbtext_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:").replace("\n", "\\n")


KAMAILIO_CFG = """\
#!KAMAILIO
# Written by tests/interop/peers.py: registrar + proxy for one domain, digest in one realm.
debug=2
log_stderror=yes
fork=yes
children=2
listen=udp:{host}:{port}
alias="{domain}"
auto_aliases=no
# never touch the machine's resolver
dns=no
rev_dns=no
dns_try_ipv6=no
use_dns_cache=off
disable_tcp=yes
disable_sctp=yes
mpath="{modules}/"

loadmodule "jsonrpcs.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "sanity.so"
loadmodule "db_text.so"
loadmodule "auth.so"
loadmodule "auth_db.so"

# RPC (ul.lookup, ...) as JSON over UDP on the loopback: no FIFO, no socket path limits
modparam("jsonrpcs", "transport", 4)
modparam("jsonrpcs", "dgram_socket", "udp:{host}:{rpc_port}")
modparam("jsonrpcs", "pretty_format", 0)

# bindings in memory only; AORs are user@domain
modparam("usrloc", "db_mode", 0)
modparam("usrloc", "use_domain", 1)
modparam("registrar", "max_expires", 3600)
# short registrations allowed, so a test can watch a refresh within seconds
modparam("registrar", "min_expires", 1)

# One algorithm per instance (auth 5.6 param "algorithm": MD5 or SHA-256).
modparam("auth", "algorithm", "{algorithm}")
modparam("auth", "secret", "{secret}")
modparam("auth", "nonce_expire", 60)

# Subscribers are keyed by AUTH username and realm (use_domain=1 matches the "domain"
# column against the realm being authenticated).  calculate_ha1=0: the "ha1" column holds
# H(auth_username:realm:password) computed with the instance's algorithm (a SHA-256 HA1 is
# 64 hex digits; auth_db keeps HA1 in a 256-byte buffer, so both fit).  auth_db's
# auth_check() cannot be used: it demands the auth username equal the From/To user, and here
# they differ on purpose.  Instead load_credentials copies the extra columns aor_user and
# aor_domain into AVPs on success, and the script checks the authenticated identity against
# the AOR being registered (To) or the caller (From).
modparam("auth_db", "db_url", "text://{dbdir}")
modparam("auth_db", "calculate_ha1", 0)
modparam("auth_db", "use_domain", 1)
modparam("auth_db", "load_credentials", "$avp(aor_user)=aor_user;$avp(aor_domain)=aor_domain")

request_route {{
    xlog("L_INFO", "RX $rm $ru from $si:$sp cseq=$cs callid=$ci\\n");
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (is_method("OPTIONS") && uri==myself && $rU==$null) {{
        sl_send_reply("200", "Ready");
        exit;
    }}
    if (has_totag()) {{
        # in-dialog: follow the route set recorded on the INVITE
        if (loose_route()) {{
            t_relay();
            exit;
        }}
        if (is_method("ACK")) {{
            if (t_check_trans()) {{
                t_relay();
            }}
            exit;
        }}
        sl_send_reply("404", "Not here");
        exit;
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    t_check_trans();

    if (is_method("REGISTER")) {{
        if (!www_authorize("{realm}", "subscriber")) {{
            www_challenge("{realm}", "1");
            exit;
        }}
        if ($avp(aor_user) != $tU || $avp(aor_domain) != $td) {{
            xlog("L_NOTICE", "auth user $au may not register $tu\\n");
            sl_send_reply("403", "Auth ID may not register this AOR");
            exit;
        }}
        consume_credentials();
        if (!save("location")) {{
            sl_reply_error();
        }}
        exit;
    }}

    if (from_uri==myself && !is_method("ACK|CANCEL")) {{
        if (!proxy_authorize("{realm}", "subscriber")) {{
            proxy_challenge("{realm}", "1");
            exit;
        }}
        if ($avp(aor_user) != $fU || $avp(aor_domain) != $fd) {{
            xlog("L_NOTICE", "auth user $au may not send as $fu\\n");
            sl_send_reply("403", "Auth ID may not use this From");
            exit;
        }}
        consume_credentials();
    }}
    if (is_method("INVITE")) {{
        record_route();
    }}
    if (!lookup("location")) {{
        sl_send_reply("404", "Not Found");
        exit;
    }}
    t_relay();
}}
"""


def start_kamailio(
    tmp_path: Path,
    *,
    algorithm: str = "MD5",
    users: Mapping[str, SipUser] | None = None,
    domain: str = DEFAULT_DOMAIN,
    realm: str = DEFAULT_REALM,
    lifetime: float = 60.0,
    ready_timeout: float = 10.0,
    websocket: bool = False,
) -> Kamailio:
    """Write a config and db_text tables into ``tmp_path``, start Kamailio, wait until ready.

    Ready means an OPTIONS to the SIP port is answered (the workers are up) and the RPC port
    answers ``core.version``.

    Args:
        tmp_path: directory for kamailio.cfg, db/, the pid file, runtime dir and the log.
        algorithm: "MD5" or "SHA-256" (one per instance in Kamailio 5.6).
        users: subscribers (default :func:`default_users`); HA1s stored, never passwords.
        websocket: also accept SIP over WebSocket (RFC 7118) on a TCP port (``ws_port``),
            through Kamailio's xhttp and websocket modules (Debian: kamailio-websocket-modules).

    Raises:
        PeerError: Kamailio failed to start (its output tail is in the message).
    """
    binary = require_program("kamailio", "kamailio")
    if websocket and not (KAMAILIO_MODULES / "websocket.so").exists():
        if os.environ.get("CI"):
            raise PeerError("Kamailio's websocket module is missing: apt-get install kamailio-websocket-modules")
        pytest.skip("Kamailio's websocket module is missing (apt-get install kamailio-websocket-modules)")
    if algorithm not in ("MD5", "SHA-256"):
        raise ValueError(f"Kamailio 5.6 supports MD5 or SHA-256, not {algorithm!r}")
    users = dict(users if users is not None else default_users(domain, realm))
    workdir = tmp_path / "kamailio"
    dbdir = workdir / "db"
    rundir = workdir / "run"
    dbdir.mkdir(parents=True)
    rundir.mkdir()
    # db_text: first line is the column header; version table rows are "table:version"
    # (subscriber is version 7 in 5.6, checked by auth_db at startup).
    (dbdir / "version").write_text("table_name(string) table_version(int) \nsubscriber:7\n")
    rows = [
        "id(int,auto) username(string) domain(string) password(string,null) ha1(string) "
        "ha1b(string,null) aor_user(string) aor_domain(string) "
    ]
    for i, u in enumerate(users.values(), start=1):
        fields = [
            str(i),
            u.auth_username,
            u.realm,
            "",
            ha1(algorithm, u.auth_username, u.realm, u.password),
            "",
            u.user,
            u.domain,
        ]
        rows.append(":".join(_dbtext_escape(f) for f in fields))
    (dbdir / "subscriber").write_text("\n".join(rows) + "\n")

    port = free_udp_port()
    rpc_port = free_udp_port()
    cfg = workdir / "kamailio.cfg"
    text = KAMAILIO_CFG.format(
        host=HOST,
        port=port,
        rpc_port=rpc_port,
        domain=domain,
        realm=realm,
        algorithm=algorithm,
        secret=secrets.token_hex(16),
        dbdir=dbdir,
        modules=KAMAILIO_MODULES,
    )
    ws_port = 0
    if websocket:
        ws_port = free_udp_port()
        text = text.replace("disable_tcp=yes\n", KAMAILIO_WS_GLOBALS.format(host=HOST, ws_port=ws_port), 1)
        text = text.replace('loadmodule "auth_db.so"\n', 'loadmodule "auth_db.so"\n' + KAMAILIO_WS_MODULES, 1)
        text += KAMAILIO_WS_ROUTE
    cfg.write_text(text)
    argv = [
        binary,
        "-DD",
        "-E",
        "-f",
        str(cfg),
        "-Y",
        str(rundir),
        "-P",
        str(rundir / "kamailio.pid"),
        "-m",
        "32",
        "-M",
        "4",
        "-w",
        str(rundir),
    ]
    proc = ManagedProcess(
        f"kamailio ({algorithm})", argv, workdir / "kamailio.log", lifetime=lifetime
    )
    proc.start()
    kam = Kamailio(HOST, port, rpc_port, domain, realm, algorithm, users, proc, cfg, ws_port)

    def ready() -> bool:
        if sip_options_ping(HOST, port) is None:
            return False
        try:
            kam.rpc("core.version", timeout=0.2)
        except PeerError:
            return False
        return True

    proc.wait_ready(ready, timeout=ready_timeout)
    return kam


# ---------------------------------------------------------------------------------------------
# SIPp


@dataclass
class Sipp:
    """A SIPp run (see :func:`start_sipp`); ``wait()`` returns its exit status."""

    scenario: str
    port: int
    process: ManagedProcess
    workdir: Path

    @property
    def uri(self) -> str:
        return f"sip:{HOST}:{self.port}"

    def wait(self, timeout: float = 20.0) -> int:
        return self.process.wait(timeout)

    def messages(self) -> str:
        """The -trace_msg log: every message sent and received."""
        return _read(self.workdir / "messages.log")

    def errors(self) -> str:
        """The -trace_err log: unexpected messages and failed checks."""
        return _read(self.workdir / "errors.log")

    def logs(self) -> str:
        """The -trace_logs log: the scenario's <log> actions."""
        return _read(self.workdir / "logs.log")

    def received(self, method: str) -> int:
        """How many ``method`` requests SIPp received (from the message trace)."""
        return len(
            re.findall(rf"message received \[\d+\] bytes :\s*\n\s*{method} ", self.messages())
        )

    def report(self) -> str:
        """Everything useful for an assertion message."""
        return (
            f"sipp {self.scenario} rc={self.process.returncode}\n--- output\n{self.process.tail(40)}"
            f"\n--- errors\n{self.errors()[-4000:]}\n--- logs\n{self.logs()[-2000:]}"
            f"\n--- messages\n{self.messages()[-6000:]}"
        )


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def start_sipp(
    tmp_path: Path,
    scenario: str,
    *,
    remote: tuple[str, int] | None = None,
    port: int | None = None,
    auth: tuple[str, str] | None = None,
    calls: int = 1,
    timeout: float = 20.0,
    extra: Sequence[str] = (),
    name: str | None = None,
) -> Sipp:
    """Start SIPp with ``scenarios/<scenario>`` on ``127.0.0.1:port`` (free port if None).

    Without ``remote`` SIPp is a server (UAS) waiting for ``calls`` calls; with it SIPp is a
    client towards ``remote``.  ``-timeout`` bounds the run (``-timeout_error`` makes reaching
    it a failure); traces go to ``messages.log``, ``errors.log``, ``logs.log`` in a fresh
    directory under ``tmp_path``.  A server is returned once its UDP port is bound.

    Args:
        auth: (username, password) for ``-au``/``-ap``: the credentials a UAS scenario's
            ``verifyauth`` checks, or a UAC scenario's ``[authentication]`` uses.

    Raises:
        PeerError: SIPp exited or did not bind its port within 5 s.
    """
    binary = require_program("sipp", "sip-tester")
    path = SCENARIOS / scenario
    if not path.is_file():
        raise FileNotFoundError(path)
    port = port or free_udp_port()
    label = name or path.stem
    workdir = tmp_path / f"sipp-{label}-{port}"
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [
        binary,
        "-sf",
        str(path),
        "-i",
        HOST,
        "-p",
        str(port),
        "-m",
        str(calls),
        "-timeout",
        f"{int(timeout)}s",
        "-timeout_error",
        "-nostdin",
        "-max_retrans",
        "5",
        "-mp",
        str(free_udp_port()),
        "-trace_msg",
        "-message_file",
        str(workdir / "messages.log"),
        "-trace_err",
        "-error_file",
        str(workdir / "errors.log"),
        "-trace_logs",
        "-log_file",
        str(workdir / "logs.log"),
        "-trace_screen",
        "-screen_file",
        str(workdir / "screen.log"),
    ]
    if auth is not None:
        # -au/-ap feed a UAC's [authentication]; a UAS's verifyauth reads [auth_user] and
        # [auth_pass] (SIPp 3.6 has no keyword for -au/-ap: "[authentication_...]" would be
        # parsed as the [authentication] keyword and abort the call).
        argv += [
            "-au",
            auth[0],
            "-ap",
            auth[1],
            "-key",
            "auth_user",
            auth[0],
            "-key",
            "auth_pass",
            auth[1],
        ]
    argv += list(extra)
    if remote is not None:
        argv.append(f"{remote[0]}:{remote[1]}")
    proc = ManagedProcess(
        f"sipp {label}", argv, workdir / "sipp.out", lifetime=timeout + 10, cwd=workdir
    )
    proc.start()
    sipp = Sipp(scenario, port, proc, workdir)
    if remote is None:
        proc.wait_ready(lambda: udp_port_bound(port), timeout=5.0)
    return sipp


def register_with_sipp(
    tmp_path: Path, kamailio: Kamailio, user: str, *, port: int | None = None, expires: int = 60
) -> int:
    """REGISTER ``user`` at ``kamailio`` with SIPp (``uac_register.xml``, digest MD5).

    Returns the local port the binding points to (``sip:user@127.0.0.1:port``), free again
    once this returns, so a SIPp UAS can answer there.

    Raises:
        PeerError: SIPp did not exit 0 (its report is in the message).
    """
    sip_user = kamailio.users[user]
    sipp = start_sipp(
        tmp_path,
        "uac_register.xml",
        remote=(kamailio.host, kamailio.port),
        port=port,
        auth=(sip_user.auth_username, sip_user.password),
        timeout=10,
        extra=[
            "-s",
            sip_user.user,
            "-key",
            "domain",
            sip_user.domain,
            "-key",
            "expires",
            str(expires),
            "-auth_uri",
            sip_user.domain,
        ],
        name=f"register-{user}",
    )
    rc = sipp.wait(15)
    if rc != 0:
        raise PeerError(f"SIPp could not register {user}:\n{sipp.report()}")
    return sipp.port


def start_registered_callee(
    tmp_path: Path, kamailio: Kamailio, user: str = "bob", *, timeout: float = 20.0,
    scenario: str = "uas_answer.xml",
) -> Sipp:
    """A SIPp callee registered at ``kamailio`` as ``user`` and answering one call there.

    SIPp 3.6 cannot both send a REGISTER (client mode) and accept a new INVITE dialog
    (server mode) in one scenario, so two runs share the port: ``uac_register.xml`` binds
    ``sip:user@127.0.0.1:PORT``, then ``uas_answer.xml`` answers on that same port
    (180, 200 + SDP echoing Record-Route, ACK, BYE/200).  SIPp 3.6 computes MD5 digests only,
    so against a SHA-256 Kamailio the binding for the SIPp port is made by :class:`MiniUAC`.
    ``scenario`` replaces ``uas_answer.xml`` (``uas_transferee.xml``: a callee that is transferred).
    """
    sip_user = kamailio.users[user]
    if kamailio.algorithm == "MD5":
        port = register_with_sipp(tmp_path, kamailio, user)
    else:
        port = free_udp_port()
        with MiniUAC(
            (kamailio.host, kamailio.port), user=sip_user.user, domain=sip_user.domain
        ) as uac:
            resp = uac.register(
                auth_username=sip_user.auth_username,
                password=sip_user.password,
                contact_port=port,
            )
        if resp.status != 200:
            raise PeerError(f"could not register {user} at Kamailio: {resp.status} {resp.reason}")
    return start_sipp(
        tmp_path,
        scenario,
        port=port,
        timeout=timeout,
        extra=["-s", sip_user.user],
        name=f"callee-{user}",
    )
