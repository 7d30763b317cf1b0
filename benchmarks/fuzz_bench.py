#!/usr/bin/env python3
"""Fuzzing at scale: mutated and generated SIP messages at the parser and at a live ``txsipua answer``.

    python3 benchmarks/fuzz_bench.py --count 1000000                 # parser + live answer
    python3 benchmarks/fuzz_bench.py --count 1000000 --mode parser   # the parser only
    python3 benchmarks/fuzz_bench.py --count 1000000 --mode asan     # the C accelerator under ASan+UBSan
    python3 benchmarks/fuzz_bench.py --count 1000000 --mode all      # the three
        [--live-count N] [--rate PER_S] [--settle S] [--seed N] [--json out.json] [--quick]

Inputs.  A pool of seed messages: every file of ``tests/sip/corpus`` plus
``--generated`` messages drawn from :func:`txsipua.testing.strategies.messages`
(hypothesis, generation phase only).  Input *i* is a pool message with 0 to 4
mutations from a :class:`random.Random` seeded by ``--seed`` and *i* (so a
crash is replayed with ``--replay I``): bit flips, bytes replaced by SIP
separators, NUL, CR/LF and 0xFF, spans deleted, duplicated or spliced from
another message, lines deleted, duplicated or swapped, LF-only line ends,
numbers replaced by edge values (-1, 2**31, 2**32, 20 digits), long runs of one
character, header names and values swapped between messages, truncation.

Parser (``--mode parser``): :func:`~txsipua.sip.message.parse_message` on each
input, then every lazy accessor a UA core reads (top Via, Call-ID, CSeq,
From/To and their tags, Contact, Record-Route, Max-Forwards, Expires,
Content-Type, Request-URI) and ``to_bytes``.  Only
:class:`~txsipua.errors.ParseError` may escape; anything else is a crash,
counted and saved (``--crash-dir``).

Live (``--mode live``): ``txsipua answer --realm fuzz.example`` with an
htdigest user is started as a subprocess on 127.0.0.1 (with twisted.logger
writing every logged failure to its stderr), and the inputs are sent as UDP
datagrams at most ``--rate`` per second.  The top Via of every input is
replaced by ``SIP/2.0/UDP 127.0.0.1:<our port>;rport;branch=z9hG4bKfz<i>``
(other Vias removed) so every answer comes back to us and never leaves
loopback; final non-2xx responses to INVITE are ACKed, as a peer would.
Each input is classed by the best response it got (a final class 2xx..6xx,
else 1xx, else none).  A valid OPTIONS probe every 10,000 datagrams and at the
end must be answered.  Crashes = the process died, a probe went unanswered,
or a failure was logged.  RSS (VmRSS) of the answer process is read after
start-up, at the end (with the peak, VmHWM), and ``--settle`` seconds later
(default 40: every transaction has ended by then).

ASan (``--mode asan``): ``txsipua/sip/_speedups.c`` is compiled with
``gcc -shared -fPIC -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined
-fno-sanitize-recover=undefined`` into a temporary copy of the package, and
the parser part runs again in a child process with that copy first on
``PYTHONPATH``, ``LD_PRELOAD=$(gcc -print-file-name=libasan.so)``,
``PYTHONMALLOC=malloc`` (so ASan sees Python's buffers too),
``ASAN_OPTIONS=detect_leaks=0:abort_on_error=1`` and
``UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1``; the child checks that
the instrumented accelerator is the one in use.  Any sanitizer report ends
the child with a non-zero status and counts as a crash.  First, a canary: in
the same environment a deliberate 64-byte ``memset`` into an 8-byte ``malloc``
must be reported as a heap-buffer-overflow, or the run counts as failed.

``--quick`` is ``--count 400 --live-count 300 --generated 20 --settle 0`` (the smoke test).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "sip" / "corpus"
if str(ROOT) not in sys.path and "TXSIPUA_FUZZ_ASAN_CHILD" not in os.environ:
    sys.path.insert(0, str(ROOT))  # this tree's txsipua (the ASan child uses its own copy)

# ----------------------------------------------------------------- inputs

SEPARATORS = [b"\x00", b"\xff", b"\r", b"\n", b"\r\n", b":", b";", b",", b"<", b">", b'"', b"\\",
              b" ", b"\t", b"=", b"@", b"%", b"[", b"]", b"/", b"?", b"&", b"\x7f", b"\xc3\xa9"]
NUMBERS = [b"-1", b"0", b"00000000000000000001", b"2147483647", b"2147483648", b"4294967295",
           b"4294967296", b"99999999999999999999", b"1e5", b"0x10", b"", b" 1 ", b"\xd9\xa3"]
HEADER_NAMES = [b"Via", b"v", b"From", b"f", b"To", b"t", b"Call-ID", b"i", b"CSeq", b"Contact",
                b"m", b"Content-Length", b"l", b"Content-Type", b"c", b"Max-Forwards", b"Expires",
                b"Route", b"Record-Route", b"Authorization", b"Proxy-Authorization",
                b"WWW-Authenticate", b"Proxy-Authenticate", b"X-Fuzz", b"", b" Via", b"VIA"]
_NUMBER = re.compile(rb"\d+")


def corpus_messages() -> list[bytes]:
    """The bytes of every ``tests/sip/corpus/*.sip`` file."""
    return [p.read_bytes() for p in sorted(CORPUS.glob("*.sip"))]


def generated_messages(count: int, seed: int) -> list[bytes]:
    """``count`` valid messages from :func:`txsipua.testing.strategies.messages` (hypothesis)."""
    if count <= 0:
        return []
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed

    from txsipua.testing.strategies import messages

    out: list[bytes] = []

    @hseed(seed)
    @settings(max_examples=count, database=None, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(messages())
    def collect(message: Any) -> None:
        out.append(message.to_bytes())

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        collect()
    return out


def _span(rng: random.Random, n: int) -> tuple[int, int]:
    a = rng.randrange(n + 1)
    return a, min(n, a + rng.choice((1, 2, 4, 8, 32, 256)))


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\r\n")


def mutate(data: bytes, pool: list[bytes], rng: random.Random) -> bytes:
    """One mutation of ``data`` (see the module docstring for the kinds)."""
    n = len(data)
    kind = rng.randrange(14)
    if n == 0:
        return rng.choice(pool)[: rng.randrange(64)]
    if kind == 0:  # bit flips
        b = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(n)] ^= 1 << rng.randrange(8)
        return bytes(b)
    if kind == 1:  # a byte becomes a separator
        i = rng.randrange(n)
        return data[:i] + rng.choice(SEPARATORS) + data[i + 1:]
    if kind == 2:  # a separator inserted
        i = rng.randrange(n)
        return data[:i] + rng.choice(SEPARATORS) * rng.choice((1, 1, 2, 7)) + data[i:]
    if kind == 3:  # a span deleted
        a, b_ = _span(rng, n)
        return data[:a] + data[b_:]
    if kind == 4:  # a span duplicated
        a, b_ = _span(rng, n)
        return data[:b_] + data[a:b_] + data[b_:]
    if kind == 5:  # splice: our head, another message's tail
        other = rng.choice(pool)
        return data[: rng.randrange(n)] + other[rng.randrange(len(other) + 1):]
    lines = _lines(data)
    if kind == 6 and len(lines) > 1:  # a line deleted
        del lines[rng.randrange(len(lines))]
        return b"\r\n".join(lines)
    if kind == 7:  # a line duplicated (two Call-IDs, two Froms...)
        i = rng.randrange(len(lines))
        lines.insert(i, lines[i])
        return b"\r\n".join(lines)
    if kind == 8 and len(lines) > 2:  # two lines swapped
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
        return b"\r\n".join(lines)
    if kind == 9:  # LF-only or CR-only line ends, or folding
        return data.replace(b"\r\n", rng.choice((b"\n", b"\r", b"\r\n ", b"\r\n\t", b"\n\r")),
                            rng.choice((1, 3, -1)))
    if kind == 10:  # a number becomes an edge value
        spots = list(_NUMBER.finditer(data))
        if spots:
            m = rng.choice(spots)
            return data[: m.start()] + rng.choice(NUMBERS) + data[m.end():]
    if kind == 11:  # a long run of one character
        i = rng.randrange(n)
        run = rng.choice((b"a", b";", b",", b" ", b"%", b"<", b"\x00", b"9"))
        return data[:i] + run * rng.choice((100, 1000, 10_000, 70_000)) + data[i:]
    if kind == 12:  # a header name replaced or a header added
        i = rng.randrange(1, len(lines)) if len(lines) > 1 else 0
        name, sep, value = lines[i].partition(b":")
        other = rng.choice(pool).split(b"\r\n")
        new = rng.choice(HEADER_NAMES) + b":" + (value if sep and rng.random() < 0.5
                                                  else rng.choice(other).partition(b":")[2])
        if rng.random() < 0.5:
            lines[i] = new
        else:
            lines.insert(i, new)
        return b"\r\n".join(lines)
    return data[: rng.randrange(n)]  # truncated


def make_input(i: int, pool: list[bytes], seed: int) -> bytes:
    """Input number ``i``: a pool message with 0..4 mutations (deterministic in ``seed``, ``i``)."""
    rng = random.Random(seed * 1_000_003 + i)
    data = rng.choice(pool)
    for _ in range(rng.choice((0, 1, 1, 2, 2, 3, 4))):
        data = mutate(data, pool, rng)
    return data


# ----------------------------------------------------------------- parser

_ACCESSORS = ("top_via", "via", "call_id", "cseq", "from_", "to", "from_tag", "to_tag", "contact",
              "record_route", "max_forwards", "expires", "content_type")


def exercise(data: bytes) -> str:
    """Parse ``data`` and read every accessor; return "ok", "parse-error" or "partial".

    Raises:
        Exception: anything but ParseError (a crash).
    """
    from txsipua.errors import ParseError
    from txsipua.sip.message import Request, parse_message

    try:
        message = parse_message(data)
    except ParseError:
        return "parse-error"
    partial = False
    names = _ACCESSORS + (("uri", "uri_text") if isinstance(message, Request) else ())
    for name in names:
        try:
            getattr(message, name)
        except ParseError:
            partial = True
    try:
        message.to_bytes()
    except ParseError:
        partial = True
    return "partial" if partial else "ok"


def run_parser(count: int, pool: list[bytes], seed: int, crash_dir: Path | None) -> dict[str, Any]:
    """Feed ``count`` inputs to the parser; return counts, crashes and the rate."""
    from txsipua.sip import parse as parse_module

    outcomes: Counter[str] = Counter()
    crashes: list[dict[str, Any]] = []
    sizes = 0
    t0 = time.perf_counter()
    for i in range(count):
        data = make_input(i, pool, seed)
        sizes += len(data)
        try:
            outcomes[exercise(data)] += 1
        except Exception as e:  # a crash: anything but ParseError
            outcomes["crash"] += 1
            if len(crashes) < 50:
                crashes.append({"input": i, "error": f"{type(e).__name__}: {e}"[:300]})
                if crash_dir is not None:
                    crash_dir.mkdir(parents=True, exist_ok=True)
                    (crash_dir / f"parser-{seed}-{i}.sip").write_bytes(data)
    seconds = time.perf_counter() - t0
    return {"inputs": count, "bytes": sizes, "seconds": round(seconds, 2),
            "per_second": round(count / seconds) if seconds else None,
            "accelerator": parse_module._parse_head is not None,
            "outcomes": dict(outcomes), "crashes": outcomes["crash"], "crash_samples": crashes}


# ----------------------------------------------------------------- live

_WRAPPER = """
import sys
from twisted.logger import globalLogBeginner, formatEventAsClassicLogText, LogLevel
def observer(event):
    if event.get("log_failure") is not None or event.get("log_level") in (LogLevel.error, LogLevel.critical):
        sys.stderr.write("INTERNAL-ERROR: " + (formatEventAsClassicLogText(event) or repr(event)))
        sys.stderr.flush()
globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
from txsipua.cli.main import main
sys.argv = ["txsipua"] + sys.argv[1:]
main()
"""
_BRANCH = re.compile(rb"branch=z9hG4bKfz(\d+)")
_PROBE = re.compile(rb"branch=z9hG4bKprobe(\d+)")
_VIA_NAMES = (b"via", b"v")


def rss_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in KiB (from /proc)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


_LINE_END = re.compile(rb"(\r\n|\n|\r)")


def on_loopback(data: bytes, i: int, port: int) -> bytes:
    """``data`` with its Vias replaced by ours (so every answer comes back here).

    Lines are split at CRLF, LF or CR alike (a mutation may leave any of them),
    and every Via line is removed with its continuation lines, wherever it is:
    a Via left in an LF-only message would be the top one for the parser.
    """
    parts = _LINE_END.split(data)  # line, end, line, end, ..., line
    out = [parts[0], b"\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;rport;branch=z9hG4bKfz%d" % (port, i)]
    dropping = False
    for k in range(1, len(parts), 2):
        end, line = parts[k], parts[k + 1]
        if line[:1] in (b" ", b"\t") and dropping:
            continue  # the folded rest of a removed Via
        dropping = line.partition(b":")[0].strip().lower() in _VIA_NAMES
        if not dropping:
            out += [end, line]
    return b"".join(out)


def _header(lines: list[bytes], *names: bytes) -> bytes | None:
    for ln in lines:
        name, sep, value = ln.partition(b":")
        if sep and name.strip().lower() in names:
            return value.strip()
    return None


def ack_for(response: bytes) -> bytes | None:
    """The ACK (RFC 3261 §17.1.1.3) for a final non-2xx response to INVITE, else None."""
    lines = response.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    cseq = _header(lines, b"cseq")
    if len(parts) < 2 or not parts[1].isdigit() or int(parts[1]) < 300 or cseq is None:
        return None
    number, _, method = cseq.partition(b" ")
    via, frm, to, call_id = (_header(lines, b"via", b"v"), _header(lines, b"from", b"f"),
                             _header(lines, b"to", b"t"), _header(lines, b"call-id", b"i"))
    if method.strip() != b"INVITE" or None in (via, frm, to, call_id):
        return None
    return (b"ACK sip:fuzz@127.0.0.1 SIP/2.0\r\nVia: %s\r\nMax-Forwards: 70\r\nFrom: %s\r\n"
            b"To: %s\r\nCall-ID: %s\r\nCSeq: %s ACK\r\nContent-Length: 0\r\n\r\n"
            % (via, frm, to, call_id, number.strip()))


def probe(port: int, n: int) -> bytes:
    """A valid OPTIONS from 127.0.0.1:``port``; its answer carries branch z9hG4bKprobe<n>."""
    return (b"OPTIONS sip:fuzz@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;rport;"
            b"branch=z9hG4bKprobe%d\r\nMax-Forwards: 70\r\nFrom: <sip:probe@192.0.2.1>;tag=p%d\r\n"
            b"To: <sip:fuzz@127.0.0.1>\r\nCall-ID: probe-%d@192.0.2.1\r\nCSeq: 1 OPTIONS\r\n"
            b"Content-Length: 0\r\n\r\n" % (port, n, n, n))


class LiveAnswer:
    """A ``txsipua answer`` subprocess on 127.0.0.1 and the UDP socket that talks to it."""

    def __init__(self, work: Path) -> None:
        from hashlib import md5

        users = work / "users.htdigest"
        ha1 = md5(b"alice:fuzz.example:not-the-password").hexdigest()
        users.write_text(f"alice:fuzz.example:{ha1}\n")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
        self.stderr_path = work / "answer.stderr"
        self._stderr = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _WRAPPER, "answer", "--bind", "127.0.0.1:0", "--realm",
             "fuzz.example", "--users", str(users)],
            stdout=subprocess.PIPE, stderr=self._stderr, env=env, start_new_session=True)
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline().decode().strip()
        if not ready.startswith("ready "):
            self.stop()
            raise RuntimeError(f"answer did not start: {ready!r} {self.stderr_path.read_text()}")
        host, _, port = ready.split()[1].rpartition(":")
        self.target = (host, int(port))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]

    def send(self, data: bytes) -> None:
        with contextlib.suppress(OSError):  # EMSGSIZE for a >64 KiB input, ENOBUFS: "none"
            self.sock.sendto(data, self.target)

    def drain(self, wait: float, on_datagram: Any) -> None:
        """Read what has arrived, waiting at most ``wait`` seconds for the first datagram."""
        deadline = time.monotonic() + wait
        while True:
            timeout = max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self.sock], [], [], timeout)
            if not ready:
                return
            while True:
                try:
                    data = self.sock.recv(70_000)
                except BlockingIOError:
                    break
                on_datagram(data)
            if time.monotonic() >= deadline:
                return

    def stop(self) -> int:
        """SIGTERM the answer process; its exit status (killed after 10 s)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()
        if hasattr(self, "sock"):
            self.sock.close()
        return self.proc.returncode


def run_live(count: int, pool: list[bytes], seed: int, rate: float,
             settle: float = 0.0) -> dict[str, Any]:
    """Send ``count`` inputs to a live ``txsipua answer`` at most ``rate`` per second."""
    best = bytearray(count)  # per input: 0 none, 1..6 the best response class
    probes_answered: set[int] = set()
    acks = [0]

    def on_datagram(data: bytes) -> None:
        status = data[8:11]
        if not data.startswith(b"SIP/2.0 ") or not status.isdigit():
            return
        cls = int(status) // 100
        m = _BRANCH.search(data)
        if m is not None:
            i = int(m.group(1))
            if i < count and (best[i] <= 1 or cls == 1 and best[i] == 0):
                best[i] = max(best[i], cls) if cls == 1 else cls
        else:
            p = _PROBE.search(data)
            if p is not None:
                probes_answered.add(int(p.group(1)))
        ack = ack_for(data)
        if ack is not None:
            live.send(ack)
            acks[0] += 1

    def check(n: int) -> bool:
        live.send(probe(live.port, n))
        deadline = time.monotonic() + 10
        while n not in probes_answered and time.monotonic() < deadline:
            live.drain(0.2, on_datagram)
        return n in probes_answered

    with tempfile.TemporaryDirectory(prefix="txsipua-fuzz-") as tmp:
        live = LiveAnswer(Path(tmp))
        try:
            probes_failed = 0 if check(0) else 1
            before = rss_kib(live.proc.pid)
            t0 = time.monotonic()
            died_at = None
            for i in range(count):
                live.send(on_loopback(make_input(i, pool, seed), i, live.port))
                if i % 50 == 49:
                    ahead = (i + 1) / rate - (time.monotonic() - t0)
                    live.drain(max(0.0, ahead), on_datagram)
                if i % 10_000 == 9_999:
                    if live.proc.poll() is not None:
                        died_at = i
                        break
                    probes_failed += 0 if check(i + 1) else 1
            sending = time.monotonic() - t0
            live.drain(3.0, on_datagram)
            probes_failed += 0 if check(count + 1) else 1
            after = rss_kib(live.proc.pid) if live.proc.poll() is None else {}
            # transactions live up to 64*T1 = 32 s: after that the process holds only what leaked
            settle_end = time.monotonic() + settle
            while time.monotonic() < settle_end:
                live.drain(min(1.0, max(0.0, settle_end - time.monotonic())), on_datagram)
            if settle:
                probes_failed += 0 if check(count + 2) else 1
            settled = rss_kib(live.proc.pid) if live.proc.poll() is None else {}
            alive = live.proc.poll() is None
        finally:
            status = live.stop()
        stderr = live.stderr_path.read_text(errors="replace")
    classes = Counter(best)
    internal = stderr.count("INTERNAL-ERROR:")
    return {
        "inputs": count, "rate_asked": rate, "seconds": round(sending, 1),
        "per_second": round(count / sending) if sending else None,
        "responses": {("none" if k == 0 else f"{k}xx"): classes.get(k, 0) for k in range(7)},
        "acks_sent": acks[0], "probes_failed": probes_failed, "alive_at_end": alive,
        "died_after": died_at, "exit_status": status, "internal_errors": internal,
        "stderr_tail": stderr[-2000:] if internal or not alive else "",
        "crashes": (0 if alive and died_at is None else 1) + probes_failed + internal,
        "rss_kib_before": before.get("VmRSS"), "rss_kib_after": after.get("VmRSS"),
        "rss_kib_peak": after.get("VmHWM"), "settle_seconds": settle,
        "rss_kib_settled": settled.get("VmRSS"),
    }


# ----------------------------------------------------------------- ASan

def asan_library() -> str | None:
    """Path of gcc's libasan.so, or None without gcc or without the library."""
    gcc = shutil.which("gcc")
    if gcc is None:
        return None
    path = subprocess.run([gcc, "-print-file-name=libasan.so"], capture_output=True,
                          text=True).stdout.strip()
    return path if os.path.isabs(path) and os.path.exists(path) else None


def build_asan(work: Path) -> Path:
    """Copy the package to ``work`` and build the instrumented accelerator in it; the root."""
    shutil.copytree(ROOT / "txsipua", work / "txsipua",
                    ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    include = sysconfig.get_paths()["include"]
    out = work / "txsipua" / "sip" / f"_speedups{suffix}"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-g", "-fno-omit-frame-pointer",
                    "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
                    f"-I{include}", str(ROOT / "txsipua" / "sip" / "_speedups.c"),
                    "-o", str(out)], check=True, cwd=ROOT / "txsipua" / "sip")
    return work


_CANARY = """
import ctypes
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.memset(ctypes.c_void_p(libc.malloc(8)), 0, 64)
"""


def run_asan(count: int, generated: int, seed: int) -> dict[str, Any]:
    """The parser part in a child with the ASan/UBSan-built accelerator."""
    lib = asan_library()
    if lib is None:
        return {"unavailable": "gcc or libasan.so not found"}
    with tempfile.TemporaryDirectory(prefix="txsipua-asan-") as tmp:
        work = build_asan(Path(tmp))
        result = Path(tmp) / "result.json"
        env = {k: v for k, v in os.environ.items() if k != "TXSIPUA_PURE"}
        env.update(PYTHONPATH=str(work), TXSIPUA_FUZZ_ASAN_CHILD="1", LD_PRELOAD=lib, PYTHONMALLOC="malloc",
                   ASAN_OPTIONS="detect_leaks=0:abort_on_error=1",
                   UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
        # the canary: in this environment a deliberate heap overflow must be reported
        canary = subprocess.run([sys.executable, "-c", _CANARY], env=env, capture_output=True,
                                text=True, cwd=tmp)
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--mode", "parser", "--count",
             str(count), "--generated", str(generated), "--seed", str(seed), "--json",
             str(result), "--expect-speedups-under", str(work)],
            env=env, capture_output=True, text=True, cwd=tmp)
        out: dict[str, Any] = {"command": "LD_PRELOAD=" + lib + " PYTHONMALLOC=malloc "
                               "ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 "
                               "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1",
                               "exit_status": proc.returncode,
                               "canary_detected": canary.returncode != 0
                               and "ERROR: AddressSanitizer: heap-buffer-overflow" in canary.stderr}
        sanitizer = [ln for ln in proc.stderr.splitlines()
                     if "ERROR: AddressSanitizer" in ln or "runtime error:" in ln]
        out["sanitizer_reports"] = len(sanitizer)
        if result.exists():
            out["parser"] = json.loads(result.read_text())["parser"]
        else:
            out["stderr_tail"] = proc.stderr[-3000:]
        parsed = out.get("parser", {})
        out["crashes"] = (parsed.get("crashes", 0) + len(sanitizer)
                          + (1 if proc.returncode != 0 else 0))
        if not out["canary_detected"]:
            out["crashes"] += 1  # a sanitizer that reports nothing proves nothing
            out["canary_stderr"] = canary.stderr[-2000:]
        return out


# ----------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    """Run the fuzzer; print a summary; 0 when no crash was seen, 1 otherwise."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--count", type=int, default=1_000_000, help="inputs per part (default 1,000,000)")
    ap.add_argument("--live-count", type=int, default=None, help="inputs for the live part (default --count)")
    ap.add_argument("--mode", choices=("parser", "live", "asan", "both", "all"), default="both",
                    help="both = parser + live (default); all = parser + live + asan")
    ap.add_argument("--rate", type=float, default=2000.0, help="live datagrams per second at most")
    ap.add_argument("--settle", type=float, default=40.0,
                    help="live: seconds to wait before the last RSS reading (transactions end)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--generated", type=int, default=300, help="hypothesis messages in the seed pool")
    ap.add_argument("--json", default="", help="write the results here")
    ap.add_argument("--crash-dir", default="", help="save crashing parser inputs here")
    ap.add_argument("--replay", type=int, default=None, help="print input number N and what it does")
    ap.add_argument("--quick", action="store_true", help="a few hundred inputs (the smoke test)")
    ap.add_argument("--expect-speedups-under", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.quick:
        args.count, args.live_count, args.generated, args.settle = 400, 300, 20, 0.0
    live_count = args.count if args.live_count is None else args.live_count

    if args.expect_speedups_under:  # the ASan child: the instrumented accelerator must be in use
        from txsipua.sip import _speedups  # type: ignore[attr-defined]

        if not str(_speedups.__file__).startswith(args.expect_speedups_under):
            raise SystemExit(f"wrong accelerator in use: {_speedups.__file__}")

    pool = corpus_messages() + generated_messages(args.generated, args.seed)
    if args.replay is not None:
        data = make_input(args.replay, pool, args.seed)
        print(repr(data))
        print(exercise(data))
        return 0
    results: dict[str, Any] = {"seed": args.seed, "pool": len(pool)}

    def save() -> None:  # after each part, so a long run keeps what it measured
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1))

    crash_dir = Path(args.crash_dir) if args.crash_dir else None
    if args.mode in ("parser", "both", "all"):
        results["parser"] = run_parser(args.count, pool, args.seed, crash_dir)
        p = results["parser"]
        print(f"parser: {p['inputs']:,} inputs in {p['seconds']} s ({p['per_second']:,}/s, "
              f"accelerator {'on' if p['accelerator'] else 'off'}): {p['outcomes']}; "
              f"crashes {p['crashes']}", flush=True)
        save()
    if args.mode in ("live", "both", "all"):
        results["live"] = live = run_live(live_count, pool, args.seed, args.rate, args.settle)
        print(f"live answer: {live['inputs']:,} datagrams in {live['seconds']} s; responses "
              f"{live['responses']}; crashes {live['crashes']} (probes failed "
              f"{live['probes_failed']}, internal errors {live['internal_errors']}); RSS "
              f"{live['rss_kib_before']} KiB -> {live['rss_kib_after']} KiB "
              f"(peak {live['rss_kib_peak']} KiB; {live['rss_kib_settled']} KiB after "
              f"{args.settle:g} s more)", flush=True)
        if live["stderr_tail"]:
            print(f"live answer stderr (tail):\n{live['stderr_tail']}", flush=True)
        save()
    if args.mode in ("asan", "all"):
        results["asan"] = a = run_asan(args.count, args.generated, args.seed)
        print(f"asan: {a.get('unavailable') or a.get('parser', {}).get('outcomes')}; canary "
              f"detected {a.get('canary_detected')}; sanitizer reports "
              f"{a.get('sanitizer_reports')}; crashes {a.get('crashes')}", flush=True)
    save()
    crashed = sum(part.get("crashes", 0) for part in results.values() if isinstance(part, dict))
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
