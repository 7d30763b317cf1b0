"""The sans-IO user agent core, two cores wired in memory (RFC 3261 §13, §15, §22)."""

from __future__ import annotations

from typing import Any

import pytest

from txsipua.auth.client import DigestClient
from txsipua.auth.credentials import Credential, InMemoryCredentials
from txsipua.auth.digest import compute_ha1
from txsipua.auth.server import DigestServer
from txsipua.core import events as ev
from txsipua.core.builders import make_response
from txsipua.core.ids import SequentialIds
from txsipua.core.useragent import SessionState, UserAgentCore
from txsipua.errors import AuthenticationError, CallFailed, TransportError
from txsipua.sip.message import Request, parse_message
from txsipua.sip.uri import SipURI
from txsipua.sip.values import NameAddr

A = ("127.0.0.1", 5061)
B = ("127.0.0.1", 5062)


class Net:
    """Delivers every outbox between cores; records a ladder of (src, dst, first line)."""

    def __init__(self, **cores: UserAgentCore) -> None:
        self.cores = {c.local: c for c in cores.values()}
        self.names = {c.local: n for n, c in cores.items()}
        self.now = 0.0
        self.ladder: list[tuple[str, str, str]] = []
        self.wire: list[Any] = []
        self.events: dict[str, list[Any]] = {n: [] for n in cores}
        self.drop: Any = None

    def pump(self) -> None:
        moved = True
        while moved:
            moved = False
            for addr, core in list(self.cores.items()):
                for out in core.outbox():
                    moved = True
                    msg = parse_message(out.data)
                    self.wire.append(msg)
                    first = out.data.split(b"\r\n", 1)[0].decode()
                    self.ladder.append((self.names[addr], self.names.get(out.destination, "?"), first))
                    if self.drop and self.drop(msg):
                        continue
                    dst = self.cores.get(out.destination)
                    if dst is not None:
                        dst.receive(out.data, addr, self.now)
                while (e := core.next_event()) is not None:
                    moved = True
                    self.events[self.names[addr]].append(e)
                    self.on_event(self.names[addr], core, e)

    def on_event(self, name: str, core: UserAgentCore, e: Any) -> None:
        pass

    def advance(self, seconds: float, step: float = 0.25) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now = min(end, self.now + step)
            for core in self.cores.values():
                t = core.get_timer()
                if t is not None and t <= self.now:
                    core.handle_timer(self.now)
            self.pump()


def make_pair(password: str = "secret", realm: str = "callee.example.org"):
    creds = InMemoryCredentials([Credential(realm=realm, username="alice-auth", password=password)])
    caller = UserAgentCore(local=A, ids=SequentialIds(), digest=DigestClient(creds), contact_user="alice")
    server = DigestServer(realm, b"k" * 32)
    callee = UserAgentCore(local=B, ids=SequentialIds(counter=1000), authenticator=server, contact_user="bob")
    ha1 = compute_ha1("MD5", "alice-auth", realm, "secret")

    class CallNet(Net):
        def on_event(self, name: str, core: UserAgentCore, e: Any) -> None:
            if isinstance(e, ev.AuthenticationNeeded):
                core.authentication_result(e, e.credentials.check_ha1(ha1), e.credentials.username, self.now)
            elif isinstance(e, ev.IncomingCall):
                e.session.ring(self.now)
                e.session.accept(self.now, body=b"v=0\r\n")

    return caller, callee, CallNet(caller=caller, callee=callee)


def on_incoming_call(net: Net, act: Any) -> Any:
    """An event handler accepting any credentials and doing ``act(session)`` with each incoming call."""

    def handle(name: str, core: UserAgentCore, e: Any) -> None:
        if isinstance(e, ev.AuthenticationNeeded):
            core.authentication_result(e, True, "alice-auth", net.now)
        elif isinstance(e, ev.IncomingCall):
            act(e.session)

    return handle


def invite(caller: UserAgentCore) -> Request:
    return caller.new_request(
        "INVITE",
        SipURI.parse("sip:bob@127.0.0.1:5062"),
        NameAddr(SipURI.parse("sip:alice@example.com"), "Alice"),
        NameAddr(SipURI.parse("sip:bob@example.com")),
        body=b"v=0\r\n",
        content_type="application/sdp",
    )


def test_challenged_call_ack_repeats_credentials_and_bye() -> None:
    """401 answered once; 200; the ACK repeats the INVITE's Authorization; BYE/200 ends it."""
    caller, callee, net = make_pair()
    session = caller.invite(invite(caller), B, 0.0)
    net.pump()
    methods = [line for _, _, line in net.ladder]
    assert methods[0].startswith("INVITE")
    assert "401" in methods[2] or "401" in methods[1]
    answered = [e for e in net.events["caller"] if isinstance(e, ev.CallAnswered)]
    assert len(answered) == 1
    invites = [m for m in net.wire if isinstance(m, Request) and m.method == "INVITE"]
    assert len(invites) == 2
    assert invites[1].cseq.seq == invites[0].cseq.seq + 1
    assert invites[1].call_id == invites[0].call_id
    assert invites[1].from_.tag == invites[0].from_.tag
    assert invites[1].top_via.branch != invites[0].top_via.branch
    acks = [m for m in net.wire if isinstance(m, Request) and m.method == "ACK"]
    # the ACK of the 401 is hop-by-hop (§17.1.1.3): same branch as the INVITE, no credentials
    assert acks[0].cseq.seq == invites[0].cseq.seq and "Authorization" not in acks[0].headers
    assert acks[0].top_via.branch == invites[0].top_via.branch
    ack = acks[1]
    assert ack.headers.get("Authorization") == invites[1].headers.get("Authorization")
    assert ack.cseq.seq == invites[1].cseq.seq
    assert ack.top_via.branch != invites[1].top_via.branch
    assert any(isinstance(e, ev.CallConfirmed) for e in net.events["callee"])
    session.hangup(net.now)
    net.pump()
    assert session.state is SessionState.TERMINATED
    assert any(isinstance(e, ev.CallEnded) and e.reason == "bye" for e in net.events["callee"])
    assert caller.session_count == 0 and callee.session_count == 0
    net.advance(40)
    assert caller.layer.transaction_count == 0 and callee.layer.transaction_count == 0


def test_wrong_password_fails_after_one_retry() -> None:
    """A second non-stale challenge ends the call with AuthenticationError (no loop)."""
    caller, callee, net = make_pair(password="wrong")
    caller.invite(invite(caller), B, 0.0)
    net.pump()
    failed = [e for e in net.events["caller"] if isinstance(e, ev.CallAttemptFailed)]
    assert len(failed) == 1 and isinstance(failed[0].error, AuthenticationError)
    invites = [m for m in net.wire if isinstance(m, Request) and m.method == "INVITE"]
    assert len(invites) == 2


def test_cancel_while_ringing_carries_no_credentials() -> None:
    """hangup() while ringing sends CANCEL (same branch, no credentials); 487 ends it."""
    caller, callee, net = make_pair()

    net.on_event = on_incoming_call(net, lambda session: session.ring(net.now))  # type: ignore[method-assign]
    session = caller.invite(invite(caller), B, 0.0)
    net.pump()
    assert session.state is SessionState.PROCEEDING
    session.hangup(net.now)
    net.pump()
    cancel = [m for m in net.wire if isinstance(m, Request) and m.method == "CANCEL"][0]
    inv = [m for m in net.wire if isinstance(m, Request) and m.method == "INVITE"][-1]
    assert "Authorization" not in cancel.headers and "Proxy-Authorization" not in cancel.headers
    assert cancel.top_via.branch == inv.top_via.branch
    assert any(isinstance(e, ev.CallEnded) and e.reason == "cancelled" for e in net.events["caller"])
    assert any(isinstance(e, ev.CallEnded) and e.reason == "cancelled" for e in net.events["callee"])


def test_rejected_call_reports_status() -> None:
    """A 486 from the callee is a CallFailed carrying the response."""
    caller, callee, net = make_pair()

    net.on_event = on_incoming_call(net, lambda session: session.reject(net.now, 486))  # type: ignore[method-assign]
    caller.invite(invite(caller), B, 0.0)
    net.pump()
    failed = [e for e in net.events["caller"] if isinstance(e, ev.CallAttemptFailed)][0]
    assert isinstance(failed.error, CallFailed) and failed.error.status == 486


def test_lost_ack_is_tolerated_and_2xx_retransmitted() -> None:
    """The callee retransmits its 2xx until the ACK arrives; the caller re-ACKs each copy."""
    caller, callee, net = make_pair()
    dropped = []

    def drop_first_ack(msg: Any) -> bool:
        if isinstance(msg, Request) and msg.method == "ACK" and msg.cseq.seq == 2 and not dropped:
            dropped.append(msg)
            return True
        return False

    net.drop = drop_first_ack
    caller.invite(invite(caller), B, 0.0)
    net.pump()
    assert not any(isinstance(e, ev.CallConfirmed) for e in net.events["callee"])
    net.advance(1.0)
    assert any(isinstance(e, ev.CallConfirmed) for e in net.events["callee"])
    acks = [m for m in net.wire if isinstance(m, Request) and m.method == "ACK" and m.cseq.seq == 2]
    assert len(acks) == 2


@pytest.mark.parametrize("method", ["OPTIONS"])
def test_options_answered_without_challenge(method: str) -> None:
    """OPTIONS is answered 200 with Allow by the core itself."""
    caller, callee, net = make_pair()
    req = caller.new_request(method, SipURI.parse("sip:127.0.0.1:5062"),
                             NameAddr(SipURI.parse("sip:alice@example.com")),
                             NameAddr(SipURI.parse("sip:127.0.0.1:5062")))
    caller.send_request(req, B, 0.0)
    net.pump()
    done = [e for e in net.events["caller"] if isinstance(e, ev.RequestCompleted)][0]
    assert done.response.status == 200 and "INVITE" in (done.response.headers.get("Allow") or "")


@pytest.mark.parametrize(
    ("mutate", "status"),
    [
        (lambda r: setattr(r, "uri", "sip:"), 400),
        (lambda r: setattr(r, "uri", "http://example.com/"), 416),
        (lambda r: r.headers.set("To", "garbage<<"), 400),
        (lambda r: r.headers.set("From", "<<<>>"), 400),
        (lambda r: r.headers.set("Max-Forwards", "abc"), 400),
        (lambda r: r.headers.add("Record-Route", "<<junk"), 400),
        (lambda r: r.headers.set("Contact", "*"), 400),
        (lambda r: r.headers.set("Contact", "<mailto:bob@example.com>"), 400),  # §8.1.1.8, not 416
        (lambda r: r.headers.add("Require", "foo, 100rel"), 420),
    ],
)
def test_malformed_invite_fields_get_a_final_response(mutate: Any, status: int) -> None:
    """Fields parsed on access are checked before IncomingCall: 400/416/420, never a hang (§8.2.2).

    The callee authenticates first (RFC 3261 §8.2: a request is examined once
    authenticated), so the INVITE without credentials is challenged and the
    retry with credentials gets the check's answer (a To too broken to tag a
    401 is answered at once).
    """
    caller, callee, net = make_pair()
    req = invite(caller)
    mutate(req)
    caller.invite(req, B, 0.0)
    net.pump()
    finals = [m for m in net.wire if not isinstance(m, Request) and m.status >= 200]
    assert [m.status for m in finals] in ([401, status], [status]), finals
    finals = finals[-1:]
    assert not any(isinstance(e, ev.IncomingCall) for e in net.events["callee"])
    if status == 420:
        assert finals[0].headers.get("Unsupported") == "foo"  # 100rel is implemented now (RFC 3262)


def test_options_with_non_sip_uris_in_to_from_contact_is_answered_200() -> None:
    """RFC 4475 §3.1.1.13: tel:, im:, mailto: (any scheme) in To/From/Contact are valid."""
    caller, callee, net = make_pair()
    req = caller.new_request("OPTIONS", SipURI.parse("sip:127.0.0.1:5062"),
                             NameAddr(SipURI.parse("sip:alice@example.com")),
                             NameAddr(SipURI.parse("sip:127.0.0.1:5062")))
    req.headers.set("To", "<mailto:bob@example.com>")
    req.headers.set("From", f"<im:alice@example.com>;tag={req.from_tag}")
    req.headers.set("Contact", "<tel:+1-201-555-0123>")
    caller.send_request(req, B, 0.0)
    net.pump()
    done = [e for e in net.events["caller"] if isinstance(e, ev.RequestCompleted)]
    assert done and done[0].response.status == 200
    assert done[0].response.to.uri.scheme == "mailto" and done[0].response.to.tag


def test_malformed_options_is_not_answered_200() -> None:
    """OPTIONS with a bad To gets 400, not 200 (RFC 4475 §3.1.2)."""
    caller, callee, net = make_pair()
    req = caller.new_request("OPTIONS", SipURI.parse("sip:127.0.0.1:5062"),
                             NameAddr(SipURI.parse("sip:alice@example.com")),
                             NameAddr(SipURI.parse("sip:127.0.0.1:5062")))
    req.headers.set("To", "garbage<<")
    caller.send_request(req, B, 0.0)
    net.pump()
    done = [e for e in net.events["caller"] if isinstance(e, ev.RequestCompleted)]
    assert done and done[0].response.status == 400


def test_unconfirmed_bye_is_reported_on_call_ended() -> None:
    """CallEnded waits for the BYE; a BYE never answered ends with bye_error = TransactionTimeout."""
    from txsipua.errors import TransactionTimeout

    caller, callee, net = make_pair()
    session = caller.invite(invite(caller), B, 0.0)
    net.pump()
    net.drop = lambda m: not isinstance(m, Request) and m.cseq.method == "BYE"
    session.hangup(net.now)
    net.pump()
    assert not any(isinstance(e, ev.CallEnded) for e in net.events["caller"])  # still waiting
    net.advance(40)
    ended = [e for e in net.events["caller"] if isinstance(e, ev.CallEnded)]
    assert len(ended) == 1 and isinstance(ended[0].bye_error, TransactionTimeout)
    assert caller.session_count == 0


def test_guard_judges_maddr_not_the_nominal_host() -> None:
    """A peer whose Contact names our registrar as host but its own maddr gets no credentials for our BYE.

    The account trusts only registrar.invalid for realm "provider"; the callee (not a
    trusted hop) answers with Contact <sip:evil@registrar.invalid:5062;maddr=127.0.0.1>
    and challenges the BYE in realm "provider": the BYE must not be retried with credentials.
    """
    creds = InMemoryCredentials([Credential(realm="provider", username="alice", password="pw")])
    caller = UserAgentCore(local=A, ids=SequentialIds(), contact_user="alice",
                           digest=DigestClient(creds, trusted_hosts=["registrar.invalid"]))
    callee = UserAgentCore(local=B, ids=SequentialIds(counter=500), contact_user="evil")
    callee.context.contact_value = lambda: "<sip:evil@registrar.invalid:5062;maddr=127.0.0.1>"  # type: ignore[method-assign]
    challenger = DigestServer("provider", b"z" * 32)

    class EvilNet(Net):
        def on_event(self, name: str, core: UserAgentCore, e: Any) -> None:
            if isinstance(e, ev.IncomingCall):
                e.session.accept(self.now, body=b"v=0\r\n")

    net = EvilNet(caller=caller, callee=callee)
    session = caller.invite(invite(caller), B, 0.0)
    net.pump()
    assert session.state is SessionState.CONFIRMED
    # the callee now challenges every BYE in our provider's realm
    original = callee.uas.on_request

    def challenge_bye(request: Request, stxn: Any, source: Any, now: float) -> None:
        if request.method == "BYE":
            callee.layer.respond(stxn, challenger.challenge(request, now), now)
        else:
            original(request, stxn, source, now)

    callee.uas.on_request = challenge_bye  # type: ignore[method-assign]
    session.hangup(net.now)
    net.pump()
    byes = [m for m in net.wire if isinstance(m, Request) and m.method == "BYE"]
    assert len(byes) == 1 and "Authorization" not in byes[0].headers
    ended = [e for e in net.events["caller"] if isinstance(e, ev.CallEnded)]
    assert ended and ended[0].bye_error is not None and "guard" in str(ended[0].bye_error)


def test_cancel_without_487_gives_up_after_64_t1() -> None:
    """A callee that rings, takes the CANCEL but never sends 487: after 64*T1 the call is over (§9.1)."""
    caller, callee, net = make_pair()

    net.on_event = on_incoming_call(net, lambda session: session.ring(net.now))  # type: ignore[method-assign]
    session = caller.invite(invite(caller), B, 0.0)
    net.pump()
    net.drop = lambda m: not isinstance(m, Request) and m.status == 487  # the 487 is lost for good
    session.hangup(net.now)
    net.pump()
    assert session.state is SessionState.PROCEEDING
    net.advance(31)
    assert not any(isinstance(e, ev.CallEnded) for e in net.events["caller"])
    net.advance(2)
    ended = [e for e in net.events["caller"] if isinstance(e, ev.CallEnded)]
    assert len(ended) == 1 and ended[0].reason == "cancelled"
    net.advance(40)
    assert caller.layer.transaction_count == 0 and caller.session_count == 0


def _untagged(make: Any) -> Any:
    def make_response(request: Any, status: int, *args: Any, **kw: Any) -> Any:
        resp = make(request, status, *args, **kw)
        if request.method == "INVITE" and status == 200:
            resp.headers.set("To", request.headers.get("To"))
        return resp

    return make_response


def test_late_2xx_after_giving_up_is_acked_and_byed() -> None:
    """A 200 that arrives after the 64*T1 give-up (§9.1) is still ACKed, then BYEd (§13.2.2.4)."""
    caller, callee, net = make_pair()
    sessions: list[Any] = []
    net.on_event = on_incoming_call(net, lambda s: (s.ring(net.now), sessions.append(s)))  # type: ignore[method-assign]
    session = caller.invite(invite(caller), B, 0.0)
    net.pump()
    # the callee never sees the CANCEL
    net.drop = lambda m: isinstance(m, Request) and m.method == "CANCEL"
    session.hangup(net.now)
    net.pump()
    net.advance(40)
    assert any(isinstance(e, ev.CallEnded) for e in net.events["caller"])
    net.drop = None
    sessions[0].accept(net.now, body=b"v=0\r\n")  # now the callee answers
    net.pump()
    late = [m for m in net.wire if isinstance(m, Request) and m.method in ("ACK", "BYE") and m.cseq.method != "CANCEL"]
    assert [m.method for m in late][-2:] == ["ACK", "BYE"]


@pytest.mark.parametrize(
    "to_uri",
    [
        "<sip:bob@example.com;tag=u>",  # ";tag=" as a URI parameter
        '"Desk;tag=1" <sip:bob@example.com>',  # inside a quoted display name
        '<sip:bob@example.com>;x="a;tag=b"',  # inside a quoted header parameter
    ],
)
def test_2xx_gets_a_to_tag_when_the_to_has_only_tag_lookalikes(to_uri: str) -> None:
    """The UAS adds its To tag unless the To has a tag *parameter* (RFC 3261 §8.2.6.2).

    A text search for ";tag=" once skipped the tag for these, so the 2xx made no
    dialog and the BYE got 481 (second review).
    """
    caller = UserAgentCore(local=A, ids=SequentialIds(), contact_user="alice")
    callee = UserAgentCore(local=B, ids=SequentialIds(counter=1000), contact_user="bob")
    net = Net(caller=caller, callee=callee)
    net.on_event = on_incoming_call(net, lambda s: s.accept(net.now, body=b"v=0\r\n"))  # type: ignore[method-assign]
    request = invite(caller)
    request.headers.set("To", to_uri)
    session = caller.invite(request, B, 0.0)
    net.pump()
    ok = [m for m in net.wire if not isinstance(m, Request) and m.status == 200]
    assert ok and ok[0].to_tag is not None and ok[0].to.tag == ok[0].to_tag
    assert any(isinstance(e, ev.CallConfirmed) for e in net.events["callee"])
    session.hangup(net.now)
    net.pump()
    bye_answers = [m for m in net.wire if not isinstance(m, Request) and m.cseq.method == "BYE"]
    assert [m.status for m in bye_answers] == [200]
    assert caller.session_count == 0 and callee.session_count == 0


# ---------------------------------------------------------------- issue 12


def test_challenge_after_hangup_is_acked_and_not_retried() -> None:
    """A 401 arriving after we hung up (CANCEL sent after only a 100) is ACKed; no new INVITE (issue 12)."""
    caller, callee, net = make_pair()
    held: list[Any] = []

    def hold_401(msg: Any) -> bool:
        if not isinstance(msg, Request) and msg.status == 401 and not held:
            held.append(msg)
            return True
        return False

    net.drop = hold_401
    session = caller.invite(invite(caller), B, 0.0)
    net.pump()
    # the callee challenged at once (no 100 Trying, §17.2.1): a proxy's 100 comes first
    sent_invite = next(m for m in net.wire if isinstance(m, Request) and m.method == "INVITE")
    caller.receive(make_response(sent_invite, 100, "Trying").to_bytes(), B, net.now)
    net.pump()
    assert held and session.state is SessionState.PROCEEDING  # only the 100 came
    session.hangup(net.now)
    net.pump()
    assert any(isinstance(m, Request) and m.method == "CANCEL" for m in net.wire)
    caller.receive(held[0].to_bytes(), B, net.now)  # the challenge arrives late
    net.pump()
    net.advance(40)
    invites = [m for m in net.wire if isinstance(m, Request) and m.method == "INVITE"]
    assert len(invites) == 1, "no INVITE with credentials after the hang-up"
    acks = [m for m in net.wire if isinstance(m, Request) and m.method == "ACK"]
    assert len(acks) == 1 and acks[0].cseq.seq == invites[0].cseq.seq and acks[0].to.tag == held[0].to.tag
    ended = [e for e in net.events["caller"] if isinstance(e, ev.CallEnded)]
    assert [e.reason for e in ended] == ["cancelled"]
    assert session.state is SessionState.TERMINATED
    assert caller.layer.transaction_count == 0 and caller.session_count == 0


def test_challenge_racing_a_hangup_before_any_provisional_is_not_answered() -> None:
    """Hung up before any 1xx (the CANCEL waits, §9.1): the 401 that comes is ACKed, nothing is retried."""
    caller, callee, net = make_pair()
    held: list[Any] = []

    def drop(msg: Any) -> bool:
        if isinstance(msg, Request):
            return False
        if msg.status == 401:
            held.append(msg)
        return msg.status in (100, 401)  # the 100 is lost, the 401 held back

    net.drop = drop
    session = caller.invite(invite(caller), B, 0.0)
    net.pump()
    assert held and session.state is SessionState.CALLING
    session.hangup(net.now)
    net.drop = None
    caller.receive(held[0].to_bytes(), B, net.now)
    net.pump()
    net.advance(40)
    requests = [m.method for m in net.wire if isinstance(m, Request)]
    assert requests == ["INVITE", "ACK"], "no CANCEL (no 1xx came) and no INVITE with credentials"
    assert [e.reason for e in net.events["caller"] if isinstance(e, ev.CallEnded)] == ["cancelled"]
    assert caller.layer.transaction_count == 0


def test_challenge_after_abort_is_not_answered() -> None:
    """A UA stopping aborts a challenged call: the late 401 finds no transaction; no new INVITE."""
    caller, callee, net = make_pair()
    net.drop = lambda m: not isinstance(m, Request) and m.status == 401
    session = caller.invite(invite(caller), B, 0.0)
    net.pump()
    caller.abort(session, net.now, RuntimeError("stopping"))
    net.drop = None
    net.advance(40)
    invites = [m for m in net.wire if isinstance(m, Request) and m.method == "INVITE"]
    assert len(invites) == 1
    assert [e.reason for e in net.events["caller"] if isinstance(e, ev.CallEnded)] == ["cancelled"]


def test_2xx_without_to_tag_makes_a_dialog_with_a_null_remote_tag() -> None:
    """RFC 3261 §12.1.2: a 2xx without To tag (a legacy peer) is a dialog; ACK and BYE keep its To."""
    caller, callee, net = make_pair()

    def answer_without_tag(session: Any) -> None:
        session.local_tag = ""  # a legacy UAS: no To tag on its 200
        callee.context.make_response = _untagged(callee.context.make_response)  # type: ignore[method-assign]
        session.accept(net.now, body=b"v=0\r\n")

    net.on_event = on_incoming_call(net, answer_without_tag)  # type: ignore[method-assign]
    session = caller.invite(invite(caller), B, 0.0)
    net.pump()
    assert not any(isinstance(e, ev.CallAttemptFailed) for e in net.events["caller"])
    assert any(isinstance(e, ev.CallAnswered) for e in net.events["caller"])
    assert session.state is SessionState.CONFIRMED and session.dialog is not None
    assert session.dialog.remote_tag == ""
    ok = [m for m in net.wire if not isinstance(m, Request) and m.status == 200 and m.cseq.method == "INVITE"][-1]
    assert ok.to_tag is None
    acks = [m for m in net.wire if isinstance(m, Request) and m.method == "ACK" and m.cseq.seq == 2]
    assert acks and acks[0].headers.get("To") == ok.headers.get("To")
    session.hangup(net.now)
    net.pump()
    byes = [m for m in net.wire if isinstance(m, Request) and m.method == "BYE"]
    assert len(byes) == 1 and byes[0].headers.get("To") == ok.headers.get("To") and byes[0].to_tag is None
    assert caller.session_count == 0


def test_unacked_2xx_sends_no_bye_to_an_unverified_contact() -> None:
    """No ACK, and the INVITE's Contact names a third party: no BYE goes there (issue 12, §13.3.1.4)."""
    caller = UserAgentCore(local=A, ids=SequentialIds(), contact_user="alice")
    callee = UserAgentCore(local=B, ids=SequentialIds(counter=1000), contact_user="bob")
    net = Net(caller=caller, callee=callee)
    net.on_event = on_incoming_call(net, lambda s: s.accept(net.now, body=b"v=0\r\n"))  # type: ignore[method-assign]
    net.drop = lambda m: isinstance(m, Request) and m.method == "ACK"
    request = invite(caller)
    request.headers.set("Contact", "<sip:carol@127.0.0.1:5099>")  # a third party, not the caller
    caller.invite(request, B, 0.0)
    net.pump()
    net.advance(70)
    # "?" is any address that is not one of the two cores (here: carol's)
    assert not [dst for src, dst, line in net.ladder if src == "callee" and line.startswith("BYE")]
    assert all(dst != "?" for _, dst, _ in net.ladder)
    ended = [e for e in net.events["callee"] if isinstance(e, ev.CallEnded)]
    assert [(e.reason, e.by_remote) for e in ended] == [("no-ack", True)]
    assert callee.session_count == 0 and callee.layer.transaction_count == 0


def test_unacked_2xx_sends_the_bye_to_the_address_the_invite_came_from() -> None:
    """No ACK, and the Contact is where the INVITE came from: the §13.3.1.4 BYE is sent there."""
    caller = UserAgentCore(local=A, ids=SequentialIds(), contact_user="alice")
    callee = UserAgentCore(local=B, ids=SequentialIds(counter=1000), contact_user="bob")
    net = Net(caller=caller, callee=callee)
    net.on_event = on_incoming_call(net, lambda s: s.accept(net.now, body=b"v=0\r\n"))  # type: ignore[method-assign]
    net.drop = lambda m: isinstance(m, Request) and m.method == "ACK"
    caller.invite(invite(caller), B, 0.0)
    net.pump()
    net.advance(70)
    byes = [(src, dst) for src, dst, line in net.ladder if line.startswith("BYE")]
    assert byes and set(byes) == {("callee", "caller")}
    ended = [e for e in net.events["callee"] if isinstance(e, ev.CallEnded)]
    assert [(e.reason, e.by_remote) for e in ended] == [("no-ack", True)]


def test_2xx_without_contact_is_still_acked() -> None:
    """A 2xx without Contact cannot make a dialog: it is ACKed anyway, and the call attempt fails."""
    caller, callee, net = make_pair()

    def answer_without_contact(session: Any) -> None:
        make = callee.context.make_response

        def no_contact(request: Any, status: int, *args: Any, **kw: Any) -> Any:
            resp = make(request, status, *args, **kw)
            if request.method == "INVITE" and status == 200:
                resp.headers.remove("Contact")
            return resp

        callee.context.make_response = no_contact  # type: ignore[method-assign]
        session.accept(net.now, body=b"v=0\r\n")

    net.on_event = on_incoming_call(net, answer_without_contact)  # type: ignore[method-assign]
    caller.invite(invite(caller), B, 0.0)
    net.pump()
    failed = [e for e in net.events["caller"] if isinstance(e, ev.CallAttemptFailed)]
    assert failed and "Contact" in str(failed[0].error)
    acks = [m for m in net.wire if isinstance(m, Request) and m.method == "ACK" and m.cseq.seq == 2]
    assert acks, "the 2xx must be ACKed"


def test_challenged_reinvite_is_not_retried_after_hangup() -> None:
    """A 401 to our re-INVITE that arrives after we hung up (BYE sent) gets no retry (issue 12)."""
    caller, callee, net = make_pair()
    session = caller.invite(invite(caller), B, 0.0)
    net.pump()
    assert session.state is SessionState.CONFIRMED
    challenger = DigestServer("callee.example.org", b"r" * 32)
    original = callee.uas.on_request

    def challenge_reinvite(request: Request, stxn: Any, source: Any, now: float) -> None:
        if request.method == "INVITE" and request.to_tag:
            callee.layer.respond(stxn, challenger.challenge(request, now), now)
        else:
            original(request, stxn, source, now)

    callee.uas.on_request = challenge_reinvite  # type: ignore[method-assign]
    held: list[Any] = []

    def hold_401(msg: Any) -> bool:
        if not isinstance(msg, Request) and msg.status == 401 and msg.cseq.method == "INVITE":
            held.append(msg)
            return True
        return False

    net.drop = hold_401
    session.reinvite(net.now, b"v=0\r\n")
    net.pump()
    assert held
    session.hangup(net.now)
    net.pump()
    net.drop = None
    caller.receive(held[0].to_bytes(), B, net.now)
    net.pump()
    net.advance(40)
    reinvites = [m for m in net.wire if isinstance(m, Request) and m.method == "INVITE" and m.to_tag]
    assert len(reinvites) == 1, "the re-INVITE is not retried with credentials after the BYE"
    assert [e.reason for e in net.events["caller"] if isinstance(e, ev.CallEnded)] == ["hangup"]


# ---------------------------------------------------------------- review8 M1: no BYE before the ACK


def _accepting_pair(contact: str | None = None) -> tuple[UserAgentCore, UserAgentCore, Net, list[Any], Any]:
    caller = UserAgentCore(local=A, ids=SequentialIds(), contact_user="alice")
    callee = UserAgentCore(local=B, ids=SequentialIds(counter=1000), contact_user="bob")
    net = Net(caller=caller, callee=callee)
    sessions: list[Any] = []
    net.on_event = on_incoming_call(net, lambda s: (sessions.append(s), s.accept(net.now, body=b"v=0\r\n")))  # type: ignore[method-assign]
    request = invite(caller)
    if contact is not None:
        request.headers.set("Contact", contact)
    return caller, callee, net, sessions, caller.invite(request, B, 0.0)


def _callee_byes(net: Net) -> list[tuple[int, str]]:
    return [(i, dst) for i, (src, dst, line) in enumerate(net.ladder) if src == "callee" and line.startswith("BYE")]


def test_hangup_before_the_ack_waits_for_it_then_byes() -> None:
    """RFC 3261 §15: the callee hung up before the ACK: nothing is sent until the ACK, then the BYE."""
    caller, callee, net, sessions, _ = _accepting_pair()
    dropped: list[Any] = []
    net.drop = lambda m: isinstance(m, Request) and m.method == "ACK" and not dropped and not dropped.append(m)
    net.pump()
    assert dropped and sessions[0].state is SessionState.ACCEPTED
    sessions[0].hangup(net.now)
    net.pump()
    assert not _callee_byes(net) and sessions[0].state is SessionState.TERMINATING
    net.advance(1.0)  # the 2xx is retransmitted, the caller ACKs again: now the BYE
    acks = [i for i, (src, _, line) in enumerate(net.ladder) if src == "caller" and line.startswith("ACK")]
    byes = _callee_byes(net)
    assert len(byes) == 1 and byes[0][0] > acks[-1] and byes[0][1] == "caller"
    assert not any(isinstance(e, ev.CallConfirmed) for e in net.events["callee"])
    ended = [e for e in net.events["callee"] if isinstance(e, ev.CallEnded)]
    assert [(e.reason, e.by_remote) for e in ended] == [("hangup", False)]
    assert [e.reason for e in net.events["caller"] if isinstance(e, ev.CallEnded)] == ["bye"]
    net.advance(70)
    assert callee.layer.transaction_count == 0 and callee.session_count == 0


def test_hangup_before_an_ack_that_never_comes_sends_no_bye_to_a_third_party() -> None:
    """Hung up before the ACK, and the ACK never comes: the Timer-L rule, no BYE to an unverified Contact."""
    caller, callee, net, sessions, _ = _accepting_pair("<sip:carol@127.0.0.1:5099>")
    net.drop = lambda m: isinstance(m, Request) and m.method == "ACK"
    net.pump()
    sessions[0].hangup(net.now)
    net.advance(70)
    assert not _callee_byes(net)
    assert all(dst != "?" for _, dst, _ in net.ladder)
    ended = [e for e in net.events["callee"] if isinstance(e, ev.CallEnded)]
    assert [(e.reason, e.by_remote) for e in ended] == [("hangup", False)]
    assert callee.session_count == 0 and callee.layer.transaction_count == 0


def test_hangup_before_an_ack_that_never_comes_byes_the_source_after_timer_l() -> None:
    """Hung up before the ACK, no ACK: the BYE goes only at Timer L, and only to the INVITE's source."""
    caller, callee, net, sessions, _ = _accepting_pair()
    net.drop = lambda m: isinstance(m, Request) and m.method == "ACK"
    net.pump()
    sessions[0].hangup(net.now)
    net.advance(31.0)
    assert not _callee_byes(net)
    net.advance(40.0)
    byes = _callee_byes(net)
    assert byes and {dst for _, dst in byes} == {"caller"}
    ended = [e for e in net.events["callee"] if isinstance(e, ev.CallEnded)]
    assert [(e.reason, e.by_remote) for e in ended] == [("hangup", False)]


def test_peer_bye_while_our_hangup_waits_for_the_ack_ends_the_call() -> None:
    """The caller's BYE arrives while our hang-up waits for the ACK: 200, and the call ends by that BYE."""
    caller, callee, net, sessions, caller_session = _accepting_pair()
    net.drop = lambda m: isinstance(m, Request) and m.method == "ACK"
    net.pump()
    sessions[-1].hangup(net.now)
    caller_session.hangup(net.now)
    net.pump()
    assert sessions[-1].state is SessionState.TERMINATED
    assert [e.reason for e in net.events["callee"] if isinstance(e, ev.CallEnded)][-1:] == ["bye"]
    assert not _callee_byes(net)


# ------------------------------------------- review8: RFC 3261 §12.2.1.2 for every in-dialog request


def _confirmed_pair(answer: int | None) -> tuple[UserAgentCore, UserAgentCore, Net, Any]:
    """A confirmed call; the callee answers every in-dialog request but BYE with ``answer`` (None: never)."""
    caller, callee, net = make_pair()
    base = net.on_event

    def on_event(name: str, core: UserAgentCore, e: Any) -> None:
        if isinstance(e, ev.IncomingRequest) and answer is not None:
            core.respond(e.transaction, core.make_response(e.request, answer), net.now)
        else:
            base(name, core, e)

    net.on_event = on_event  # type: ignore[method-assign]
    session = caller.invite(invite(caller), B, 0.0)
    net.pump()
    assert session.state is SessionState.CONFIRMED
    return caller, callee, net, session


def _caller_byes(net: Net) -> list[str]:
    return [line for src, _, line in net.ladder if src == "caller" and line.startswith("BYE")]


@pytest.mark.parametrize("method", ["INFO", "MESSAGE"])
def test_in_dialog_request_answered_481_ends_the_dialog_without_bye(method: str) -> None:
    caller, callee, net, session = _confirmed_pair(481)
    session.request(method, net.now, body=b"x", content_type="text/plain")
    net.pump()
    assert [e.response.status for e in net.events["caller"] if isinstance(e, ev.RequestCompleted)] == [481]
    ended = [e for e in net.events["caller"] if isinstance(e, ev.CallEnded)]
    assert [(e.reason, e.by_remote) for e in ended] == [("error", True)]
    assert not _caller_byes(net) and session.state is SessionState.TERMINATED and caller.session_count == 0


@pytest.mark.parametrize("method", ["INFO", "MESSAGE"])
def test_in_dialog_request_answered_408_ends_the_dialog_with_a_bye(method: str) -> None:
    caller, callee, net, session = _confirmed_pair(408)
    session.request(method, net.now, body=b"x", content_type="text/plain")
    net.pump()
    assert len(_caller_byes(net)) == 1
    ended = [e for e in net.events["caller"] if isinstance(e, ev.CallEnded)]
    assert [(e.reason, e.by_remote) for e in ended] == [("error", True)]
    assert [e.reason for e in net.events["callee"] if isinstance(e, ev.CallEnded)] == ["bye"]


def test_in_dialog_request_without_response_ends_the_dialog_with_a_bye() -> None:
    """An INFO never answered: Timer F, RequestFailed, then the BYE (§12.2.1.2)."""
    caller, callee, net, session = _confirmed_pair(None)
    session.request("INFO", net.now)
    net.advance(31)
    assert not _caller_byes(net)
    net.advance(2)
    assert [type(e) for e in net.events["caller"] if isinstance(e, ev.RequestFailed)] == [ev.RequestFailed]
    assert len(_caller_byes(net)) == 1
    assert [e.reason for e in net.events["caller"] if isinstance(e, ev.CallEnded)] == ["error"]


def test_reinvite_without_response_ends_the_dialog_with_a_bye() -> None:
    """A re-INVITE whose responses never come (Timer B) ends the call with a BYE (§12.2.1.2, §14.1)."""
    caller, callee, net, session = _confirmed_pair(None)
    net.drop = lambda m: not isinstance(m, Request) and m.cseq.method == "INVITE" and m.cseq.seq > 2
    session.reinvite(net.now, b"v=0\r\n")
    net.advance(33)
    done = [e for e in net.events["caller"] if isinstance(e, ev.ReinviteCompleted)]
    assert len(done) == 1 and done[0].response is None and done[0].error is not None
    assert len(_caller_byes(net)) == 1
    assert [e.reason for e in net.events["caller"] if isinstance(e, ev.CallEnded)] == ["error"]
    assert session.state is SessionState.TERMINATED


def test_in_dialog_request_answered_otherwise_keeps_the_dialog() -> None:
    """A 486 or 200 to an INFO leaves the call up."""
    for status in (200, 486, 500):
        caller, callee, net, session = _confirmed_pair(status)
        session.request("INFO", net.now)
        net.pump()
        assert session.state is SessionState.CONFIRMED and not _caller_byes(net)


# ------------------------------------------- issue 12 review: next hop transport


def _answer_with_contact(callee: UserAgentCore, net: Net, contact: str, record_route: str = "") -> None:
    def answer(session: Any) -> None:
        make = callee.context.make_response

        def rewrite(request: Any, status: int, *args: Any, **kw: Any) -> Any:
            resp = make(request, status, *args, **kw)
            if request.method == "INVITE" and status == 200:
                resp.headers.set("Contact", contact)
                if record_route:
                    resp.headers.set("Record-Route", record_route)
            return resp

        callee.context.make_response = rewrite  # type: ignore[method-assign]
        session.accept(net.now, body=b"v=0\r\n")

    net.on_event = on_incoming_call(net, answer)  # type: ignore[method-assign]


@pytest.mark.parametrize(
    ("contact", "record_route", "words"),
    [
        ("<sips:bob@127.0.0.1:5062>", "", ["sips", "UDP"]),
        ("<sip:bob@127.0.0.1:5062;transport=tls>", "", ["transport=tls", "UDP"]),
        ("<sip:bob@127.0.0.1:5062;transport=tcp>", "", ["transport=tcp", "UDP"]),
        ("<sip:bob@127.0.0.1:5062>", "<sip:127.0.0.1:5062;lr;transport=tls>", ["transport=tls", "UDP"]),
    ],
)
def test_2xx_whose_next_hop_needs_another_transport_is_not_acked_over_udp(
    contact: str, record_route: str, words: list[str]
) -> None:
    """The ACK of a 2xx whose target needs TLS/TCP is not sent over UDP: the call fails (review F3)."""
    caller, callee, net = make_pair()
    _answer_with_contact(callee, net, contact, record_route)
    session = caller.invite(invite(caller), B, 0.0)
    net.pump()
    net.pump()
    failed = [e for e in net.events["caller"] if isinstance(e, ev.CallAttemptFailed)]
    assert failed and isinstance(failed[0].error, TransportError)
    assert all(w in str(failed[0].error) for w in words)
    ok = next(i for i, m in enumerate(net.wire) if not isinstance(m, Request) and m.status == 200)
    sent = [m for m in net.wire[ok:] if isinstance(m, Request)]
    assert sent == []
    assert not any(isinstance(e, ev.CallAnswered) for e in net.events["caller"])
    assert session.state is SessionState.TERMINATED and caller.session_count == 0


def test_late_2xx_to_a_sips_contact_is_neither_acked_nor_byed_over_udp() -> None:
    """A 2xx after the give-up, whose Contact is sips: no ACK, no BYE over UDP (review F3)."""
    caller, callee, net = make_pair()
    sessions: list[Any] = []
    net.on_event = on_incoming_call(net, lambda s: (s.ring(net.now), sessions.append(s)))  # type: ignore[method-assign]
    session = caller.invite(invite(caller), B, 0.0)
    net.pump()
    net.drop = lambda m: isinstance(m, Request) and m.method == "CANCEL"
    session.hangup(net.now)
    net.pump()
    net.advance(40)
    net.drop = None
    make = callee.context.make_response

    def sips_contact(request: Any, status: int, *args: Any, **kw: Any) -> Any:
        resp = make(request, status, *args, **kw)
        if request.method == "INVITE" and status == 200:
            resp.headers.set("Contact", "<sips:bob@127.0.0.1:5062>")
        return resp

    callee.context.make_response = sips_contact  # type: ignore[method-assign]
    before = len(net.wire)
    sessions[0].accept(net.now, body=b"v=0\r\n")
    net.pump()
    late = [m for m in net.wire[before:] if isinstance(m, Request) and m.method in ("ACK", "BYE")]
    assert late == []


def test_route_with_transport_tcp_on_a_udp_agent_fails_before_sending() -> None:
    """An INVITE whose first Route asks for transport=tcp is not sent over UDP (review F3)."""
    caller = UserAgentCore(local=A, ids=SequentialIds(), contact_user="alice")
    request = invite(caller)
    request.headers.set("Route", "<sip:127.0.0.1:5062;lr;transport=tcp>")
    caller.invite(request, B, 0.0)
    assert caller.outbox() == []
    events = []
    while (e := caller.next_event()) is not None:
        events.append(e)
    failed = [e for e in events if isinstance(e, ev.CallAttemptFailed)]
    assert failed and isinstance(failed[0].error, TransportError) and "transport=tcp" in str(failed[0].error)


def test_a_refused_reinvite_leaves_the_stored_local_sdp_as_it_was() -> None:
    """The session's local_sdp takes a re-offer only once a 2xx accepts it (issue 9: a 488 to a hold
    must not leave it saying sendonly); a 2xx then stores it (RFC 3264 §8)."""
    held = b"v=0\r\nm=audio 4000 RTP/AVP 0\r\na=sendonly\r\n"
    for status, expected in ((488, b"v=0\r\n"), (200, held)):
        caller, callee, net, session = _confirmed_pair(status)
        before = session.local_sdp
        assert before == b"v=0\r\n"
        session.reinvite(net.now, held)
        net.pump()
        done = [e for e in net.events["caller"] if isinstance(e, ev.ReinviteCompleted)]
        assert done[-1].response.status == status and session.local_sdp == expected
