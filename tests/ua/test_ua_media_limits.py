"""Incoming calls when media cannot be opened (503/500, never silence), and the media timeout's BYE."""

from __future__ import annotations

from typing import Any

from twisted.internet.error import CannotListenError
from uafakes import UDPClock

import txsipua.ua.media
from txsipua.media.offer_answer import make_offer
from txsipua.net.rtp import DEFAULT_LIMIT, MEDIA_TIMEOUT
from txsipua.sip.message import Request, Response, parse_message
from txsipua.ua.config import Configuration
from txsipua.ua.transports import UDPTransport
from txsipua.ua.useragent import UserAgent

CALLER = ("192.0.2.20", 5060)


class NoMediaSockets(UDPClock):
    """The SIP socket opens; every later (RTP) socket fails as at the fd limit."""

    def listenUDP(self, port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192) -> Any:  # noqa: N802,N803
        if self.ports:
            raise CannotListenError(interface, port, OSError(24, "Too many open files"))
        return super().listenUDP(port, protocol, interface, maxPacketSize)


def invite(n: int = 1) -> bytes:
    sdp = make_offer(CALLER[0], 30000, session_id=7).to_bytes()
    return (
        f"INVITE sip:bob@192.0.2.10 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {CALLER[0]}:{CALLER[1]};branch=z9hG4bK-inv{n}\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:carol@example.org>;tag=c{n}\r\nTo: <sip:bob@example.com>\r\n"
        f"Call-ID: call-{n}@192.0.2.20\r\nCSeq: 1 INVITE\r\nContact: <sip:carol@{CALLER[0]}>\r\n"
        f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n"
    ).encode() + sdp


def answering_ua(clock: UDPClock) -> UserAgent:
    agent = UserAgent(clock, Configuration(), None, UDPTransport(clock, "192.0.2.10", 0))
    agent.start()
    agent.auto_answer = True
    return agent


def responses(clock: UDPClock) -> list[Response]:
    return [m for m in (parse_message(d) for d, _ in clock.ports[0].written) if isinstance(m, Response)]


def test_no_rtp_socket_left_answers_503_with_retry_after():
    clock = NoMediaSockets()
    ua = answering_ua(clock)
    ua.protocol.datagramReceived(invite(), CALLER)
    final = [r for r in responses(clock) if r.status >= 200]
    assert [r.status for r in final] == [503]
    assert final[0].headers.get("Retry-After") == "5"
    assert not ua.calls


def test_stream_cap_answers_503(monkeypatch):
    clock = UDPClock()
    ua = answering_ua(clock)
    monkeypatch.setattr(DEFAULT_LIMIT, "maximum", DEFAULT_LIMIT.active + 1)
    ua.protocol.datagramReceived(invite(1), CALLER)
    ua.protocol.datagramReceived(invite(2), CALLER)
    finals = [(r.call_id, r.status) for r in responses(clock) if r.status >= 200]
    assert finals == [("call-1@192.0.2.20", 200), ("call-2@192.0.2.20", 503)]
    ua.stop()
    clock.advance(64)  # the BYE goes unanswered: the grace runs out, the media stops
    assert DEFAULT_LIMIT.active == DEFAULT_LIMIT.maximum - 1  # the answered call's slot came back


def test_unexpected_failure_opening_media_answers_500(monkeypatch):
    clock = UDPClock()
    ua = answering_ua(clock)

    def broken(reactor: Any, host: str) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(txsipua.ua.media, "_start_stream", broken)
    ua.protocol.datagramReceived(invite(), CALLER)
    assert [r.status for r in responses(clock) if r.status >= 200] == [500]


def test_media_timeout_ends_the_call_with_bye():
    clock = UDPClock()
    ua = answering_ua(clock)
    ended: list[str] = []
    ua.protocol.datagramReceived(invite(), CALLER)
    ok = next(r for r in responses(clock) if r.status == 200)
    call = next(iter(ua.calls))
    call.ended.addCallback(ended.append)
    ack = (
        f"ACK sip:bob@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER[0]}:{CALLER[1]};branch=z9hG4bK-ack1\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:carol@example.org>;tag=c1\r\nTo: {ok.headers.get('To')}\r\n"
        f"Call-ID: call-1@192.0.2.20\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    ua.protocol.datagramReceived(ack, CALLER)
    clock.advance(MEDIA_TIMEOUT - 1)
    sent = [parse_message(d) for d, _ in clock.ports[0].written]
    assert not [m for m in sent if isinstance(m, Request) and m.method == "BYE"]
    clock.advance(2)
    sent = [parse_message(d) for d, _ in clock.ports[0].written]
    byes = [m for m in sent if isinstance(m, Request) and m.method == "BYE"]
    assert len(byes) == 1 and byes[0].call_id == "call-1@192.0.2.20"
    assert not ended  # until the BYE is answered
    bye = byes[0]
    answer = (
        f"SIP/2.0 200 OK\r\nVia: {bye.headers.get('Via')}\r\nFrom: {bye.headers.get('From')}\r\n"
        f"To: {bye.headers.get('To')}\r\nCall-ID: {bye.call_id}\r\nCSeq: {bye.headers.get('CSeq')}\r\n"
        f"Content-Length: 0\r\n\r\n"
    ).encode()
    ua.protocol.datagramReceived(answer, CALLER)
    assert ended == ["media-timeout"]  # not "hangup": the application did not hang up


class RefusingMediaSockets(UDPClock):
    """The SIP socket sends; every RTP socket's sendto fails as for an address it cannot reach."""

    def listenUDP(self, port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192) -> Any:  # noqa: N802,N803
        fake = super().listenUDP(port, protocol, interface, maxPacketSize)
        if len(self.ports) > 1:
            def refuse(data: bytes, addr: tuple[str, int]) -> None:
                raise PermissionError(13, "Permission denied")  # a broadcast, 0.0.0.1, ::1 on IPv4...

            fake.write = refuse  # type: ignore[method-assign]
        return fake


def test_a_call_whose_media_cannot_be_sent_still_ends_and_frees_its_stream():
    """The RTP and the RTCP BYE are refused by the socket: the peer's BYE still ends the call and the
    stream's slot comes back (stop() used to raise on the RTCP BYE and leak both)."""
    clock = RefusingMediaSockets()
    ua = answering_ua(clock)
    before = DEFAULT_LIMIT.active
    ended: list[str] = []
    ua.protocol.datagramReceived(invite(), CALLER)
    ok = next(r for r in responses(clock) if r.status == 200)
    call = next(iter(ua.calls))
    call.ended.addCallback(ended.append)
    assert DEFAULT_LIMIT.active == before + 1
    dialog = (f"From: <sip:carol@example.org>;tag=c1\r\nTo: {ok.headers.get('To')}\r\n"
              f"Call-ID: call-1@192.0.2.20\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n")
    via = f"Via: SIP/2.0/UDP {CALLER[0]}:{CALLER[1]};branch=z9hG4bK-"
    ua.protocol.datagramReceived(f"ACK sip:bob@192.0.2.10 SIP/2.0\r\n{via}ack1\r\nCSeq: 1 ACK\r\n{dialog}\r\n".encode(),
                                 CALLER)
    clock.advance(6)  # RTP and RTCP reports refused all along
    assert call.media.stats.send_failed > 0 and call.media.stats.packets_sent == 0
    ua.protocol.datagramReceived(f"BYE sip:bob@192.0.2.10 SIP/2.0\r\n{via}bye1\r\nCSeq: 2 BYE\r\n{dialog}\r\n".encode(),
                                 CALLER)
    assert ended == ["bye"] and not ua.calls
    assert DEFAULT_LIMIT.active == before
    assert [r.status for r in responses(clock) if r.call_id == "call-1@192.0.2.20" and r.cseq.method == "BYE"] == [200]
    ua.stop()
