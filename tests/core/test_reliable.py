"""Reliable provisional responses between two sans-IO cores: PRACK, RSeq/RAck, retransmission (RFC 3262)."""

from __future__ import annotations

from typing import Any

from txsipua.auth.client import DigestClient
from txsipua.auth.credentials import Credential, InMemoryCredentials
from txsipua.core import builders
from txsipua.core import events as ev
from txsipua.core.ids import SequentialIds
from txsipua.core.invite import Phase
from txsipua.core.useragent import UserAgentCore
from txsipua.sip.message import Request, Response, parse_message
from txsipua.sip.uri import SipURI
from txsipua.sip.values import NameAddr

A = ("127.0.0.1", 5061)
B = ("127.0.0.1", 5062)
OFFER = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n"
ANSWER = b"v=0\r\no=- 2 1 IN IP4 192.0.2.2\r\ns=-\r\n"


class Net:
    """Two cores joined in memory; every message on the wire is kept with the time it was sent."""

    def __init__(self, caller: UserAgentCore, callee: UserAgentCore) -> None:
        self.cores = {A: caller, B: callee}
        self.names = {A: "caller", B: "callee"}
        self.now = 0.0
        self.wire: list[tuple[float, str, Any]] = []
        self.events: dict[str, list[Any]] = {"caller": [], "callee": []}
        self.drop: Any = None
        self.on_event: Any = None

    def pump(self) -> None:
        moved = True
        while moved:
            moved = False
            for addr, core in self.cores.items():
                for out in core.outbox():
                    moved = True
                    msg = parse_message(out.data)
                    self.wire.append((self.now, self.names[addr], msg))
                    if self.drop is not None and self.drop(msg):
                        continue
                    self.cores[out.destination].receive(out.data, addr, self.now)
                while (e := core.next_event()) is not None:
                    moved = True
                    self.events[self.names[addr]].append(e)
                    if self.on_event is not None:
                        self.on_event(self.names[addr], e)

    def run_until(self, end: float) -> None:
        """Fire every timer of both cores up to ``end``, in time order."""
        while True:
            due = [t for t in (c.get_timer() for c in self.cores.values()) if t is not None and t <= end]
            if not due:
                break
            self.now = max(self.now, min(due))
            for core in self.cores.values():
                t = core.get_timer()
                if t is not None and t <= self.now:
                    core.handle_timer(self.now)
            self.pump()
        self.now = end

    def sent(self, side: str, what: str) -> list[Any]:
        """Messages ``side`` sent whose method or status is ``what``."""
        out = []
        for _, name, msg in self.wire:
            if name != side:
                continue
            key = msg.method if isinstance(msg, Request) else str(msg.status)
            if key == what:
                out.append(msg)
        return out

    def times(self, side: str, what: str) -> list[float]:
        return [t for t, name, msg in self.wire if name == side and
                (msg.method if isinstance(msg, Request) else str(msg.status)) == what]


def make(use_100rel: bool = True, digest: DigestClient | None = None) -> tuple[UserAgentCore, UserAgentCore, Net]:
    caller = UserAgentCore(local=A, ids=SequentialIds(), contact_user="alice", digest=digest)
    callee = UserAgentCore(local=B, ids=SequentialIds(counter=1000), contact_user="bob", use_100rel=use_100rel)
    return caller, callee, Net(caller, callee)


def invite(caller: UserAgentCore, body: bytes = OFFER, **kw: Any) -> Request:
    return caller.new_request("INVITE", SipURI.parse("sip:bob@127.0.0.1:5062"),
                              NameAddr(SipURI.parse("sip:alice@example.com")),
                              NameAddr(SipURI.parse("sip:bob@example.com")), body=body,
                              content_type="application/sdp" if body else None, **kw)


def incoming(net: Net) -> Any:
    return next(e.session for e in net.events["callee"] if isinstance(e, ev.IncomingCall))


def test_invite_advertises_100rel_timer_and_allows_update_prack() -> None:
    """Our INVITE carries Supported: 100rel, timer (and replaces) and an Allow with UPDATE and PRACK; so does its 2xx."""
    caller, callee, net = make()
    caller.invite(invite(caller), B, 0.0)
    net.pump()
    inv = net.sent("caller", "INVITE")[0]
    assert inv.headers.get("Supported") == "100rel, timer, replaces"
    assert "UPDATE" in inv.headers.get("Allow") and "PRACK" in inv.headers.get("Allow")
    incoming(net).accept(net.now, body=ANSWER)
    net.pump()
    ok = net.sent("callee", "200")[0]
    assert ok.headers.get("Supported") == "100rel, timer, replaces"


def test_reliable_180_is_pracked_then_answered() -> None:
    """The exact ladder: 100, 180 (Require: 100rel, RSeq), PRACK (RAck "RSeq 1 INVITE", CSeq 2 in the
    early dialog), 200 PRACK, 200 INVITE, ACK; the confirmed dialog's BYE continues at CSeq 3."""
    caller, callee, net = make()
    session = caller.invite(invite(caller), B, 0.0)
    net.pump()
    uas = incoming(net)
    uas.ring(net.now)
    net.pump()
    ladder = [(n, m.method if isinstance(m, Request) else m.status) for _, n, m in net.wire]
    assert ladder == [("caller", "INVITE"), ("callee", 100), ("callee", 180), ("caller", "PRACK"), ("callee", 200)]
    ringing = net.sent("callee", "180")[0]
    assert ringing.headers.get("Require") == "100rel"
    rseq = int(ringing.headers.get("RSeq"))
    assert 1 <= rseq <= 2**31 - 1
    prack = net.sent("caller", "PRACK")[0]
    assert prack.headers.get("RAck") == f"{rseq} 1 INVITE"
    assert str(prack.cseq) == "2 PRACK"
    assert prack.to.tag == ringing.to.tag and prack.uri_text == "sip:bob@127.0.0.1:5062"
    assert callee.get_timer() is None or callee.get_timer() > 31  # retransmissions stopped by the PRACK
    uas.accept(net.now, body=ANSWER)
    net.pump()
    assert session.phase is Phase.CONFIRMED
    session.hangup(net.now)
    net.pump()
    bye = net.sent("caller", "BYE")[0]
    assert str(bye.cseq) == "3 BYE"


def test_unacknowledged_reliable_1xx_is_retransmitted_at_t1_doubling_then_500_at_64_t1() -> None:
    """Every PRACK lost: the 180 goes again at 0.5, 1.5, 3.5, 7.5, 15.5 and 31.5 s (T1 doubling, no cap);
    at 32 s (64*T1) the INVITE is rejected with 500 and the callee's call ends."""
    caller, callee, net = make()
    net.drop = lambda m: isinstance(m, Request) and m.method == "PRACK"
    caller.invite(invite(caller), B, 0.0)
    net.pump()
    uas = incoming(net)
    uas.ring(0.0)
    net.pump()
    net.run_until(40.0)
    assert net.times("callee", "180") == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert net.times("callee", "500") == [32.0]
    assert net.sent("callee", "500")[0].reason == "Reliable Provisional Response Not Acknowledged"
    assert uas.phase is Phase.TERMINATED
    ended = [e for e in net.events["callee"] if isinstance(e, ev.CallEnded)]
    assert [e.reason for e in ended] == ["error"]
    assert any(isinstance(e, ev.CallAttemptFailed) for e in net.events["caller"])
    # the caller PRACKed the first 180 only (its transaction retransmits that PRACK); the 180's
    # retransmissions (same RSeq) are not PRACKed again
    assert len({m.top_via.branch for m in net.sent("caller", "PRACK")}) == 1


def test_reliable_183_with_sdp_holds_the_2xx_until_its_prack() -> None:
    """A reliable 183 carrying the answer: accept() before the PRACK holds the 200; the PRACK lets it go."""
    caller, callee, net = make()
    held: list[Any] = []
    net.drop = lambda m: isinstance(m, Request) and m.method == "PRACK" and not held
    session = caller.invite(invite(caller), B, 0.0)
    net.pump()
    uas = incoming(net)
    uas.ring(0.0, body=ANSWER, status=183)
    net.pump()
    uas.accept(0.0, body=ANSWER)
    net.pump()
    assert net.sent("callee", "200") == []  # held: the 183 with SDP is not PRACKed yet
    assert session.remote_sdp == ANSWER  # the answer in the reliable 183 (RFC 3262 §5)
    held.append(True)
    net.run_until(1.0)  # the PRACK's NICT retransmits at 0.5 s and gets through
    finals = [m for m in net.sent("callee", "200") if m.cseq.method == "INVITE"]
    assert len(finals) == 1 and finals[0].body == ANSWER
    assert session.phase is Phase.CONFIRMED
    assert [e for e in net.events["callee"] if isinstance(e, ev.ProvisionalAcknowledged)]


def test_prack_matching_nothing_gets_481_and_out_of_order_1xx_are_dropped() -> None:
    """A PRACK whose RAck names no 1xx we sent gets 481; a reliable 1xx repeated or skipping an RSeq
    is neither PRACKed nor reported (RFC 3262 §3, §4)."""
    caller, callee, net = make()
    session = caller.invite(invite(caller), B, 0.0)
    net.pump()
    uas = incoming(net)
    uas.ring(0.0)
    net.pump()
    ringing = net.sent("callee", "180")[0]
    rseq = int(ringing.headers.get("RSeq"))
    provisional_before = len([e for e in net.events["caller"] if isinstance(e, ev.ProvisionalResponse)])
    for number in (rseq, rseq + 2):  # a repeat, then a gap
        dup = ringing.copy()
        dup.headers.set("RSeq", str(number))
        caller.receive(dup.to_bytes(), B, net.now)
        net.pump()
    assert len(net.sent("caller", "PRACK")) == 1
    after = len([e for e in net.events["caller"] if isinstance(e, ev.ProvisionalResponse)])
    assert after == provisional_before
    assert caller.context.stats["prack_dropped"] == 2
    # a PRACK for an RSeq never sent
    dialog = session.early_dialogs[ringing.to.tag][0]
    bogus = dialog.create_request("PRACK", via=caller.context.via("z9hG4bKbogus1"),
                                  headers=[("RAck", f"{rseq + 7} 1 INVITE")])
    callee.receive(bogus.to_bytes(), A, net.now)
    net.pump()
    assert [m.status for m in net.sent("callee", "481")] == [481]


def test_require_100rel_is_honoured_even_when_use_100rel_is_off() -> None:
    """The callee's policy is off, but the INVITE requires 100rel: the 180 is reliable; a caller that
    only supports it gets an ordinary 180."""
    caller, callee, net = make(use_100rel=False)
    caller.invite(invite(caller, headers=[("Require", "100rel")]), B, 0.0)
    net.pump()
    incoming(net).ring(0.0)
    net.pump()
    assert net.sent("callee", "180")[0].headers.get("RSeq") is not None
    assert net.sent("callee", "420") == []
    caller2, callee2, net2 = make(use_100rel=False)
    caller2.invite(invite(caller2), B, 0.0)
    net2.pump()
    incoming(net2).ring(0.0)
    net2.pump()
    assert net2.sent("callee", "180")[0].headers.get("RSeq") is None
    assert net2.sent("caller", "PRACK") == []


def test_second_reliable_1xx_waits_for_the_first_prack() -> None:
    """Only one reliable 1xx is outstanding (§3): the 183 queued behind the 180 goes after its PRACK,
    with RSeq + 1, and is PRACKed in turn."""
    caller, callee, net = make()
    hold: list[Any] = []
    net.drop = lambda m: isinstance(m, Request) and m.method == "PRACK" and not hold
    caller.invite(invite(caller), B, 0.0)
    net.pump()
    uas = incoming(net)
    uas.ring(0.0)
    uas.ring(0.0, status=183)
    net.pump()
    assert net.sent("callee", "183") == []
    hold.append(True)
    net.run_until(0.6)
    r180 = int(net.sent("callee", "180")[0].headers.get("RSeq"))
    assert int(net.sent("callee", "183")[0].headers.get("RSeq")) == r180 + 1
    assert [m.headers.get("RAck").split()[0] for m in net.sent("caller", "PRACK")][-1] == str(r180 + 1)


def test_bye_in_the_early_dialog_ends_the_ringing_call_with_487() -> None:
    """The caller's BYE in the early dialog of the reliable 180: 200 to the BYE, 487 to the INVITE."""
    caller, callee, net = make()
    session = caller.invite(invite(caller), B, 0.0)
    net.pump()
    uas = incoming(net)
    uas.ring(0.0)
    net.pump()
    dialog = session.early_dialogs[net.sent("callee", "180")[0].to.tag][0]
    session.send_in(dialog, "BYE", net.now)
    net.pump()
    assert [m.cseq.method for m in net.sent("callee", "200")][-1] == "BYE"
    assert net.sent("callee", "487")
    assert uas.phase is Phase.TERMINATED


def test_challenged_prack_is_retried_with_credentials() -> None:
    """A PRACK answered 407 is sent again with Proxy-Authorization, CSeq + 1 and the same RAck (§22.2)."""
    creds = InMemoryCredentials([Credential(realm="proxy.example.net", username="alice-auth", password="pw")])
    caller, callee, net = make(digest=DigestClient(creds))
    caller.invite(invite(caller), B, 0.0)
    net.pump()
    uas = incoming(net)
    challenged: list[Request] = []

    def intercept(msg: Any) -> bool:
        if isinstance(msg, Request) and msg.method == "PRACK" and not challenged:
            challenged.append(msg)
            return True
        return False

    net.drop = intercept
    uas.ring(0.0)
    net.pump()
    assert challenged
    response: Response = builders.make_response(
        challenged[0], 407, server="", headers=[(
            "Proxy-Authenticate", 'Digest realm="proxy.example.net", nonce="abc123", algorithm=MD5, qop="auth"')])
    caller.receive(response.to_bytes(), B, net.now)
    net.pump()
    pracks = net.sent("caller", "PRACK")
    assert len(pracks) == 2
    retry = pracks[1]
    assert retry.headers.get("Proxy-Authorization", "").startswith("Digest ")
    assert retry.cseq.seq == pracks[0].cseq.seq + 1
    assert retry.headers.get("RAck") == pracks[0].headers.get("RAck")
    assert net.sent("callee", "200")[-1].cseq.method == "PRACK"


def test_a_second_prack_for_an_acknowledged_1xx_gets_481() -> None:
    """The 180 was PRACKed (200); a new PRACK (new transaction, CSeq + 1) naming it again matches no
    unacknowledged 1xx: 481 (RFC 3262 §3)."""
    caller, callee, net = make()
    session = caller.invite(invite(caller), B, 0.0)
    net.pump()
    incoming(net).ring(net.now)
    net.pump()
    prack = net.sent("caller", "PRACK")[0]
    assert [m.cseq.method for m in net.sent("callee", "200")] == ["PRACK"]
    dialog = session.early_dialogs[prack.to.tag][0]
    again = dialog.create_request("PRACK", via=caller.context.via("z9hG4bKagain1"),
                                  headers=[("RAck", prack.headers.get("RAck"))])
    assert again.cseq.seq == prack.cseq.seq + 1
    callee.receive(again.to_bytes(), A, net.now)
    net.pump()
    [refused] = net.sent("callee", "481")
    assert refused.cseq == again.cseq and refused.top_via.branch == "z9hG4bKagain1"
    assert [m.cseq.method for m in net.sent("callee", "200")] == ["PRACK"]
