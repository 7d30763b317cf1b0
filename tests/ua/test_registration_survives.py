"""Registration that survives (RFC 5626 §4.5, RFC 3581): back-off, refusals, flow failure, Contact correction.

Everything runs on the fake clock (``UDPClock``) with the registrar played by
hand (:mod:`uafakes`): no sleeping, exact schedules.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from uafakes import REGISTRAR, UDPClock, alice, reply, requests

from txsipua.errors import (
    AuthenticationError,
    RegistrationFailed,
    TransactionTimeout,
    TransportError,
)
from txsipua.sip.message import Request, parse_message
from txsipua.ua.config import Configuration
from txsipua.ua.registration import (
    RegistrationInput,
    RegistrationState,
    RegistrationStateChanged,
    is_refusal,
)
from txsipua.ua.transports import UDPTransport
from txsipua.ua.useragent import UserAgent

S = RegistrationState
In = RegistrationInput


def make_ua(clock: UDPClock, **config: Any) -> UserAgent:
    agent = UserAgent(clock, Configuration(media=False, **config), alice(), UDPTransport(clock, "192.0.2.10", 0),
                      random=lambda: 1.0)
    agent.start()
    return agent


def grant(ua: UserAgent, seconds: int, request: Request | None = None, via: str | None = None,
          extra: list[tuple[str, str]] | None = None) -> None:
    """Answer ``request`` (the last REGISTER) with 200 for our Contact; ``via`` replaces the top Via."""
    req = request or requests(ua, "REGISTER")[-1]
    if via is not None:
        vias = [via] + req.headers.get_all("Via")[1:]
        h = [("Via", v) for v in vias] + [
            ("From", req.headers.get("From") or ""), ("To", (req.headers.get("To") or "") + ";tag=reg1"),
            ("Call-ID", req.call_id), ("CSeq", str(req.cseq)),
            ("Contact", f"<{ua.core.contact_uri()}>;expires={seconds}")]
        from txsipua.sip.message import Response

        reply(ua, req, 200, response=Response(200, None, h))
        return
    reply(ua, req, 200, [("Contact", f"<{ua.core.contact_uri()}>;expires={seconds}"), *(extra or [])])


def changes_of(reg: Any) -> list[RegistrationStateChanged]:
    seen: list[RegistrationStateChanged] = []
    reg.on_state_change = seen.append
    return seen


# ------------------------------------------------------------------ back-off


def test_a_first_register_that_times_out_is_retried_with_the_back_off(clock: UDPClock) -> None:
    """No answer to the first REGISTER: start() fails, the registration lapses and retries after 30*2^1 s."""
    ua = make_ua(clock)
    reg = ua.registration(600)
    seen = changes_of(reg)
    failures: list[Any] = []
    reg.start().addErrback(failures.append)
    clock.advance(32.1)  # Timer F
    assert failures and failures[0].check(TransactionTimeout)
    assert reg.state is S.LAPSED and not reg.registered and reg.failures == 1
    assert reg.next_attempt == pytest.approx(32.1 + 60.0, abs=0.2)
    clock.advance(60.0)
    assert reg.state is S.RETRYING
    grant(ua, 600)
    assert reg.state is S.REGISTERED and reg.registered and reg.failures == 0
    assert [(c.previous, c.state) for c in seen] == [
        (S.UNREGISTERED, S.REGISTERING), (S.REGISTERING, S.LAPSED), (S.LAPSED, S.RETRYING),
        (S.RETRYING, S.REGISTERED)]
    assert isinstance(seen[1].error, TransactionTimeout) and seen[1].input is In.FAILED
    assert seen[1].next_attempt == pytest.approx(92.1, abs=0.2) and not seen[1].registered
    assert seen[-1].registered and seen[-1].input is In.GRANTED


@pytest.mark.parametrize("status", [408, 480, 500, 503, 504, 600])
def test_transient_answers_to_the_first_register_are_retried(clock: UDPClock, status: int) -> None:
    """408, 480, 5xx, 6xx to the first REGISTER: retried (RFC 5626 §4.5)."""
    ua = make_ua(clock)
    reg = ua.registration(600)
    reg.start().addErrback(lambda f: None)
    reply(ua, requests(ua, "REGISTER")[-1], status)
    assert reg.state is S.LAPSED and reg.next_attempt == pytest.approx(60.0)


def test_refusals_end_a_first_register() -> None:
    """403, 404 and authentication failures are refusals; timeouts, transport errors, 503 are not."""
    resp = attrs.make_class("R", {"status": attrs.field(), "reason": attrs.field(default="x")})

    def failed(status: int) -> RegistrationFailed:
        return RegistrationFailed(resp(status), "registration")

    assert is_refusal(failed(403)) and is_refusal(failed(404)) and is_refusal(AuthenticationError("bad password"))
    assert not any(is_refusal(e) for e in (failed(408), failed(423), failed(480), failed(503), failed(603),
                                           TransactionTimeout("F"), TransportError("refused")))


def test_schedule_is_min_max_base_times_two_to_the_failures(clock: UDPClock) -> None:
    """Jitter pinned at 50 %: waits 30, 60, 120, 240, 480, 900, 900 s with max 1800 (RFC 5626 §4.5)."""
    ua = make_ua(clock)
    reg = ua.registration(600)
    reg.random = lambda: 0.0
    reg.start().addErrback(lambda f: None)
    waits = []
    for _ in range(7):
        reply(ua, requests(ua, "REGISTER")[-1], 503)
        assert reg.next_attempt is not None
        waits.append(reg.next_attempt - clock.seconds())
        clock.advance(waits[-1])
    assert waits == pytest.approx([30.0, 60.0, 120.0, 240.0, 480.0, 900.0, 900.0])


def test_the_cap_and_the_bases_are_configurable(clock: UDPClock) -> None:
    """registration_max_retry caps the wait; registration_retry is the base when every flow failed."""
    ua = make_ua(clock, registration_retry=5.0, registration_max_retry=12.0)
    reg = ua.registration(600)
    reg.start().addErrback(lambda f: None)
    waits = []
    for _ in range(3):
        reply(ua, requests(ua, "REGISTER")[-1], 500)
        assert reg.next_attempt is not None
        waits.append(reg.next_attempt - clock.seconds())
        clock.advance(waits[-1])
    assert waits == pytest.approx([10.0, 12.0, 12.0])


def test_base_is_90_s_while_another_flow_is_registered(clock: UDPClock) -> None:
    """Outbound with two reg-ids: one registered, the other failing backs off from 90 s, not 30."""
    ua = make_ua(clock, outbound=True, keepalive_interval=3600.0)
    first = ua.registration(600)
    first.start()
    grant(ua, 600)
    second = ua.registration(600)
    second.reg_id = 2
    second.start().addErrback(lambda f: None)
    reply(ua, requests(ua, "REGISTER")[-1], 503)
    assert second.next_attempt == pytest.approx(clock.seconds() + 180.0)  # 90 * 2^1
    first.abandon()
    assert second.retry_delay() == pytest.approx(60.0)  # every flow failed: base 30


# ------------------------------------------------------------- flow failure


def test_a_dead_flow_re_registers_at_once_and_registered_turns_false(clock: UDPClock) -> None:
    """flow_failed() while registered: REGISTER now (state retrying, registered False); granted: registered."""
    ua = make_ua(clock)
    reg = ua.registration(600)
    reg.start()
    grant(ua, 600)
    seen = changes_of(reg)
    n = len(requests(ua, "REGISTER"))
    reg.flow_failed("test")
    assert reg.state is S.RETRYING and not reg.registered and len(requests(ua, "REGISTER")) == n + 1
    assert seen[-1].input is In.FLOW_FAILED
    grant(ua, 600)
    assert reg.state is S.REGISTERED and reg.registered
    assert reg.next_attempt == pytest.approx(clock.seconds() + 568.0)


def test_a_dead_flow_that_cannot_register_backs_off(clock: UDPClock) -> None:
    """After a flow failure the new REGISTER fails too: lapsed, back-off from 30 * 2^1 s."""
    ua = make_ua(clock)
    reg = ua.registration(600)
    reg.start()
    grant(ua, 600)
    reg.flow_failed()
    reply(ua, requests(ua, "REGISTER")[-1], 503)
    assert reg.state is S.LAPSED and reg.next_attempt == pytest.approx(clock.seconds() + 60.0)
    reg.flow_failed()  # ignored: nothing in flight, the retry timer stands
    assert reg.state is S.LAPSED and reg.next_attempt == pytest.approx(clock.seconds() + 60.0)


def test_a_flow_failure_while_backing_off_lapses_the_binding(clock: UDPClock) -> None:
    """Backing off (binding believed held) and the flow dies: lapsed, the retry timer unchanged."""
    ua = make_ua(clock)
    reg = ua.registration(600)
    reg.start()
    grant(ua, 600)
    clock.advance(568)
    reply(ua, requests(ua, "REGISTER")[-1], 503)
    due = reg.next_attempt
    assert reg.state is S.BACKING_OFF and reg.registered
    reg.flow_failed()
    assert reg.state is S.LAPSED and not reg.registered and reg.next_attempt == due


# -------------------------------------------------------- Contact correction


def test_received_and_rport_correct_the_contact_once(clock: UDPClock) -> None:
    """The registrar saw us at 203.0.113.7:40123: a second REGISTER names it and removes the old Contact."""
    ua = make_ua(clock)
    reg = ua.registration(600)
    results: list[Any] = []
    reg.start().addCallback(results.append)
    first = requests(ua, "REGISTER")[-1]
    port = ua.local_address[1]
    grant(ua, 600, via=f"SIP/2.0/UDP 192.0.2.10:{port};branch={first.top_via.branch};received=203.0.113.7;rport=40123")
    second = requests(ua, "REGISTER")[-1]
    assert second is not first and results == [] and reg.state is S.REGISTERING
    contacts = second.headers.get_all("Contact")
    assert contacts[0] == "<sip:alice@203.0.113.7:40123>"
    assert contacts[1] == f"<sip:alice@192.0.2.10:{port}>;expires=0"
    assert second.top_via.host == "203.0.113.7" and second.top_via.port == 40123
    assert second.call_id == first.call_id and second.cseq.seq == first.cseq.seq + 1
    # the registrar still reports another address: no third REGISTER (no loop)
    grant(ua, 600, request=second,
          via=f"SIP/2.0/UDP 203.0.113.7:40123;branch={second.top_via.branch};received=203.0.113.8;rport=40999")
    assert len(requests(ua, "REGISTER")) == 2
    assert reg.state is S.REGISTERED and results[0].expires == 600
    assert ua.core.contact_uri().host == "203.0.113.7"
    clock.advance(568)  # the refresh names the corrected Contact, and corrects nothing more
    refresh = requests(ua, "REGISTER")[-1]
    assert refresh.headers.get_all("Contact") == ["<sip:alice@203.0.113.7:40123>"]


def test_a_received_equal_to_our_address_changes_nothing(clock: UDPClock) -> None:
    """received/rport naming our own address: one REGISTER, nothing corrected."""
    ua = make_ua(clock)
    reg = ua.registration(600)
    reg.start()
    first = requests(ua, "REGISTER")[-1]
    port = ua.local_address[1]
    grant(ua, 600, via=f"SIP/2.0/UDP 192.0.2.10:{port};branch={first.top_via.branch};received=192.0.2.10;rport={port}")
    assert len(requests(ua, "REGISTER")) == 1 and reg.state is S.REGISTERED


def test_contact_correction_can_be_turned_off(clock: UDPClock) -> None:
    """nat_contact=False: the received/rport are ignored."""
    ua = make_ua(clock, nat_contact=False)
    reg = ua.registration(600)
    reg.start()
    first = requests(ua, "REGISTER")[-1]
    grant(ua, 600, via=f"SIP/2.0/UDP 192.0.2.10:1;branch={first.top_via.branch};received=203.0.113.7;rport=4")
    assert len(requests(ua, "REGISTER")) == 1 and ua.core.contact_uri().host == "192.0.2.10"


# ------------------------------------------------------------------ Outbound


def test_outbound_contact_carries_instance_and_reg_id(clock: UDPClock) -> None:
    """RFC 5626 §4.2: +sip.instance, reg-id and Supported: outbound, path on REGISTER."""
    ua = make_ua(clock, outbound=True, instance_id="urn:uuid:00000000-0000-4000-8000-000000000001")
    reg = ua.registration(600)
    reg.start()
    req = requests(ua, "REGISTER")[-1]
    port = ua.local_address[1]
    assert req.headers.get_all("Contact") == [
        f'<sip:alice@192.0.2.10:{port}>;+sip.instance="<urn:uuid:00000000-0000-4000-8000-000000000001>";reg-id=1']
    assert req.headers.get("Supported") == "outbound, path"
    grant(ua, 600)
    assert reg.state is S.REGISTERED and reg.result is not None and reg.result.expires == 600
    assert reg.flow is not None  # Outbound turns keep-alives on


def test_outbound_instance_is_a_uuid_urn_by_default(clock: UDPClock) -> None:
    """Without instance_id a urn:uuid is made per user agent."""
    ua = make_ua(clock)
    assert ua.instance_id.startswith("urn:uuid:") and len(ua.instance_id) == 45


def test_flow_timer_sets_the_keepalive_interval(clock: UDPClock) -> None:
    """RFC 5626 §4.4.1: the registrar's Flow-Timer is the interval; 25 s on UDP without it."""
    ua = make_ua(clock, outbound=True)
    reg = ua.registration(600)
    reg.start()
    reply(ua, requests(ua, "REGISTER")[-1], 200,
          [("Contact", f"<{ua.core.contact_uri()}>;expires=600"), ("Flow-Timer", "40")])
    assert ua.keepalive_interval(reg.result) == 40.0
    assert ua.keepalive_interval(None) == 25.0
    assert make_ua(clock).keepalive_interval(reg.result) is None


# --------------------------------------------------------------- keep-alives


def raw_to_registrar(ua: UserAgent) -> list[bytes]:
    return [data for data, addr in ua.reactor.ports[0].written if addr == REGISTRAR]


def registers(ua: UserAgent) -> list[Request]:
    """The REGISTERs written so far (keep-alives skipped)."""
    out = []
    for data in raw_to_registrar(ua):
        if data.startswith(b"REGISTER "):
            msg = parse_message(data)
            assert isinstance(msg, Request)
            out.append(msg)
    return out


def test_udp_crlf_keepalives_every_interval_while_registered(clock: UDPClock) -> None:
    """keepalive_interval=20: a CRLF pair to the registrar every 16-20 s; none after stop."""
    ua = make_ua(clock, keepalive_interval=20.0)
    reg = ua.registration(600)
    reg.start()
    grant(ua, 600)
    clock.advance(20.0)  # random() -> 1.0: exactly the interval
    assert raw_to_registrar(ua)[-1] == b"\r\n\r\n"
    for _ in range(5):
        clock.advance(20.0)
    assert raw_to_registrar(ua).count(b"\r\n\r\n") == 6
    reg.abandon()
    for _ in range(5):
        clock.advance(20.0)
    assert raw_to_registrar(ua).count(b"\r\n\r\n") == 6 and reg.flow is None


def test_stun_keepalive_answered_keeps_the_flow_unanswered_re_registers(clock: UDPClock) -> None:
    """keepalive_stun, Outbound registrar: answered, nothing happens; unanswered 10 s, REGISTER anew."""
    from txsipua.net import stun

    ua = make_ua(clock, keepalive_interval=30.0, keepalive_stun=True)
    reg = ua.registration(600)
    reg.start()
    grant(ua, 600, extra=[("Require", "outbound")])
    clock.advance(30.0)
    request = raw_to_registrar(ua)[-1]
    assert stun.is_stun(request) and request[:2] == b"\x00\x01"
    tid = request[8:20]
    answer = stun_success(tid, ua.local_address)
    ua.protocol.datagramReceived(answer, REGISTRAR)
    clock.advance(10.0)
    assert reg.state is S.REGISTERED and reg.flow is not None and reg.flow.flow.mapped == ua.local_address
    n = len(registers(ua))
    clock.advance(30.0)  # t = 70: the next request (an interval after the check), never answered
    assert reg.state is S.REGISTERED and len(registers(ua)) == n
    clock.advance(10.0)  # t = 80: keepalive_timeout (10 s) without an answer: the flow is dead
    assert reg.state is S.RETRYING and not reg.registered and len(registers(ua)) == n + 1


def stun_success(tid: bytes, mapped: tuple[str, int]) -> bytes:
    """A Binding success response with an XOR-MAPPED-ADDRESS (RFC 8489 §14.2), built by hand."""
    import ipaddress
    import struct

    raw = ipaddress.ip_address(mapped[0]).packed
    xport = mapped[1] ^ 0x2112
    xaddr = bytes(a ^ b for a, b in zip(raw, b"\x21\x12\xa4\x42", strict=True))
    attr = struct.pack("!HHBBH", 0x0020, 8, 0, 1, xport) + xaddr
    return struct.pack("!HHI12s", 0x0101, len(attr), 0x2112A442, tid) + attr


def test_a_stun_answer_with_a_new_public_address_re_registers_and_corrects(clock: UDPClock) -> None:
    """The NAT mapping moved (STUN shows 203.0.113.7:50000): REGISTER at once; its rport corrects the Contact."""
    ua = make_ua(clock, keepalive_interval=30.0, keepalive_stun=True)
    reg = ua.registration(600)
    reg.start()
    grant(ua, 600)
    clock.advance(30.0)
    tid = raw_to_registrar(ua)[-1][8:20]
    n = len(registers(ua))
    ua.protocol.datagramReceived(stun_success(tid, ua.local_address), REGISTRAR)  # unchanged: nothing
    assert len(registers(ua)) == n and reg.state is S.REGISTERED
    clock.advance(10.0)
    clock.advance(30.0)
    tid = raw_to_registrar(ua)[-1][8:20]
    ua.protocol.datagramReceived(stun_success(tid, ("203.0.113.7", 50000)), REGISTRAR)
    assert reg.state is S.RETRYING and len(registers(ua)) == n + 1
    again = registers(ua)[-1]
    grant(ua, 600, request=again, via=f"{str(again.headers.get('Via'))};received=203.0.113.7;rport=50000")
    fixed = registers(ua)[-1]
    assert fixed.headers.get_all("Contact")[0] == "<sip:alice@203.0.113.7:50000>"
    grant(ua, 600, request=fixed)
    assert reg.state is S.REGISTERED and ua.local_address == ("203.0.113.7", 50000)


def test_an_added_account_registers_with_outbound_keepalives_and_correction(clock: UDPClock) -> None:
    """A second account on the same user agent (issue 10's accounts): its own Contact user with
    +sip.instance and reg-id, and a keep-alive flow while granted."""
    from txsipua.ua.account import Account

    ua = make_ua(clock, outbound=True, instance_id="urn:uuid:00000000-0000-4000-8000-000000000002")
    line = ua.add_account(Account(user="carol", domain="example.com",
                                  registrar=f"sip:{REGISTRAR[0]}:{REGISTRAR[1]}"))
    reg = line.registration(600)
    reg.start()
    req = registers(ua)[-1]
    contact = req.headers.get_all("Contact")
    assert len(contact) == 1 and contact[0].startswith("<sip:carol")
    assert '+sip.instance="<urn:uuid:00000000-0000-4000-8000-000000000002>";reg-id=1' in contact[0]
    reply(ua, req, 200, [("Contact", f"{contact[0]};expires=600")])
    assert reg.state is S.REGISTERED and reg.flow is not None
    reg.abandon()
    assert reg.flow is None


def test_silence_is_not_death_without_outbound_support(clock: UDPClock) -> None:
    """RFC 5626 §4.4.1: no Require: outbound / Flow-Timer in the 2xx: STUN keeps going unanswered, no re-REGISTER."""
    from txsipua.net import stun

    ua = make_ua(clock, keepalive_interval=30.0, keepalive_stun=True)
    reg = ua.registration(600)
    reg.start()
    grant(ua, 600)
    n = len(registers(ua))
    for _ in range(10):
        clock.advance(30.0)
    assert reg.state is S.REGISTERED and len(registers(ua)) == n
    assert sum(1 for d in raw_to_registrar(ua) if stun.is_stun(d)) == 10


def test_flow_failures_in_a_row_back_off(clock: UDPClock) -> None:
    """RFC 5626 §4.5: the registrar grants but never answers keep-alives: REGISTER at once, then 60 s, 120 s later."""
    ua = make_ua(clock, keepalive_interval=30.0, keepalive_stun=True)
    reg = ua.registration(600)
    reg.start()
    grant(ua, 600, extra=[("Require", "outbound")])
    n = len(registers(ua))
    ping_then_check(clock)  # ping at 30, no answer by 40: dead, REGISTER at once
    assert reg.state is S.RETRYING and len(registers(ua)) == n + 1
    grant(ua, 600, request=registers(ua)[-1], extra=[("Require", "outbound")])
    ping_then_check(clock)  # dead again: no sign of life in between, so the REGISTER waits 30 * 2^1 s
    assert reg.state is S.RETRYING and not reg.registered and len(registers(ua)) == n + 1
    assert reg.next_attempt == pytest.approx(clock.seconds() + 60.0)
    clock.advance(60.0)
    assert len(registers(ua)) == n + 2
    grant(ua, 600, request=registers(ua)[-1], extra=[("Require", "outbound")])
    ping_then_check(clock)
    assert reg.next_attempt == pytest.approx(clock.seconds() + 120.0)


def test_an_answered_keepalive_resets_the_flow_back_off(clock: UDPClock) -> None:
    """A flow that proved alive between two failures: the second failure re-registers at once again."""
    ua = make_ua(clock, keepalive_interval=30.0, keepalive_stun=True)
    reg = ua.registration(600)
    reg.start()
    grant(ua, 600, extra=[("Require", "outbound")])
    ping_then_check(clock)
    grant(ua, 600, request=registers(ua)[-1], extra=[("Flow-Timer", "30")])
    clock.advance(30.0)
    tid = raw_to_registrar(ua)[-1][8:20]
    ua.protocol.datagramReceived(stun_success(tid, ua.local_address), REGISTRAR)
    clock.advance(10.0)
    assert reg.flow_failures == 0
    n = len(registers(ua))
    ping_then_check(clock)  # unanswered now: dead, first failure in a row: at once
    assert reg.state is S.RETRYING and len(registers(ua)) == n + 1


def ping_then_check(clock: UDPClock) -> None:
    """The next keep-alive (30 s) and its check (10 s later)."""
    clock.advance(30.0)
    clock.advance(10.0)


@pytest.mark.parametrize("when", ["first", "refresh"])
def test_a_503_retry_after_delays_the_next_register(clock: UDPClock, when: str) -> None:
    """RFC 3261 §21.5.4 / RFC 5626 §4.5: one registrar answers 503 Retry-After: 600; the retry waits 600 s, not 30-60."""
    ua = make_ua(clock)
    reg = ua.registration(600)
    reg.start().addErrback(lambda f: None)
    if when == "refresh":
        grant(ua, 600)
        clock.advance(568)
    n = len(requests(ua, "REGISTER"))
    reply(ua, requests(ua, "REGISTER")[-1], 503, [("Retry-After", "600")])
    assert reg.next_attempt == pytest.approx(clock.seconds() + 600.0)
    clock.advance(599)
    assert len(requests(ua, "REGISTER")) == n
    clock.advance(1)
    assert len(requests(ua, "REGISTER")) == n + 1
    reply(ua, requests(ua, "REGISTER")[-1], 503, [("Retry-After", "5")])
    assert reg.next_attempt is not None and reg.next_attempt - clock.seconds() >= 30.0  # the larger of the two


class ConnectionTransport(UDPTransport):
    """The UDP test transport flagged connection-oriented: the registration takes the TCP/TLS path
    (no received/rport correction); the wire stays the fake clock's."""

    reliable = True


def test_a_dead_tcp_flow_re_picks_the_contact_and_removes_the_old_one(clock: UDPClock) -> None:
    """TCP without Outbound, the local address changed (192.0.2.99 gone): the REGISTER after the flow
    failure names the interface routing to the registrar now and removes the old Contact (expires=0)."""
    from txsipua.ua.account import Account

    acct = Account(user="alice", domain="example.com", registrar="sip:127.0.0.1:5999")
    ua = UserAgent(clock, Configuration(media=False), acct, ConnectionTransport(clock, "0.0.0.0", 0),
                   random=lambda: 1.0)
    ua.start()
    port = ua.local_address[1]
    ua.advertise(("192.0.2.99", port))  # the address of the network we were on
    reg = ua.registration(600)
    reg.start()
    grant(ua, 600)
    reg.flow_failed("connection lost")
    again = requests(ua, "REGISTER")[-1]
    assert again.headers.get_all("Contact") == [f"<sip:alice@127.0.0.1:{port}>",
                                                f"<sip:alice@192.0.2.99:{port}>;expires=0"]
    assert ua.local_address == ("127.0.0.1", port)


def test_a_2xx_not_binding_our_contact_is_a_failure(clock: UDPClock) -> None:
    """RFC 3261 §10.2.4: a 200 listing only another Contact, or ours with expires=0, registers nothing: back off."""
    ua = make_ua(clock)
    reg = ua.registration(600)
    failed: list[Any] = []
    reg.start().addErrback(failed.append)
    reply(ua, requests(ua, "REGISTER")[-1], 200, [("Contact", "<sip:alice@198.51.100.7:5060>;expires=600")])
    assert reg.state is S.LAPSED and not reg.registered and reg.next_attempt is not None
    assert failed and isinstance(failed[0].value, RegistrationFailed)
    clock.advance(reg.next_attempt - clock.seconds())
    grant(ua, 600)
    assert reg.state is S.REGISTERED
    clock.advance(568)
    reply(ua, requests(ua, "REGISTER")[-1], 200, [("Contact", f"<{ua.core.contact_uri()}>;expires=0")])
    assert reg.state is S.BACKING_OFF and reg.next_attempt is not None


def test_huge_min_expires_and_grants_are_clamped(clock: UDPClock) -> None:
    """Min-Expires and granted expiries clamp to 2**32-1 (RFC 3261 §20.19); refresh timers stay within MAX_TIMER."""
    from txsipua.ua.registration import MAX_TIMER

    ua = make_ua(clock)
    reg = ua.registration(600)
    reg.start()
    reply(ua, requests(ua, "REGISTER")[-1], 423, [("Min-Expires", "99999999999999")])
    again = requests(ua, "REGISTER")[-1]
    assert again.headers.get("Expires") == str(2**32 - 1)
    grant(ua, 2**40, request=again)
    assert reg.state is S.REGISTERED and reg.result is not None and reg.result.expires == 2**32 - 1
    assert reg.next_attempt is not None and 0 < reg.next_attempt - clock.seconds() <= MAX_TIMER
    clock.advance(reg.next_attempt - clock.seconds())  # refreshed before the (capped) expiry
    assert reg.state is S.REFRESHING and reg.registered
