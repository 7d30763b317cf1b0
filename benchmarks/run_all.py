#!/usr/bin/env python3
"""Run every benchmark and print one markdown table of ratios.

    python benchmarks/run_all.py [--quick] [--skip callrate,memory] [--out DIR]
                                 [--callrate-args "--uas sipp,txsipua --duration 5"]

Each benchmark runs in its own process (so one's imports and heap do not
weigh on another's figures), writes its JSON into ``--out`` (a temp dir by
default) and prints its own detailed report; then this prints a summary
table: every figure as a ratio against its yardstick measured in the same
run (the floor for the parser and digest, SIPp's UAS for call rate, a plain
dict for memory) next to the issue's target.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
BENCHES = ("parse", "digest", "callrate", "memory")
SCRIPTS = {"parse": "parse_bench.py", "digest": "digest_bench.py",
           "callrate": "callrate.py", "memory": "memory_bench.py"}


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def summary_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """``(benchmark, what, figure, target)`` rows from the benchmarks' JSON results."""
    rows: list[tuple[str, str, str, str]] = []
    p = results.get("parse")
    if p:
        by = {r["name"]: r for r in p["own"]}
        full, lazy = by.get("txsipua full"), by.get("txsipua lazy")
        if full:
            rows.append(("parser", f"txsipua full parse ({full['n']}/{p['n_all']} right)",
                         f"{_pct(full['of_floor'])} of floor, {full['median']:,.0f} msg/s",
                         f">= 50% of floor, {p['n_all']}/{p['n_all']}"))
        if lazy:
            rows.append(("parser", "txsipua lazy (transaction fields)",
                         f"{_pct(lazy['of_floor'])} of floor", ">= 80% of floor"))
        for peer, want in (("sippy", ">= 3x"), ("twisted.protocols.sip", ">= 2x")):
            if full and peer in by:
                rows.append(("parser", f"txsipua full vs {peer}",
                             f"{by[peer]['x_floor'] / full['x_floor']:.2f}x", want))
        for r in p["own"]:
            if not r["name"].startswith(("txsipua", "floor")):
                rows.append(("parser", f"peer {r['name']} {r['version']} "
                             f"({r['n']}/{p['n_all']} right)", f"{_pct(r['of_floor'])} of floor",
                             ""))
        for name in p.get("unavailable", {}):
            rows.append(("parser", f"peer {name}", "not available", ""))
    d = results.get("digest")
    if d:
        for r in d["runs"]:
            if r["name"].startswith(("txsipua", "twisted")):
                rows.append(("digest", f"{r['name']} {r['op']} {r['alg']}",
                             f"{_pct(r['of_floor'])} of floor, {r['median']:,.0f}/s", ""))
    c = results.get("callrate")
    if c and c.get("caller") == "txsipua":
        done = [r for r in c["steps"] if "passed" in r]
        best = max((r["rate"] for r in done if r["passed"]), default=None)
        rows.append(("calls", "txsipua as the caller (bench-call) vs SIPp UAS",
                     "skipped: no bench-call" if not done else
                     f"{best:,} calls/s" if best else "no passing step", ""))
    if c and "summary" in c:
        ceiling = {s["uas"]: s["best"] for s in c["summary"]}
        for s in c["summary"]:
            ref = ceiling.get("sipp-digest" if s["uas"].endswith("digest") else "sipp")
            if s.get("not_available"):
                fig = "not available"
            elif s["best"] is None:
                fig = "no passing step"
            else:
                fig = f"{s['best']:,} calls/s, {s['us_per_call']:,.0f} us CPU/call"
                if ref and not s["uas"].startswith("sipp"):
                    fig += f" ({s['best'] / ref:.0%} of SIPp)"
            want = {"txsipua": ">= 2,000 calls/s", "txsipua-digest": ">= 1,000 calls/s"}
            rows.append(("calls", f"UAS {s['uas']}", fig, want.get(s["uas"], "")))
    m = results.get("memory")
    if m:
        floor = {r["kind"]: r["retained_per"] for r in m["rows"] if r["impl"].startswith("floor")}
        for r in m["rows"]:
            if r["impl"].startswith("floor"):
                continue
            ratio = r["retained_per"] / floor[r["kind"]] if floor.get(r["kind"]) else None
            rows.append(("memory", f"{r['impl']} per {r['kind']} (n={r['n']})",
                         f"{r['retained_per'] / 1024:.1f} KiB"
                         + (f" ({ratio:.1f}x a dict)" if ratio else "")
                         + f", flat: {'yes' if r['flat'] else 'NO'}",
                         "< 10 KiB" if r["kind"] == "account" else "< 20 KiB"))
        for u in m.get("unavailable", []):
            rows.append(("memory", u.split(":")[0], "not available yet", ""))
    return rows


def markdown(rows: list[tuple[str, str, str, str]]) -> str:
    """The summary rows as a markdown table."""
    out = ["| benchmark | what | this run | target |", "|---|---|---|---|"]
    out += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks (subprocesses), then print the summary; return the exit status."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="every benchmark in its quick mode")
    ap.add_argument("--skip", default="", help=f"comma list out of {', '.join(BENCHES)}")
    ap.add_argument("--out", default="", help="JSON results here (default: a temp dir)")
    for b in BENCHES:
        ap.add_argument(f"--{b}-args", default="", help=f"extra arguments for {SCRIPTS[b]}")
    a = ap.parse_args(argv)
    out = a.out or tempfile.mkdtemp(prefix="txsipua-bench-")
    os.makedirs(out, exist_ok=True)
    skip = {s for s in a.skip.split(",") if s}
    results: dict[str, Any] = {}
    for b in BENCHES:
        if b in skip:
            continue
        path = os.path.join(out, f"{b}.json")
        cmd = [sys.executable, os.path.join(HERE, SCRIPTS[b]), "--json", path,
               *(["--quick"] if a.quick else []), *shlex.split(getattr(a, f"{b}_args"))]
        print(f"\n## {b}: {' '.join(cmd[1:])}\n", flush=True)
        rc = subprocess.run(cmd, stdin=subprocess.DEVNULL).returncode
        if rc != 0 or not os.path.exists(path):
            print(f"{b}: exited {rc}, no results", flush=True)
            continue
        with open(path) as fh:
            results[b] = json.load(fh)
    print(f"\n## Summary (results in {out})\n")
    print(markdown(summary_rows(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
