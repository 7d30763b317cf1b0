"""CPU per call of ``txsipua answer``'s user agent, in process, with no socket and no reactor.

SIPp-shaped calls (the messages of ``benchmarks/sipp/uac.xml`` and
``uac_auth.xml``: a fresh Call-ID, tags and branches per call, the digest
response computed from the 401) are fed to the ``datagramReceived`` of a
``UserAgent`` built by the code of ``txsipua answer --no-media`` (``--realm``
and ``--users`` for digest calls).  A socket stub
collects what it sends; a ``task.Clock`` advances ``1/rate`` seconds per call,
so transactions live and expire as they do under load.  The garbage collector
is tuned as ``answer`` tunes it.  The figure is CPU time (``time.process_time``)
per call after a warm-up: the live figure (``benchmarks/callrate.py``) adds the
kernel's sendto/recvfrom and Twisted's reactor on top.

Usage::

    python3 benchmarks/inproc_callrate.py [--calls 20000] [--rate 2000] [--plain | --digest] [--rounds N] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import pstats
import re
import sys
import time
from typing import Any

from twisted.internet import task
from twisted.internet.address import IPv4Address

from txsipua.cli.common import tune_gc_for_server
from txsipua.ua.useragent import UserAgent

UAS = ("127.0.0.1", 5080)
UAC = ("127.0.0.1", 5061)
REALM = "bench.example.net"
USER, PASSWORD = "load", "bench-pw"

SDP = (b"v=0\r\no=load 4711 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       b"m=audio 6000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n")


class _Socket:
    """The part of a socket the driver's fast path uses: ``sendto`` records."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def sendto(self, data: bytes, addr: Any) -> int:
        self.sent.append(data)
        return len(data)

    def setsockopt(self, level: int, option: int, value: int) -> None:
        """Buffer sizes are the kernel's business: nothing to set here."""


class _Port:
    def __init__(self, protocol: Any, host: str, port: int) -> None:
        self.socket = _Socket()
        self.protocol = protocol
        self._host = IPv4Address("UDP", host, port)

    def write(self, data: bytes, addr: Any) -> None:
        self.socket.sendto(data, addr)

    def getHost(self) -> IPv4Address:  # noqa: N802 - Twisted's name
        return self._host

    def stopListening(self) -> None:  # noqa: N802 - Twisted's name
        self.protocol.doStop()


class _Reactor(task.Clock):
    """A ``task.Clock`` with ``listenUDP`` returning a socket stub."""

    port: _Port

    def addSystemEventTrigger(self, phase: str, event: str, f: Any, *args: Any) -> None:  # noqa: N802
        """Nothing shuts down here: shutdown triggers are not kept."""

    def listenUDP(self, port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192) -> _Port:  # noqa: N802,N803
        self.port = _Port(protocol, interface, port)
        protocol.makeConnection(self.port)
        return self.port


_TAG = re.compile(rb"\r\nTo:[^\r]*;tag=([^\r;>]+)", re.I)
_CHALLENGE = re.compile(rb'WWW-Authenticate: Digest ([^\r]+)', re.I)
_PARAM = re.compile(r'(\w+)="?([^",]*)"?')


def _invite(n: int, cseq: int, branch: str, auth: str = "") -> bytes:
    uri = f"sip:{UAS[0]}:{UAS[1]}"
    head = (f"INVITE {uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {UAC[0]}:{UAC[1]};branch={branch}\r\n"
            f'From: "load" <sip:load@{UAC[0]}:{UAC[1]}>;tag=L1x{n}\r\n'
            f"To: <sip:bot@{UAS[0]}:{UAS[1]}>\r\n"
            f"Call-ID: {n}-1@{UAC[0]}\r\n"
            f"CSeq: {cseq} INVITE\r\n"
            f"Contact: <sip:load@{UAC[0]}:{UAC[1]}>\r\n"
            f"{auth}"
            f"Max-Forwards: 70\r\nSubject: bench\r\nContent-Type: application/sdp\r\n"
            f"Content-Length: {len(SDP)}\r\n\r\n")
    return head.encode() + SDP


def _in_dialog(method: str, n: int, cseq: int, branch: str, tag: str, cseq_method: str | None = None) -> bytes:
    return (f"{method} sip:{UAS[0]}:{UAS[1]} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {UAC[0]}:{UAC[1]};branch={branch}\r\n"
            f'From: "load" <sip:load@{UAC[0]}:{UAC[1]}>;tag=L1x{n}\r\n'
            f"To: <sip:bot@{UAS[0]}:{UAS[1]}>;tag={tag}\r\n"
            f"Call-ID: {n}-1@{UAC[0]}\r\n"
            f"CSeq: {cseq} {cseq_method or method}\r\n"
            f"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()


def _authorization(challenge: bytes, n: int) -> str:
    params = dict(_PARAM.findall(challenge.decode()))
    uri = f"sip:{UAS[0]}:{UAS[1]}"
    ha1 = hashlib.md5(f"{USER}:{REALM}:{PASSWORD}".encode()).hexdigest()
    ha2 = hashlib.md5(f"INVITE:{uri}".encode()).hexdigest()
    cnonce = f"{n:08x}"
    response = hashlib.md5(f"{ha1}:{params['nonce']}:00000001:{cnonce}:auth:{ha2}".encode()).hexdigest()
    opaque = f', opaque="{params["opaque"]}"' if "opaque" in params else ""
    return (f'Authorization: Digest username="{USER}", realm="{REALM}", nonce="{params["nonce"]}", '
            f'uri="{uri}", response="{response}", algorithm=MD5, cnonce="{cnonce}", qop=auth, '
            f"nc=00000001{opaque}\r\n")


def build(digest: bool) -> tuple[_Reactor, UserAgent]:
    """The user agent ``txsipua answer --no-media [--realm --users]`` builds, through the CLI's own code.

    The options are parsed by the ``txsipua`` parser and the UA built and
    started by :func:`txsipua.cli.service.answer_service`, as the live
    benchmark's ``answer`` process does: the htdigest file store, the default
    password-guessing limiter, the registrar hook and the service's answering
    callback are all on the measured path.
    """
    import os
    import tempfile

    from txsipua.cli.main import build_parser
    from txsipua.cli.service import answer_service

    reactor = _Reactor()
    reactor.advance(1_000_000.0)
    argv = ["answer", "--bind", f"{UAS[0]}:{UAS[1]}", "--no-media"]
    if digest:
        ha1 = hashlib.md5(f"{USER}:{REALM}:{PASSWORD}".encode()).hexdigest()
        fd, users = tempfile.mkstemp(prefix="txsipua-bench-", suffix=".htdigest")
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{USER}:{REALM}:{ha1}\n")
        argv += ["--realm", REALM, "--users", users, "--secret", "k" * 32]
    args = build_parser().parse_args(argv)
    service = answer_service(reactor, args)
    service.startService()
    return reactor, service.ua


def one_call(reactor: _Reactor, ua: UserAgent, n: int, digest: bool, step: float) -> None:
    """Play one SIPp call into ``ua``; raise AssertionError if it goes wrong."""
    feed = ua.protocol.datagramReceived
    sent = reactor.port.socket.sent
    sent.clear()
    cseq = 1
    auth = ""
    if digest:
        feed(_invite(n, 1, f"z9hG4bK-{n}-a"), UAC)
        challenge = _CHALLENGE.search(sent[-1])
        assert challenge is not None, sent[-1][:60]
        tag = _TAG.search(sent[-1])
        assert tag is not None
        feed(_in_dialog("ACK", n, 1, f"z9hG4bK-{n}-a", tag.group(1).decode()), UAC)
        auth = _authorization(challenge.group(1), n)
        cseq = 2
        sent.clear()
    feed(_invite(n, cseq, f"z9hG4bK-{n}-b", auth), UAC)
    final = sent[-1]
    assert final.startswith(b"SIP/2.0 200"), final[:60]
    tag = _TAG.search(final)
    assert tag is not None
    t = tag.group(1).decode()
    feed(_in_dialog("ACK", n, cseq, f"z9hG4bK-{n}-c", t), UAC)
    reactor.advance(step / 2)
    sent.clear()
    feed(_in_dialog("BYE", n, cseq + 1, f"z9hG4bK-{n}-d", t), UAC)
    assert sent and sent[-1].startswith(b"SIP/2.0 200"), sent[-1][:60] if sent else b"nothing sent"
    reactor.advance(step / 2)


def measure(digest: bool, calls: int, warmup: int, rate: float, rounds: int = 1,
            profile: bool = False) -> list[dict[str, float]]:
    """Run ``rounds`` rounds of ``calls`` calls after ``warmup``; one result dict per round."""
    reactor, ua = build(digest)
    step = 1.0 / rate
    for n in range(warmup):
        one_call(reactor, ua, n, digest, step)
    tune_gc_for_server()
    n0 = warmup
    results = []
    for _ in range(rounds):
        profiler = cProfile.Profile() if profile else None
        collections = [0.0]
        started: list[float] = []

        def gc_timer(phase: str, info: dict[str, Any],
                     started: list[float] = started, collections: list[float] = collections) -> None:
            if phase == "start":
                started.append(time.perf_counter())
            elif started:
                collections[0] += time.perf_counter() - started.pop()

        gc.callbacks.append(gc_timer)
        if profiler:
            profiler.enable()
        t0 = time.process_time()
        for n in range(n0, n0 + calls):
            one_call(reactor, ua, n, digest, step)
        cpu = time.process_time() - t0
        if profiler:
            profiler.disable()
        gc.callbacks.remove(gc_timer)
        n0 += calls
        result = {"us_per_call": cpu / calls * 1e6, "gc_us_per_call": collections[0] / calls * 1e6,
                  "calls": calls}
        results.append(result)
        print(f"{'digest' if digest else 'plain'}: {result['us_per_call']:.1f} us CPU per call "
              f"(of which GC {result['gc_us_per_call']:.1f} us) over {calls} calls", flush=True)
        if profiler:
            pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(40)
    ua.stop()
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--calls", type=int, default=20_000)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--rate", type=float, default=2000.0, help="calls/s of simulated time (transaction lifetimes)")
    ap.add_argument("--digest", action="store_true", help="only calls with digest on every INVITE (uac_auth.xml)")
    ap.add_argument("--plain", action="store_true", help="only plain calls (uac.xml)")
    ap.add_argument("--profile", action="store_true", help="print a cProfile of the measured calls")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="200 calls of each kind (a smoke run)")
    ap.add_argument("--json", default="", help="write the results here")
    a = ap.parse_args(argv)
    if a.quick:
        a.calls, a.warmup = 200, 50
    kinds = [False, True]
    if a.digest != a.plain:
        kinds = [a.digest]
    report: dict[str, Any] = {}
    for digest in kinds:
        results = measure(digest, a.calls, a.warmup, a.rate, a.rounds, a.profile)
        figures = sorted(r["us_per_call"] for r in results)
        report["digest" if digest else "plain"] = {
            "rounds": results, "best_us": figures[0], "median_us": figures[len(figures) // 2]}
        if a.rounds > 1:
            print(f"best {figures[0]:.1f} us, median {figures[len(figures) // 2]:.1f} us")
    if a.json:
        import json

        with open(a.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
