"""SRTP calls between two txsipua UAs on loopback (RFC 3711 with SDES keys, RFC 4568), checked by signal."""

from __future__ import annotations

import math
from array import array
from typing import Any

import attrs
import pytest
import pytest_twisted
from loopback import Callee, Proxy, account, eventually, settled, tone, within

from txsipua.media.sdp import SessionDescription
from txsipua.media.srtp import available as srtp_available

pytestmark = pytest.mark.skipif(not srtp_available(), reason="SRTP needs pip install 'txsipua[srtp]'")


def level(frames: list[bytes]) -> float:
    """RMS of 16-bit PCM frames."""
    pcm = array("h")
    pcm.frombytes(b"".join(frames))
    return math.sqrt(sum(x * x for x in pcm) / max(1, len(pcm)))


def goertzel_ratio(frames: list[bytes], freq: float, rate: int = 8000) -> float:
    """Share of the power at ``freq`` (Goertzel)."""
    x = array("h")
    x.frombytes(b"".join(frames))
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for v in x:
        s1, s2 = v + coeff * s1 - s2, s1
    return (s1 * s1 + s2 * s2 - coeff * s1 * s2) / ((sum(v * v for v in x) or 1) * len(x) / 2)


@pytest_twisted.inlineCallbacks
def test_srtp_call_carries_the_tone_and_a_wrong_key_fails_cleanly(reactor: Any, proxy: Proxy, make_ua: Any) -> None:
    """alice requires SRTP: RTP/SAVP with a=crypto, a=rtcp-mux; bob hears a 1 kHz tone; then a wrong key is dropped."""
    alice = yield make_ua(account("alice", proxy, srtp=True))
    bob = yield make_ua(account("bob", proxy))
    yield within(reactor, alice.register(600))
    yield within(reactor, bob.register(600))
    callee = Callee(bob)
    call = yield within(reactor, alice.call("sip:bob@example.com"))
    incoming = yield within(reactor, callee.arrived)
    bob_call = incoming.call
    yield within(reactor, bob_call.confirmed)
    offer = SessionDescription.parse(alice.wire.requests_sent("INVITE")[-1].body)
    assert offer.media[0].proto == "RTP/SAVP" and offer.media[0].attribute("crypto") is not None
    assert call.media_params.srtp is not None and bob_call.media_params.srtp is not None
    assert call.media_params.rtcp_mux and bob_call.media_params.rtcp_mux
    heard: list[bytes] = []
    bob_call.media.on_audio = heard.append
    yield within(reactor, call.media.play(tone(0.4, 1000.0)), 3.0)
    yield eventually(reactor, lambda: len(heard) >= 18, 2.0, "SRTP audio decoded")
    assert goertzel_ratio(heard[2:18], 1000.0) > 0.5
    assert bob_call.media.stats.srtp_failed == 0
    # bob now holds a wrong key for alice's stream: every packet is dropped and counted, none decoded
    params = bob_call.media.params
    assert params.srtp is not None
    bob_call.media.configure(attrs.evolve(params, srtp=attrs.evolve(params.srtp, remote_key=bytes(30))))
    before = len(heard)
    yield within(reactor, call.media.play(tone(0.2, 1000.0)), 3.0)
    yield eventually(reactor, lambda: bob_call.media.stats.srtp_failed >= 10, 2.0, "wrong-key packets counted")
    assert len(heard) == before
    yield within(reactor, call.hangup())
    yield within(reactor, bob_call.ended)
    yield settled(reactor, alice, bob)


@pytest_twisted.inlineCallbacks
def test_srtp_required_refuses_a_plain_offer(reactor: Any, proxy: Proxy, make_ua: Any) -> None:
    """bob requires SRTP; alice offers plain RTP/AVP: 488 Not Acceptable Here."""
    from txsipua.errors import CallFailed

    alice = yield make_ua(account("alice", proxy))
    bob = yield make_ua(account("bob", proxy, srtp=True))
    yield within(reactor, alice.register(600))
    yield within(reactor, bob.register(600))
    Callee(bob)
    with pytest.raises(CallFailed) as info:
        yield within(reactor, alice.call("sip:bob@example.com"))
    assert info.value.status == 488
    yield settled(reactor, alice, bob)


@pytest_twisted.inlineCallbacks
def test_without_rtcp_mux_srtcp_reports_flow_on_rtp_port_plus_one(reactor: Any, proxy: Proxy, make_ua: Any) -> None:
    """Neither side offers rtcp-mux: each binds RTCP on its RTP port + 1 (RFC 3550 §11), and the SRTCP reports
    reach the other there, both ways, so both calls measure the round trip (RFC 3550 §6.4.1, RFC 3711)."""
    alice = yield make_ua(account("alice", proxy, srtp=True), rtcp_mux=False)
    bob = yield make_ua(account("bob", proxy), rtcp_mux=False)
    yield within(reactor, alice.register(600))
    yield within(reactor, bob.register(600))
    callee = Callee(bob)
    call = yield within(reactor, alice.call("sip:bob@example.com"))
    incoming = yield within(reactor, callee.arrived)
    bob_call = incoming.call
    yield within(reactor, bob_call.confirmed)
    offer = SessionDescription.parse(alice.wire.requests_sent("INVITE")[-1].body)
    assert offer.media[0].attribute("rtcp-mux") is None and offer.media[0].attribute("rtcp") is None
    assert not call.media_params.rtcp_mux and not bob_call.media_params.rtcp_mux
    assert call.media_params.srtp is not None and bob_call.media_params.srtp is not None
    for media in (call.media, bob_call.media):
        assert media.port % 2 == 0 and media.rtcp_port == media.port + 1
    yield eventually(reactor, lambda: all(m.rtcp_stats is not None and m.rtcp_stats.round_trip is not None
                                          for m in (call.media, bob_call.media)), 16.0, "RTT on both sides")
    for media in (call.media, bob_call.media):
        stats = media.rtcp_stats
        assert stats is not None and stats.reports_received >= 1 and stats.round_trip is not None
        assert 0 <= stats.round_trip < 1.0 and stats.remote_fraction_lost is not None
        # (wrong_source may count bob's first RTP, which can beat his 200 OK to alice: not asserted)
        assert media.stats.srtp_failed == 0 and media.stats.rtcp >= 1
    yield within(reactor, call.hangup())
    yield within(reactor, bob_call.ended)
    yield settled(reactor, alice, bob)
