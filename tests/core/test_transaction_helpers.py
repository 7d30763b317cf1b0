"""Shared helpers for the transaction layer tests (message builders, timer driving).

Imported by the other ``test_transaction*.py`` modules; its own tests check the helpers.
"""

from __future__ import annotations

from collections.abc import Iterable

from txsipua.core.transaction import Event, TransactionLayer
from txsipua.core.transport import Address, Outgoing
from txsipua.sip.message import Request, Response, parse_message

UAC: Address = ("192.0.2.10", 5060)
"""The peer acting as client in server-side tests (and our own address in client tests)."""
UAS: Address = ("198.51.100.2", 5060)
"""The peer acting as server in client-side tests."""


def make_request(
    method: str = "INVITE",
    branch: str = "z9hG4bKc1",
    *,
    cseq: int = 1,
    cseq_method: str | None = None,
    sent_by: str = "192.0.2.10:5060",
    uri: str = "sip:bob@198.51.100.2",
    call_id: str = "call1@192.0.2.10",
    from_tag: str = "a1",
    to_tag: str | None = None,
    extra: Iterable[tuple[str, str]] = (),
    vias: Iterable[str] = (),
) -> Request:
    """A well-formed request from alice to bob with one Via (plus ``vias`` below it)."""
    top = f"SIP/2.0/UDP {sent_by}" + (f";branch={branch}" if branch else "")
    to = "<sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else "")
    return Request(
        method,
        uri,
        [
            ("Via", top),
            *(("Via", v) for v in vias),
            ("Max-Forwards", "70"),
            ("From", f'"Alice" <sip:alice@example.com>;tag={from_tag}'),
            ("To", to),
            ("Call-ID", call_id),
            ("CSeq", f"{cseq} {cseq_method or method}"),
            *extra,
        ],
    )


def make_response(request: Request, status: int, to_tag: str | None = "b1") -> Response:
    """The response a UAS builds (§8.2.6): Vias, From, To (+tag), Call-ID and CSeq copied."""
    fields: list[tuple[str, str]] = []
    for name, value in request.headers.items():
        if name == "To":
            if to_tag and status != 100 and "tag=" not in value:
                value = f"{value};tag={to_tag}"
            fields.append((name, value))
        elif name in ("Via", "From", "Call-ID", "CSeq"):
            fields.append((name, value))
    return Response(status, None, fields)


def wire(message: Request | Response) -> bytes:
    """The bytes of a message, as the network would carry them."""
    return message.to_bytes()


def drain(layer: TransactionLayer) -> list[Event]:
    """Every pending event."""
    out = []
    while (event := layer.next_event()) is not None:
        out.append(event)
    return out


def parsed(outgoing: list[Outgoing]) -> list[Request | Response]:
    """The messages of an outbox, parsed back."""
    return [parse_message(o.data) for o in outgoing]


def run_timers(layer: TransactionLayer, until: float) -> list[tuple[float, list[Outgoing]]]:
    """Jump from deadline to deadline up to ``until``; what was sent at each one."""
    out = []
    while (deadline := layer.get_timer()) is not None and deadline <= until:
        layer.handle_timer(deadline)
        out.append((deadline, layer.outbox()))
    return out


def test_make_response_copies_the_request_fields() -> None:
    """A built response carries the request's Via, From, Call-ID, CSeq and a tagged To."""
    req = make_request(vias=["SIP/2.0/UDP 203.0.113.1;branch=z9hG4bKp"])
    resp = make_response(req, 486)
    assert resp.headers.get_all("Via") == req.headers.get_all("Via")
    assert resp.to.tag == "b1"
    assert resp.cseq == req.cseq
    assert make_response(req, 100).to.tag is None


def test_run_timers_fires_in_order() -> None:
    """run_timers visits every deadline in order and stops at ``until``."""
    layer = TransactionLayer()
    layer.send_request(make_request("OPTIONS"), UAS, 0.0)
    layer.outbox()
    fired = run_timers(layer, 2.0)
    assert [t for t, _ in fired] == [0.5, 1.5]
    assert layer.get_timer() == 3.5
