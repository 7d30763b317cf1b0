"""Failover to the next located target (RFC 3263 §4.3), sans-IO: Timer F/B, transport error, 503 + Retry-After."""

from __future__ import annotations

from typing import Any

from txsipua.auth.client import DigestClient
from txsipua.auth.credentials import Credential, InMemoryCredentials
from txsipua.core import events as ev
from txsipua.core.transaction import Timers
from txsipua.core.uac import retry_after_seconds
from txsipua.core.useragent import UserAgentCore
from txsipua.errors import TransactionTimeout, TransportError
from txsipua.net.locate import Failover, Unavailable
from txsipua.sip.message import Request, Response, parse_message
from txsipua.sip.uri import SipURI
from txsipua.sip.values import NameAddr

S1, S2, S3 = ("192.0.2.1", 5060), ("192.0.2.2", 5060), ("192.0.2.3", 5060)
ME = ("192.0.2.100", 5070)


def _core(digest: DigestClient | None = None) -> UserAgentCore:
    return UserAgentCore(local=ME, contact_user="alice", digest=digest, timers=Timers())


def _sent(core: UserAgentCore) -> list[tuple[tuple[str, int], Request]]:
    out = []
    for o in core.outbox():
        msg = parse_message(o.data)
        if isinstance(msg, Request):
            out.append((o.destination, msg))
    return out


def _events(core: UserAgentCore) -> list[Any]:
    out = []
    while (e := core.next_event()) is not None:
        out.append(e)
    return out


def _answer(core: UserAgentCore, request: Request, source: tuple[str, int], status: int, now: float,
            headers: list[tuple[str, str]] | None = None) -> None:
    response: Response = core.make_response(request, status, headers=headers or [])
    core.receive(response.to_bytes(), source, now)


def _options(core: UserAgentCore) -> Request:
    uri = SipURI.parse("sip:bob@example.com")
    return core.new_request("OPTIONS", uri, NameAddr(SipURI.parse("sip:alice@example.com")), NameAddr(uri))


def test_timer_f_moves_to_the_next_target_with_a_new_branch() -> None:
    """No answer from S1 by Timer F (32 s): the request goes to S2 in a new transaction; S2's 200 completes it."""
    core = _core()
    core.send_request(_options(core), S1, 0.0, alternatives=Failover([S1, S2]), hop_host="example.com")
    (dest, first), = _sent(core)
    assert dest == S1
    now = 0.0
    while True:  # retransmissions to S1 until Timer F
        deadline = core.get_timer()
        assert deadline is not None
        now = deadline
        core.handle_timer(now)
        sent = _sent(core)
        if any(d == S2 for d, _ in sent):
            break
        assert all(d == S1 for d, _ in sent)
    assert now == 32.0
    (dest, second), = [(d, r) for d, r in sent if d == S2]
    assert second.top_via.branch != first.top_via.branch
    assert second.cseq.seq == first.cseq.seq + 1 and second.call_id == first.call_id
    assert _events(core) == []  # the owner heard nothing of S1's timeout
    _answer(core, second, S2, 200, now + 0.1)
    (done,) = _events(core)
    assert isinstance(done, ev.RequestCompleted) and done.response.status == 200
    assert done.operation.destination == S2


def test_503_with_retry_after_fails_over_and_marks_the_server() -> None:
    """A 503 Retry-After: 120 from S1: S2 is tried at once; S1 is skipped by later requests for 120 s."""
    core = _core()
    table = Unavailable()
    core.send_request(_options(core), S1, 10.0, alternatives=Failover([S1, S2], table))
    (_, first), = _sent(core)
    _answer(core, first, S1, 503, 10.5, [("Retry-After", "120 (overloaded)")])
    (dest, second), = _sent(core)
    assert dest == S2 and _events(core) == []
    assert table.until(S1, 100.0) == 130.5
    later = Failover([S1, S3], table)
    assert later.next_target(S1, None, 20.0) == S3


def test_last_target_failing_reports_the_last_outcome() -> None:
    """When no target is left the owner gets the last 503 (or the timeout), not an earlier one."""
    core = _core()
    core.send_request(_options(core), S1, 0.0, alternatives=Failover([S1, S2]))
    (_, first), = _sent(core)
    _answer(core, first, S1, 503, 1.0)
    (_, second), = _sent(core)
    _answer(core, second, S2, 503, 2.0, [("Retry-After", "30")])
    (done,) = _events(core)
    assert isinstance(done, ev.RequestCompleted) and done.response.status == 503
    assert done.operation.destination == S2


def test_transport_error_fails_over_at_once() -> None:
    """A transport error to S1 (RFC 3261 §18.4) moves to S2 without waiting for Timer F."""
    core = _core()
    core.send_request(_options(core), S1, 0.0, alternatives=Failover([S1, S2]))
    _sent(core)
    core.transport_error(S1, 0.2)
    (dest, _), = _sent(core)
    assert dest == S2 and _events(core) == []
    core.transport_error(S2, 0.3)
    (failed,) = _events(core)
    assert isinstance(failed, ev.RequestFailed) and isinstance(failed.error, TransportError)


def test_without_alternatives_nothing_changes() -> None:
    """No alternatives: a 503 is the final response at once."""
    core = _core()
    core.send_request(_options(core), S1, 0.0)
    (_, first), = _sent(core)
    _answer(core, first, S1, 503, 1.0)
    assert _sent(core) == []
    (done,) = _events(core)
    assert isinstance(done, ev.RequestCompleted) and done.response.status == 503


def test_invite_fails_over_on_timer_b() -> None:
    """An INVITE unanswered by S1 (Timer B, 32 s) goes to S2 with a new branch; the call goes on there."""
    core = _core()
    uri = SipURI.parse("sip:bob@example.com")
    invite = core.new_request("INVITE", uri, NameAddr(SipURI.parse("sip:alice@example.com")), NameAddr(uri))
    core.invite(invite, S1, 0.0, alternatives=Failover([S1, S2]))
    (_, first), = _sent(core)
    core.handle_timer(32.0)
    second = [r for d, r in _sent(core) if d == S2 and r.method == "INVITE"]
    assert len(second) == 1 and second[0].top_via.branch != first.top_via.branch
    assert not [e for e in _events(core) if isinstance(e, ev.CallAttemptFailed)]
    core.handle_timer(64.0)
    failed = [e for e in _events(core) if isinstance(e, ev.CallAttemptFailed)]
    assert len(failed) == 1 and isinstance(failed[0].error, TransactionTimeout)


def test_credentials_follow_the_guard_at_each_target() -> None:
    """After a challenge answered at S1, a failover to an untrusted S2 carries no credentials."""
    creds = InMemoryCredentials([Credential("example.com", "alice", "pw")])
    digest = DigestClient(creds, trusted_hosts=(SipURI.parse("sip:192.0.2.1"),))
    core = _core(digest)
    core.send_request(_options(core), S1, 0.0, alternatives=Failover([S1, S2]), hop_host="192.0.2.1")
    (_, first), = _sent(core)
    _answer(core, first, S1, 401, 0.1,
            [("WWW-Authenticate", 'Digest realm="example.com", nonce="n1", qop="auth", algorithm=MD5')])
    (_, authed), = _sent(core)
    assert authed.headers.get("Authorization") is not None
    _answer(core, authed, S1, 503, 0.2)
    (dest, moved), = _sent(core)
    assert dest == S2 and moved.headers.get("Authorization") is None


def test_retry_after_parsing() -> None:
    """Retry-After delta-seconds with a comment or parameters; anything else is None (§20.33)."""
    def r(value: str | None) -> float | None:
        return retry_after_seconds(Response(503, headers=[("Retry-After", value)] if value else []))

    assert r("120") == 120.0
    assert r("18000;duration=3600") == 18000.0
    assert r("120 (I'm in a meeting)") == 120.0
    assert r("soon") is None and r(None) is None


def test_a_failed_target_is_tried_last_for_a_while() -> None:
    """A timeout (no Retry-After) marks S1 failed for DEAD_TARGET_HOLD s: later requests try S2 first, then S1."""
    from txsipua.net.locate import DEAD_TARGET_HOLD

    table = Unavailable()
    failover = Failover([S1, S2, S3], table)
    assert failover.next_target(S1, None, 100.0) == S2
    assert table.failed(S1, 100.0) and table.until(S1, 100.0) is None  # not skipped, only demoted
    assert table.order([S1, S2, S3], 100.0) == [S2, S3, S1]
    assert table.available([S1, S2], 100.0) == [S1, S2]
    assert table.order([S1, S2, S3], 100.0 + DEAD_TARGET_HOLD) == [S1, S2, S3]  # forgotten after the hold
    assert 0 < DEAD_TARGET_HOLD <= 3600


def test_failed_marks_are_bounded() -> None:
    table = Unavailable(limit=2)
    for i in range(5):
        table.mark_failed(("192.0.2.50", 5000 + i), 1000.0)
    assert [table.failed(("192.0.2.50", 5000 + i), 0.0) for i in range(5)] == [False, False, False, True, True]
