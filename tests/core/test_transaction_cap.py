"""The cap on live server transactions (count and octets): 503 + Retry-After past it, counted."""

from __future__ import annotations

from txsipua.core.transaction import (
    OVERLOAD_NOTICE_EVERY,
    RequestReceived,
    ServerTransaction,
    TransactionLayer,
)
from txsipua.sip.message import Response, parse_message

SOURCE = ("192.0.2.30", 5060)


def options(n: int, filler: int = 0) -> bytes:
    # the filler is a header value: a header name that long is a 400 before any transaction
    extra = f"X-Filler: {'a' * filler}\r\n" if filler else ""
    return (
        f"OPTIONS sip:bob@192.0.2.10 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {SOURCE[0]}:{SOURCE[1]};branch=z9hG4bK-o{n}\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:eve@example.org>;tag=e{n}\r\nTo: <sip:bob@example.com>\r\n"
        f"Call-ID: flood-{n}@192.0.2.30\r\nCSeq: 1 OPTIONS\r\n{extra}Content-Length: 0\r\n\r\n"
    ).encode()


def drain(layer: TransactionLayer) -> list[object]:
    out = []
    while (e := layer.next_event()) is not None:
        out.append(e)
    return out


def server_txns(events: list[object]) -> list[ServerTransaction]:
    return [e.transaction for e in events if isinstance(e, RequestReceived) and e.transaction is not None]


def test_past_the_count_cap_new_requests_get_503_with_retry_after():
    layer = TransactionLayer(max_server_transactions=3, overload_retry_after=7)
    for n in range(4):
        layer.receive(options(n), SOURCE, 0.0)
    assert len(server_txns(drain(layer))) == 3 and len(layer) == 3
    out = layer.outbox()
    assert len(out) == 1 and out[0].destination == SOURCE
    resp = parse_message(out[0].data)
    assert isinstance(resp, Response) and resp.status == 503
    assert resp.headers.get("Retry-After") == "7"
    assert resp.call_id == "flood-3@192.0.2.30" and resp.to.tag
    assert resp.top_via.branch == "z9hG4bK-o3"
    assert layer.stats["overloaded"] == 1


def test_retransmissions_and_acks_still_pass_at_the_cap():
    layer = TransactionLayer(max_server_transactions=1)
    layer.receive(options(0), SOURCE, 0.0)
    layer.receive(options(0), SOURCE, 0.1)  # a retransmission matches its transaction
    ack = options(9).replace(b"OPTIONS", b"ACK")
    layer.receive(ack, SOURCE, 0.2)
    events = drain(layer)
    assert [type(e) for e in events] == [RequestReceived, RequestReceived]
    assert events[1].transaction is None  # the ACK
    assert layer.stats["overloaded"] == 0 and layer.outbox() == []


def test_slots_come_back_when_transactions_end():
    layer = TransactionLayer(max_server_transactions=2)
    for n in range(2):
        layer.receive(options(n), SOURCE, 0.0)
    for txn in server_txns(drain(layer)):
        layer.respond(txn, Response(200, "OK", list(txn.request.headers.items())), 0.0)
    layer.outbox()
    layer.receive(options(5), SOURCE, 1.0)
    assert layer.stats["overloaded"] == 1
    layer.handle_timer(40.0)  # Timer J (64*T1) ends both
    assert len(layer) == 0
    layer.receive(options(6), SOURCE, 40.0)
    assert len(server_txns(drain(layer))) == 1 and layer.stats["overloaded"] == 1


def test_octet_budget_caps_a_flood_of_large_requests():
    """60 kB header fields: only as many as the octet budget holds get a transaction."""
    layer = TransactionLayer(max_server_octets=1_000_000)
    for n in range(40):
        layer.receive(options(n, filler=60_000), SOURCE, 0.0)
    kept = len(server_txns(drain(layer)))
    assert kept == 17  # 17 x ~58 kB (past the 2 KiB free) <= 1 MB < 18 x ~58 kB
    assert layer.stats["overloaded"] == 23
    assert all(parse_message(o.data).status == 503 for o in layer.outbox())
    # small requests still fit once the large ones end
    layer.handle_timer(40.0)
    layer.receive(options(100), SOURCE, 40.0)
    assert len(server_txns(drain(layer))) == 1


def test_default_budget_holds_a_large_request_flood_under_64_mib():
    layer = TransactionLayer()
    big = options(0, filler=60_000)
    for n in range(1500):
        layer.receive(big.replace(b"z9hG4bK-o0", f"z9hG4bK-f{n}".encode()), SOURCE, 0.0)
        layer.outbox()
    kept = len(server_txns(drain(layer)))
    assert (kept - 1) * 58_000 <= 64 * 1024 * 1024 and kept < 1200
    assert layer.stats["overloaded"] == 1500 - kept


def test_ordinary_requests_cost_nothing_against_the_octet_budget():
    """Requests under 2 KiB are bounded by the count cap only: a tiny octet budget does not refuse them."""
    layer = TransactionLayer(max_server_octets=0)
    for n in range(200):
        layer.receive(options(n, filler=1000), SOURCE, 0.0)
    assert len(server_txns(drain(layer))) == 200 and layer.stats["overloaded"] == 0
    layer.receive(options(999, filler=3000), SOURCE, 0.0)
    assert layer.stats["overloaded"] == 1


def test_the_first_and_every_nth_503_past_the_cap_make_a_notice():
    """A cap reached leaves a line to log, rate-limited at the source (issue 12 review F5)."""
    layer = TransactionLayer(max_server_transactions=1)
    assert layer.take_notices() == []
    layer.receive(options(0), SOURCE, 0.0)
    layer.receive(options(1), SOURCE, 0.0)
    notices = layer.take_notices()
    assert len(notices) == 1 and "503" in notices[0] and "1 of 1" in notices[0] and "192.0.2.30" in notices[0]
    assert layer.take_notices() == []  # taken
    for n in range(2, OVERLOAD_NOTICE_EVERY + 1):
        layer.receive(options(n), SOURCE, 0.0)
    assert layer.stats["overloaded"] == OVERLOAD_NOTICE_EVERY
    later = layer.take_notices()
    assert len(later) == 1 and f"{OVERLOAD_NOTICE_EVERY} refused so far" in later[0]


def test_the_driver_logs_the_core_notices_as_warnings():
    from twisted.internet.testing import MemoryReactorClock
    from twisted.logger import LogLevel, globalLogPublisher

    from txsipua.core.useragent import UserAgentCore
    from txsipua.net.driver import SIPDatagramProtocol

    core = UserAgentCore(local=("127.0.0.1", 5060))
    core.layer.max_server_transactions = 1
    drv = SIPDatagramProtocol(MemoryReactorClock(), core, lambda e: None)
    seen: list[dict[str, object]] = []
    globalLogPublisher.addObserver(seen.append)
    try:
        for n in range(3):
            drv.datagramReceived(options(n), SOURCE)
    finally:
        globalLogPublisher.removeObserver(seen.append)
    warnings = [e for e in seen if e.get("log_level") == LogLevel.warn and "notice" in e]
    assert len(warnings) == 1 and "server transactions at their cap" in str(warnings[0]["notice"])
