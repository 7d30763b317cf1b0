"""The claims of docs/scaling.md that can be checked on one machine, on 127.0.0.1.

1. Several processes (here: sockets) share one UDP port with SO_REUSEPORT, and
   the kernel spreads datagrams over them by the sender's address, so one
   sender's datagrams always reach the same socket.
2. Twisted takes such a pre-bound socket with ``reactor.adoptDatagramPort``.
3. DigestServer instances that share the nonce secret verify each other's
   nonces (the nonce is a stateless HMAC of timestamp and realm); with another
   secret they do not.
"""

from __future__ import annotations

import hashlib
import socket
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
