"""The claims of docs/scaling.md that can be checked on one machine, on 127.0.0.1.

1. Several processes (here: sockets) share one UDP port with SO_REUSEPORT, and
   the kernel spreads datagrams over them by the sender's address, so one
   sender's datagrams always reach the same socket.
2. Twisted takes such a pre-bound socket with ``reactor.adoptDatagramPort``.
3. DigestServer instances that share the nonce secret verify each other's
   nonces (the nonce is a stateless HMAC of timestamp and realm); with another
   secret they do not.
4. The Kamailio dispatcher configuration of the document, run as written in
   front of two ``txsipua answer`` instances sharing the secret (interop).
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.internet.protocol import DatagramProtocol

from txsipua.auth.server import DigestCredentials, DigestServer, NeedChallenge
from txsipua.sip.message import parse_message

HOST = "127.0.0.1"
SENDERS = 64

pytestmark = pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"),
                                reason="no SO_REUSEPORT on this platform")


def reuseport_socket(port: int = 0) -> socket.socket:
    """A non-blocking UDP socket bound to HOST:port with SO_REUSEPORT set."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind((HOST, port))
    s.setblocking(False)
    return s


def test_reuseport_spreads_senders_and_keeps_each_on_one_socket() -> None:
    """64 senders, 3 datagrams each: every datagram arrives once, each sender's on one socket."""
    a = reuseport_socket()
    port = a.getsockname()[1]
    b = reuseport_socket(port)
    senders = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(SENDERS)]
    try:
        for rnd in range(3):
            for i, s in enumerate(senders):
                s.sendto(f"{i}:{rnd}".encode(), (HOST, port))
        got: dict[str, set[int]] = {}
        total = 0
        for name, sock in (("a", a), ("b", b)):
            while True:  # loopback delivers within sendto(): drain until empty
                try:
                    data = sock.recv(100)
                except BlockingIOError:
                    break
                total += 1
                got.setdefault(name, set()).add(int(data.split(b":")[0]))
        assert total == 3 * SENDERS
        # both sockets got traffic (64 flows all hashed to one socket: p = 2**-63)
        assert set(got) == {"a", "b"}
        # a sender's datagrams never split between the sockets
        assert got["a"].isdisjoint(got["b"])
        assert got["a"] | got["b"] == set(range(SENDERS))
    finally:
        for s in (a, b, *senders):
            s.close()


class Collect(DatagramProtocol):
    """Counts datagrams; fires ``done`` once ``want`` have arrived across all instances."""

    def __init__(self, box: list[bytes], want: int, done: defer.Deferred[None]) -> None:
        self.box, self.want, self.done = box, want, done
        self.n = 0

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:  # noqa: N802
        self.n += 1
        self.box.append(datagram)
        if len(self.box) == self.want and not self.done.called:
            self.done.callback(None)


@pytest_twisted.inlineCallbacks
def test_twisted_adopts_prebound_reuseport_sockets() -> Any:
    """Two protocols adopted on one SO_REUSEPORT port receive every datagram between them."""
    from twisted.internet import reactor

    first = reuseport_socket()
    port = first.getsockname()[1]
    second = reuseport_socket(port)
    box: list[bytes] = []
    done: defer.Deferred[None] = defer.Deferred()
    protos = [Collect(box, SENDERS, done) for _ in range(2)]
    ports = [reactor.adoptDatagramPort(s.fileno(), socket.AF_INET, p, maxPacketSize=65535)
             for s, p in zip((first, second), protos, strict=True)]
    first.close()  # the reactor holds its own duplicate of each descriptor
    second.close()
    senders = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(SENDERS)]
    try:
        for i, s in enumerate(senders):
            # a few datagrams above Twisted's default maxPacketSize of 8192 bytes
            pad = 9000 if i % 16 == 0 else 100
            s.sendto(b"x" * pad + str(i).encode(), (HOST, port))
        timeout = reactor.callLater(
            5, lambda: done.errback(TimeoutError(f"{len(box)} arrived, {[p.n for p in protos]}")))
        yield done
        timeout.cancel()
        assert sorted(int(d.lstrip(b"x")) for d in box) == list(range(SENDERS))
        assert sum(len(d) > 8192 for d in box) == SENDERS // 16
        assert all(p.n > 0 for p in protos)
    finally:
        for s in senders:
            s.close()
        for p in ports:
            yield p.stopListening()


def _request(server: DigestServer, now: float, password: str = "pw") -> Any:
    realm = server.realm
    nonce = server.make_nonce(now)
    uri = "sip:bob@198.51.100.7"
    ha1 = hashlib.md5(f"alice:{realm}:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"INVITE:{uri}".encode()).hexdigest()
    resp = hashlib.md5(f"{ha1}:{nonce}:00000001:c0ffee:auth:{ha2}".encode()).hexdigest()
    return parse_message((
        f"INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.4:5060;branch=z9hG4bKs1\r\n"
        f"From: <sip:alice@{realm}>;tag=1\r\nTo: <{uri}>\r\nCall-ID: scale-1\r\n"
        f"CSeq: 2 INVITE\r\nAuthorization: Digest username=\"alice\", realm=\"{realm}\", "
        f"nonce=\"{nonce}\", uri=\"{uri}\", response=\"{resp}\", algorithm=MD5, qop=auth, "
        f"nc=00000001, cnonce=\"c0ffee\"\r\nContent-Length: 0\r\n\r\n").encode())


def test_instances_sharing_the_secret_verify_each_others_nonces() -> None:
    """A nonce issued by instance A is accepted by instance B (same secret), not by C."""
    secret = b"shared-nonce-secret-of-the-cluster"
    a = DigestServer("pbx.example.net", secret)
    b = DigestServer("pbx.example.net", secret)
    c = DigestServer("pbx.example.net", b"another-secret-entirely-000000")
    ha1 = hashlib.md5(b"alice:pbx.example.net:pw").hexdigest()
    req = _request(a, now=1000.0)
    creds = b.inspect(req, 1001.0)
    assert isinstance(creds, DigestCredentials) and creds.check_ha1(ha1)
    assert isinstance(c.inspect(req, 1001.0), NeedChallenge)


def test_replay_is_refused_by_the_instance_that_saw_the_credentials() -> None:
    """Replay state is per instance: the same Authorization twice at B is refused the 2nd time."""
    secret = b"shared-nonce-secret-of-the-cluster"
    a = DigestServer("pbx.example.net", secret)
    b = DigestServer("pbx.example.net", secret)
    ha1 = hashlib.md5(b"alice:pbx.example.net:pw").hexdigest()
    req = _request(a, now=1000.0)
    first = b.inspect(req, 1001.0)
    assert isinstance(first, DigestCredentials) and first.check_ha1(ha1)
    again = b.inspect(req, 1002.0)
    assert isinstance(again, DigestCredentials) and not again.check_ha1(ha1)
    assert again.failure == "replay"


@pytest.mark.parametrize("lifetime", [300.0])
def test_an_expired_shared_nonce_is_stale_everywhere(lifetime: float) -> None:
    """Past nonce_lifetime any instance answers stale=true, so clients retry silently."""
    secret = b"shared-nonce-secret-of-the-cluster"
    a = DigestServer("pbx.example.net", secret, nonce_lifetime=lifetime)
    b = DigestServer("pbx.example.net", secret, nonce_lifetime=lifetime)
    out = b.inspect(_request(a, now=1000.0), 1000.0 + lifetime + 1)
    assert isinstance(out, NeedChallenge) and out.stale


# --------------------------------------------------------------------------
# docs/scaling.md's Kamailio dispatcher configuration, for real, on 127.0.0.1

ROOT = Path(__file__).resolve().parent.parent
MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules/"


def _free_udp_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((HOST, 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _bound(port: int) -> bool:
    with open("/proc/net/udp") as fh:
        return any(int(line.split()[1].rsplit(":", 1)[1], 16) == port for line in list(fh)[1:])


def _wait(pred: Any, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _documented_kamailio_cfg(list_file: Path, port: int) -> str:
    """The kamailio.cfg block of docs/scaling.md, with a local listen address and list file."""
    doc = (ROOT / "docs" / "scaling.md").read_text()
    block = re.search(r"```\n(loadmodule.*?)```", doc, re.S)
    assert block is not None, "docs/scaling.md lost its kamailio.cfg block"
    return (f'#!KAMAILIO\nmpath="{MODULES}"\nlisten=udp:{HOST}:{port}\nchildren=2\n'
            + block.group(1).replace("/etc/kamailio/dispatcher.list", str(list_file)))


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("kamailio") is None or shutil.which("sipp") is None,
                    reason="needs Debian's kamailio and sip-tester (SIPp)")
def test_documented_dispatcher_config_spreads_calls_over_instances_sharing_a_secret(
        tmp_path: Path) -> None:
    """SIPp -> Kamailio (docs/scaling.md config) -> two txsipua instances, one nonce secret.

    The first INVITE of a call goes round robin and is challenged by either
    instance; the retried one is hashed by auth username (dispatcher algorithm
    5), so with one user every authenticated INVITE reaches the same instance,
    which therefore verifies the nonces the other one issued.  Every call must
    complete; both instances must have challenged, one answered them all.
    """
    kport, a1, a2, sport = _free_udp_ports(4)
    realm = "bench.example.net"
    users = tmp_path / "users.htdigest"
    users.write_text(f"load:{realm}:{hashlib.md5(f'load:{realm}:bench-pw'.encode()).hexdigest()}\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs: list[subprocess.Popen[Any]] = []
    logs = []
    try:
        for port in (a1, a2):
            log = tmp_path / f"ua{port}.log"
            logs.append(log)
            with open(log, "w") as fh:
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "txsipua.cli.main", "answer", "--bind",
                     f"{HOST}:{port}", "--realm", realm, "--users", str(users),
                     "--secret", "0123456789abcdef-shared-by-the-cluster", "--no-media", "-vv"],
                    stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env))
        for log in logs:
            _wait(lambda log=log: "ready" in log.read_text(), f"{log.name} ready")
        dlist = tmp_path / "dispatcher.list"
        dlist.write_text(f"1 sip:{HOST}:{a1} 0 0 duid=ua1\n1 sip:{HOST}:{a2} 0 0 duid=ua2\n")
        cfg = tmp_path / "kamailio.cfg"
        cfg.write_text(_documented_kamailio_cfg(dlist, kport))
        run = tmp_path / "run"
        run.mkdir()
        with open(tmp_path / "kamailio.log", "w") as fh:
            procs.append(subprocess.Popen(
                ["kamailio", "-DD", "-E", "-f", str(cfg), "-Y", str(run), "-P",
                 str(run / "kamailio.pid"), "-m", "32", "-M", "4", "-w", str(run)],
                stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        _wait(lambda: _bound(kport), "kamailio listening")
        stat = tmp_path / "uac.csv"
        calls = 40
        sipp = subprocess.run(
            ["sipp", f"{HOST}:{kport}", "-sf", str(ROOT / "benchmarks/sipp/uac_auth_proxied.xml"),
             "-i", HOST, "-p", str(sport), "-m", str(calls), "-r", "40",
             "-recv_timeout", "5000", "-timeout", "30s", "-nostdin", "-trace_stat", "-stf",
             str(stat)], capture_output=True, timeout=60, cwd=tmp_path)
        rows = [r for r in csv.reader(stat.read_text().splitlines(), delimiter=";") if r]
        last = dict(zip(rows[0], rows[-1], strict=False))
        assert (int(last["SuccessfulCall(C)"]), int(last["FailedCall(C)"])) == (calls, 0), \
            sipp.stdout[-2000:]
    finally:
        for p in procs:
            _stop(p)
    answered = [int(re.search(r"answered=(\d+)", log.read_text()).group(1))  # type: ignore[union-attr]
                for log in logs]
    assert sorted(answered) == [0, calls]
    challenged = [len(re.findall(r"^SIP/2\.0 401 ", log.read_text(), re.M)) for log in logs]
    assert sum(challenged) >= calls and all(n > 0 for n in challenged), challenged
    assert all("open_calls=0" in log.read_text() for log in logs)
