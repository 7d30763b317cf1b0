"""SRTP with baresip (SDES, RFC 4568; baresip's srtp module): baresip dials a txsipua UA that requires SRTP.

baresip (``mediaenc=srtp-mand``: RTP/SAVP with ``a=crypto``) plays its 440 Hz
sine; txsipua answers with its own key, and what it decrypts must carry the
tone (by signal: Goertzel at 440 Hz).  txsipua plays a tone back; baresip
(``rtcp_mux yes``) reports on it by SRTCP, which it does only for packets it
authenticated and decrypted: the round trip computed from that report proves
the way back (baresip 1.0 has no WAV player to check by signal).  Then txsipua is given a wrong key for
baresip's stream: every packet is dropped and counted in ``stats.srtp_failed``,
nothing is decoded.  baresip runs on 127.0.0.1 with free ports, quits by
itself and is killed by PID at teardown; the test is bounded in time.
"""

from __future__ import annotations

import math
import subprocess
from array import array
from pathlib import Path
from typing import Any

import attrs
import pytest
import pytest_twisted
from clients import baresip_argv, write_baresip_config
from peers import HOST, free_udp_port
from twisted.internet import defer, task

from txsipua.media.srtp import available as srtp_available
from txsipua.ua.account import Account
from txsipua.ua.config import Configuration
from txsipua.ua.transports import UDPTransport
from txsipua.ua.useragent import UserAgent

pytestmark = pytest.mark.skipif(not srtp_available(), reason="SRTP needs pip install 'txsipua[srtp]'")


def tone_share(frames: list[bytes], freq: float, rate: int = 8000) -> float:
    """Share of the power of 16-bit PCM at ``freq`` (Goertzel)."""
    x = array("h")
    x.frombytes(b"".join(frames))
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for v in x:
        s1, s2 = v + coeff * s1 - s2, s1
    return (s1 * s1 + s2 * s2 - coeff * s1 * s2) / ((sum(v * v for v in x) or 1) * len(x) / 2)


@defer.inlineCallbacks
def wait_for(reactor: Any, predicate: Any, timeout: float, what: str) -> Any:
    """Poll ``predicate`` every 50 ms until true; fail naming ``what`` after ``timeout`` s."""
    waited = 0.0
    while not predicate():
        if waited >= timeout:
            raise AssertionError(f"timed out waiting for {what}")
        yield task.deferLater(reactor, 0.05, lambda: None)
        waited += 0.05


@pytest_twisted.inlineCallbacks
def test_baresip_srtp_call_carries_its_tone_and_a_wrong_key_fails_cleanly(tmp_path: Path) -> None:
    """baresip -> txsipua over SRTP (AES_CM_128_HMAC_SHA1_80 or _32): tone decoded; wrong key: dropped, counted."""
    from twisted.internet import reactor

    ua = UserAgent(reactor, Configuration(), Account(user="alice", domain=HOST, srtp=True),
                   UDPTransport(reactor, HOST, 0))
    address = yield ua.start()
    calls: list[Any] = []

    def incoming(inc: Any) -> None:
        calls.append(inc.call)
        inc.answer()

    ua.on_incoming_call = incoming
    config = write_baresip_config(tmp_path / "baresip", sip_port=free_udp_port(),
                                  accounts=[f"<sip:bob@{HOST}>;regint=0;mediaenc=srtp-mand;answermode=manual"])
    text = (config / "config").read_text().replace("module\t\t\tg711.so", "module\t\t\tg711.so\nmodule\t\t\tsrtp.so")
    text += "rtcp_mux\t\tyes\n"  # RTCP on the RTP port (RFC 5761): txsipua listens for RTCP there only
    (config / "config").write_text(text)
    argv = baresip_argv(config, commands=[f"/dial sip:alice@{address[0]}:{address[1]}"], quit_after=25)
    log = (tmp_path / "baresip.log").open("w")
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield wait_for(reactor, lambda: bool(calls) and calls[0].media is not None
                       and calls[0].media.params is not None, 5.0, "baresip's SRTP call")
        call = calls[0]
        assert call.media.params.srtp is not None, "the call is not SRTP"
        heard: list[bytes] = []
        call.media.on_audio = heard.append
        yield wait_for(reactor, lambda: len(heard) >= 60, 5.0, "decrypted audio from baresip")
        # baresip opens with one plain RTCP APP packet ("PINGPONG") that no SRTCP key can
        # authenticate: txsipua drops and counts it, and every RTP packet passes
        assert call.media.stats.srtp_failed <= 1 and call.media.stats.packets_received >= 60
        assert tone_share(heard[20:60], 440.0) > 0.5
        # the other way: baresip's RTCP reports on our SSRC, which it counts only once decrypted
        call.media.play(array("h", (int(8000 * math.sin(2 * math.pi * 1000 * i / 8000))
                                    for i in range(8000 * 12))).tobytes())
        yield wait_for(reactor, lambda: call.media.rtcp_stats.round_trip is not None, 12.0,
                       "an SRTCP report from baresip about our stream")
        assert call.media.rtcp_stats.remote_cumulative_lost == 0
        # a wrong key for baresip's stream: dropped, counted, never decoded
        params = call.media.params
        call.media.configure(attrs.evolve(params, srtp=attrs.evolve(params.srtp, remote_key=bytes(30))))
        before = len(heard)
        yield wait_for(reactor, lambda: call.media.stats.srtp_failed >= 21, 3.0, "wrong-key packets counted")
        assert len(heard) == before
        yield call.hangup()
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(5)
        log.close()
        yield ua.stop()


@pytest_twisted.inlineCallbacks
def test_baresip_without_rtcp_mux_reports_by_srtcp_on_our_rtp_port_plus_one(tmp_path: Path) -> None:
    """baresip's default (no ``rtcp_mux``): RTCP on separate ports (RFC 3550 §11).  txsipua binds RTCP on its
    RTP port + 1 and sends to baresip's RTCP port; baresip's SRTCP report on our stream reaches us there."""
    from twisted.internet import reactor

    ua = UserAgent(reactor, Configuration(), Account(user="alice", domain=HOST, srtp=True),
                   UDPTransport(reactor, HOST, 0))
    address = yield ua.start()
    calls: list[Any] = []

    def incoming(inc: Any) -> None:
        calls.append(inc.call)
        inc.answer()

    ua.on_incoming_call = incoming
    config = write_baresip_config(tmp_path / "baresip", sip_port=free_udp_port(),
                                  accounts=[f"<sip:bob@{HOST}>;regint=0;mediaenc=srtp-mand;answermode=manual"])
    text = (config / "config").read_text().replace("module\t\t\tg711.so", "module\t\t\tg711.so\nmodule\t\t\tsrtp.so")
    assert "\nrtcp_mux" not in text  # baresip's default: no multiplexing
    (config / "config").write_text(text)
    argv = baresip_argv(config, commands=[f"/dial sip:alice@{address[0]}:{address[1]}"], quit_after=40)
    log = (tmp_path / "baresip.log").open("w")
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield wait_for(reactor, lambda: bool(calls) and calls[0].media is not None
                       and calls[0].media.params is not None, 5.0, "baresip's SRTP call")
        call = calls[0]
        params = call.media.params
        assert params.srtp is not None and not params.rtcp_mux
        assert call.media.port % 2 == 0 and call.media.rtcp_port == call.media.port + 1
        call.media.play(array("h", (int(8000 * math.sin(2 * math.pi * 1000 * i / 8000))
                                    for i in range(8000 * 30))).tobytes())
        # both sides report about every 5 s, each first interval randomised (RFC 3550 §6.2): the round
        # trip needs a report of baresip's sent after our first SR reached it, 5-15 s into the call
        yield wait_for(reactor, lambda: call.media.rtcp_stats.reports_received >= 1, 12.0,
                       "an SRTCP report from baresip on our RTCP port")
        yield wait_for(reactor, lambda: call.media.rtcp_stats.round_trip is not None, 20.0,
                       "a round trip from baresip's report on our SR")
        stats = call.media.rtcp_stats
        assert stats.reports_received >= 1 and stats.remote_cumulative_lost == 0
        assert call.media.stats.srtp_failed <= 1  # at most baresip's plain APP "PINGPONG" (see above)
        yield call.hangup()
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(5)
        log.close()
        yield ua.stop()
