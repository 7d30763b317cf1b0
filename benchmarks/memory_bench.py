#!/usr/bin/env python3
"""Memory per registered account and per confirmed dialog; RSS before and after a load.

    python benchmarks/memory_bench.py [--accounts 10000] [--dialogs 10000] [--json out.json]
                                      [--quick]

For each implementation (the ``floor``, a plain dict per item holding the
same fields, and ``txsipua``) and each kind of state it:

1. builds ``n`` items (registered accounts, or confirmed dialogs) and lets
   simulated time run past the transactions' timers (so only the lasting
   state remains), with registrations refreshed at least once;
2. measures the bytes held per item two ways: the *retained size* of the
   objects that hold the state (a walk of ``gc.get_referents`` from the
   adapter's roots, not counting modules, classes, functions or the empty
   state measured before), and the *tracemalloc* growth of the whole process
   (both ends of every call, buffers, caches) divided by ``n``;
3. releases everything (unregister / hang up), lets the timers expire, and
   reads the process RSS (``/proc/self/status`` VmRSS) before the load, after
   it, and after the release.  CPython rarely returns freed arenas to the
   system, so "flat" means the RSS after a *second* identical load is no higher
   than after the first (the memory is reused, nothing leaks): both are shown.
   The RSS growth includes the peak of the load (messages and transactions
   freed since, arenas kept): an upper bound.  tracemalloc runs on a third
   load only, since its own bookkeeping would inflate the RSS.

Targets (issue 4): < 10 KiB per registered account, < 20 KiB per dialog, flat.

THE ADAPTER.  :func:`txsipua_adapter` below is the only code that knows
txsipua's API.  It returns an object with:

``register(n)``
    hold ``n`` registered accounts (each REGISTERed and answered 200), in
    simulated time; raise :class:`NotAvailable` when this cannot be done yet.
``confirm_dialogs(n)``
    hold ``n`` confirmed dialogs (INVITE / 200 / ACK done).
``run_for(seconds)``
    let simulated time pass: refreshes happen, transaction timers expire.
``release()``
    unregister and hang up everything, then let the timers expire.
``roots()``
    the objects whose retained size is the state measured (e.g. the answering
    UA core), a list.

When the UA layer is missing (an ImportError) the adapter raises
:class:`NotAvailable` and the benchmark prints "not available yet".
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tracemalloc
import types
from typing import Any, Protocol

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:  # run as a script from a checkout: import this tree's txsipua
    sys.path.insert(0, ROOT)


class NotAvailable(Exception):
    """This implementation cannot hold this kind of state yet (the message says why)."""


class MemoryAdapter(Protocol):
    """What the harness drives (see the module docstring)."""

    name: str

    def register(self, n: int) -> None: ...
    def confirm_dialogs(self, n: int) -> None: ...
    def run_for(self, seconds: float) -> None: ...
    def release(self) -> None: ...
    def roots(self) -> list[Any]: ...


# ============================================================== the adapter
def txsipua_adapter() -> MemoryAdapter:
    """Build the txsipua adapter over the sans-IO UA core (raises NotAvailable).

    Dialogs: two :class:`~txsipua.core.useragent.UserAgentCore` objects wired
    in memory (no sockets, simulated clock); the caller sends ``n`` INVITEs,
    the callee rings and accepts each, the caller ACKs.  The root measured is
    the *callee* core: the answering UAS's per-dialog state, with its
    transaction layer.

    Accounts: one ``UserAgentCore`` with its ``DigestClient`` per account
    (a ``txsipua.ua.UserAgent`` holds exactly one account and one core), each
    REGISTERing (Expires 3600) with txsipua.testing's in-memory
    ``ProxyRegistrar``, which challenges with 401; the refresh at half the
    granted time is sent here the way ``txsipua.ua.registration.Registration`` does it (same
    Call-ID, CSeq + 1, cached credentials), since that class needs a reactor.
    The roots measured are the account cores (not the registrar); the Twisted
    shell (``UserAgent``, ``Registration``, the ``DatagramProtocol`` and a
    UDP socket per account) comes on top.
    """
    try:
        from txsipua.auth.client import DigestClient
        from txsipua.auth.credentials import Credential, InMemoryCredentials
        from txsipua.core import events as ev
        from txsipua.core.ids import IdGenerator
        from txsipua.core.useragent import UserAgentCore
        from txsipua.server.proxy import ProxyRegistrar
        from txsipua.sip.uri import SipURI
        from txsipua.sip.values import NameAddr
    except ImportError as e:
        raise NotAvailable(f"txsipua's UA core is not importable yet ({e})") from None

    caller_addr, callee_addr = ("192.0.2.1", 5060), ("192.0.2.2", 5060)
    registrar_addr = ("192.0.2.250", 5060)
    sdp = (b"v=0\r\no=bench 1 1 IN IP4 192.0.2.2\r\ns=-\r\nc=IN IP4 192.0.2.2\r\nt=0 0\r\n"
           b"m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")

    class Txsipua:
        name = "txsipua"

        def __init__(self) -> None:
            self.now = 0.0
            self.caller = UserAgentCore(local=caller_addr, ids=IdGenerator(),
                                        contact_user="load")
            self.callee = UserAgentCore(local=callee_addr, ids=IdGenerator(),
                                        contact_user="bot")
            self.cores = {caller_addr: self.caller, callee_addr: self.callee}
            self.sessions: list[Any] = []
            self.confirmed = 0
            self.registrar: Any = None
            self.accounts: list[tuple[Any, str, int]] = []
            self.registered = 0
            self.next_refresh: float | None = None

        def _pump(self) -> None:
            moved = True
            while moved:
                moved = False
                for addr, core in self.cores.items():
                    for out in core.outbox():
                        moved = True
                        dst = self.cores.get(out.destination)
                        if dst is not None:
                            dst.receive(out.data, addr, self.now)
                    while (e := core.next_event()) is not None:
                        moved = True
                        if isinstance(e, ev.IncomingCall):
                            e.session.ring(self.now)
                            e.session.accept(self.now, body=sdp)
                        elif isinstance(e, ev.CallConfirmed):
                            self.confirmed += 1
                        elif (isinstance(e, ev.RequestCompleted)
                              and 200 <= e.response.status < 300):
                            self.registered += 1

        def _registrar(self, n: int) -> Any:
            if self.registrar is None:
                users = {f"auth{k:06d}": ("pw-" + f"{k:06d}", f"user{k:06d}") for k in range(n)}
                self.registrar = ProxyRegistrar(registrar_addr, "example.com",
                                                "voip.example.net", users, b"m" * 32)
                self.cores[registrar_addr] = self.registrar
            return self.registrar

        def _send_register(self, k: int) -> None:
            core, call_id, cseq = self.accounts[k]
            me = NameAddr(SipURI.parse(f"sip:user{k:06d}@example.com"))
            req = core.new_request("REGISTER", SipURI.parse("sip:example.com"),
                                   me.with_tag(core.ids.tag()), me, call_id=call_id,
                                   cseq=cseq + 1, headers=[("Expires", "3600")])
            self.accounts[k] = (core, call_id, cseq + 1)
            core.send_request(req, registrar_addr, self.now, hop_host="192.0.2.250")

        def register(self, n: int) -> None:
            self._registrar(n)
            self.registered = 0
            for k in range(n):
                creds = InMemoryCredentials([Credential(realm="voip.example.net",
                                                        username=f"auth{k:06d}",
                                                        password="pw-" + f"{k:06d}")])
                addr = (f"198.51.100.{1 + k // 50000}", 10000 + k % 50000)
                core = UserAgentCore(local=addr, ids=IdGenerator(), contact_user=f"user{k:06d}",
                                     digest=DigestClient(creds, trusted_hosts=["192.0.2.250"]))
                self.cores[addr] = core
                self.accounts.append((core, core.ids.call_id(addr[0]), 0))
                self._send_register(len(self.accounts) - 1)
                if k % 100 == 99:
                    self._pump()
            self._pump()
            if self.registered < n:
                raise RuntimeError(f"only {self.registered} of {n} accounts registered")
            self.next_refresh = self.now + 1800.0

        def confirm_dialogs(self, n: int) -> None:
            frm = NameAddr(SipURI.parse("sip:load@192.0.2.1"), "load")
            to = NameAddr(SipURI.parse("sip:bot@192.0.2.2"))
            uri = SipURI.parse("sip:bot@192.0.2.2:5060")
            for k in range(n):
                req = self.caller.new_request("INVITE", uri, frm, to, body=sdp,
                                              content_type="application/sdp")
                self.sessions.append(self.caller.invite(req, callee_addr, self.now))
                if k % 100 == 99:
                    self._pump()
            self._pump()
            if self.confirmed < n:
                raise RuntimeError(f"only {self.confirmed} of {n} dialogs confirmed")

        def _advance(self, end: float) -> None:
            """Fire every timer due up to ``end`` (simulated seconds), then stand at ``end``."""
            while True:
                due = [t for c in self.cores.values() if (t := c.get_timer()) is not None]
                nxt = min(due, default=None)
                if nxt is None or nxt > end:
                    break
                self.now = max(self.now, nxt)
                for c in self.cores.values():
                    t = c.get_timer()
                    if t is not None and t <= self.now:
                        c.handle_timer(self.now)
                self._pump()
            self.now = max(self.now, end)

        def _refresh_all(self) -> None:
            self.registered = 0
            for k in range(len(self.accounts)):  # as ua.Registration refreshes
                self._send_register(k)
                if k % 100 == 99:
                    self._pump()
            self._pump()
            if self.registered < len(self.accounts):
                raise RuntimeError(f"only {self.registered} refreshes succeeded")

        def run_for(self, seconds: float) -> None:
            end = self.now + seconds
            while self.next_refresh is not None and self.next_refresh <= end:
                self._advance(self.next_refresh)
                self._refresh_all()
                self.next_refresh += 1800.0
            self._advance(end)

        def release(self) -> None:
            for s in self.sessions:
                s.hangup(self.now)
            self._pump()
            self.sessions.clear()
            self.next_refresh = None
            for core, _, _ in self.accounts:
                del self.cores[core.local]
            self.accounts.clear()
            self.run_for(70.0)

        def roots(self) -> list[Any]:
            return [self.callee, [c for c, _, _ in self.accounts]]

    return Txsipua()


# ============================================================== the floor
def floor_adapter() -> MemoryAdapter:
    """A plain dict per item with the fields a UA must keep (the least Python can hold).

    Account: AOR, contact, registrar, auth user, realm, HA1, Call-ID, CSeq,
    expiry, last nonce.  Dialog: Call-ID, both tags, both URIs, remote target,
    both sequence numbers, an empty route set.  Strings have realistic lengths
    and are distinct per item.
    """

    class Floor:
        name = "floor:dict"

        def __init__(self) -> None:
            self.accounts: dict[str, dict[str, Any]] = {}
            self.dialogs: dict[tuple[str, str, str], dict[str, Any]] = {}

        def register(self, n: int) -> None:
            for k in range(n):
                aor = f"sip:user{k:06d}@pbx.example.net"
                self.accounts[aor] = {
                    "aor": aor, "contact": f"<sip:user{k:06d}@192.0.2.10:5060;ob>",
                    "registrar": "sip:pbx.example.net", "username": f"user{k:06d}",
                    "realm": "pbx.example.net", "ha1": f"{k:032x}",
                    "call_id": f"{k:032x}@192.0.2.10", "cseq": 1, "expires": 3600.0 + k,
                    "nonce": f"{k:052x}"}

        def confirm_dialogs(self, n: int) -> None:
            for k in range(n):
                cid, lt, rt = f"{k:032x}@192.0.2.1", f"{k:016x}", f"{k + 1:016x}"
                self.dialogs[(cid, lt, rt)] = {
                    "call_id": cid, "local_tag": lt, "remote_tag": rt, "local_seq": 1,
                    "remote_seq": 1, "local_uri": "sip:bot@192.0.2.2",
                    "remote_uri": f"sip:load{k}@192.0.2.1",
                    "remote_target": f"sip:load{k}@192.0.2.1:5060", "route_set": []}

        def run_for(self, seconds: float) -> None:
            for a in self.accounts.values():  # a refresh: new CSeq, new expiry
                a["cseq"] += 1
                a["expires"] += seconds

        def release(self) -> None:
            self.accounts.clear()
            self.dialogs.clear()

        def roots(self) -> list[Any]:
            return [self]

    return Floor()


ADAPTERS = {"floor:dict": floor_adapter, "txsipua": txsipua_adapter}


# ============================================================== harness
_SKIP = (types.ModuleType, type, types.FunctionType, types.BuiltinFunctionType,
         types.MethodType, types.CodeType)


def retained_size(roots: list[Any]) -> int:
    """Bytes of every object reachable from ``roots`` (modules, classes, functions excluded)."""
    seen: set[int] = set()
    stack = list(roots)
    total = 0
    while stack:
        o = stack.pop()
        if id(o) in seen or isinstance(o, _SKIP):
            continue
        seen.add(id(o))
        total += sys.getsizeof(o)
        stack.extend(gc.get_referents(o))
    return total


def rss_bytes() -> int:
    """This process's resident set size, bytes (VmRSS)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _load(ad: MemoryAdapter, kind: str, n: int) -> None:
    if kind == "account":
        ad.register(n)
        ad.run_for(1870.0)  # a refresh at 1800 s (half of 3600), then its timers expire
    else:
        ad.confirm_dialogs(n)
        ad.run_for(70.0)  # past Timer M/I/K/J (64*T1 = 32 s): transactions gone
    gc.collect()


def measure(make: Any, kind: str, n: int) -> dict[str, Any]:
    """Load, measure, release, load again; one result row (raises NotAvailable).

    Three loads of the same size: the first gives the retained size and the
    RSS, the second tells whether the RSS stays flat (freed memory reused),
    the third runs under tracemalloc (which costs memory of its own, so it
    never overlaps an RSS reading).
    """
    ad = make()
    gc.collect()
    rss0 = rss_bytes()
    base = retained_size(ad.roots())
    _load(ad, kind, n)
    held = retained_size(ad.roots()) - base
    rss1 = rss_bytes()
    ad.release()
    gc.collect()
    rss2 = rss_bytes()
    _load(ad, kind, n)
    rss3 = rss_bytes()
    ad.release()
    gc.collect()
    tracemalloc.start()
    t0 = tracemalloc.get_traced_memory()[0]
    _load(ad, kind, n)
    traced = tracemalloc.get_traced_memory()[0] - t0
    tracemalloc.stop()
    ad.release()
    gc.collect()
    return {"impl": ad.name, "kind": kind, "n": n, "retained_per": held / n,
            "traced_per": traced / n, "rss_per": (rss1 - rss0) / n, "rss_before": rss0,
            "rss_loaded": rss1, "rss_released": rss2, "rss_second_load": rss3,
            "flat": rss3 <= rss1 + max(1 << 20, rss1 // 50)}


def main(argv: list[str] | None = None) -> int:
    """Run every adapter on both kinds of state; print the table; return the exit status."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--accounts", type=int, default=10000)
    ap.add_argument("--dialogs", type=int, default=10000)
    ap.add_argument("--only", default="", help="comma list of implementations")
    ap.add_argument("--json", default="")
    ap.add_argument("--quick", action="store_true", help="40 of each: smoke test")
    a = ap.parse_args(argv)
    if a.quick:
        a.accounts = a.dialogs = 40
    wanted = [x for x in a.only.split(",") if x] or list(ADAPTERS)
    rows: list[dict[str, Any]] = []
    unavailable: list[str] = []
    for name in wanted:
        for kind, n in (("account", a.accounts), ("dialog", a.dialogs)):
            try:
                rows.append(measure(ADAPTERS[name], kind, n))
            except NotAvailable as e:
                unavailable.append(f"{name} per {kind}: not available yet ({e})")
    mib = 1 << 20
    print(f"python {sys.version.split()[0]}; accounts={a.accounts} dialogs={a.dialogs}")
    print("\n| implementation | per | n | retained bytes/item | tracemalloc bytes/item | "
          "RSS growth/item | RSS before | loaded | released | 2nd load | flat |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['impl']} | {r['kind']} | {r['n']} | {r['retained_per']:,.0f} | "
              f"{r['traced_per']:,.0f} | {r['rss_per']:,.0f} | {r['rss_before'] / mib:.1f} MiB | "
              f"{r['rss_loaded'] / mib:.1f} MiB | {r['rss_released'] / mib:.1f} MiB | "
              f"{r['rss_second_load'] / mib:.1f} MiB | {'yes' if r['flat'] else 'NO'} |")
    for u in unavailable:
        print(u)
    print("\nretained = objects reachable from the state's holder (txsipua: the answering "
          "core per dialog, the account cores per account); tracemalloc = whole-process "
          "growth (txsipua: both ends of every call, the registrar's bindings). "
          "Targets: < 10 KiB per account, < 20 KiB per dialog.")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"benchmark": "memory", "rows": rows, "unavailable": unavailable}, fh,
                      indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
