#!/usr/bin/env python3
"""Call rate under SIPp: stepped rates against answering UASes, UDP on 127.0.0.1 only.

    python benchmarks/callrate.py [--uas sipp,twisted,txsipua,sipp-digest,txsipua-digest]
                                  [--rates 250,500,1000,2000,4000] [--duration 10]
                                  [--all-steps] [--json out.json] [--quick]
    python benchmarks/callrate.py --caller txsipua [--rates ...]   # txsipua as the caller

One call = INVITE / 100 / 180 / 200 / ACK / BYE / 200 with zero hold time
(``sipp/uac.xml``); with digest (``*-digest`` targets, ``sipp/uac_auth.xml``)
the first INVITE is answered 401, acknowledged, and sent again with
credentials (SIPp's ``[authentication]``, MD5, qop=auth).  For each UAS, each
step runs SIPp as the caller at a fixed rate for ``--duration`` seconds
(``rate * duration`` calls) and reports: calls completed, failed calls,
retransmissions (SIPp's ``Retransmissions(C)`` from ``-trace_stat``: the
caller re-sent an INVITE or BYE because no answer came within 500 ms; for a
SIPp UAS also its own), loopback datagrams dropped (``/proc/net/snmp``), and
the UAS process's CPU seconds per call (utime+stime from ``/proc/<pid>/stat``).

A step PASSES when every call completed, none failed, nothing was
retransmitted, the run was not stretched (wall <= duration * 1.05 + 1.5 s) and
the UAS agrees every call closed (``open_calls=0`` on stop, or SIPp's UAS
stats).  Steps go up until one fails (``--all-steps`` runs them all); the
result per UAS is the highest passing rate.

UAS targets (each answers on 127.0.0.1:--uas-port):

==============  ===============================================================
sipp            SIPp's own UAS (``sipp/uas.xml``): C, the machine's ceiling
sipp-digest     SIPp challenging every INVITE (``sipp/uas_auth.xml``, verifyauth)
twisted         ``uas_twisted.py``: twisted.protocols.sip, no transaction layer
txsipua         ``python -m txsipua.cli.main answer --bind 127.0.0.1:PORT --no-media``
txsipua-digest  the same with ``--realm bench.example.net --users FILE``
txsipua-media   ``answer`` with its RTP stream per call (not in the default list)
==============  ===============================================================

``--no-media``: SIPp's UAS and the Twisted responder open no RTP, so the
default txsipua rows measure the SIP stack (transactions, dialogs, digest)
alone; ``txsipua-media`` adds what a real answering bot pays for media.

txsipua's ``answer`` command prints ``ready`` when listening and
``open_calls=N`` when stopped by SIGTERM (issue 3).  A target whose command
is missing or never prints ``ready`` is reported "not available".

``--caller txsipua`` runs txsipua as the load generator against SIPp's UAS,
with ``txsipua bench-call`` (when the command is missing the mode prints why
it is skipped and exits 0).  The contract it relies on::

    python -m txsipua.cli.main bench-call sip:bot@127.0.0.1:PORT --bind 127.0.0.1:PORT
        --rate CALLS_PER_S --calls N --recv-timeout MS --socket-buffer KIB
    # exits when done; last line: calls=N ok=N failed=N retransmissions=N

Every process is started here, tracked by PID and stopped by PID; every run
is bounded in time (``--budget``).  Nothing but 127.0.0.1 is addressed.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
HOST = "127.0.0.1"
PY = sys.executable
SCEN = os.path.join(HERE, "sipp")
BUFF = ["-buff_size", "1048576"]  # SIPp's default 64 KiB SO_RCVBUF drops datagrams on bursts
REALM, AUTH_USER, AUTH_PASSWORD = "bench.example.net", "load", "bench-pw"  # uac_auth.xml's


class Ctx:
    """What a target's command line needs: ports, the work directory, the stat file."""

    def __init__(self, uas_port: int, uac_port: int, work: str, stat: str) -> None:
        self.uas_port, self.uac_port, self.work, self.stat = uas_port, uac_port, work, stat


def _sipp_uas(scenario: str) -> Callable[[Ctx], list[str]]:
    def cmd(c: Ctx) -> list[str]:
        return ["sipp", "-sf", os.path.join(SCEN, scenario), "-i", HOST, "-mi", HOST,
                "-p", str(c.uas_port), "-mp", str(c.uas_port + 1000), "-nostdin",
                "-trace_stat", "-stf", c.stat, "-fd", "1", *BUFF]
    return cmd


def _users_file(c: Ctx) -> str:
    """Write the htdigest file (``user:realm:MD5 HA1``) the digest UAS reads."""
    path = os.path.join(c.work, "users.htdigest")
    ha1 = hashlib.md5(f"{AUTH_USER}:{REALM}:{AUTH_PASSWORD}".encode()).hexdigest()
    with open(path, "w") as fh:
        fh.write(f"{AUTH_USER}:{REALM}:{ha1}\n")
    return path


def _txsipua(digest: bool, media: bool = False) -> Callable[[Ctx], list[str]]:
    def cmd(c: Ctx) -> list[str]:
        argv = [PY, "-m", "txsipua.cli.main", "answer", "--bind", f"{HOST}:{c.uas_port}"]
        if digest:
            argv += ["--realm", REALM, "--users", _users_file(c)]
        if not media:  # the peers open no RTP either: measure the SIP stack
            argv.append("--no-media")
        return argv
    return cmd


class Target:
    """An answering UAS: its command, the caller scenario it pairs with, how to see it ready."""

    def __init__(self, cmd: Callable[[Ctx], list[str]], uac_scenario: str, kind: str,
                 note: str) -> None:
        self.cmd, self.uac_scenario, self.kind, self.note = cmd, uac_scenario, kind, note


TARGETS: dict[str, Target] = {
    "sipp": Target(_sipp_uas("uas.xml"), "uac.xml", "sipp", "SIPp UAS (C ceiling)"),
    "sipp-digest": Target(_sipp_uas("uas_auth.xml"), "uac_auth.xml", "sipp",
                          "SIPp UAS, 401 + verifyauth on every INVITE (C ceiling)"),
    "twisted": Target(lambda c: [PY, os.path.join(HERE, "uas_twisted.py"), "--host", HOST,
                                 "--port", str(c.uas_port)], "uac.xml", "python",
                      "twisted.protocols.sip responder, no transaction layer"),
    "txsipua": Target(_txsipua(False), "uac.xml", "python",
                      "txsipua answer (transaction + dialog layers)"),
    "txsipua-digest": Target(_txsipua(True), "uac_auth.xml", "python",
                             "txsipua answer, digest on every INVITE"),
    "txsipua-media": Target(_txsipua(False, media=True), "uac.xml", "python",
                            "txsipua answer with its RTP stream per call (not a default)"),
}
DEFAULT_UAS = "sipp,twisted,txsipua,sipp-digest,txsipua-digest"


# ------------------------------------------------------------------ helpers
def udp_ports_bound() -> set[int]:
    """Local UDP ports bound on this host (IPv4 and IPv6), from /proc/net/udp*."""
    ports = set()
    for path in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(path) as fh:
                next(fh)
                for line in fh:
                    ports.add(int(line.split()[1].rsplit(":", 1)[1], 16))
        except OSError:
            continue
    return ports


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid``, seconds (/proc/<pid>/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as fh:
        f = fh.read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def udp_rcvbuf_errors() -> int:
    """Host-wide UDP receive-buffer drops (/proc/net/snmp); loopback loss shows here."""
    with open("/proc/net/snmp") as fh:
        rows = [ln.split() for ln in fh if ln.startswith("Udp:")]
    return int(dict(zip(rows[0], rows[1], strict=True))["RcvbufErrors"])


def last_stats(path: str) -> dict[str, str]:
    """The last row of a SIPp ``-trace_stat`` csv as a dict (empty if absent)."""
    if not os.path.exists(path):
        return {}
    with open(path) as fh:
        rows = [r for r in csv.reader(fh, delimiter=";") if r]
    return dict(zip(rows[0], rows[-1], strict=False)) if len(rows) > 1 else {}


def stop(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM ``proc`` (this process's child), then SIGKILL after 5 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def read(path: str) -> str:
    """The text of ``path`` ('' when absent)."""
    try:
        with open(path, errors="replace") as fh:
            return fh.read()
    except OSError:
        return ""


class NotAvailable(Exception):
    """The target cannot run here (command missing, never ready)."""


def start_uas(name: str, ctx: Ctx, log_path: str) -> subprocess.Popen[Any]:
    """Start a target and wait until it listens; raise NotAvailable if it does not."""
    t = TARGETS[name]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (ROOT, os.environ.get("PYTHONPATH", "")) if p))
    log = open(log_path, "w")  # noqa: SIM115 - closed below, after the process exits
    try:
        proc = subprocess.Popen(t.cmd(ctx), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, cwd=ctx.work)
    except FileNotFoundError as e:
        log.close()
        raise NotAvailable(str(e)) from None
    log.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and proc.poll() is None:
        if t.kind == "python":
            if re.search(r"^ready\b", read(log_path), re.M):
                return proc
        elif ctx.uas_port in udp_ports_bound():
            time.sleep(0.1)
            return proc
        time.sleep(0.05)
    stop(proc)
    tail = " | ".join(read(log_path).strip().splitlines()[-3:])
    raise NotAvailable(f"did not start (rc={proc.returncode}): {tail[-300:]}")


def uas_report(name: str, said: str, stat: dict[str, str], calls: int) -> dict[str, Any]:
    """What the UAS says about itself: open calls and its own retransmissions, if known."""
    out: dict[str, Any] = {"uas_clean": None, "uas_retrans": None, "uas_says": ""}
    if TARGETS[name].kind == "sipp":
        if stat:
            ok, failed = int(stat["SuccessfulCall(C)"]), int(stat["FailedCall(C)"])
            out["uas_clean"] = ok == calls and failed == 0
            out["uas_retrans"] = int(stat["Retransmissions(C)"])
            out["uas_says"] = f"uas ok={ok} failed={failed}"
        return out
    lines = [ln for ln in said.strip().splitlines() if "=" in ln]
    out["uas_says"] = lines[-1][:200] if lines else ""
    m = re.search(r"open_(?:calls|dialogs)=(\d+)", said)
    if m:
        out["uas_clean"] = int(m.group(1)) == 0
    m = re.search(r"retransmi\w*=(\d+)", said)
    if m:
        out["uas_retrans"] = int(m.group(1))
    return out


def trial(name: str, rate: int, duration: float, a: argparse.Namespace) -> dict[str, Any]:
    """One step: a UAS, SIPp calling it at ``rate`` for ``duration`` s; the result row."""
    tag = f"{name}_{rate}_{int(time.time() * 1000)}"
    ctx = Ctx(a.uas_port, a.uac_port, a.work, os.path.join(a.work, f"{tag}_uas.csv"))
    uac_stat = os.path.join(a.work, f"{tag}_uac.csv")
    uas_log = os.path.join(a.work, f"{tag}_uas.log")
    calls = max(1, int(rate * duration))
    row: dict[str, Any] = {"uas": name, "rate": rate, "duration": duration, "calls": calls,
                           "load1": round(os.getloadavg()[0], 2)}
    deadline = time.monotonic() + 30  # another run may be finishing: wait, never share
    while busy := {a.uas_port, a.uac_port} & udp_ports_bound():
        if time.monotonic() > deadline:
            raise NotAvailable(f"{HOST} UDP port(s) {sorted(busy)} in use by another process "
                               "(pick others with --uas-port/--uac-port)")
        time.sleep(0.5)
    srv = start_uas(name, ctx, uas_log)
    try:
        drops0 = udp_rcvbuf_errors()
        c0 = cpu_seconds(srv.pid)
        cmd = ["sipp", f"{HOST}:{a.uas_port}", "-sf",
               os.path.join(SCEN, TARGETS[name].uac_scenario), "-i", HOST, "-mi", HOST,
               "-p", str(a.uac_port), "-mp", str(a.uac_port + 1000), "-r", str(rate),
               "-rp", "1000", "-m", str(calls), "-l", str(max(1000, rate * 5)), "-d", "0",
               "-recv_timeout", str(a.recv_timeout), "-timeout", f"{int(duration) + 30}s",
               "-nostdin", "-trace_stat", "-stf", uac_stat, "-fd", "1", *BUFF]
        t0 = time.monotonic()
        with open(os.path.join(a.work, f"{tag}_uac.log"), "w") as ulog:
            uac = subprocess.Popen(cmd, stdout=ulog, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, cwd=a.work)
            try:
                _, status, ru = os.wait4(uac.pid, 0)
                uac.returncode = os.waitstatus_to_exitcode(status)
            except BaseException:
                stop(uac)
                raise
        wall = time.monotonic() - t0
        uas_cpu = cpu_seconds(srv.pid) - c0
        if TARGETS[name].kind == "sipp":  # its -fd 1 stats lag up to 1 s: wait for the end
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                u = last_stats(ctx.stat)
                if u and int(u["SuccessfulCall(C)"]) + int(u["FailedCall(C)"]) >= calls:
                    break
                time.sleep(0.1)
    finally:
        stop(srv)
    s = last_stats(uac_stat)
    if not s:
        raise RuntimeError(f"SIPp wrote no statistics; see {a.work}/{tag}_uac.log")
    ok, failed = int(s["SuccessfulCall(C)"]), int(s["FailedCall(C)"])
    row.update(ok=ok, failed=failed, retrans=int(s["Retransmissions(C)"]),
               unexpected=int(s.get("OutOfCallMsgs(C)", 0)) + int(s.get("DeadCallMsgs(C)", 0)),
               wall=round(wall, 2), achieved=round(ok / wall, 1),
               drops=udp_rcvbuf_errors() - drops0, uas_cpu_s=round(uas_cpu, 3),
               uas_us_per_call=round(1e6 * uas_cpu / max(ok, 1), 1),
               uac_cpu_pct=round(100 * (ru.ru_utime + ru.ru_stime) / wall, 1),
               uac_rc=uac.returncode)
    row.update(uas_report(name, read(uas_log), last_stats(ctx.stat), calls))
    row["passed"] = (failed == 0 and ok == calls and row["retrans"] == 0
                     and not row["uas_retrans"] and wall <= duration * 1.05 + 1.5
                     and row["uas_clean"] is not False)
    print(f"  {name:15} {rate:>6} cps: {'PASS' if row['passed'] else 'fail'} ok={ok}/{calls} "
          f"failed={failed} retrans={row['retrans']}/{row['uas_retrans']} "
          f"drops={row['drops']} wall={row['wall']}s UAS {row['uas_us_per_call']} us/call "
          f"UAC cpu={row['uac_cpu_pct']}% load1={row['load1']}  [{row['uas_says']}]", flush=True)
    return row


# ------------------------------------------------------------------ caller mode
def txsipua_caller(a: argparse.Namespace) -> list[dict[str, Any]]:
    """txsipua as the load generator against SIPp's UAS (skipped while bench-call is missing).

    Per step: ``bench-call`` places ``rate * duration`` calls; its last line
    gives calls/ok/failed/retransmissions, SIPp's UAS stats say whether every
    call closed, and the caller's CPU comes from its rusage.
    """
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (ROOT, os.environ.get("PYTHONPATH", "")) if p))
    probe = subprocess.run([PY, "-m", "txsipua.cli.main", "bench-call", "--help"],
                           capture_output=True, text=True, env=env, timeout=30,
                           stdin=subprocess.DEVNULL)
    if probe.returncode != 0:
        why = (probe.stderr or probe.stdout).strip().splitlines()[-1:] or ["no output"]
        print("skipped: txsipua as the caller needs `python -m txsipua.cli.main bench-call` "
              f"(a load generator), which is not there yet ({why[0][:160]})")
        return [{"caller": "txsipua", "skipped": "no bench-call command yet"}]
    rows = []
    for rate in a.rate_list:
        calls = max(1, int(rate * a.duration))
        tag = f"caller_{rate}_{int(time.time() * 1000)}"
        ctx = Ctx(a.uas_port, a.uac_port, a.work, os.path.join(a.work, f"{tag}_uas.csv"))
        try:
            srv = start_uas("sipp", ctx, os.path.join(a.work, f"{tag}_uas.log"))
        except NotAvailable as e:
            print(f"  txsipua caller: SIPp UAS not available: {e}")
            break
        out_path = os.path.join(a.work, f"{tag}_caller.log")
        try:
            t0 = time.monotonic()
            with open(out_path, "w") as out:
                caller = subprocess.Popen(
                    [PY, "-m", "txsipua.cli.main", "bench-call",
                     f"sip:bot@{HOST}:{a.uas_port}", "--bind", f"{HOST}:{a.uac_port}",
                     "--rate", str(rate), "--calls", str(calls),
                     "--recv-timeout", str(a.recv_timeout), "--socket-buffer", "4096"],
                    stdout=out, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL)
            watchdog = threading.Timer(a.duration + 60, caller.send_signal, (signal.SIGTERM,))
            watchdog.start()
            try:
                _, status, ru = os.wait4(caller.pid, 0)
                caller.returncode = os.waitstatus_to_exitcode(status)
            finally:
                watchdog.cancel()
            wall = time.monotonic() - t0
            deadline = time.monotonic() + 3  # SIPp's stats lag up to 1 s
            while time.monotonic() < deadline:
                u = last_stats(ctx.stat)
                if u and int(u["SuccessfulCall(C)"]) + int(u["FailedCall(C)"]) >= calls:
                    break
                time.sleep(0.1)
        finally:
            stop(srv)
        lines = read(out_path).strip().splitlines()
        said = dict(re.findall(r"(\w+)=(\d+)", lines[-1] if lines else ""))
        u = uas_report("sipp", "", last_stats(ctx.stat), calls)
        cpu = ru.ru_utime + ru.ru_stime
        row = {"caller": "txsipua", "rate": rate, "calls": calls, "wall": round(wall, 2),
               **{k: int(v) for k, v in said.items()}, **u, "caller_rc": caller.returncode,
               "caller_us_per_call": round(1e6 * cpu / max(int(said.get("ok", 0)), 1), 1)}
        row["passed"] = (row.get("ok") == calls and row.get("failed") == 0
                         and not row.get("retransmissions") and not row["uas_retrans"]
                         and u["uas_clean"] is True and wall <= a.duration * 1.05 + 1.5)
        print(f"  txsipua caller {rate:>6} cps: {'PASS' if row['passed'] else 'fail'} "
              f"{lines[-1] if lines else '(no output)'} wall={row['wall']}s "
              f"caller {row['caller_us_per_call']} us/call  [{u['uas_says']}]", flush=True)
        rows.append(row)
        if not row["passed"] and not a.all_steps:
            break
        time.sleep(0.2 if a.quick else 1.0)
    best = max((r["rate"] for r in rows if r.get("passed")), default=None)
    print(f"\ntxsipua as the caller: highest passing rate {best} calls/s")
    return rows


# ------------------------------------------------------------------ main
def summary(rows: list[dict[str, Any]], names: list[str],
            unavailable: dict[str, str]) -> list[dict[str, Any]]:
    """Per UAS: the highest passing rate and the CPU per call there (markdown printed)."""
    print("\n| UAS | highest rate with 0 failed, 0 retransmitted (calls/s) | UAS CPU per call "
          "there | first failing step |\n|---|---|---|---|")
    out = []
    for n in names:
        if n in unavailable:
            print(f"| {n} | not available | | {unavailable[n][:60]} |")
            out.append({"uas": n, "best": None, "not_available": unavailable[n]})
            continue
        rs = [r for r in rows if r["uas"] == n]
        good = [r for r in rs if r["passed"]]
        bad = [r for r in rs if not r["passed"]]
        best = max((r["rate"] for r in good), default=None)
        us = (statistics.median(r["uas_us_per_call"] for r in good if r["rate"] == best)
              if best else None)
        first_bad = min((r["rate"] for r in bad), default=None)
        print(f"| {n} | {best if best else 'none'} | "
              f"{f'{us:,.0f} us' if us is not None else '-'} | "
              f"{first_bad if first_bad else '-'} |")
        out.append({"uas": n, "best": best, "us_per_call": us, "first_fail": first_bad})
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the steps; print per-step lines and the summary table; return the exit status."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--uas", default=None, help=f"comma list of {sorted(TARGETS)} "
                                                f"(default {DEFAULT_UAS})")
    ap.add_argument("--caller", choices=["sipp", "txsipua"], default="sipp")
    ap.add_argument("--rates", default="250,500,1000,2000,4000", help="steps, calls/s")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per step")
    ap.add_argument("--all-steps", action="store_true", help="go on after a failing step")
    ap.add_argument("--recv-timeout", type=int, default=5000, help="SIPp's give-up time, ms")
    ap.add_argument("--uas-port", type=int, default=25070)
    ap.add_argument("--uac-port", type=int, default=25061)
    ap.add_argument("--budget", type=float, default=1800.0,
                    help="stop starting steps after this many seconds in all")
    ap.add_argument("--work", default="", help="logs and stats here (default: a temp dir)")
    ap.add_argument("--json", default="")
    ap.add_argument("--quick", action="store_true",
                    help="one short step (20 calls/s for 0.5 s) against SIPp's UAS: smoke test")
    a = ap.parse_args(argv)
    if a.quick:
        a.rates, a.duration = "20", 0.5
        a.uas = a.uas or "sipp"
    a.uas = a.uas or DEFAULT_UAS
    names = [n for n in a.uas.split(",") if n]
    for n in names:
        if n not in TARGETS:
            ap.error(f"unknown UAS {n}; known: {', '.join(sorted(TARGETS))}")
    a.rate_list = sorted(int(r) for r in a.rates.split(",") if r)
    a.work = a.work or tempfile.mkdtemp(prefix="txsipua-callrate-")
    os.makedirs(a.work, exist_ok=True)
    if not any(os.access(os.path.join(d, "sipp"), os.X_OK)
               for d in os.environ.get("PATH", "").split(os.pathsep)):
        print("not available: sipp is not installed (Debian package sip-tester)")
        return 0
    print(f"work dir {a.work}; steps {a.rate_list} calls/s x {a.duration:g} s; "
          f"load1 {os.getloadavg()[0]:.2f}", flush=True)
    if a.caller == "txsipua":
        rows = txsipua_caller(a)
        if a.json:
            with open(a.json, "w") as fh:
                json.dump({"benchmark": "callrate", "caller": "txsipua", "steps": rows}, fh,
                          indent=1)
        return 0
    t_start = time.monotonic()
    rows: list[dict[str, Any]] = []
    unavailable: dict[str, str] = {}
    for n in names:
        for rate in a.rate_list:
            if time.monotonic() - t_start > a.budget:
                print(f"  budget of {a.budget:g} s spent: {n} at {rate} cps not run")
                break
            try:
                row = trial(n, rate, a.duration, a)
            except NotAvailable as e:
                print(f"  {n:15} not available: {e}", flush=True)
                unavailable[n] = str(e)
                break
            rows.append(row)
            if not row["passed"] and not a.all_steps:
                break
            time.sleep(0.2 if a.quick else 1.0)  # let the kernel and the box settle
    best = summary(rows, names, unavailable)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"benchmark": "callrate", "steps": rows, "summary": best,
                       "unavailable": unavailable, "work": a.work}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
