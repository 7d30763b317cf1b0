"""benchmarks/media_bench.py runs in its quick mode (4 streams, 1 s), so the media benchmark cannot rot.

Not a timed test: it checks that the script drives N streams against a txsipua
far end (and SIPp's RTP echo when installed), that every packet sent was
counted at the far end, and that it writes the JSON the report is built from.
The figures themselves are not asserted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "media_bench.py"


def test_media_bench_quick(tmp_path: Path) -> None:
    """Quick mode: a row per peer for 4 G.711 streams, each with its measures, and no loss on loopback."""
    out = tmp_path / "media.json"
    env = {**os.environ, "PYTHONPATH": str(BENCH.parent.parent)}
    proc = subprocess.run([sys.executable, str(BENCH), "--quick", "--no-pin", "--json", str(out)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    rows = {(r["codec"], r["peer"]): r for r in result["rows"]}
    row = rows[("PCMU", "txsipua")]
    assert row["n"] == 4 and row["sent"] >= 4 * 40
    assert row["cpu_pct_per_stream"] > 0
    assert row["far_loss_pct"] < 5 and row["back_received"] >= 4 * 40
    assert 0 <= row["far_arrived_late_pct"] <= 100
    for key in ("late_pct", "far_arrived_late_pct", "far_jitter_ms_mean", "far_jitter_ms_max", "back_loss_pct"):
        assert key in row
    assert result["shared_machine"] == result["load_before"]["shared_machine"]  # measured, not assumed
    assert "machine: load average" in proc.stdout
    if shutil.which("sipp") is not None:
        assert ("PCMU", "sipp") in rows or any(u.startswith("sipp") for u in result["unavailable"])
