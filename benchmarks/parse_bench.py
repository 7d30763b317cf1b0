#!/usr/bin/env python3
"""SIP parser throughput: txsipua side by side with its peers, same corpus, same run.

    python benchmarks/parse_bench.py [--rounds 7] [--round-s 0.3] [--only NAME,NAME]
                                     [--json out.json] [--profile] [--quick] [-v]

Unit of work, identical for every adapter: the bytes of one datagram in, the
"transaction key" out = (kind, method|status, Call-ID, CSeq number, CSeq
method, top Via branch, body length).  That is the least a user agent must
learn from every message it receives, so lazy parsers pay for what they defer.

txsipua is measured in three modes, each with and without its optional C
accelerator (``txsipua.sip._speedups``; the "pure" rows time a private copy of
the message module loaded with ``TXSIPUA_PURE`` set, in the same rounds):

* ``txsipua full``: :func:`~txsipua.sip.message.parse_message` (the whole
  message parsed: every header field split, names checked, compact forms
  expanded, folding joined, mandatory fields, CSeq and Content-Length
  checked), every header field as text (``headers.items()``), and the typed
  transaction key: ``top_via`` (a :class:`~txsipua.sip.values.Via`),
  ``cseq``, ``call_id``, ``from_tag``, ``to_tag``.  This is the peers' unit
  of work (all headers split, the key typed).
* ``txsipua lazy``: ``parse_message`` and only what a transaction and dialog
  match read: ``top_via.branch``, ``cseq``, ``call_id``, ``from_tag``,
  ``to_tag`` (the tags without parsing the From/To URIs, as the UA core reads
  them).  (Slightly *more* than the floor extracts: the floor reads no tag.)
* ``txsipua typed`` (no target): full, plus every Via and From/To as
  :class:`~txsipua.sip.values.NameAddr` with their URIs parsed -- more than
  any peer's adapter does.

Every adapter is validated on every corpus message first (fields compared
with ``corpus/expected.json``); only the messages it gets right are timed, and
the floor is timed on exactly that subset in the same round, so the ratios
are like for like even for peers that reject part of the corpus.  Rounds are
interleaved across adapters (the machines are small and noisy) and medians
reported; a ratio is the median of the per-round ratios.

A peer that is not installed, or fails to import, is reported as "not
available", never fatal.  The peers install from PyPI:
``pip install twisted sipmessage sippy pyVoIP``.

Exit status: 0 (a benchmark reports, it does not judge); 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import importlib.metadata as md
import importlib.util
import io
import json
import os
import pstats
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if importlib.util.find_spec("txsipua") is None and ROOT not in sys.path:
    # not installed: run from this checkout (the accelerator is there only if built
    # in place: pip install -e . or python3 setup.py build_ext --inplace)
    sys.path.insert(0, ROOT)

FIELDS = ("kind", "what", "call_id", "cseq_num", "cseq_method", "branch", "body_len")
FLOOR = "floor:bytes.split"
Key = tuple[Any, ...]
ParseFn = Callable[[bytes], Key]


class Adapter:
    """One parser under test: a name, its distribution (for the version) and a loader."""

    def __init__(self, name: str, dist: str | None, note: str,
                 loader: Callable[[], ParseFn]) -> None:
        self.name, self.dist, self.note, self.loader = name, dist, note, loader


ADAPTERS: dict[str, Adapter] = {}


def adapter(name: str, dist: str | None = None, note: str = "") -> Callable[..., Any]:
    """Register a loader returning ``parse(data: bytes) -> key tuple`` (None = not exposed)."""

    def deco(loader: Callable[[], ParseFn]) -> Callable[[], ParseFn]:
        ADAPTERS[name] = Adapter(name, dist, note, loader)
        return loader

    return deco


def version(dist: str | None) -> str:
    """The installed version of ``dist`` ("py3.11.x" for the floor)."""
    if dist is None:
        return "py" + ".".join(map(str, sys.version_info[:3]))
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        if dist == "txsipua":  # running from a checkout, not installed
            import txsipua
            return str(txsipua.__version__)
        return "?"


# ------------------------------------------------------------------ adapters
_COMPACT = {b"v": b"via", b"f": b"from", b"t": b"to", b"i": b"call-id", b"m": b"contact",
            b"l": b"content-length", b"c": b"content-type", b"k": b"supported",
            b"s": b"subject", b"e": b"content-encoding"}


@adapter(FLOOR, None, "split(b'\\r\\n') + dict of lists; folding + compact forms")
def _floor() -> ParseFn:
    compact = _COMPACT

    def parse(data: bytes) -> Key:
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        h: dict[bytes, list[bytes]] = {}
        last: list[bytes] = []
        for line in lines[1:]:
            if line[0] in (32, 9):  # folded continuation line
                last[-1] += b" " + line.strip()
                continue
            k, _, v = line.partition(b":")
            k = k.strip().lower()
            last = h.setdefault(compact.get(k, k), [])
            last.append(v.strip())
        a, b, _c = lines[0].split(b" ", 2)
        cs = h[b"cseq"][0].split()
        top = h[b"via"][0]
        i = top.find(b"branch=") + 7
        j = top.find(b";", i)
        br = top[i:] if j < 0 else top[i:j]
        if a == b"SIP/2.0":
            kind, what = "response", int(b)
        else:
            kind, what = "request", a.decode()  # type: ignore[assignment]
        return (kind, what, h[b"call-id"][0].decode(), int(cs[0]), cs[1].decode(),
                br.decode(), len(body))

    return parse


def _message_module(pure: bool) -> Any:
    """``txsipua.sip.parse`` (which gives ``parse_message``), or private copies of it and
    of ``txsipua.sip.values`` and ``txsipua.sip.message`` loaded with the C accelerator off.

    The copies (same sources, ``TXSIPUA_PURE`` set while they load; each copy imports
    the copies before it) let the pure parser and the accelerated one be timed in the
    same process and round.
    """
    from txsipua.sip import message, parse, values
    if not pure:
        return parse

    def load(name: str, path: str) -> Any:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    saved_env = os.environ.get("TXSIPUA_PURE")
    names = ("txsipua.sip.values", "txsipua.sip.message")
    saved = {n: sys.modules[n] for n in names}
    os.environ["TXSIPUA_PURE"] = "1"
    try:
        pure_values = load("_txsipua_pure_values", values.__file__)
        sys.modules["txsipua.sip.values"] = pure_values  # what the copies below import
        pure_message = load("_txsipua_pure_message", message.__file__)
        sys.modules["txsipua.sip.message"] = pure_message
        mod = load("_txsipua_pure_parse", parse.__file__)
    finally:
        sys.modules.update(saved)
        if saved_env is None:
            del os.environ["TXSIPUA_PURE"]
        else:
            os.environ["TXSIPUA_PURE"] = saved_env
    assert mod._parse_head is None and pure_message._tag_param is None
    assert pure_values._via_parts is None and pure_message.Via is pure_values.Via
    assert mod.Request is pure_message.Request
    return mod


def _key(m: Any, cs: Any, branch: str | None) -> Key:
    """The transaction key of a parsed txsipua message (Call-ID read here)."""
    if m.is_request:
        return ("request", m.method, m.call_id, cs.seq, cs.method, branch, len(m.body))
    return ("response", m.status, m.call_id, cs.seq, cs.method, branch, len(m.body))


def _full(pure: bool) -> ParseFn:
    """The whole message parsed, every header field as text, and the transaction key."""
    parse_message = _message_module(pure).parse_message

    def parse(data: bytes) -> Key:
        m = parse_message(data)
        for _name, _value in m.headers.items():  # every header field as text
            pass
        branch = m.top_via.branch
        cs = m.cseq
        m.from_tag  # noqa: B018 - typed access is the work measured
        m.to_tag  # noqa: B018
        return _key(m, cs, branch)

    return parse


def _lazy(pure: bool) -> ParseFn:
    """The message parsed and only what a transaction reads: Via, CSeq, Call-ID, tags."""
    parse_message = _message_module(pure).parse_message

    def parse(data: bytes) -> Key:
        m = parse_message(data)
        branch = m.top_via.branch
        cs = m.cseq
        m.from_tag  # noqa: B018
        m.to_tag  # noqa: B018
        return _key(m, cs, branch)

    return parse


def _typed(pure: bool) -> ParseFn:
    """Full, plus every Via and From/To as typed values (URIs parsed)."""
    parse_message = _message_module(pure).parse_message
    # the URI and name-addr caches would serve the corpus's repeated values
    # from memory: emptied before each message, so every URI is really parsed
    from txsipua.sip.uri import _PARSED as uris
    from txsipua.sip.values import _PARSED_NAME_ADDRS as name_addrs

    def parse(data: bytes) -> Key:
        uris.clear()
        name_addrs.clear()
        m = parse_message(data)
        for _name, _value in m.headers.items():
            pass
        vias = m.via
        cs = m.cseq
        m.from_.tag  # noqa: B018
        m.to.tag  # noqa: B018
        return _key(m, cs, vias[0].branch)

    return parse


@adapter("txsipua full", "txsipua",
         "parse_message + headers.items() + top_via, cseq, call_id, from_tag, to_tag "
         "(C header split when built)")
def _txsipua_full() -> ParseFn:
    return _full(pure=False)


@adapter("txsipua lazy", "txsipua",
         "parse_message + top_via.branch, cseq, call_id, from_tag, to_tag (C split when built)")
def _txsipua_lazy() -> ParseFn:
    return _lazy(pure=False)


@adapter("txsipua typed", "txsipua",
         "full + every Via and From/To as NameAddr (URIs parsed); no target")
def _txsipua_typed() -> ParseFn:
    return _typed(pure=False)


@adapter("txsipua full pure", "txsipua", "full with the C accelerator off (TXSIPUA_PURE)")
def _txsipua_full_pure() -> ParseFn:
    return _full(pure=True)


@adapter("txsipua lazy pure", "txsipua", "lazy with the C accelerator off (TXSIPUA_PURE)")
def _txsipua_lazy_pure() -> ParseFn:
    return _lazy(pure=True)


@adapter("twisted.protocols.sip", "twisted", "MessagesParser + parseViaHeader")
def _twisted() -> ParseFn:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from twisted.protocols import sip
    out: list[Any] = []
    p = sip.MessagesParser(out.append)

    def parse(data: bytes) -> Key:
        p.dataReceived(data)
        p.dataDone()
        m = out.pop()
        if isinstance(m, sip.Request):
            kind, what = "request", m.method
        else:
            kind, what = "response", m.code
        n, meth = m.headers["cseq"][0].split()
        return (kind, what, m.headers["call-id"][0], int(n), meth,
                sip.parseViaHeader(m.headers["via"][0]).branch, len(m.body))

    return parse


@adapter("sipmessage", "sipmessage", "Message.parse + .via[0] / .cseq / .call_id")
def _sipmessage() -> ParseFn:
    from sipmessage import Message, Request

    def parse(data: bytes) -> Key:
        m = Message.parse(data)
        if isinstance(m, Request):
            kind, what = "request", m.method
        else:
            kind, what = "response", m.code
        cs = m.cseq
        return (kind, what, m.call_id, cs.sequence, cs.method,
                m.via[0].parameters.get("branch"), len(m.body))

    return parse


@adapter("sippy", "sippy", "SipRequest/SipResponse(str) + getTId(wCSM, wBRN)")
def _sippy() -> ParseFn:
    from sippy.SipRequest import SipRequest
    from sippy.SipResponse import SipResponse

    def parse(data: bytes) -> Key:
        s = data.decode()
        m: Any
        if s.startswith("SIP/2.0 "):
            m = SipResponse(s)
            kind, what = "response", m.scode
        else:
            m = SipRequest(s)
            kind, what = "request", m.method
        cid, _ftag, n, meth, br = m.getTId(True, True)
        blen = 0 if m.body is None else len(m.body.content)
        return (kind, what, cid, n, meth, br, blen)

    return parse


@adapter("pyVoIP", "pyVoIP", "SIP.SIPMessage (parses SDP too); no raw body: body_len unchecked")
def _pyvoip() -> ParseFn:
    with warnings.catch_warnings():  # pyVoIP imports the deprecated audioop
        warnings.simplefilter("ignore")
        import pyVoIP.VoIP  # noqa: F401  (importing pyVoIP.SIP first hits a circular import)
        from pyVoIP.SIP import SIPMessage, SIPMessageType

    def parse(data: bytes) -> Key:
        m = SIPMessage(data)
        if m.type == SIPMessageType.RESPONSE:
            kind, what = "response", int(m.status)
        else:
            kind, what = "request", m.method
        cs = m.headers["CSeq"]
        return (kind, what, m.headers["Call-ID"], int(cs["check"]), cs["method"],
                m.headers["Via"][0]["branch"], None)

    return parse


# ------------------------------------------------------------------- harness
Corpus = list[tuple[str, bytes, Key]]


def load_corpus(path: str) -> Corpus:
    """``[(file name, bytes, expected key)]`` sorted by name, from ``expected.json``."""
    with open(os.path.join(path, "expected.json")) as fh:
        exp = json.load(fh)
    msgs = []
    for name in sorted(exp):
        with open(os.path.join(path, name), "rb") as fh:
            data = fh.read()
        e = exp[name]
        what = e.get("method", e.get("status"))
        key = (e["kind"], what, e["call_id"], e["cseq_num"], e["cseq_method"],
               e["branch"], e["body_len"])
        msgs.append((name, data, key))
    return msgs


def validate(fn: ParseFn, msgs: Corpus) -> tuple[list[bytes], list[tuple[str, str]]]:
    """Split the corpus into the datagrams ``fn`` gets right and ``(name, why)`` rejects."""
    ok, bad = [], []
    for name, data, want in msgs:
        try:
            got = tuple(fn(data))
            diff = [f for f, g, w in zip(FIELDS, got, want, strict=False)
                    if g is not None and g != w]
            if diff:
                bad.append((name, "wrong " + ",".join(diff)))
            else:
                ok.append(data)
        except Exception as e:  # noqa: BLE001 - any failure is a parse failure
            bad.append((name, f"{type(e).__name__}: {str(e)[:60]}"))
    return ok, bad


def time_pass(fn: Callable[[bytes], Any], datas: list[bytes], reps: int) -> float:
    """Seconds to parse ``datas`` ``reps`` times."""
    t0 = time.perf_counter()
    for _ in range(reps):
        for d in datas:
            fn(d)
    return time.perf_counter() - t0


def measure(loaded: list[dict[str, Any]], floor: ParseFn, subset: str, rounds: int,
            round_s: float) -> list[dict[str, Any]]:
    """Time every loaded parser and the floor on its subset, interleaved, and summarise."""
    runs = []
    for r in loaded:
        datas = r[subset]
        if not datas:
            continue
        t1 = max(time_pass(r["fn"], datas, 1), 1e-6)
        runs.append(dict(r, datas=datas, n=len(datas), reps=max(1, int(round_s / t1)),
                         rates=[], floor_rates=[]))
    for i in range(rounds):  # interleave the parsers inside every round
        for r in runs:
            gc.collect()
            pair = [("rates", r["fn"]), ("floor_rates", floor)]
            for key, fn in pair if i % 2 == 0 else pair[::-1]:  # alternate order: no bias
                dt = max(time_pass(fn, r["datas"], r["reps"]), 1e-9)
                r[key].append(r["n"] * r["reps"] / dt)
    for r in runs:
        r["median"] = statistics.median(r["rates"])
        r["floor_median"] = statistics.median(r["floor_rates"])
        ratios = [p / f for p, f in zip(r["rates"], r["floor_rates"], strict=True)]
        r["of_floor"] = statistics.median(ratios)  # parser speed / floor speed
        r["x_floor"] = statistics.median(1 / x for x in ratios)  # the reference's column
    return runs


def accelerator_line() -> str:
    """Which txsipua is measured, and whether its C accelerator is in use."""
    import txsipua
    from txsipua.sip import parse, values
    where = os.path.dirname(os.path.dirname(os.path.abspath(txsipua.__file__)))
    if parse._parse_head is not None and values._via_parts is not None:
        state = "built and in use (the 'pure' rows switch it off)"
    elif os.environ.get("TXSIPUA_PURE", "0") not in ("", "0"):
        state = "switched off by TXSIPUA_PURE: every txsipua row is pure Python"
    else:
        state = ("NOT built in this txsipua: every txsipua row is pure Python "
                 "(pip install . with a C compiler, or pip install -e . / "
                 "python3 setup.py build_ext --inplace in a checkout)")
    return f"txsipua from {where}; C accelerator: {state}"


def print_table(title: str, runs: list[dict[str, Any]], n_all: int) -> None:
    """Print one result table."""
    print(f"\n{title}")
    hdr = (f"{'parser':22} {'version':9} {'ok':>6} {'msgs/s med':>11} {'min-max':>17} "
           f"{'% floor':>8} {'x floor':>8}")
    print(hdr + "\n" + "-" * len(hdr))
    for r in runs:
        print(f"{r['name']:22} {r['version']:9} {r['n']:>3}/{n_all:<2} {r['median']:>11,.0f} "
              f"{min(r['rates']):>8,.0f}-{max(r['rates']):<8,.0f} {100 * r['of_floor']:>7.1f}% "
              f"{r['x_floor']:>7.2f}x")


def targets(runs: list[dict[str, Any]], n_all: int) -> list[str]:
    """The issue's parser targets, checked on this run's figures (lines of text)."""
    by = {r["name"]: r for r in runs}
    out = []
    full, lazy = by.get("txsipua full"), by.get("txsipua lazy")
    if full:
        out.append(f"txsipua parses {full['n']}/{n_all} correctly (target: all)")
        out.append(f"txsipua full = {100 * full['of_floor']:.0f}% of the floor (target >= 50%)")
    if lazy:
        out.append(f"txsipua lazy = {100 * lazy['of_floor']:.0f}% of the floor (target >= 80%)")
    for peer, want in (("sippy", 3.0), ("twisted.protocols.sip", 2.0)):
        if full and peer in by:
            # same-round floor ratios cancel machine noise: speed ratio = x_peer / x_tx
            ratio = by[peer]["x_floor"] / full["x_floor"]
            out.append(f"txsipua full = {ratio:.2f}x {peer} (target >= {want:g}x)")
    for name in ("txsipua full pure", "txsipua lazy pure", "txsipua typed"):
        if name in by:
            r = by[name]
            out.append(f"(for comparison, no target) {name} = {100 * r['of_floor']:.0f}% "
                       f"of the floor")
    return out


def profile(fn: ParseFn, datas: list[bytes], reps: int, top: int = 18) -> str:
    """cProfile ``fn`` over ``datas`` (``reps`` passes); the top entries by own time."""
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(reps):
        for d in datas:
            fn(d)
    prof.disable()
    s = io.StringIO()
    pstats.Stats(prof, stream=s).strip_dirs().sort_stats("tottime").print_stats(top)
    return s.getvalue()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the tables; return the exit status."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--corpus", default=os.path.join(HERE, "corpus"))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--round-s", type=float, default=0.3, help="target seconds per timed pass")
    ap.add_argument("--only", default="", help="comma list of adapter names (floor always runs)")
    ap.add_argument("--json", default="", help="write the results here")
    ap.add_argument("--profile", action="store_true",
                    help="also print a cProfile of both txsipua modes")
    ap.add_argument("--quick", action="store_true",
                    help="one tiny round (smoke test: checks the harness, not the speed)")
    ap.add_argument("-v", "--verbose", action="store_true", help="list every rejected message")
    a = ap.parse_args(argv)
    if a.quick:
        a.rounds, a.round_s = 1, 0.0

    msgs = load_corpus(a.corpus)
    n_all = len(msgs)
    wanted = set(filter(None, a.only.split(","))) | {FLOOR}
    floor = ADAPTERS[FLOOR].loader()
    loaded: list[dict[str, Any]] = []
    unavailable: dict[str, str] = {}
    for name, ad in ADAPTERS.items():
        if a.only and name not in wanted:
            continue
        try:
            fn = ad.loader()
        except Exception as e:  # noqa: BLE001 - a peer that fails to load is not fatal
            unavailable[name] = f"{type(e).__name__}: {e}"
            continue
        ok, bad = validate(fn, msgs)
        for n, why in bad if a.verbose else bad[:3]:
            print(f"  {name} rejects {n}: {why}", file=sys.stderr)
        if len(bad) > 3 and not a.verbose:
            print(f"  {name}: ... {len(bad) - 3} more rejected (-v lists all)", file=sys.stderr)
        if not ok:
            unavailable[name] = "parsed nothing correctly"
            continue
        loaded.append({"name": name, "version": version(ad.dist), "note": ad.note, "fn": fn,
                       "own": ok, "rejected": [f"{n}: {w}" for n, w in bad]})

    common_ids = set.intersection(*(set(map(id, r["own"])) for r in loaded))
    common = [m[1] for m in msgs if id(m[1]) in common_ids]
    for r in loaded:
        r["common"] = [d for d in r["own"] if id(d) in common_ids]
    own = measure(loaded, floor, "own", a.rounds, a.round_s)
    com = measure(loaded, floor, "common", a.rounds, a.round_s)

    print(f"\ncorpus: {n_all} messages, {sum(len(m[1]) for m in msgs)} bytes; "
          f"{a.rounds} interleaved rounds; python {sys.version.split()[0]}")
    print(accelerator_line())
    print_table("A. each parser on the messages it parses correctly (ok = parsed right/total)",
                own, n_all)
    print_table(f"B. common subset: the {len(common)} messages every loaded parser gets right",
                com, n_all)
    for name, why in unavailable.items():
        print(f"not available: {name} ({why})")
    print("\n% floor = parser msgs/s / floor msgs/s on the same messages, same round (median of "
          "per-round ratios); x floor = its inverse (the reference scripts' column).")
    lines = targets(own, n_all)
    if lines:
        print("\ntargets (issue 4), this run:")
        for line in lines:
            print("  " + line)
    if a.profile:
        for r in loaded:
            if r["name"].startswith("txsipua"):
                reps = 20 if a.quick else 200
                print(f"\ncProfile, {r['name']}, {n_all} messages x {reps}, by own time:")
                print(profile(r["fn"], r["own"], reps))
    if a.json:
        keep = ("name", "version", "note", "n", "reps", "rates", "floor_rates", "median",
                "floor_median", "of_floor", "x_floor", "rejected")
        with open(a.json, "w") as fh:
            json.dump({"benchmark": "parse", "n_all": n_all, "rounds": a.rounds,
                       "python": sys.version.split()[0],
                       "own": [{k: r[k] for k in keep} for r in own],
                       "common": [{k: r[k] for k in keep} for r in com],
                       "unavailable": unavailable, "targets": lines}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
