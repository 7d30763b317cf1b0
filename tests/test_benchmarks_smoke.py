"""Every benchmark script runs in its quick mode, so the benchmarks cannot rot.

These are not timed tests: they check that each script loads its adapters,
validates txsipua's results against its yardstick and writes the JSON the
summary table is built from.  The figures themselves are never asserted.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import socket
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
PEERS = ("twisted.protocols.sip", "sipmessage", "sippy", "pyVoIP")


def load(name: str) -> ModuleType:
    """Import ``benchmarks/<name>.py`` as a module of its own."""
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run(name: str, tmp_path: Path, *args: str) -> dict[str, Any]:
    """Run a benchmark's ``main`` with ``--quick --json``; return the JSON it wrote."""
    out = tmp_path / f"{name}.json"
    assert load(name).main(["--quick", "--json", str(out), *args]) == 0
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The quick JSON results of the in-process benchmarks, shared by the checks below."""
    tmp = tmp_path_factory.mktemp("bench")
    return {"parse": run("parse_bench", tmp), "digest": run("digest_bench", tmp),
            "memory": run("memory_bench", tmp)}


def test_parse_bench_measures_txsipua_and_floor_on_the_whole_corpus(
        results: dict[str, Any]) -> None:
    """Both txsipua modes and the floor are timed; every peer is timed or said unavailable."""
    p = results["parse"]
    assert p["n_all"] == 76
    by = {r["name"]: r for r in p["own"]}
    assert by["floor:bytes.split"]["n"] == 76
    for mode in ("txsipua full", "txsipua lazy"):
        assert by[mode]["n"] >= 1 and by[mode]["median"] > 0
        assert len(by[mode]["rates"]) == len(by[mode]["floor_rates"]) == 1
    for peer in PEERS:
        assert (peer in by) != (peer in p["unavailable"]), peer


def test_digest_bench_checks_every_algorithm_and_operation(results: dict[str, Any]) -> None:
    """Every algorithm has a floor and a txsipua row for compute, compute-ha1 and verify."""
    d = results["digest"]
    seen = {(r["name"], r["op"], r["alg"]) for r in d["runs"]}
    for alg in ("MD5", "MD5-sess", "SHA-256", "SHA-256-sess", "SHA-512-256",
                "SHA-512-256-sess"):
        for op, tx in (("compute", "txsipua compute_ha1+response"),
                       ("compute-ha1", "txsipua compute_response"),
                       ("verify", "txsipua inspect+check_ha1")):
            assert ("floor:hashlib", op, alg) in seen
            assert (tx, op, alg) in seen, (tx, op, alg, d["skipped"])


def test_memory_bench_measures_the_floor_and_reports_txsipua(results: dict[str, Any]) -> None:
    """The floor is measured for both kinds; txsipua is measured or 'not available yet'."""
    m = results["memory"]
    kinds = {(r["impl"], r["kind"]) for r in m["rows"]}
    assert {("floor:dict", "account"), ("floor:dict", "dialog")} <= kinds
    for r in m["rows"]:
        assert r["retained_per"] > 0 and r["n"] == 40
    for kind in ("account", "dialog"):
        assert ("txsipua", kind) in kinds or any(
            u.startswith(f"txsipua per {kind}: not available yet") for u in m["unavailable"])


def test_run_all_summary_table(results: dict[str, Any]) -> None:
    """The summary table carries one row per txsipua figure, with its target."""
    run_all = load("run_all")
    table = run_all.markdown(run_all.summary_rows(results))
    assert table.startswith("| benchmark | what | this run | target |")
    assert "txsipua full parse" in table
    assert ">= 50% of floor" in table
    assert "txsipua inspect+check_ha1 verify SHA-256" in table


def _free_udp_port_pair() -> tuple[int, int]:
    """Two UDP ports free on 127.0.0.1 (each with +1000 free too: SIPp's media port)."""
    ports: list[int] = []
    while len(ports) < 2:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        if p + 1000 > 65535 or p in ports:
            continue
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", p + 1000))
        except OSError:
            continue
        ports.append(p)
    return ports[0], ports[1]


@pytest.mark.skipif(shutil.which("sipp") is None, reason="SIPp (Debian sip-tester) not installed")
def test_callrate_one_short_step_against_sipp(tmp_path: Path) -> None:
    """10 calls in 0.5 s from SIPp to SIPp's UAS all complete, with CPU per call measured."""
    uas, uac = _free_udp_port_pair()
    c = run("callrate", tmp_path, "--work", str(tmp_path), "--uas-port", str(uas),
            "--uac-port", str(uac))
    (step,) = c["steps"]
    assert step["uas"] == "sipp" and step["calls"] == 10
    assert step["ok"] == 10 and step["failed"] == 0 and step["passed"]
    assert step["uas_clean"] is True
    assert c["summary"] == [{"uas": "sipp", "best": 20, "us_per_call": step["uas_us_per_call"],
                             "first_fail": None}]


@pytest.mark.skipif(shutil.which("sipp") is None, reason="SIPp (Debian sip-tester) not installed")
def test_callrate_txsipua_caller_mode_is_skipped_or_passes(tmp_path: Path) -> None:
    """txsipua as the caller (bench-call) against SIPp's UAS: 10 calls, all complete.

    Skipped with a reason when the command is missing (an older tree).
    """
    uas, uac = _free_udp_port_pair()
    c = run("callrate", tmp_path, "--caller", "txsipua", "--work", str(tmp_path),
            "--uas-port", str(uas), "--uac-port", str(uac))
    (step,) = c["steps"]
    if step.get("skipped"):
        assert step["skipped"] == "no bench-call command yet"
        return
    assert (step["calls"], step["ok"], step["failed"]) == (10, 10, 0)
    assert step["uas_clean"] is True and step["passed"]


def test_callrate_reports_a_missing_uas_as_not_available(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A UAS command that exits at once is 'not available', never fatal."""
    if shutil.which("sipp") is None:
        pytest.skip("SIPp (Debian sip-tester) not installed")
    cr = load("callrate")
    monkeypatch.setitem(cr.TARGETS, "broken", cr.Target(
        lambda c: [sys.executable, "-c", "raise SystemExit('no such UAS')"], "uac.xml",
        "python", "exits at once"))
    uas, uac = _free_udp_port_pair()
    out = tmp_path / "cr.json"
    assert cr.main(["--quick", "--uas", "broken", "--work", str(tmp_path), "--uas-port",
                    str(uas), "--uac-port", str(uac), "--json", str(out)]) == 0
    c = json.loads(out.read_text())
    assert c["steps"] == []
    assert "no such UAS" in c["unavailable"]["broken"]
    assert c["summary"][0]["best"] is None


def test_inproc_callrate_plays_plain_and_digest_calls(tmp_path: Path) -> None:
    """SIPp-shaped calls into ``answer``'s user agent in process: every call checked, CPU per call reported."""
    c = run("inproc_callrate", tmp_path)
    for kind in ("plain", "digest"):
        [round_] = c[kind]["rounds"]
        assert round_["calls"] == 200 and round_["us_per_call"] > 0
        assert c[kind]["best_us"] == round_["us_per_call"]


def test_fuzz_bench_quick_runs_the_parser_and_a_live_answer(tmp_path: Path) -> None:
    """A few hundred fuzz inputs at the parser and at a live ``txsipua answer``: no crash."""
    f = run("fuzz_bench", tmp_path)
    p, live = f["parser"], f["live"]
    assert p["inputs"] == 400 and p["crashes"] == 0
    assert sum(p["outcomes"].values()) == 400
    assert live["inputs"] == 300 and live["crashes"] == 0 and live["alive_at_end"]
    assert sum(live["responses"].values()) == 300
    assert live["responses"]["4xx"] > 0  # the challenged and malformed requests were answered
    assert live["rss_kib_before"] > 0 and live["rss_kib_after"] > 0


def test_fuzz_bench_asan_mode_uses_the_instrumented_accelerator(tmp_path: Path) -> None:
    """``--mode asan`` builds _speedups.c with ASan/UBSan and runs the parser part with it."""
    fuzz = load("fuzz_bench")
    if fuzz.asan_library() is None:
        pytest.skip("gcc or libasan.so not installed")
    out = tmp_path / "asan.json"
    assert fuzz.main(["--mode", "asan", "--count", "300", "--generated", "10",
                      "--json", str(out)]) == 0
    a = json.loads(out.read_text())["asan"]
    assert a["canary_detected"] is True  # the sanitizer runtime is really active
    assert a["exit_status"] == 0 and a["sanitizer_reports"] == 0 and a["crashes"] == 0
    assert a["parser"]["accelerator"] is True and a["parser"]["inputs"] == 300
