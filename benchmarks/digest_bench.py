#!/usr/bin/env python3
"""Digest authentication: responses computed/s and verified/s, txsipua vs hashlib and twisted.cred.

    python benchmarks/digest_bench.py [--rounds 7] [--round-s 0.25] [--json out.json] [--quick]

Algorithms: MD5, SHA-256 and SHA-512-256, each plain and ``-sess`` (RFC 7616,
RFC 8760), all with ``qop=auth``.  Three operations:

* **compute** (the client side): from the password, ``HA1 = H(user:realm:pw)``,
  ``HA2 = H(method:uri)``, ``response = H(HA1:nonce:nc:cnonce:qop:HA2)``; a
  ``-sess`` algorithm adds ``H(HA1:nonce:cnonce)``.  Floor: the same three (or
  four) ``hashlib`` calls on f-strings.
* **compute-ha1** (a client configured with ``ha1 = ...``): the same without
  the first hash.  Floor: two (or three) ``hashlib`` calls.
* **verify** (the server side): a request carrying an Authorization is accepted
  or refused against a *stored* HA1.  Floor: HA2 and the response recomputed
  from the stored HA1 plus ``hmac.compare_digest`` (no header parsing, no nonce
  check: the least any verifier must do).  txsipua's row is the whole server
  path, ``DigestServer.inspect(request, now)`` (Authorization parsing, the
  stateless nonce's HMAC and age, the digest-uri check, the nc replay table)
  then ``credentials.check_ha1(ha1)``; twisted.cred's rows are
  ``DigestedCredentials.checkHash`` (the hash step alone) and
  ``DigestCredentialFactory.decode`` + ``checkHash`` (parse and check).

Every implementation's result is checked against the floor's for the same
inputs before it is timed, and verifiers must also refuse a wrong HA1.
Rounds are interleaved, each row paired with its floor (same algorithm, same
operation) in every round; ratios are medians of per-round ratios.

A peer that is missing, or does not support an algorithm, is listed as "not
measured" with the reason; nothing is fatal.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import importlib.metadata as md
import json
import os
import ssl
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:  # run as a script from a checkout: import this tree's txsipua
    sys.path.insert(0, ROOT)

ALGS = ("MD5", "MD5-sess", "SHA-256", "SHA-256-sess", "SHA-512-256", "SHA-512-256-sess")
OPS = ("compute", "compute-ha1", "verify")
FLOOR = "floor:hashlib"


def _sha512_256() -> Callable[[bytes], Any]:
    template = hashlib.new("sha512_256")  # .copy() of a template beats hashlib.new per call

    def h(data: bytes) -> Any:
        x = template.copy()
        x.update(data)
        return x

    return h


HASH: dict[str, Callable[[bytes], Any]] = {
    "MD5": hashlib.md5, "SHA-256": hashlib.sha256, "SHA-512-256": _sha512_256(),
}
INPUT = {"user": "alice.benchmark", "realm": "pbx.example.net", "password": "s3cret-pa55",
         "method": "INVITE", "uri": "sip:bob@pbx.example.net",
         "nonce": "b1e2f3a4c5d6e7f8091a2b3c4d5e6f70", "nc": "00000001",
         "cnonce": "0a4f113b9c", "qop": "auth"}


def base(alg: str) -> str:
    """``"SHA-256-sess"`` -> ``"SHA-256"``."""
    return alg[:-5] if alg.endswith("-sess") else alg


def ref_ha1(alg: str, user: str, realm: str, password: str, nonce: str = "",
            cnonce: str = "") -> str:
    """HA1 (the session HA1 for ``-sess``), RFC 7616 §3.4.2."""
    H = HASH[base(alg)]
    ha1: str = H(f"{user}:{realm}:{password}".encode()).hexdigest()
    if alg.endswith("-sess"):
        ha1 = H(f"{ha1}:{nonce}:{cnonce}".encode()).hexdigest()
    return ha1


def ref_response(alg: str, user: str, realm: str, password: str, method: str, uri: str,
                 nonce: str, nc: str, cnonce: str, qop: str) -> str:
    """The reference request-digest with qop (RFC 7616 §3.4.1), written out plainly."""
    H = HASH[base(alg)]
    ha1 = ref_ha1(alg, user, realm, password, nonce, cnonce)
    ha2 = H(f"{method}:{uri}".encode()).hexdigest()
    return str(H(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}".encode()).hexdigest())


class Impl:
    """A measured callable: ``fn()`` does one unit of work and returns its result.

    ``expected`` is what ``fn()`` must return; ``reject`` (verifiers) is a
    callable that must return a false value (a wrong HA1 refused).
    """

    def __init__(self, fn: Callable[[], Any], expected: Any,
                 reject: Callable[[], Any] | None = None) -> None:
        self.fn, self.expected, self.reject = fn, expected, reject


class Unsupported(Exception):
    """The implementation does not do this algorithm or operation."""


ADAPTERS: dict[tuple[str, str], tuple[str | None, str, Callable[[str], Impl]]] = {}


def adapter(name: str, op: str, dist: str | None = None,
            note: str = "") -> Callable[..., Any]:
    """Register ``loader(alg) -> Impl`` for one operation (raise Unsupported to skip)."""

    def deco(loader: Callable[[str], Impl]) -> Callable[[str], Impl]:
        ADAPTERS[(name, op)] = (dist, note, loader)
        return loader

    return deco


def version(dist: str | None) -> str:
    """The installed version of ``dist`` ("py3.11.x" for the floor)."""
    if dist is None:
        return "py" + ".".join(map(str, sys.version_info[:3]))
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        if dist == "txsipua":
            import txsipua
            return str(txsipua.__version__)
        return "?"


# ---------------------------------------------------------------- floors
@adapter(FLOOR, "compute", None, "3 hashlib calls on f-strings (4 with -sess)")
def _floor_compute(alg: str) -> Impl:
    H, sess = HASH[base(alg)], alg.endswith("-sess")
    i = INPUT
    user, realm, pw, method, uri = i["user"], i["realm"], i["password"], i["method"], i["uri"]
    nonce, nc, cnonce, qop = i["nonce"], i["nc"], i["cnonce"], i["qop"]

    def fn() -> str:
        ha1 = H(f"{user}:{realm}:{pw}".encode()).hexdigest()
        if sess:
            ha1 = H(f"{ha1}:{nonce}:{cnonce}".encode()).hexdigest()
        ha2 = H(f"{method}:{uri}".encode()).hexdigest()
        return str(H(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}".encode()).hexdigest())

    return Impl(fn, ref_response(alg, **INPUT))


@adapter(FLOOR, "verify", None, "HA2 + response from the stored HA1 + hmac.compare_digest")
def _floor_verify(alg: str) -> Impl:
    H, sess = HASH[base(alg)], alg.endswith("-sess")
    i = INPUT
    method, uri, nonce, nc, cnonce, qop = (i["method"], i["uri"], i["nonce"], i["nc"],
                                           i["cnonce"], i["qop"])
    stored = ref_ha1(base(alg), i["user"], i["realm"], i["password"])
    received = ref_response(alg, **INPUT)

    def check(ha1: str) -> bool:
        if sess:
            ha1 = H(f"{ha1}:{nonce}:{cnonce}".encode()).hexdigest()
        ha2 = H(f"{method}:{uri}".encode()).hexdigest()
        want = H(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}".encode()).hexdigest()
        return hmac.compare_digest(want, received)

    return Impl(lambda: check(stored), True, lambda: check("0" * len(stored)))


@adapter(FLOOR, "compute-ha1", None, "2 hashlib calls on f-strings (3 with -sess)")
def _floor_compute_ha1(alg: str) -> Impl:
    H, sess = HASH[base(alg)], alg.endswith("-sess")
    i = INPUT
    method, uri, nonce, nc, cnonce, qop = (i["method"], i["uri"], i["nonce"], i["nc"],
                                           i["cnonce"], i["qop"])
    stored = ref_ha1(base(alg), i["user"], i["realm"], i["password"])

    def fn() -> str:
        ha1 = stored
        if sess:
            ha1 = H(f"{ha1}:{nonce}:{cnonce}".encode()).hexdigest()
        ha2 = H(f"{method}:{uri}".encode()).hexdigest()
        return str(H(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}".encode()).hexdigest())

    return Impl(fn, ref_response(alg, **INPUT))


@adapter("hashlib single hash", "compute", None, "one hash of 100 bytes (info: raw hash cost)")
def _single(alg: str) -> Impl:
    H, data = HASH[base(alg)], b"x" * 100
    return Impl(lambda: H(data).hexdigest(), H(data).hexdigest())


# ---------------------------------------------------------------- txsipua
@adapter("txsipua compute_ha1+response", "compute", "txsipua",
         "compute_ha1 + compute_response (client, plaintext password)")
def _tx_compute(alg: str) -> Impl:
    from txsipua.auth.digest import compute_ha1, compute_response
    i = INPUT
    user, realm, pw, method, uri = i["user"], i["realm"], i["password"], i["method"], i["uri"]
    nonce, nc, cnonce, qop = i["nonce"], i["nc"], i["cnonce"], i["qop"]

    def fn() -> str:
        ha1 = compute_ha1(alg, user, realm, pw)
        return compute_response(algorithm=alg, ha1=ha1, nonce=nonce, method=method, uri=uri,
                                qop=qop, cnonce=cnonce, nc=nc)

    return Impl(fn, ref_response(alg, **INPUT))


@adapter("txsipua compute_response", "compute-ha1", "txsipua",
         "compute_response from a stored HA1 (client with ha1 = ...)")
def _tx_compute_ha1(alg: str) -> Impl:
    from txsipua.auth.digest import compute_ha1, compute_response
    i = INPUT
    ha1 = compute_ha1(alg, i["user"], i["realm"], i["password"])
    method, uri, nonce, nc, cnonce, qop = (i["method"], i["uri"], i["nonce"], i["nc"],
                                           i["cnonce"], i["qop"])

    def fn() -> str:
        return compute_response(algorithm=alg, ha1=ha1, nonce=nonce, method=method, uri=uri,
                                qop=qop, cnonce=cnonce, nc=nc)

    return Impl(fn, ref_response(alg, **INPUT))


@adapter("txsipua inspect+check_ha1", "verify", "txsipua",
         "DigestServer.inspect(request, now) + credentials.check_ha1(ha1), full server path")
def _tx_verify(alg: str) -> Impl:
    return _txsipua_verify(alg)


POOL = 256  # distinct requests per verifier instance (the nc replay table refuses reuse)


def _txsipua_verify(alg: str) -> Impl:
    """The txsipua verifier: a pool of parsed requests, each with its own cnonce.

    ``DigestServer`` refuses a (nonce, cnonce, nc) seen before, so the timed
    loop walks a pool of distinct requests and starts a new ``DigestServer``
    (same secret and realm: the stateless nonce still verifies; empty replay
    table) each time the pool is exhausted: one construction per ``POOL``
    verifications, a negligible share.
    """
    from txsipua.auth.server import DigestCredentials, DigestServer
    from txsipua.sip.message import parse_message

    i = INPUT
    secret, realm, t0 = b"benchmark-secret-0123456789", i["realm"], 1_000_000.0
    nonce = DigestServer(realm, secret, algorithms=[alg]).make_nonce(t0)
    stored = ref_ha1(base(alg), i["user"], realm, i["password"])

    def request(cnonce: str, ha1: str) -> Any:
        H = HASH[base(alg)]
        sess = H(f"{ha1}:{nonce}:{cnonce}".encode()).hexdigest() if alg.endswith("-sess") else ha1
        ha2 = H(f"{i['method']}:{i['uri']}".encode()).hexdigest()
        resp = H(f"{sess}:{nonce}:{i['nc']}:{cnonce}:auth:{ha2}".encode()).hexdigest()
        return parse_message((
            f"INVITE {i['uri']} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK{cnonce}\r\n"
            f"From: <sip:{i['user']}@{realm}>;tag=f{cnonce}\r\nTo: <{i['uri']}>\r\n"
            f"Call-ID: {cnonce}@192.0.2.10\r\nCSeq: 2 INVITE\r\nMax-Forwards: 70\r\n"
            f'Authorization: Digest username="{i["user"]}", realm="{realm}", '
            f'nonce="{nonce}", uri="{i["uri"]}", response="{resp}", algorithm={alg}, '
            f'qop=auth, nc={i["nc"]}, cnonce="{cnonce}"\r\n'
            f"Content-Length: 0\r\n\r\n").encode())

    pool = [request(f"{k:08x}c0ffee", stored) for k in range(POOL)]
    state = {"server": DigestServer(realm, secret, algorithms=[alg]), "k": 0}
    now = t0 + 1.0

    def fn() -> bool:
        k = state["k"]
        if k == POOL:
            state["server"] = DigestServer(realm, secret, algorithms=[alg])
            k = 0
        state["k"] = k + 1
        creds = state["server"].inspect(pool[k], now)
        return isinstance(creds, DigestCredentials) and creds.check_ha1(stored)

    def reject() -> bool:
        bad = request("0badc0de", stored)  # right request, wrong stored HA1
        creds = DigestServer(realm, secret, algorithms=[alg]).inspect(bad, now)
        return isinstance(creds, DigestCredentials) and creds.check_ha1("0" * len(stored))

    return Impl(fn, True, reject)


# ---------------------------------------------------------------- twisted.cred
def _twisted_fields(alg: str) -> dict[bytes | str, bytes]:
    b = {k: v.encode() for k, v in INPUT.items()}
    return {"response": ref_response(alg, **INPUT).encode(), "uri": b["uri"],
            "nonce": b["nonce"], "cnonce": b["cnonce"], "nc": b["nc"], "qop": b["qop"],
            "algorithm": alg.lower().encode()}


def _twisted_alg(alg: str) -> None:
    if alg not in ("MD5", "MD5-sess"):
        raise Unsupported("twisted.cred._digest knows md5, md5-sess and sha (SHA-1) only")


@adapter("twisted.cred checkHash", "verify", "twisted",
         "DigestedCredentials.checkHash(HA1): the hash step alone")
def _twisted_check(alg: str) -> Impl:
    _twisted_alg(alg)
    from twisted.cred.credentials import DigestedCredentials
    b = {k: v.encode() for k, v in INPUT.items()}
    cred = DigestedCredentials(b["user"], b["method"], b["realm"], _twisted_fields(alg))
    ha1 = ref_ha1(base(alg), INPUT["user"], INPUT["realm"], INPUT["password"]).encode()
    return Impl(lambda: cred.checkHash(ha1), True, lambda: cred.checkHash(b"0" * 32))


@adapter("twisted.cred decode+checkHash", "verify", "twisted",
         "DigestCredentialFactory.decode(header) + checkHash(HA1)")
def _twisted_factory(alg: str) -> Impl:
    _twisted_alg(alg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from twisted.cred.credentials import DigestCredentialFactory
    i = INPUT
    f = DigestCredentialFactory(alg.lower().encode(), i["realm"].encode())
    ch = f.getChallenge(b"127.0.0.1")
    inp = dict(INPUT, nonce=ch["nonce"].decode())
    resp = ref_response(alg, **inp)
    header = (f'username="{i["user"]}", realm="{i["realm"]}", nonce="{inp["nonce"]}", '
              f'uri="{i["uri"]}", response="{resp}", algorithm={alg}, '
              f'opaque="{ch["opaque"].decode()}", qop=auth, nc={i["nc"]}, '
              f'cnonce="{i["cnonce"]}"').encode()
    method = i["method"].encode()
    ha1 = ref_ha1(base(alg), i["user"], i["realm"], i["password"]).encode()

    def fn(h: bytes = ha1) -> bool:
        return bool(f.decode(header, method, b"127.0.0.1").checkHash(h))

    return Impl(fn, True, lambda: fn(b"0" * 32))


# ---------------------------------------------------------------- harness
def rate(fn: Callable[[], Any], n: int) -> float:
    """Calls of ``fn`` per second over ``n`` calls."""
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return n / max(time.perf_counter() - t0, 1e-9)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table; return the exit status."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--round-s", type=float, default=0.25, help="target seconds per timed pass")
    ap.add_argument("--algs", default=",".join(ALGS), help="comma list of algorithms")
    ap.add_argument("--json", default="")
    ap.add_argument("--quick", action="store_true",
                    help="one tiny round (smoke test: checks the harness, not the speed)")
    a = ap.parse_args(argv)
    if a.quick:
        a.rounds, a.round_s = 1, 0.002
    algs = [x for x in a.algs.split(",") if x]
    for alg in algs:
        if alg not in ALGS:
            ap.error(f"unknown algorithm {alg}; known: {', '.join(ALGS)}")
    floors = {(op, alg): ADAPTERS[(FLOOR, op)][2](alg) for op in OPS for alg in algs}
    runs: list[dict[str, Any]] = []
    skipped: list[str] = []
    for (name, op), (dist, note, loader) in ADAPTERS.items():
        for alg in algs:
            try:
                impl = loader(alg)
                got = impl.fn()
                if got != impl.expected:
                    raise ValueError(f"wrong result {got!r}, expected {impl.expected!r}")
                if impl.reject is not None and impl.reject():
                    raise ValueError("accepted a wrong HA1")
            except Unsupported as e:
                skipped.append(f"{name} {alg}: {e}")
                continue
            except Exception as e:  # noqa: BLE001 - a broken peer is reported, not fatal
                skipped.append(f"{name} {alg}: not available ({type(e).__name__}: {e})")
                continue
            t0 = time.perf_counter()
            for _ in range(100):
                impl.fn()
            n = max(100, int(a.round_s * 100 / max(time.perf_counter() - t0, 1e-9)))
            runs.append({"name": name, "op": op, "alg": alg, "version": version(dist),
                         "note": note, "fn": impl.fn, "floor": floors[(op, alg)].fn, "n": n,
                         "rates": [], "floor_rates": []})
    for i in range(a.rounds):
        for r in runs:
            pair = [("rates", r["fn"]), ("floor_rates", r["floor"])]
            for key, fn in pair if i % 2 == 0 else pair[::-1]:
                r[key].append(rate(fn, r["n"]))
    print(f"{a.rounds} interleaved rounds; python {sys.version.split()[0]}; "
          f"{ssl.OPENSSL_VERSION}; qop=auth")
    hdr = (f"{'implementation':31} {'version':8} {'op':11} {'alg':16} {'per s med':>10} "
           f"{'min-max':>19} {'% floor':>8} {'x floor':>8}")
    print(hdr + "\n" + "-" * len(hdr))
    order = {alg: k for k, alg in enumerate(ALGS)}
    runs.sort(key=lambda r: (r["op"], order[r["alg"]], r["name"] != FLOOR, r["name"]))
    for r in runs:
        r["median"] = statistics.median(r["rates"])
        ratios = [p / f for p, f in zip(r["rates"], r["floor_rates"], strict=True)]
        r["of_floor"] = statistics.median(ratios)
        r["x_floor"] = statistics.median(1 / x for x in ratios)
        print(f"{r['name']:31} {r['version']:8} {r['op']:11} {r['alg']:16} {r['median']:>10,.0f} "
              f"{min(r['rates']):>9,.0f}-{max(r['rates']):<9,.0f} "
              f"{100 * r['of_floor']:>7.1f}% {r['x_floor']:>7.2f}x")
    print("\n% floor = implementation per s / floor per s, same algorithm and operation, same "
          "round (median of per-round ratios); x floor = its inverse.  compute floor: from the "
          "password; compute-ha1 and verify floors: from a stored HA1 (verify adds "
          "hmac.compare_digest).")
    for s in skipped:
        print("not measured: " + s)
    if a.json:
        keep = ("name", "op", "alg", "version", "note", "n", "rates", "floor_rates", "median",
                "of_floor", "x_floor")
        with open(a.json, "w") as fh:
            json.dump({"benchmark": "digest", "rounds": a.rounds,
                       "runs": [{k: r[k] for k in keep} for r in runs],
                       "skipped": skipped}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
