"""txsipua behind a real NAT: Kamailio, MASQUERADE, keep-alives, a flushed NAT, a restarted registrar.

The test builds three network namespaces that exist only for it::

    client ns                       router ns                        server ns
    txsipua agents  192.0.2.2 ---- 192.0.2.1 | 198.51.100.1 ---- 198.51.100.2  Kamailio 5.6
    (0.0.0.0 bind)  (veth)          MASQUERADE --random  (veth)                 (registrar, STUN)

(RFC 5737 documentation ranges, existing only inside these namespaces).  The
router forwards and masquerades the client side with ``iptables -t nat ...
MASQUERADE --random`` (a new mapping gets a random port, so a flushed NAT
really moves the client), and its UDP conntrack timeouts are cut to
:data:`NAT_UDP_TIMEOUT` seconds (``sysctl net.netfilter.nf_conntrack_udp_timeout``
and ``..._stream`` inside the router namespace), so that a binding left
without keep-alives is forgotten within seconds instead of minutes: the
issue's "a call 2 minutes later" becomes "a call :data:`IDLE` seconds
later, more than twice the NAT timeout".

Over UDP Kamailio is a plain registrar (``save``/``lookup``, no nathelper
rewriting of Contacts), so a call reaches a client behind the NAT only if the
client put its public address in its Contact itself (RFC 3581
``received``/``rport``) and kept the NAT mapping open (keep-alives).  Over
TCP the source port is the connection's, so Kamailio's nathelper
(``fix_nated_register``, the ``received`` handling) binds the connection the
REGISTER came on, and calls come back over it.  It loads the ``stun`` module so
that STUN Binding requests to its SIP port are answered (RFC 5626 §4.4.2).

The agents are ``tests/integration/nat_agent.py`` processes started with
``ip netns exec``; they print one JSON line per registration state change.
Everything is bounded in time and torn down by the fixture's finalizer
(processes killed by pid, namespaces deleted).  Skipped, with the reason,
without root, ``ip``, ``iptables``, ``conntrack`` or Kamailio, or when the
kernel refuses namespaces, MASQUERADE or the conntrack sysctls.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
AGENT = Path(__file__).with_name("nat_agent.py")
CLIENT, ROUTER_IN, ROUTER_OUT, SERVER = "192.0.2.2", "192.0.2.1", "198.51.100.1", "198.51.100.2"
NAT_UDP_TIMEOUT = 3
"""Seconds the router keeps an idle UDP mapping (both conntrack UDP timeouts)."""
IDLE = 7.0
"""Seconds between registration and the call: more than twice :data:`NAT_UDP_TIMEOUT`."""
DOWN = {"udp": 4.0, "tcp": 2.0}
"""Seconds Kamailio stays stopped in the restart tests: over UDP longer than the agent's Timer F
(64 * T1 = 1.28 s) after the dead flow is found (~1.3 s), so that REGISTERs fail and back off."""
MODULES = Path("/usr/lib/x86_64-linux-gnu/kamailio/modules")
FIGURES = os.environ.get("TXSIPUA_NAT_FIGURES")
"""When set, a file the restart tests append their measured recovery times to (JSON lines)."""

KAMAILIO_CFG = """\
#!KAMAILIO
# Written by tests/integration/test_nat.py: a registrar, STUN on its port; nathelper only over TCP.
debug=2
log_stderror=yes
fork=yes
children=2
tcp_children=1
listen=udp:{server}:5060
listen=tcp:{server}:5060
auto_aliases=no
dns=no
rev_dns=no
use_dns_cache=off
disable_sctp=yes
mpath="{modules}/"
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
loadmodule "stun.so"
loadmodule "nathelper.so"
modparam("nathelper", "received_avp", "$avp(RECEIVED)")
modparam("registrar", "received_avp", "$avp(RECEIVED)")
modparam("usrloc", "db_mode", 0)
modparam("usrloc", "use_domain", 0)
modparam("registrar", "min_expires", 1)
modparam("tm", "fr_timer", 2000)
modparam("tm", "fr_inv_timer", 5000)

request_route {{
    xlog("L_INFO", "RX $rm $ru from $si:$sp\\n");
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (is_method("OPTIONS") && $rU==$null) {{
        sl_send_reply("200", "Ready");
        exit;
    }}
    if (has_totag()) {{
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
        if (proto == TCP) {{
            # over TCP the binding must use the client's connection (nathelper);
            # over UDP the client corrects its Contact itself (RFC 3581), nothing is rewritten
            fix_nated_register();
        }}
        # signal Outbound-style keep-alive support (RFC 5626 §4.4.1): only then does
        # the client take an unanswered STUN request or CRLF ping for a dead flow
        append_to_reply("Flow-Timer: 25\r\n");
        if (!save("location")) {{
            sl_reply_error();
        }}
        exit;
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

PROBE = """\
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.3)
s.sendto(b"OPTIONS sip:{server} SIP/2.0\\r\\nVia: SIP/2.0/UDP {server}:1;rport;branch=z9hG4bKprobe\\r\\n"
         b"From: <sip:p@{server}>;tag=1\\r\\nTo: <sip:{server}>\\r\\nCall-ID: probe\\r\\nCSeq: 1 OPTIONS\\r\\n"
         b"Max-Forwards: 5\\r\\nContent-Length: 0\\r\\n\\r\\n", ("{server}", 5060))
try:
    sys.exit(0 if s.recv(4000).startswith(b"SIP/2.0 200") else 1)
except OSError:
    sys.exit(1)
"""


class _Refused(Exception):
    pass


def _run(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)


class Agent:
    """A ``nat_agent.py`` process in a namespace; its JSON lines read as they come."""

    def __init__(self, proc: subprocess.Popen[bytes], out: Path) -> None:
        self.proc = proc
        self.out = out

    def events(self) -> list[dict[str, Any]]:
        lines = self.out.read_text(errors="replace").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def wait_for(self, predicate: Any, timeout: float, what: str, after: int = 0) -> dict[str, Any]:
        """The first event from index ``after`` on satisfying ``predicate``, waiting up to ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in self.events()[after:]:
                if predicate(e):
                    return e
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no {what} within {timeout} s: {self.events()} "
                             f"{self.out.with_suffix('.err').read_text(errors='replace')[-3000:]}")

    def registered(self, timeout: float, after: int = 0) -> dict[str, Any]:
        return self.wait_for(lambda e: e.get("state") == "registered", timeout, "registration", after)


class NatLab:
    """Three namespaces, a masquerading router, Kamailio in the server namespace."""

    def __init__(self, workdir: Path) -> None:
        tag = str(os.getpid() % 100000)
        self.client, self.router, self.server = f"txnC{tag}", f"txnR{tag}", f"txnS{tag}"
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []
        self.kamailio: subprocess.Popen[bytes] | None = None
        self.kamailio_runs = 0

    def must(self, *args: str) -> None:
        r = _run(*args)
        if r.returncode != 0:
            raise _Refused(f"{' '.join(args)}: {r.stderr.strip()}")

    def setup(self) -> None:
        c, r, s = self.client, self.router, self.server
        for ns in (c, r, s):
            self.must("ip", "netns", "add", ns)
        self.must("ip", "link", "add", "txn-c", "netns", c, "type", "veth", "peer", "name", "txn-rc", "netns", r)
        self.must("ip", "link", "add", "txn-s", "netns", s, "type", "veth", "peer", "name", "txn-rs", "netns", r)
        for ns, dev, addr in ((c, "txn-c", CLIENT), (r, "txn-rc", ROUTER_IN), (r, "txn-rs", ROUTER_OUT),
                              (s, "txn-s", SERVER)):
            self.must("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            self.must("ip", "-n", ns, "link", "set", dev, "up")
            self.must("ip", "-n", ns, "link", "set", "lo", "up")
        self.must("ip", "-n", c, "route", "add", "default", "via", ROUTER_IN)
        self.must("ip", "netns", "exec", r, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        self.must("ip", "netns", "exec", r, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "txn-rs",
                  "-j", "MASQUERADE", "--random")
        self.must("ip", "netns", "exec", r, "sysctl", "-qw",
                  f"net.netfilter.nf_conntrack_udp_timeout={NAT_UDP_TIMEOUT}",
                  f"net.netfilter.nf_conntrack_udp_timeout_stream={NAT_UDP_TIMEOUT}")
        cfg = self.workdir / "kamailio.cfg"
        cfg.write_text(KAMAILIO_CFG.format(server=SERVER, modules=MODULES))

    def start_kamailio(self) -> float:
        """Start Kamailio and wait until it answers OPTIONS; returns the wall time it became ready."""
        self.kamailio_runs += 1
        run = self.workdir / f"kamailio-run{self.kamailio_runs}"
        run.mkdir()
        log = (self.workdir / f"kamailio{self.kamailio_runs}.log").open("wb")
        self.kamailio = subprocess.Popen(
            ["ip", "netns", "exec", self.server, "kamailio", "-DD", "-E", "-f", str(self.workdir / "kamailio.cfg"),
             "-Y", str(run), "-P", str(run / "kamailio.pid"), "-w", str(run), "-m", "32", "-M", "4"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(self.kamailio)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            probe = _run("ip", "netns", "exec", self.server, sys.executable, "-c", PROBE.format(server=SERVER))
            if probe.returncode == 0:
                return time.time()
            if self.kamailio.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"Kamailio did not start: {log.name}")

    def stop_kamailio(self) -> float:
        """SIGTERM Kamailio and wait for it to exit; returns the wall time it was stopped."""
        proc = self.kamailio
        assert proc is not None
        _stop_group(proc)
        self.kamailio = None
        return time.time()

    def agent(self, name: str, *args: str, ns: str | None = None) -> Agent:
        out = self.workdir / f"{name}.out"
        env = dict(os.environ, PYTHONUNBUFFERED="1",
                   PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
        with out.open("wb") as so, out.with_suffix(".err").open("wb") as se:
            proc = subprocess.Popen(["ip", "netns", "exec", ns or self.client, sys.executable, str(AGENT), *args],
                                    stdout=so, stderr=se, stdin=subprocess.DEVNULL, env=env, cwd=REPO)
        self.procs.append(proc)
        return Agent(proc, out)

    def call(self, name: str, target: str, timeout: float = 20) -> dict[str, Any]:
        """Call ``target`` from the server namespace (through Kamailio); the caller's outcome."""
        caller = self.agent(name, "call", "--target", target, "--bind", SERVER, "--domain", SERVER,
                            "--registrar", f"{SERVER}:5060", ns=self.server)
        return caller.wait_for(lambda e: e.get("event") in ("answered", "failed"), timeout, "call outcome")

    def flush_nat(self) -> None:
        self.must("ip", "netns", "exec", self.router, "conntrack", "-F")

    def stop(self, agent: Agent) -> None:
        if agent.proc.poll() is None:
            agent.proc.kill()
            agent.proc.wait(10)

    def teardown(self) -> None:
        for p in self.procs:
            _stop_group(p)
        for ns in (self.client, self.router, self.server):
            _run("ip", "netns", "del", ns)


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process and everything it forked (Kamailio's workers survive a SIGKILL of their
    main process): SIGTERM to its process group, then SIGKILL after 10 s."""
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        pgid = None
    if pgid is not None and pgid != os.getpgid(0):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
    elif proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    if pgid is not None and pgid != os.getpgid(0):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatLab]:
    """Namespaces, the NAT and Kamailio (skipped with the reason when the machine refuses)."""
    if os.geteuid() != 0:
        pytest.skip("needs root (CAP_NET_ADMIN) to create network namespaces")
    for program, package in (("ip", "iproute2"), ("iptables", "iptables"), ("conntrack", "conntrack"),
                             ("kamailio", "kamailio")):
        if shutil.which(program, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None:
            reason = f"{program} is not installed (Debian package {package}; .ci/run installs it)"
            if os.environ.get("CI"):
                pytest.fail(reason)
            pytest.skip(reason)
    nat = NatLab(tmp_path_factory.mktemp("nat"))
    try:
        try:
            nat.setup()
        except _Refused as e:
            pytest.skip(f"cannot build the NAT here: {e}")
        nat.start_kamailio()
        yield nat
    finally:
        nat.teardown()


def record(name: str, **figures: Any) -> None:
    if FIGURES:
        with open(FIGURES, "a") as f:
            f.write(json.dumps({"test": name, **figures}) + "\n")


def test_behind_nat_fixes_its_contact_keeps_the_mapping_and_receives_a_call(lab: NatLab) -> None:
    """alice (STUN keep-alives every 1-1.25 s) and bob (none) register through the NAT and fix their
    Contacts from rport; IDLE s later a call reaches alice, while bob's mapping has expired."""
    alice = lab.agent("alice", "register", "--user", "alice", "--registrar", f"{SERVER}:5060",
                      "--keepalive", "1.25", "--stun", "--keepalive-timeout", "2", "--lifetime", "40")
    bob = lab.agent("bob", "register", "--user", "bob", "--registrar", f"{SERVER}:5060", "--lifetime", "40")
    a = alice.registered(15)
    b = bob.registered(15)
    # the registrar saw the router's public side: the Contact was corrected (RFC 3581)
    assert a["contact"].startswith(f"sip:alice@{ROUTER_OUT}:"), a
    assert b["contact"].startswith(f"sip:bob@{ROUTER_OUT}:"), b
    first = alice.events()[0]
    assert first["state"] == "registering"
    time.sleep(IDLE)
    assert lab.call("call-alice", f"sip:alice@{SERVER}")["event"] == "answered"
    alice.wait_for(lambda e: e.get("event") == "incoming", 5, "the incoming call")
    # control: without keep-alives the NAT forgot bob, and the call cannot reach him
    assert lab.call("call-bob", f"sip:bob@{SERVER}")["event"] == "failed"
    assert not any(e.get("event") == "incoming" for e in bob.events())
    assert [e["state"] for e in alice.events() if e.get("event") == "state"] == ["registering", "registered"]
    lab.stop(alice)
    lab.stop(bob)


def test_a_flushed_nat_is_noticed_and_the_registration_follows(lab: NatLab) -> None:
    """conntrack -F on the router: the next STUN answer shows a new public port; alice re-registers
    with a corrected Contact and a call reaches her."""
    alice = lab.agent("alice-flush", "register", "--user", "alice", "--registrar", f"{SERVER}:5060",
                      "--keepalive", "1.25", "--stun", "--keepalive-timeout", "2", "--lifetime", "30")
    before = alice.registered(15)
    n = len(alice.events())
    flushed = time.time()
    lab.flush_nat()
    again = alice.registered(10, after=n)
    recovered = again["t"] - flushed
    assert again["contact"] != before["contact"], "MASQUERADE --random gave the new mapping another port"
    assert recovered < 5.0, recovered
    assert lab.call("call-alice-flush", f"sip:alice@{SERVER}")["event"] == "answered"
    record("nat-flush", recovered_s=round(recovered, 2))
    lab.stop(alice)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_kamailio_restarted_txsipua_re_registers_within_its_back_off(lab: NatLab, transport: str) -> None:
    """Kamailio stops for DOWN (4 s over UDP, 2 s over TCP): the keep-alive finds the flow dead (STUN unanswered over UDP, the
    connection closed over TCP), REGISTERs fail and back off (base 1 s here); once Kamailio is back,
    alice is registered again within the wait her back-off announced, and a call reaches her."""
    args = ["--user", "alice", "--registrar", f"{SERVER}:5060", "--keepalive", "1", "--keepalive-timeout", "1",
            "--retry", "1", "--t1", "0.02", "--lifetime", "40", "--transport", transport]
    if transport == "udp":
        args.append("--stun")
    alice = lab.agent(f"alice-restart-{transport}", "register", *args)
    alice.registered(15)
    time.sleep(2.5)  # two keep-alives answered (pongs over TCP): the flow stays up
    assert [e["state"] for e in alice.events() if e.get("event") == "state"] == ["registering", "registered"]
    n = len(alice.events())
    stopped = lab.stop_kamailio()
    dead = alice.wait_for(lambda e: e.get("state") in ("retrying", "lapsed"), 10, "the dead flow", after=n)
    time.sleep(max(0.0, stopped + DOWN[transport] - time.time()))
    ready = lab.start_kamailio()
    back = alice.registered(30, after=n)
    failures = [e for e in alice.events()[n:] if e.get("state") == "lapsed"]
    assert failures, "Kamailio stayed down long enough for a REGISTER to fail and back off"
    # the wait announced before the success: registered no later than that attempt (+ a round trip)
    last_due = max(e["t"] + (e["next_attempt"] - e["now"]) for e in failures) if failures else ready
    assert back["t"] <= max(ready, last_due) + 1.0, (back, ready, last_due)
    detected = max(0.0, dead["t"] - stopped)  # over TCP the connection closes as SIGTERM lands
    recovered = max(0.0, back["t"] - ready)  # a retransmission may be answered before the probe
    outage = back["t"] - stopped
    assert lab.call(f"call-alice-restart-{transport}", f"sip:alice@{SERVER}")["event"] == "answered"
    record(f"kamailio-restart-{transport}", detected_s=round(detected, 2), recovered_after_ready_s=round(recovered, 2),
           outage_s=round(outage, 2), failed_attempts=len(failures))
    lab.stop(alice)


def test_route_source_inside_the_client_namespace(lab: NatLab) -> None:
    """A 0.0.0.0 bind advertises the interface routing to the registrar (192.0.2.2), never 0.0.0.0."""
    code = ("from txsipua.ua.nat import route_source; import sys; "
            f"sys.exit(0 if route_source('{SERVER}') == '{CLIENT}' else 1)")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run(["ip", "netns", "exec", lab.client, sys.executable, "-c", code], env=env, timeout=20,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
