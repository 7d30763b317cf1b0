"""benchmarks/media_bench.py: its usage line says its real defaults, and "shared machine" is measured."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "media_bench.py"


def bench() -> Any:
    spec = importlib.util.spec_from_file_location("media_bench_under_test", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_usage_line_gives_the_defaults() -> None:
    """Every ``[--option value]`` of the usage line is the parser's default; every public option is in it."""
    module = bench()
    usage = module.__doc__.split("\n\n")[1]
    shown = dict(re.findall(r"\[--([a-z-]+) ([^\]]+)\]", usage))
    flags = set(re.findall(r"\[--([a-z-]+)\]", usage))
    ap = module.parser()
    defaults = {a.dest: a.default for a in ap._actions}
    for option, value in shown.items():
        if option == "json":
            continue  # an example file name
        default = defaults[option.replace("-", "_")]
        assert (f"{default:g}" if isinstance(default, float) else str(default)) == value, option
    public = {a.option_strings[0][2:] for a in ap._actions
              if a.option_strings and a.help != "==SUPPRESS==" and a.option_strings[0] != "-h"}
    assert public == set(shown) | flags


def test_shared_machine_is_measured_from_the_load_average() -> None:
    """A load of 3 on 2 CPUs is a loaded machine, 0.1 is quiet, no load average is unknown; the text says so."""
    module = bench()
    loaded = module.machine_load(lambda: (3.0, 2.0, 1.0), cpus=2)
    quiet = module.machine_load(lambda: (0.1, 0.1, 0.1), cpus=2)
    unknown = module.machine_load(lambda: (_ for _ in ()).throw(OSError()), cpus=2)
    assert loaded["shared_machine"] is True and quiet["shared_machine"] is False
    assert unknown["shared_machine"] is None and unknown["load_1m"] is None
    assert "LOADED" in module.describe_load(loaded, loaded) and "3.00" in module.describe_load(loaded, quiet)
    assert "quiet" in module.describe_load(quiet, quiet)
    assert "unknown" in module.describe_load(unknown, unknown)


def test_arrivals_count_packets_later_than_their_timestamp_says() -> None:
    """A packet counts as arrived late when its transit exceeds the stream's smallest by more than 5 ms."""
    module = bench()
    arrivals = module.Arrivals(8000)

    def rtp(timestamp: int) -> bytes:
        return bytes([0x80, 0]) + (1).to_bytes(2, "big") + timestamp.to_bytes(4, "big") + bytes(4 + 160)

    arrivals.heard(rtp(160 * 0), 10.000)
    arrivals.heard(rtp(160 * 1), 10.0249)  # 4.9 ms late: on time
    arrivals.heard(rtp(160 * 2), 10.0461)  # 6.1 ms late
    arrivals.heard(rtp(160 * 3), 10.054)  # 6 ms early: the new floor, so the three before are late
    arrivals.heard(bytes([0x80, 200]) + bytes(26), 11.0)  # muxed RTCP: not counted
    arrivals.heard(b"\x00" * 20, 11.0)  # not RTP
    assert len(arrivals.transits) == 4
    assert arrivals.late() == 3
    assert module.Arrivals(8000).late() == 0


def test_run_wait_is_seconds_or_unknown() -> None:
    """Time runnable but waiting for a CPU: seconds, never negative, or None where the platform has no schedstat."""
    waited = bench().run_wait()
    assert waited is None or waited >= 0


def test_late_share_counts_skipped_slots_as_late_among_the_slots_due() -> None:
    """(sent late + skipped) / (sent + skipped): a skipped slot is due and not sent on time."""
    module = bench()
    assert module.late_share(0, 0, 0) == 0.0
    assert module.late_share(10, 0, 1000) == 1.0
    assert module.late_share(5, 50, 950) == 100.0 * 55 / 1000
    assert module.late_share(0, 100, 0) == 100.0


def test_sending_window_closes_with_the_last_play() -> None:
    """The CPU window ends when the last stream's audio is sent, not when the figures are read later."""
    module = bench()
    window = module.SendingWindow(2)
    assert window.played("first") == "first" and window.closed is None
    window.played(True)
    closed = window.closed
    assert closed is not None
    sum(range(200000))  # CPU spent after sending ended: not counted
    wall, cpu, waited = window.figures()
    assert window.closed == closed
    assert wall >= 0 and cpu >= 0 and (waited is None or waited >= 0)
    late = module.SendingWindow(3)
    late.played(True)
    assert late.closed is None
    late.figures()  # not every play ended: closed when read
    assert late.closed is not None
