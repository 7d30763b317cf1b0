"""REGISTER end to end on loopback: bindings, refresh before expiry, unregister, wrong password.

RFC 3261 §10.2 (client), §10.3 (registrar), §22.2/§22.3 (digest, pre-emptive
credentials on refreshes).
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from loopback import REALM, Proxy, account, eventually, settled, within
from twisted.internet import defer

from txsipua.auth.challenge import parse_authorization
from txsipua.errors import AuthenticationError, RegistrationFailed
from txsipua.ua.registration import Registration, RegistrationState


@pytest_twisted.inlineCallbacks
def test_register_returns_bindings_and_granted_expiry(reactor: Any, proxy: Proxy, make_ua: Any) -> None:
    """A REGISTER is challenged (401), retried once, and the 200 lists our Contact and its expiry."""
    ua = yield make_ua(account("alice", proxy))
    result = yield within(reactor, ua.register(600))
    assert result.response.status == 200
    assert result.expires == 600
    ours = [b for b in result.bindings if b.ours]
    assert len(ours) == 1
    assert ours[0].contact.port == ua.local_address[1]
    assert ours[0].expires == 600
    assert ua.wire.statuses_received("REGISTER") == [401, 200]
    regs = ua.wire.requests_sent("REGISTER")
    assert len(regs) == 2
    assert regs[1].cseq.seq == regs[0].cseq.seq + 1
    assert regs[1].call_id == regs[0].call_id
    assert "Authorization" not in regs[0].headers
    auth = parse_authorization(regs[1].headers.get("Authorization") or "")
    assert (auth.realm, auth.username) == (REALM, "alice-auth")
    # the registrar really holds the binding
    live = proxy.core.bindings("sip:alice@example.com", reactor.seconds())
    assert [b.contact.uri.port for b in live] == [ua.local_address[1]]
    yield settled(reactor, ua)


@pytest_twisted.inlineCallbacks
def test_register_lists_other_bindings_of_the_aor(reactor: Any, proxy: Proxy, make_ua: Any) -> None:
    """Two devices of one AOR: the second REGISTER's 200 lists both, only one marked ours."""
    first = yield make_ua(account("alice", proxy))
    second = yield make_ua(account("alice", proxy))
    yield within(reactor, first.register(600))
    result = yield within(reactor, second.register(300))
    ports = sorted(b.contact.port for b in result.bindings)
    assert ports == sorted([first.local_address[1], second.local_address[1]])
    assert [b.contact.port for b in result.bindings if b.ours] == [second.local_address[1]]
    assert result.expires == 300


@pytest_twisted.inlineCallbacks
def test_max_expires_is_what_we_get(reactor: Any, proxy: Proxy, make_ua: Any) -> None:
    """The registrar shortens a long expiry; the result gives the granted value, not the asked one."""
    proxy.core.max_expires = 120
    ua = yield make_ua(account("alice", proxy))
    result = yield within(reactor, ua.register(3600))
    assert result.expires == 120


@pytest_twisted.inlineCallbacks
def test_interval_too_brief_retries_with_min_expires(reactor: Any, proxy: Proxy, make_ua: Any) -> None:
    """423 Interval Too Brief: the REGISTER is sent again with the Min-Expires value (§10.2.8)."""
    proxy.core.min_expires = 90
    ua = yield make_ua(account("alice", proxy))
    reg = ua.registration(30)
    result = yield within(reactor, reg.start())
    assert result.expires == 90
    assert 423 in ua.wire.statuses_received("REGISTER")
    assert ua.wire.requests_sent("REGISTER")[-1].headers.get("Expires") == "90"
    yield reg.stop()


@pytest_twisted.inlineCallbacks
def test_refresh_before_expiry_reuses_call_id_and_credentials(
    reactor: Any, proxy: Proxy, make_ua: Any
) -> None:
    """A kept registration refreshes before its 2 s binding runs out.

    The refresh keeps the Call-ID and From tag, has CSeq + 1 (§10.2.4) and
    carries pre-emptive credentials for the realm with the next nonce count
    (§22.3), so it is answered 200 without a new 401.
    """
    ua = yield make_ua(account("alice", proxy))
    reg = ua.registration(2)
    assert Registration.refresh_delay(2) == 1.0
    first = yield within(reactor, reg.start())
    assert first.expires == 2
    yield eventually(reactor, lambda: len(ua.wire.requests_sent("REGISTER")) >= 3, 3.0, "the refresh")
    yield eventually(reactor, lambda: ua.wire.statuses_received("REGISTER").count(200) >= 2, 2.0, "its 200")
    initial, challenged, refresh = ua.wire.requests_sent("REGISTER")[:3]
    assert refresh.call_id == initial.call_id
    assert refresh.from_.tag == initial.from_.tag
    assert refresh.cseq.seq == challenged.cseq.seq + 1
    assert ua.wire.statuses_received("REGISTER")[:3] == [401, 200, 200]
    pre = refresh.headers.get("Authorization")
    assert pre is not None, "the refresh carries no pre-emptive credentials"
    a1 = parse_authorization(challenged.headers.get("Authorization") or "")
    a2 = parse_authorization(pre)
    assert a2.nonce == a1.nonce and a2.realm == REALM
    assert int(a2.nc or "0", 16) == int(a1.nc or "0", 16) + 1
    # the binding outlived its first 2 seconds because of the refresh
    assert reg.registered
    assert proxy.core.bindings("sip:alice@example.com", reactor.seconds())
    yield reg.stop()


@pytest_twisted.inlineCallbacks
def test_unregister_sends_expires_zero(reactor: Any, proxy: Proxy, make_ua: Any) -> None:
    """Registration.stop() sends REGISTER with Expires: 0 and the binding is gone (§10.2.2)."""
    ua = yield make_ua(account("alice", proxy))
    reg = ua.registration(600)
    yield within(reactor, reg.start())
    assert proxy.core.bindings("sip:alice@example.com", reactor.seconds())
    result = yield within(reactor, reg.stop())
    assert result is not None and result.expires == 0
    assert not reg.registered
    last = ua.wire.requests_sent("REGISTER")[-1]
    assert last.headers.get("Expires") == "0"
    assert proxy.core.bindings("sip:alice@example.com", reactor.seconds()) == []
    # no refresh is scheduled any more
    assert reg.next_attempt is None and reg.state is RegistrationState.UNREGISTERED
    yield settled(reactor, ua)


@pytest_twisted.inlineCallbacks
def test_wrong_password_fails_after_exactly_one_retry(reactor: Any, proxy: Proxy, make_ua: Any) -> None:
    """A refused password ends with AuthenticationError naming the realm, after one retry only."""
    ua = yield make_ua(account("alice", proxy, password="not-the-password"))
    with pytest.raises(AuthenticationError) as info:
        yield within(reactor, ua.register(600))
    err = info.value
    assert err.status == 401
    assert REALM in err.realms
    assert REALM in str(err)
    assert len(ua.wire.requests_sent("REGISTER")) == 2
    assert ua.wire.statuses_received("REGISTER") == [401, 401]
    yield settled(reactor, ua)


@pytest_twisted.inlineCallbacks
def test_no_credentials_for_the_realm(reactor: Any, proxy: Proxy, make_ua: Any) -> None:
    """Credentials for another realm only: no retry, the error names both realms."""
    ua = yield make_ua(account("alice", proxy, realm="other.example.org"))
    with pytest.raises(AuthenticationError) as info:
        yield within(reactor, ua.register(600))
    assert REALM in str(info.value) and "other.example.org" in str(info.value)
    assert len(ua.wire.requests_sent("REGISTER")) == 1


@pytest_twisted.inlineCallbacks
def test_register_for_a_foreign_domain_is_refused(reactor: Any, proxy: Proxy, make_ua: Any) -> None:
    """The registrar answers 404 for an AOR outside its domain: RegistrationFailed with the status."""
    acct = account("alice", proxy)
    from txsipua.ua.account import Account

    foreign = Account(user="alice", domain="elsewhere.example.org", credentials=acct.credentials,
                      registrar=proxy.uri, outbound_proxy=proxy.uri)
    ua = yield make_ua(foreign)
    with pytest.raises(RegistrationFailed) as info:
        yield within(reactor, ua.register(600))
    assert info.value.status == 404


@pytest_twisted.inlineCallbacks
def test_registrar_silent_times_out(reactor: Any, make_ua: Any) -> None:
    """No registrar at the address: TransactionTimeout (Timer F) within 64*T1."""
    from twisted.internet.protocol import DatagramProtocol

    from txsipua.errors import TransactionTimeout

    sink = reactor.listenUDP(0, DatagramProtocol(), interface="127.0.0.1")
    try:
        acct = account("alice", None, registrar=f"sip:127.0.0.1:{sink.getHost().port}")
        ua = yield make_ua(acct)
        with pytest.raises(TransactionTimeout) as info:
            yield within(reactor, ua.register(600), 4.0)
        assert info.value.timer == "F"
        # retransmitted over UDP before giving up
        assert len(ua.wire.sent) > 3
        yield settled(reactor, ua)
    finally:
        yield defer.maybeDeferred(sink.stopListening)
