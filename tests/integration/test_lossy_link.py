"""The CLI on a real lossy link: 10 % and 30 % loss both ways between two network namespaces.

The test makes two network namespaces joined by a veth pair, 198.51.100.1/24
and 198.51.100.2/24 (documentation addresses, RFC 5737, that exist only inside
those namespaces), and loses datagrams at random in the kernel on both veth
ends:

* with ``tc qdisc add dev VETH root netem loss N%`` when the kernel has netem;
* else (this CI's VM kernel has no ``sch_netem``) with a classic-BPF
  ``tc filter ... bpf da`` on a ``clsact`` qdisc that drops an IPv4 packet
  when the kernel's per-packet random number falls below N % of 2^32 (ARP
  passes, as it does not carry SIP).

``txsipua answer`` (digest realm voip.example.net) runs in one namespace;
``txsipua register`` then ``txsipua call`` (REGISTER 401, INVITE 401, ACK,
BYE) run in the other with ``ip netns exec``; both must succeed, and the
answerer, stopped with SIGTERM, must report no open call.  Everything is
bounded in time and torn down in a finalizer (the namespaces, and with them the
veth pair, are deleted; the processes are killed by pid).  Without root
(CAP_NET_ADMIN), ``ip`` or ``tc``, or when the kernel refuses namespaces or
both loss methods, the test is skipped with the reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVER, CLIENT = "198.51.100.1", "198.51.100.2"
REALM = "voip.example.net"
DEADLINE = 90.0  # seconds for any one command, even at 30 % loss


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=20)


def _bpf_loss(fraction: float) -> str:
    """Classic BPF (tc ``bytecode`` syntax): drop an IPv4 packet with probability ``fraction``.

    0: A = skb protocol (SKF_AD_PROTOCOL); 1: not 0x0800 -> 4;
    2: A = random u32 (SKF_AD_RANDOM); 3: A >= threshold -> 4 else 5;
    4: return TC_ACT_OK (0); 5: return TC_ACT_SHOT (2).
    """
    threshold = int(fraction * 2**32)
    return (f"6,32 0 0 {2**32 - 0x1000},21 0 2 2048,32 0 0 {2**32 - 0x1000 + 56},"
            f"53 0 1 {threshold},6 0 0 0,6 0 0 2,")


class LossyLink:
    """Two namespaces and a veth pair with random loss on both ends."""

    def __init__(self, loss: float) -> None:
        tag = f"{os.getpid() % 100000}{int(loss * 100)}"
        self.ns = (f"txsA{tag}", f"txsB{tag}")
        self.method = ""
        self.procs: list[subprocess.Popen[bytes]] = []
        self.loss = loss

    def setup(self) -> None:
        a, b = self.ns
        for ns in self.ns:
            self.must("ip", "netns", "add", ns)
        self.must("ip", "link", "add", "txs-va", "netns", a, "type", "veth", "peer", "name", "txs-vb",
                  "netns", b)
        for ns, dev, addr in ((a, "txs-va", SERVER), (b, "txs-vb", CLIENT)):
            self.must("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            self.must("ip", "-n", ns, "link", "set", dev, "up")
            self.must("ip", "-n", ns, "link", "set", "lo", "up")
        percent = f"{self.loss * 100:g}%"
        netem = [_run("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "netem",
                      "loss", percent) for ns, dev in ((a, "txs-va"), (b, "txs-vb"))]
        if all(r.returncode == 0 for r in netem):
            self.method = f"netem loss {percent}"
            return
        bpf = []
        for ns, dev in ((a, "txs-va"), (b, "txs-vb")):
            _run("ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", dev, "root")
            bpf.append(_run("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "clsact"))
            bpf.append(_run("ip", "netns", "exec", ns, "tc", "filter", "add", "dev", dev, "egress",
                            "bpf", "da", "bytecode", _bpf_loss(self.loss)))
        if all(r.returncode == 0 for r in bpf):
            self.method = f"cls_bpf random drop {percent} (no netem: {netem[0].stderr.strip()})"
            return
        raise _Refused("the kernel has neither netem nor cls_bpf: "
                       + "; ".join(r.stderr.strip() for r in netem + bpf if r.returncode))

    def must(self, *args: str) -> None:
        r = _run(*args)
        if r.returncode != 0:
            raise _Refused(f"{' '.join(args)}: {r.stderr.strip()}")

    def start(self, ns: str, *args: str, out: Path) -> subprocess.Popen[bytes]:
        """``txsipua ARGS`` inside namespace ``ns``; stdout and stderr to ``out``(.err)."""
        env = dict(os.environ, PYTHONUNBUFFERED="1",
                   PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
        with out.open("wb") as so, out.with_suffix(".err").open("wb") as se:
            p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "txsipua.cli.main",
                                  *args], stdout=so, stderr=se, stdin=subprocess.DEVNULL, env=env,
                                 cwd=REPO)
        self.procs.append(p)
        return p

    def drops(self) -> list[tuple[int, int]]:
        """``(packets, dropped)`` counted by the qdiscs of each veth end (server end first)."""
        counts = []
        for ns, dev in zip(self.ns, ("txs-va", "txs-vb"), strict=True):
            r = _run("ip", "netns", "exec", ns, "tc", "-s", "-j", "qdisc", "show", "dev", dev)
            stats = json.loads(r.stdout or "[]")
            counts.append((sum(q.get("packets", 0) for q in stats),
                           sum(q.get("drops", 0) for q in stats)))
        return counts

    def teardown(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        for ns in self.ns:
            _run("ip", "netns", "del", ns)


class _Refused(Exception):
    pass


@pytest.fixture(params=[0.1, 0.3], ids=["loss10", "loss30"])
def link(request: pytest.FixtureRequest) -> Iterator[LossyLink]:
    """A lossy veth link between two fresh namespaces (skipped when the sandbox refuses)."""
    if os.geteuid() != 0:
        pytest.skip("needs root (CAP_NET_ADMIN) to create network namespaces")
    if shutil.which("ip") is None or shutil.which("tc") is None:
        pytest.skip("iproute2 (ip, tc) is not installed")
    lossy = LossyLink(request.param)
    try:
        try:
            lossy.setup()
        except _Refused as e:
            pytest.skip(f"cannot make a lossy link here: {e}")
        yield lossy
    finally:
        lossy.teardown()


def _wait_line(path: Path, prefix: str, proc: subprocess.Popen[bytes], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith(prefix):
                return line
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"no {prefix!r} line: {path.read_text()} {path.with_suffix('.err').read_text()}")


def _finish(proc: subprocess.Popen[bytes], out: Path) -> tuple[int, str, str]:
    try:
        code = proc.wait(DEADLINE)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"still running after {DEADLINE} s: {out.read_text()}") from None
    return code, out.read_text(errors="replace"), out.with_suffix(".err").read_text(errors="replace")


def test_register_and_authenticated_call_over_a_lossy_link(link: LossyLink, tmp_path: Path) -> None:
    """REGISTER (401) and a call (INVITE 401, ACK, BYE) complete at 10 % and 30 % loss both ways."""
    server_ns, client_ns = link.ns
    users = tmp_path / "users.htdigest"
    ha1 = hashlib.md5(f"alice-auth:{REALM}:alice-secret".encode()).hexdigest()
    users.write_text(f"alice-auth:{REALM}:{ha1}\n")
    account = tmp_path / "alice.toml"
    account.write_text(
        'user = "alice"\ndomain = "example.com"\n'
        f'registrar = "sip:{SERVER}:5060"\n'
        "[[credentials]]\n"
        f'realm = "{REALM}"\nusername = "alice-auth"\npassword = "alice-secret"\n'
        f'hosts = ["{SERVER}"]\n')

    answer_out = tmp_path / "answer.out"
    answerer = link.start(server_ns, "answer", "--bind", f"{SERVER}:5060", "--realm", REALM,
                          "--users", str(users), "--owner", "alice-auth=alice",
                          out=answer_out)
    _wait_line(answer_out, "ready ", answerer, 30)

    reg_out = tmp_path / "register.out"
    code, out, err = _finish(link.start(client_ns, "register", "--account", str(account),
                                        "--bind", f"{CLIENT}:0", out=reg_out), reg_out)
    assert code == 0, (link.method, out, err)
    assert "granted expiry" in out, (link.method, out, err)

    call_out = tmp_path / "call.out"
    code, out, err = _finish(link.start(client_ns, "call", f"sip:bob@{SERVER}:5060", "--account",
                                        str(account), "--duration", "1", "--bind", f"{CLIENT}:0",
                                        out=call_out), call_out)
    assert code == 0, (link.method, out, err)
    assert any(line.startswith("answered; Call-ID ") for line in out.splitlines()), (out, err)
    assert "hung up (hangup)" in out, (link.method, out, err)
    assert "Traceback" not in err, err

    answerer.send_signal(signal.SIGTERM)
    code, out, err = _finish(answerer, answer_out)
    assert code == 0, (out, err)
    assert "answered=1 open_calls=0" in out, (link.method, out, err)
    assert "Traceback" not in err, err
    # the loss is real, both ways: 300 more datagrams each way, dropped at about the rate asked
    before = link.drops()
    for ns, peer in ((server_ns, CLIENT), (client_ns, SERVER)):
        subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c",
                        "import socket, time\n"
                        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                        f"for i in range(300): s.sendto(b'x', ('{peer}', 9)); time.sleep(0.001)\n"],
                       check=True, timeout=30)
    for (sent0, dropped0), (sent1, dropped1) in zip(before, link.drops(), strict=True):
        sent, dropped = sent1 - sent0, dropped1 - dropped0
        assert sent >= 300 and link.loss / 2 <= dropped / sent <= link.loss * 2, (
            link.method, before, link.drops())
