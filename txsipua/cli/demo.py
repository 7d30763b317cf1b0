"""``txsipua demo``: a whole challenged call on 127.0.0.1, printed as a ladder.

Three parties run in this process, each on its own UDP port of 127.0.0.1:

- ``proxy``: registrar + stateless proxy for ``example.com``, realm
  ``voip.example.net``; challenges REGISTER with 401 and INVITE with 407.
- ``bob``: registers as ``sip:bob@example.com`` (auth user ``bob-auth``),
  answers calls, and challenges every INVITE with 401 in realm
  ``callee.example.org``.
- ``alice``: registers as ``sip:alice@example.com`` with auth user
  ``alice-auth`` (realm ≠ domain, auth user ≠ SIP user), calls bob through
  the proxy, answers the 407 and then the 401 (keeping both credentials on
  the one retried INVITE), gets 200, ACKs, stays a moment and hangs up.

The demo checks every step from alice's side and exits 0 only if the whole
flow was right.
"""

from __future__ import annotations

import secrets
import sys
from typing import Any

from twisted.internet import defer

from txsipua.auth.challenge import parse_authorization, parse_challenges
from txsipua.auth.credentials import Credential, InMemoryCredentials
from txsipua.auth.server import DigestServer
from txsipua.errors import SIPError
from txsipua.net.driver import MAX_DATAGRAM, SIPDatagramProtocol
from txsipua.server.proxy import ProxyRegistrar
from txsipua.sip.message import Request, Response, parse_message
from txsipua.ua.account import Account
from txsipua.ua.cred import InMemoryHA1Store, make_portal
from txsipua.ua.transports import UDPTransport
from txsipua.ua.useragent import UserAgent

DOMAIN = "example.com"
PROXY_REALM = "voip.example.net"
CALLEE_REALM = "callee.example.org"


class Ladder:
    """Collects every datagram each party sends and prints it as a ladder line."""

    def __init__(self, out: Any = None, verbose: bool = False) -> None:
        self.out = out or sys.stdout
        self.verbose = verbose
        self.names: dict[tuple[str, int], str] = {}
        self.sent: list[tuple[str, str, Request | Response]] = []
        self.received: dict[str, list[Request | Response]] = {}
        self.capture: Any = None
        """Optional :class:`~txsipua.cli.trace.SessionTrace` given every message sent (``--pcap``, ``--hep``)."""

    def tracer(self, name: str) -> Any:
        def trace(direction: str, data: bytes, peer: tuple[str, int]) -> None:
            try:
                msg = parse_message(data)
            except SIPError:
                return
            if direction == "recv":
                self.received.setdefault(name, []).append(msg)
                return
            to = self.names.get((peer[0], peer[1]), f"{peer[0]}:{peer[1]}")
            if self.capture is not None:
                src = next((a for a, n in self.names.items() if n == name), None)
                if src is not None:
                    self.capture.sent(src, (peer[0], int(peer[1])), data)
            self.sent.append((name, to, msg))
            self.print_line(name, to, msg, data)

        return trace

    def print_line(self, src: str, dst: str, msg: Request | Response, data: bytes) -> None:
        if isinstance(msg, Request):
            what = f"{msg.method} {msg.uri_text}"
        else:
            what = f"{msg.status} {msg.reason} ({msg.cseq.method})"
        notes = []
        for name in ("Authorization", "Proxy-Authorization"):
            for value in msg.headers.get_all(name):
                try:
                    a = parse_authorization(value)
                    notes.append(f"{name}: realm={a.realm} user={a.username} {a.algorithm or 'MD5'}")
                except SIPError:
                    notes.append(f"{name}: (unparsable)")
        for name in ("WWW-Authenticate", "Proxy-Authenticate"):
            for value in msg.headers.get_all(name):
                try:
                    for ch in parse_challenges(value, name):
                        notes.append(f"{name}: realm={ch.realm} {ch.algorithm or 'MD5'}")
                except SIPError:
                    notes.append(f"{name}: (unparsable)")
        arrow = f"{src:>5} -> {dst:<5}"
        print(f"{arrow}  {what}", file=self.out)
        for n in notes:
            print(f"{'':14}  {n}", file=self.out)
        if self.verbose:
            print(data.decode("utf-8", "replace"), file=self.out)
        self.out.flush()


def _auth(msg: Request, name: str) -> list[tuple[str, str]]:
    out = []
    for v in msg.headers.get_all(name):
        a = parse_authorization(v)
        out.append((a.realm, a.username))
    return out


def verify(ladder: Ladder) -> list[str]:
    """Check alice's side of the flow; returns the problems found (empty = right)."""
    problems: list[str] = []
    sent = [m for (src, _, m) in ladder.sent if src == "alice"]
    got = ladder.received.get("alice", [])
    regs = [m for m in sent if isinstance(m, Request) and m.method == "REGISTER"]
    invites = [m for m in sent if isinstance(m, Request) and m.method == "INVITE"]
    acks = [m for m in sent if isinstance(m, Request) and m.method == "ACK"]
    byes = [m for m in sent if isinstance(m, Request) and m.method == "BYE"]
    statuses = [(m.status, m.cseq.method) for m in got if isinstance(m, Response)]

    def need(cond: bool, what: str) -> None:
        if not cond:
            problems.append(what)

    need(len(regs) == 2, f"expected REGISTER then one retry, saw {len(regs)} REGISTERs")
    need((401, "REGISTER") in statuses, "REGISTER was not challenged with 401")
    need((200, "REGISTER") in statuses, "REGISTER did not get 200")
    if len(regs) == 2:
        need(_auth(regs[1], "Authorization") == [(PROXY_REALM, "alice-auth")],
             "the retried REGISTER must carry Authorization for voip.example.net as alice-auth")
        need(regs[1].cseq.seq == regs[0].cseq.seq + 1 and regs[1].call_id == regs[0].call_id,
             "the retried REGISTER must have CSeq+1 and the same Call-ID")
    need(len(invites) == 3, f"expected INVITE, retry after 407, retry after 401; saw {len(invites)} INVITEs")
    need((407, "INVITE") in statuses, "INVITE was not challenged with 407 by the proxy")
    need((401, "INVITE") in statuses, "INVITE was not challenged with 401 by the callee")
    need((200, "INVITE") in statuses, "INVITE did not get 200")
    if len(invites) == 3:
        i0, i1, i2 = invites
        need(not _auth(i0, "Authorization") and not _auth(i0, "Proxy-Authorization"),
             "the first INVITE must carry no credentials")
        need(_auth(i1, "Proxy-Authorization") == [(PROXY_REALM, "alice-auth")] and not _auth(i1, "Authorization"),
             "the INVITE after 407 must carry Proxy-Authorization for voip.example.net only")
        need(_auth(i2, "Proxy-Authorization") == [(PROXY_REALM, "alice-auth")]
             and _auth(i2, "Authorization") == [(CALLEE_REALM, "alice-callee")],
             "the INVITE after 401 must carry both Proxy-Authorization (voip.example.net) "
             "and Authorization (callee.example.org)")
        need(i1.cseq.seq == i0.cseq.seq + 1 and i2.cseq.seq == i1.cseq.seq + 1,
             "each retried INVITE must have CSeq+1")
        need(len({i.call_id for i in invites}) == 1 and len({i.from_.tag for i in invites}) == 1,
             "retried INVITEs must keep the Call-ID and From tag")
        need(len({i.top_via.branch for i in invites}) == 3, "each retried INVITE needs a new branch")
        ack2xx = [a for a in acks if a.cseq.seq == i2.cseq.seq]
        need(len(ack2xx) >= 1, "no ACK for the 2xx")
        if ack2xx:
            a = ack2xx[0]
            need(a.headers.get_all("Authorization") == i2.headers.get_all("Authorization")
                 and a.headers.get_all("Proxy-Authorization") == i2.headers.get_all("Proxy-Authorization"),
                 "the ACK for the 2xx must repeat the INVITE's Authorization and Proxy-Authorization")
    need(len(byes) == 1, f"expected one BYE, saw {len(byes)}")
    need((200, "BYE") in statuses, "BYE did not get 200")
    for m in sent:
        if isinstance(m, Request):
            for realm, user in _auth(m, "Authorization") + _auth(m, "Proxy-Authorization"):
                expected = {PROXY_REALM: "alice-auth", CALLEE_REALM: "alice-callee"}.get(realm)
                need(expected == user, f"credentials sent to realm {realm!r} as {user!r}")
    return problems


@defer.inlineCallbacks
def run_demo(
    reactor: Any, *, verbose: bool = False, hold: float = 1.0, out: Any = None,
    host: str = "127.0.0.1", port: int = 0, capture: Any = None,
) -> Any:
    """Run the demo; fires with the exit status (0 = the whole flow was right).

    Args:
        reactor: the reactor.
        verbose: print every message in full, not only the ladder.
        hold: seconds the call stays up.
        out: where to print (standard output by default).
        host: the local address of all three parties.
        port: the registrar/proxy's port (0: any free port).
        capture: optional :class:`~txsipua.cli.trace.SessionTrace` writing every message
            sent (``--pcap``, ``--hep``, ``--log-format json``).
    """
    out = out or sys.stdout
    ladder = Ladder(out, verbose)
    ladder.capture = capture
    # the registrar/proxy
    proxy = ProxyRegistrar(
        address=(host, 0),
        domain=DOMAIN,
        realm=PROXY_REALM,
        users={"alice-auth": ("alice-secret", "alice"), "bob-auth": ("bob-secret", "bob")},
        secret=secrets.token_bytes(32),
    )
    proxy_protocol = SIPDatagramProtocol(reactor, proxy, lambda e: None, ladder.tracer("proxy"))
    proxy_port = reactor.listenUDP(port, proxy_protocol, interface=host, maxPacketSize=MAX_DATAGRAM)
    pport = proxy_port.getHost().port
    proxy.address = (host, pport)
    ladder.names[(host, pport)] = "proxy"
    hostpart = f"[{host}]" if ":" in host else host
    registrar = f"sip:{hostpart}:{pport}"

    # bob: registers with the proxy, challenges INVITEs in his own realm
    bob_account = Account(
        user="bob", domain=DOMAIN, display_name="Bob", registrar=registrar, outbound_proxy=registrar,
        credentials=InMemoryCredentials([Credential(realm=PROXY_REALM, username="bob-auth", password="bob-secret")]),
    )
    store = InMemoryHA1Store()
    store.add_password("alice-callee", CALLEE_REALM, "callee-secret")
    bob = UserAgent(
        reactor, None, bob_account, UDPTransport(reactor, host, 0), trace=ladder.tracer("bob"),
        authenticator=DigestServer(CALLEE_REALM, secrets.token_bytes(32)), portal=make_portal(store),
    )
    bob.auto_answer = True
    # alice: the caller, with credentials for two realms
    alice_account = Account(
        user="alice", domain=DOMAIN, display_name="Alice", registrar=registrar, outbound_proxy=registrar,
        credentials=InMemoryCredentials([
            Credential(realm=PROXY_REALM, username="alice-auth", password="alice-secret"),
            Credential(realm=CALLEE_REALM, username="alice-callee", password="callee-secret"),
        ]),
    )
    alice = UserAgent(reactor, None, alice_account, UDPTransport(reactor, host, 0), trace=ladder.tracer("alice"))
    try:
        for name, ua in (("bob", bob), ("alice", alice)):
            host, port = yield ua.start()
            ladder.names[(host, port)] = name
        print(f"proxy/registrar {hostpart}:{pport} (domain {DOMAIN}, realm {PROXY_REALM}); "
              f"bob {bob.local_address[0]}:{bob.local_address[1]} (realm {CALLEE_REALM}); "
              f"alice {alice.local_address[0]}:{alice.local_address[1]}\n", file=out)
        r = yield bob.register(600)
        r = yield alice.register(600)
        print(f"{'':14}  alice registered, expires {r.expires} s\n", file=out)
        call = yield alice.call("sip:bob@example.com")
        print(f"{'':14}  call answered; media: {call.media_params.codec.name if call.media_params else 'none'}\n",
              file=out)
        yield _sleep(reactor, hold)
        reason = yield call.hangup()
        yield _sleep(reactor, 0.2)
        print(f"\n{'':14}  call ended ({reason})", file=out)
    except Exception as e:
        print(f"\ndemo failed: {e}", file=out)
        yield _close(alice, bob, proxy_port)
        return 1
    yield _close(alice, bob, proxy_port)
    problems = verify(ladder)
    if problems:
        print("\nFAIL:", file=out)
        for p in problems:
            print(f"  - {p}", file=out)
        return 1
    print("\nPASS: registered with 401, called through a 407 and a 401 in two realms, both credentials "
          "on one retried INVITE, ACK repeated them, BYE/200.", file=out)
    return 0


def _sleep(reactor: Any, seconds: float) -> defer.Deferred[None]:
    d: defer.Deferred[None] = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


@defer.inlineCallbacks
def _close(alice: UserAgent, bob: UserAgent, proxy_port: Any) -> Any:
    yield alice.stop()
    yield bob.stop()
    yield proxy_port.stopListening()
