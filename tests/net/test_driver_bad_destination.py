"""A response whose destination port is out of range is dropped with a warning, never raised.

Found by ``benchmarks/fuzz_bench.py`` against a live ``txsipua answer``: a
request whose top Via carries ``rport=99999`` (or a negative one) got its
automatic 501/416/400 sent there; ``socket.sendto`` raised ``OverflowError``
out of ``datagramReceived``, which left the rest of that pump's outbox unsent
and the core's timer unarmed.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.logger import LogLevel, globalLogPublisher

from txsipua.core.useragent import UserAgentCore
from txsipua.net.driver import SIPDatagramProtocol


def _request(method: bytes, rport: bytes) -> bytes:
    return (method + b" sip:a@127.0.0.1 SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 127.0.0.1:5070;rport=" + rport + b";branch=z9hG4bK" + method + rport
            + b"\r\nFrom: <sip:a@192.0.2.1>;tag=1\r\nTo: <sip:a@127.0.0.1>\r\nCall-ID: c" + rport
            + b"\r\nCSeq: 1 " + method + b"\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")


@pytest.mark.parametrize("rport", [b"99999", b"65536", b"-5"])
@pytest_twisted.inlineCallbacks
def test_out_of_range_rport_written_by_the_peer_is_not_obeyed(rport: bytes) -> Any:
    """The 501 for an unknown method goes to the packet's real source, whatever ``rport=`` said.

    RFC 3261 §18.2.2 / RFC 3581: we stamp ``rport`` (and ``received``) from the
    source address ourselves; a value the peer wrote is never a destination, so
    an out-of-range one can no longer reach ``sendto`` at all.
    """
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    core = UserAgentCore(local=("127.0.0.1", 5060))
    proto = SIPDatagramProtocol(reactor, core, lambda event: None)
    port = reactor.listenUDP(0, proto, interface="127.0.0.1")
    sent: list[tuple[bytes, Any]] = []
    proto._write = lambda data, destination: sent.append((data, destination))  # type: ignore[method-assign]
    try:
        proto.datagramReceived(_request(b"FOO", rport), ("127.0.0.1", 5070))  # must not raise
    finally:
        globalLogPublisher.removeObserver(events.append)
        yield port.stopListening()
    assert [dest for _, dest in sent] == [("127.0.0.1", 5070)]
    assert sent[0][0].startswith(b"SIP/2.0 501 ")
    assert not [e for e in events if e.get("log_failure") is not None]


@pytest.mark.parametrize("dest_port", [99999, 65536, -5, 0])
@pytest_twisted.inlineCallbacks
def test_out_of_range_destination_port_is_a_warning_not_an_exception(dest_port: int) -> Any:
    """A destination port outside 1-65535 (however it came about): dropped, logged, the core told."""
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    core = UserAgentCore(local=("127.0.0.1", 5060))
    proto = SIPDatagramProtocol(reactor, core, lambda event: None)
    port = reactor.listenUDP(0, proto, interface="127.0.0.1")
    try:
        proto._write(b"OPTIONS sip:a@127.0.0.1 SIP/2.0\r\n\r\n", ("127.0.0.1", dest_port))  # must not raise
    finally:
        globalLogPublisher.removeObserver(events.append)
        yield port.stopListening()
    warnings = [e for e in events if e.get("log_level") is LogLevel.warn
                and "port out of range" in e.get("log_format", "")]
    assert len(warnings) == 1
    assert warnings[0]["dest"] == ("127.0.0.1", dest_port)
    assert not [e for e in events if e.get("log_failure") is not None]


@pytest_twisted.inlineCallbacks
def test_a_datagram_too_large_to_send_is_a_warning_never_silence() -> Any:
    """A response the socket refuses (EMSGSIZE: past 65,507 bytes) is logged, not dropped silently (review F1)."""
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    core = UserAgentCore(local=("127.0.0.1", 5060))
    proto = SIPDatagramProtocol(reactor, core, lambda event: None)
    port = reactor.listenUDP(0, proto, interface="127.0.0.1")
    try:
        proto._write(b"SIP/2.0 200 OK\r\n" + b"X" * 70_000, ("127.0.0.1", port.getHost().port))
    finally:
        globalLogPublisher.removeObserver(events.append)
        yield port.stopListening()
    warnings = [e for e in events if e.get("log_level") == LogLevel.warn and "could not send" in e["log_format"]]
    assert warnings and "127.0.0.1" in str(warnings[0]["dest"])
