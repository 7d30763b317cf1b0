#!/usr/bin/env python3
"""Concurrent RTP streams in one process: CPU per stream, late packets, far-end loss and jitter.

    python benchmarks/media_bench.py [--streams 50,100,250,500] [--duration 10] [--codec PCMU,opus]
                                     [--opus-streams 50,100] [--peer txsipua,sipp] [--pin]
                                     [--json out.json] [--quick]

For each N, the process under test opens N :class:`txsipua.net.rtp.MediaStream`
on 127.0.0.1, every one paced by the one shared pacer, and plays audio on all
of them for ``--duration`` seconds (20 ms frames, starts spread over a frame
time, at both ends) while receiving as much back (bidirectional: each received packet is
counted for loss and jitter and decoded).  The far end is, per ``--peer``:

``txsipua``
    another process running N txsipua streams that send to ours and measure
    what ours sent: loss and RFC 3550 jitter *at the far end*.
``sipp``
    SIPp with ``-rtp_echo``: one UDP port echoes every packet to its
    sender, so what we receive is our own stream back; loss and jitter are the
    round trip's, measured here.

Reported per N: CPU of the process under test per stream (percent of one
core) and in total, measured from the first stream's start until the last
stream has sent its last packet (not while the streams stop); the *late
share* (``late_pct``, :func:`late_share`): slots not sent on time, that is
packets sent more than 5 ms after their slot's deadline, judged when each
was written (``MediaStats.packets_late``), plus slots skipped because the
process fell more than 0.2 s behind (``MediaStats.packets_skipped``: never
sent), as a share of the slots due (packets sent + slots skipped); packets that
*arrived* more than 5 ms late at the far end (``far_arrived_late_pct``: a
packet's arrival time minus its RTP timestamp, against the smallest such
transit of its stream; :class:`Arrivals`), loss and jitter (mean and worst
stream) at the far end, and the loss of the way back.  Against SIPp's echo
the arrival lateness is that of the round trip, noted where the echo comes
back (in the process under test, which pays for noting it).  The
process under test is single-threaded (one reactor), so it uses one core at
most: ``cpu_pct_total`` is its share of that core.  ``--pin`` pins it to
CPU 0 and the far end (txsipua or SIPp) to CPU 1 (Linux): right on a quiet machine,
wrong on a shared one (another job on CPU 0 then delays every wake-up).
Target (issue 11): >= 500 bidirectional G.711 streams with < 1 % late (the late share).

Whether the machine was shared is measured, not assumed: the 1-minute load
average before the first round (and after the last), per CPU; at or above
:data:`LOADED` per CPU before the run, other jobs were competing for the CPU
and the output says the figures come from a loaded machine
(``shared_machine`` in the JSON).  See docs/performance.md for the figures
and the command behind them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from array import array
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:  # run as a script from a checkout: import this tree's txsipua
    sys.path.insert(0, ROOT)

from txsipua.media.codecs import CODECS, AudioCodec  # noqa: E402
from txsipua.media.offer_answer import Codec, MediaParams  # noqa: E402

LATE = 0.005
#: 1-minute load average per CPU, before the run, from which the machine counts as loaded (shared).
LOADED = 0.5


def late_share(late: int, skipped: int, sent: int) -> float:
    """The late share, percent: (packets sent > 5 ms late + slots skipped) / slots due (sent + skipped).

    Args:
        late: ``MediaStats.packets_late`` (summed over the streams).
        skipped: ``MediaStats.packets_skipped``: slots never sent.
        sent: ``MediaStats.packets_sent``.
    """
    return 100.0 * (late + skipped) / max(1, sent + skipped)


class SendingWindow:
    """CPU and wall time from a start until every stream's audio has been sent (its ``play`` fired).

    Args:
        n: the number of ``play`` Deferreds to wait for.
    """

    def __init__(self, n: int) -> None:
        self.remaining = n
        self.started = (time.perf_counter(), time.process_time(), run_wait())
        self.closed: tuple[float, float, float | None] | None = None

    def played(self, result: Any) -> Any:
        """Callback for each ``play`` Deferred (passes its result on); the last one closes the window."""
        self.remaining -= 1
        if self.remaining == 0:
            self.close()
        return result

    def close(self) -> None:
        """Close the window now, unless it was already (idempotent)."""
        if self.closed is None:
            self.closed = (time.perf_counter(), time.process_time(), run_wait())

    def figures(self) -> tuple[float, float, float | None]:
        """(wall seconds, CPU seconds, seconds waiting for a CPU or None) of the window, closing it if still open."""
        self.close()
        assert self.closed is not None
        waited = None if self.closed[2] is None or self.started[2] is None else self.closed[2] - self.started[2]
        return self.closed[0] - self.started[0], self.closed[1] - self.started[1], waited


def run_wait() -> float | None:
    """Seconds this process has spent runnable but waiting for a CPU (Linux ``/proc/self/schedstat``), or None.

    What other jobs on the machine took from it: a process that waits for
    the CPU while its timers are due sends late, whatever its own code does.
    """
    try:
        with open("/proc/self/schedstat") as fh:
            return int(fh.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


def machine_load(getloadavg: Any = None, cpus: int | None = None) -> dict[str, Any]:
    """The 1-minute load average now, the CPU count, and whether that is a loaded (shared) machine.

    Returns:
        ``{"load_1m": float | None, "cpus": int, "shared_machine": bool | None}``;
        None where the platform has no load average.
    """
    getloadavg = getloadavg or getattr(os, "getloadavg", None)
    cpus = cpus or os.cpu_count() or 1
    try:
        load = float(getloadavg()[0]) if getloadavg is not None else None
    except OSError:
        load = None
    return {"load_1m": load, "cpus": cpus, "shared_machine": None if load is None else load / cpus >= LOADED}


def describe_load(before: dict[str, Any], after: dict[str, Any]) -> str:
    """One line for the text output: the load measured and what it means for the figures."""
    if before["load_1m"] is None:
        return "machine: load average unknown on this platform; figures may come from a shared machine"
    state = ("LOADED (shared with other jobs): the figures are pessimistic"
             if before["shared_machine"] else "quiet")
    after_text = f", {after['load_1m']:.2f} after" if after["load_1m"] is not None else ""
    return (f"machine: load average {before['load_1m']:.2f} on {before['cpus']} CPU(s) before the run"
            f"{after_text} (loaded from {LOADED:g} per CPU): {state}")


def sine(codec: AudioCodec, seconds: float, freq: float = 1000.0) -> bytes:
    """``seconds`` of a sine at the codec's PCM rate, 16-bit LE."""
    rate = codec.sample_rate
    period = array("h", (int(8000 * math.sin(2 * math.pi * freq * i / rate)) for i in range(rate // 50)))
    return period.tobytes() * int(seconds * 50)


def params_for(codec: AudioCodec, port: int) -> MediaParams:
    """Sendrecv parameters towards 127.0.0.1:``port`` with ``codec``."""
    return MediaParams("127.0.0.1", port, Codec(codec.name, codec.payload_type, codec.clock_rate, codec.channels),
                       None, "sendrecv")


def pin(cpu: int) -> bool:
    """Run this process on ``cpu`` only (Linux); False when that cannot be done."""
    try:
        if cpu not in os.sched_getaffinity(0) and len(os.sched_getaffinity(0)) > 1:
            return False
        os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError):
        return False
    return True


class Arrivals:
    """What one stream received, as seen where it arrived: how late each packet came (``--far-end``).

    A packet's *transit* is its arrival time (reactor seconds) minus its RTP
    timestamp in seconds; the smallest transit of the stream is what an
    on-time packet takes, so a packet counts as *arrived late* when its
    transit exceeds that by more than :data:`LATE` (5 ms): the sender's
    lateness, the loopback's and the receiving process's delays together.
    """

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.transits = array("d")

    def heard(self, data: bytes, now: float) -> None:
        """Note one datagram (RTP of the usual 12-octet header; anything else is skipped)."""
        if len(data) >= 12 and data[0] == 0x80 and not 200 <= data[1] <= 204:  # RTP, not muxed RTCP
            self.transits.append(now - int.from_bytes(data[4:8], "big") / self.rate)

    def late(self) -> int:
        """Packets whose transit exceeded the stream's smallest by more than :data:`LATE`.

        Timestamps are unwrapped against the first one (a 10 s run at 8 kHz
        never wraps; a wrap would show as a jump of 2**32 / rate seconds, skipped).
        """
        if not self.transits:
            return 0
        floor = min(self.transits)
        return sum(1 for t in self.transits if LATE < t - floor < 1000.0)


def open_streams(reactor: Any, n: int, rate: int | None = None) -> list[Any]:
    """``n`` started streams on 127.0.0.1 (no process cap, no media timeout).

    With ``rate`` (the RTP clock, Hz), each stream also notes how late its
    packets arrive (its ``arrivals``, an :class:`Arrivals`).
    """
    from txsipua.net.rtp import MediaStream

    class Measured(MediaStream):
        arrivals: Arrivals | None = None

        def datagramReceived(self, data: bytes, addr: Any) -> None:  # noqa: N802 - Twisted's name
            if self.arrivals is not None:
                self.arrivals.heard(data, reactor.seconds())
            super().datagramReceived(data, addr)

    streams = []
    for _ in range(n):
        stream = Measured(reactor, local_host="127.0.0.1", media_timeout=None, limit=None)
        if rate is not None:
            stream.arrivals = Arrivals(rate)
        stream.start()
        streams.append(stream)
    return streams


def reception(streams: list[Any]) -> dict[str, float]:
    """Loss and jitter of what ``streams`` received, summed and per stream."""
    received = sum(s.stats.packets_received for s in streams)
    lost = sum(s.stats.packets_lost for s in streams)
    jitters = [s.stats.jitter * 1000 for s in streams if s.stats.packets_received]
    return {
        "received": received,
        "lost": lost,
        "loss_pct": 100.0 * lost / max(1, received + lost),
        "jitter_ms_mean": sum(jitters) / len(jitters) if jitters else 0.0,
        "jitter_ms_max": max(jitters) if jitters else 0.0,
    }


def far_end(n: int, codec_name: str, duration: float, cpu: int | None) -> int:
    """The txsipua far end: print our ports, read theirs, send and receive, print what we measured."""
    from twisted.internet import reactor

    if cpu is not None:
        pin(cpu)
    codec = CODECS[codec_name.lower()]
    streams = open_streams(reactor, n, codec.clock_rate)
    print(json.dumps({"ports": [s.port for s in streams]}), flush=True)
    theirs = json.loads(sys.stdin.readline())["ports"]
    pcm = sine(codec, duration, 440.0)
    window = SendingWindow(n)

    def play(stream: Any) -> None:
        stream.play(pcm, rate=codec.sample_rate).addBoth(window.played)

    for i, (stream, port) in enumerate(zip(streams, theirs, strict=True)):
        stream.configure(params_for(codec, port))
        stream.on_audio = lambda pcm: None  # decode what arrives, as a bot would
        # starts spread over a frame time like ours: calls do not all start in the same microsecond
        reactor.callLater(i * 0.02 / n, play, stream)

    def finish() -> None:
        out = reception(streams)
        out["sent"] = sum(s.stats.packets_sent for s in streams)
        out["late"] = sum(s.stats.packets_late for s in streams)
        out["skipped"] = sum(s.stats.packets_skipped for s in streams)
        out["arrived_late"] = sum(s.arrivals.late() for s in streams)
        out["arrivals"] = sum(len(s.arrivals.transits) for s in streams)
        wall, cpu, waited = window.figures()  # until its sending ended
        out["cpu_pct"] = 100 * cpu / wall
        out["wait_pct"] = None if waited is None else 100 * waited / wall
        print(json.dumps(out), flush=True)
        for s in streams:
            s.stop()
        reactor.stop()

    reactor.callLater(duration + 1.0, finish)
    reactor.run()
    return 0


class Probe:
    """A bare 10 ms timer in the process under test: how often the reactor itself wakes > 5 ms late.

    On a quiet machine it stays near 0 % whatever the streams do until the
    process runs out of CPU; on a shared machine it shows the share of
    lateness that comes from the scheduler, not from txsipua.
    """

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.count = self.late = 0
        self.due = reactor.seconds() + 0.01
        self.call = reactor.callLater(0.01, self.fire)

    def fire(self) -> None:
        now = self.reactor.seconds()
        self.count += 1
        self.late += now - self.due > LATE
        self.due = now + 0.01
        self.call = self.reactor.callLater(0.01, self.fire)

    def stop(self) -> None:
        if self.call.active():
            self.call.cancel()

    @property
    def late_pct(self) -> float:
        return 100.0 * self.late / max(1, self.count)


class SippEcho:
    """SIPp as an RTP echo (``-rtp_echo``) on 127.0.0.1, stopped by PID."""

    def __init__(self, cpu: int | None = None) -> None:
        self.port = free_udp_port(even=True)
        sip_port = free_udp_port()
        self.proc = subprocess.Popen(
            ["sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", str(sip_port), "-mp", str(self.port),
             "-rtp_echo", "-nostdin", "-m", "1"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            # pinned like the txsipua far end (on the other CPU), not on ours: it inherits our affinity
            preexec_fn=(lambda: pin(cpu)) if cpu is not None else None)
        time.sleep(0.5)
        if self.proc.poll() is not None:
            raise RuntimeError(f"sipp exited at once with status {self.proc.returncode}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(3)


def free_udp_port(even: bool = False) -> int:
    """A free UDP port on 127.0.0.1 (even when asked, for RTP)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if not even or port % 2 == 0:
            return port


def run_round(reactor: Any, n: int, codec: AudioCodec, duration: float, peer: str, pinning: bool) -> Any:
    """One N: returns a Deferred firing with the row (a dict)."""
    from twisted.internet import defer, task

    # against the echo, what comes back is ours: note how late it arrives (the round trip's lateness)
    streams = open_streams(reactor, n, codec.clock_rate if peer == "sipp" else None)
    far: Any = None
    echo: SippEcho | None = None
    if peer == "txsipua":
        far = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--far-end", str(n), "--codec", codec.name,
             "--duration", str(duration)] + (["--cpu", "1"] if pinning else []),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")})
        assert far.stdin is not None and far.stdout is not None
        ports = json.loads(far.stdout.readline())["ports"]
        far.stdin.write(json.dumps({"ports": [s.port for s in streams]}) + "\n")
        far.stdin.flush()
    else:
        echo = SippEcho(1 if pinning else None)
        ports = [echo.port] * n
    pcm = sine(codec, duration)
    for stream, port in zip(streams, ports, strict=True):
        stream.configure(params_for(codec, port))
        stream.on_audio = lambda pcm: None  # decode what arrives, as a bot would

    probe = Probe(reactor)
    spread = 0.02 / n
    window = SendingWindow(n)  # CPU counted until the last packet is sent, not while the streams stop

    def play(stream: Any) -> None:
        stream.play(pcm, rate=codec.sample_rate).addBoth(window.played)

    for i, stream in enumerate(streams):
        reactor.callLater(i * spread, play, stream)

    @defer.inlineCallbacks
    def measure() -> Any:
        yield task.deferLater(reactor, duration + 0.3, lambda: None)  # what is in flight arrives
        wall, cpu, waited = window.figures()  # closed when sending ended (now, if it has not yet)
        probe.stop()
        sent = sum(s.stats.packets_sent for s in streams)
        late = sum(s.stats.packets_late for s in streams)
        skipped = sum(s.stats.packets_skipped for s in streams)
        back = reception(streams)
        if peer == "sipp":  # noted until now, like `back`: packets that come while the streams stop are not
            back["arrived_late"] = sum(s.arrivals.late() for s in streams)
            back["arrivals"] = sum(len(s.arrivals.transits) for s in streams)
        for s in streams:
            yield s.stop()
        if far is not None:
            out, _ = far.communicate(timeout=30)  # the far end prints once its time is up
            far_stats = json.loads(out.strip().splitlines()[-1])
        else:
            assert echo is not None
            echo.stop()
            far_stats = back  # the echo: what came back is the round trip
        return {
            "n": n, "codec": codec.name, "peer": peer, "duration": round(wall, 2),
            "cpu_pct_total": round(100 * cpu / wall, 1),
            "cpu_pct_per_stream": round(100 * cpu / wall / n, 3),
            # time runnable but waiting for the CPU (other jobs): late sends follow it
            "wait_pct": None if waited is None else round(100 * waited / wall, 1),
            # the late share: (sent > 5 ms late + skipped) / slots due (sent + skipped)
            "sent": sent, "late": late, "skipped": skipped, "late_pct": round(late_share(late, skipped, sent), 3),
            "far_arrived_late_pct": round(100 * far_stats["arrived_late"] / max(1, far_stats["arrivals"]), 3),
            "far_loss_pct": round(far_stats["loss_pct"], 3),
            "far_jitter_ms_mean": round(far_stats["jitter_ms_mean"], 2),
            "far_jitter_ms_max": round(far_stats["jitter_ms_max"], 2),
            "back_loss_pct": round(back["loss_pct"], 3),
            "probe_late_pct": round(probe.late_pct, 3),
            "back_received": back["received"],
            # the txsipua far end's own health: its CPU and its own late share
            "far_cpu_pct": round(far_stats["cpu_pct"], 1) if "cpu_pct" in far_stats else None,
            "far_wait_pct": round(far_stats["wait_pct"], 1) if far_stats.get("wait_pct") is not None else None,
            "far_sent_late_pct": (round(late_share(far_stats["late"], far_stats["skipped"], far_stats["sent"]), 3)
                                  if "sent" in far_stats else None),
        }

    return measure()


def parser() -> argparse.ArgumentParser:
    """The command line (its defaults are those of the usage line in the module's docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--streams", default="50,100,250,500")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--codec", default="PCMU,opus", help="codecs, comma separated (unavailable ones are skipped)")
    ap.add_argument("--opus-streams", default="50,100", help="N for codecs other than G.711")
    ap.add_argument("--peer", default="txsipua,sipp")
    ap.add_argument("--pin", action="store_true", help="pin to CPU 0 (far end CPU 1): quiet machines only")
    ap.add_argument("--no-pin", action="store_true", help=argparse.SUPPRESS)  # the default
    ap.add_argument("--json", default="")
    ap.add_argument("--quick", action="store_true", help="4 streams for 1 s: smoke test")
    ap.add_argument("--far-end", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--cpu", type=int, default=None, help=argparse.SUPPRESS)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Run the rounds; print a table; write ``--json``."""
    a = parser().parse_args(argv)
    if a.far_end:
        return far_end(a.far_end, a.codec, a.duration, a.cpu)
    if a.quick:
        a.streams, a.opus_streams, a.duration = "4", "2", 1.0
    plan: list[tuple[int, AudioCodec, str]] = []
    unavailable: list[str] = []
    peers = [p.strip() for p in a.peer.split(",") if p.strip()]
    if "sipp" in peers and shutil.which("sipp") is None:
        unavailable.append("sipp: not installed")
        peers.remove("sipp")
    for name in a.codec.split(","):
        codec = CODECS.get(name.strip().lower())
        if codec is None or not codec.available():
            unavailable.append(f"{name}: codec not available")
            continue
        counts = a.streams if codec.sample_rate == 8000 else a.opus_streams
        for n in (int(x) for x in counts.split(",")):
            for peer in peers:
                if peer == "sipp" and codec.sample_rate != 8000:
                    continue  # the echo is codec-blind; one G.711 comparison is enough
                plan.append((n, codec, peer))
    pinning = a.pin and not a.no_pin and pin(0)
    load_before = machine_load()
    rows: list[dict[str, Any]] = []

    from twisted.internet import defer, task

    @defer.inlineCallbacks
    def run_all(reactor: Any) -> Any:
        for n, codec, peer in plan:
            try:
                row = yield run_round(reactor, n, codec, a.duration, peer, pinning)
            except Exception as e:  # a peer that cannot be driven: said, not hidden
                unavailable.append(f"{peer} N={n}: {e}")
                continue
            rows.append(row)
            print(f"N={row['n']:4d} {row['codec']:5s} vs {row['peer']:7s} cpu/stream {row['cpu_pct_per_stream']:6.3f}% "
                  f"(total {row['cpu_pct_total']:5.1f}%)  late>5ms+skipped {row['late_pct']:6.3f}%  "
                  f"arrived late {row['far_arrived_late_pct']:6.3f}%  "
                  f"far loss {row['far_loss_pct']:6.3f}%  jitter {row['far_jitter_ms_mean']:5.2f}/"
                  f"{row['far_jitter_ms_max']:5.2f} ms  back loss {row['back_loss_pct']:6.3f}%  "
                  f"probe late {row['probe_late_pct']:6.2f}%  cpu wait {row['wait_pct']}%"
                  + (f"  far end: cpu {row['far_cpu_pct']:5.1f}% wait {row['far_wait_pct']}% "
                     f"sent late {row['far_sent_late_pct']:6.3f}%"
                     if row["far_cpu_pct"] is not None else ""), flush=True)

    try:
        task.react(lambda reactor: run_all(reactor), [])
    except SystemExit as e:  # react always exits; go on to the report
        if e.code:
            raise
    load_after = machine_load()
    for item in unavailable:
        print(f"not run: {item}")
    print(describe_load(load_before, load_after))
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"benchmark": "media", "pinned": pinning, "rows": rows, "unavailable": unavailable,
                       "shared_machine": load_before["shared_machine"], "load_before": load_before,
                       "load_after": load_after}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
