"""Two transaction layers wired back to back over a lossy in-memory network.

A client layer (at UAC) and a server layer (at UAS), each with a minimal TU,
exchange datagrams through a queue that drops or duplicates the first few
datagrams as hypothesis chooses.  With at most five losses every exchange
completes: each TU sees each request or final response exactly once (2xx
retransmissions aside), and both layers end empty.
"""

from __future__ import annotations

import heapq

from hypothesis import given, settings
from hypothesis import strategies as st
from test_transaction_helpers import UAC, UAS, make_request, make_response

from txsipua.core.transaction import (
    RequestReceived,
    ResponseReceived,
    ServerTransaction,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimedOut,
)
from txsipua.core.transport import Address

LATENCY = 0.02


class Pair:
    """A client and a server layer, a network queue and two scripted TUs."""

    def __init__(self, schedule: list[str], final: int, invite: bool) -> None:
        self.client = TransactionLayer()
        self.server = TransactionLayer()
        self.schedule = list(schedule)
        self.final = final
        self.invite = invite
        self.queue: list[tuple[float, int, Address, bytes, Address]] = []
        self.seq = 0
        self.now = 0.0
        self.client_responses: list[int] = []
        self.client_events: list[object] = []
        self.server_requests: list[str] = []
        self.server_events: list[object] = []
        self.acks_sent = 0
        self.ist: ServerTransaction | None = None

    def _transmit(self, layer: TransactionLayer, source: Address) -> None:
        for out in layer.outbox():
            fate = self.schedule.pop(0) if self.schedule else "ok"
            copies = {"ok": 1, "drop": 0, "dup": 2}[fate]
            for _ in range(copies):
                self.seq += 1
                heapq.heappush(
                    self.queue,
                    (self.now + LATENCY, self.seq, out.destination, out.data, source),
                )

    def _client_tu(self) -> None:
        while (e := self.client.next_event()) is not None:
            self.client_events.append(e)
            if isinstance(e, ResponseReceived):
                self.client_responses.append(e.response.status)
                if self.invite and 200 <= e.response.status < 300:
                    # §13.2.2.4: the TU ACKs every 2xx, in a transaction of its own
                    ack = make_request("ACK", "z9hG4bKack", cseq_method="ACK", to_tag="b1")
                    self.client.send_stateless(ack, UAS, self.now)
                    self.acks_sent += 1

    def _server_tu(self) -> None:
        while (e := self.server.next_event()) is not None:
            self.server_events.append(e)
            if isinstance(e, RequestReceived):
                self.server_requests.append(e.request.method)
                txn = e.transaction
                if txn is None:  # the ACK for our 2xx
                    assert self.ist is not None
                    self.server.ack_received(self.ist, self.now)
                elif e.request.method != "ACK":
                    if self.invite:
                        self.ist = txn
                        self.server.respond(txn, make_response(e.request, 180), self.now)
                    self.server.respond(txn, make_response(e.request, self.final), self.now)

    def _settle(self) -> None:
        self._client_tu()
        self._server_tu()
        self._transmit(self.client, UAC)
        self._transmit(self.server, UAS)

    def run(self) -> None:
        req = make_request("INVITE" if self.invite else "MESSAGE", "z9hG4bKpair")
        self.client.send_request(req, UAS, 0.0)
        self._settle()
        for _ in range(10_000):
            deadlines = [
                t for t in (self.client.get_timer(), self.server.get_timer()) if t is not None
            ]
            if self.queue:
                deadlines.append(self.queue[0][0])
            if not deadlines:
                return
            self.now = max(self.now, min(deadlines))
            while self.queue and self.queue[0][0] <= self.now:
                _, _, dest, data, source = heapq.heappop(self.queue)
                layer = self.server if dest == UAS else self.client
                layer.receive(data, source, self.now)
                self._settle()
            self.client.handle_timer(self.now)
            self.server.handle_timer(self.now)
            self._settle()
        raise AssertionError("the exchange never settled")


_SCHEDULES = st.lists(st.sampled_from(["ok", "drop", "dup"]), max_size=12).filter(
    lambda s: s.count("drop") <= 5
)


@settings(max_examples=60, deadline=None)
@given(schedule=_SCHEDULES, final=st.sampled_from([200, 404]))
def test_non_invite_exchange_survives_loss(schedule: list[str], final: int) -> None:
    """NICT <-> NIST: one request for the server TU, one final for the client TU."""
    pair = Pair(schedule, final, invite=False)
    pair.run()
    assert pair.server_requests == ["MESSAGE"]
    assert pair.client_responses == [final]
    assert len(pair.client) == 0 and len(pair.server) == 0
    assert not any(isinstance(e, TransactionTimedOut) for e in pair.client_events)
    assert sum(isinstance(e, TransactionTerminated) for e in pair.server_events) == 1


@settings(max_examples=60, deadline=None)
@given(schedule=_SCHEDULES)
def test_invite_rejected_survives_loss(schedule: list[str]) -> None:
    """ICT <-> IST with 486: the ACK (built by the ICT) reaches the IST, nobody times out."""
    pair = Pair(schedule, 486, invite=True)
    pair.run()
    assert pair.server_requests == ["INVITE"]  # the non-2xx ACK never reaches the TU
    assert [s for s in pair.client_responses if s >= 200] == [486]
    assert len(pair.client) == 0 and len(pair.server) == 0
    assert not any(isinstance(e, TransactionTimedOut) for e in pair.server_events)
    assert not any(isinstance(e, TransactionTimedOut) for e in pair.client_events)


@settings(max_examples=60, deadline=None)
@given(schedule=_SCHEDULES)
def test_invite_accepted_survives_loss(schedule: list[str]) -> None:
    """ICT <-> IST with 200: 2xx retransmissions reach the client TU until an ACK gets through."""
    pair = Pair(schedule, 200, invite=True)
    pair.run()
    assert pair.server_requests[0] == "INVITE"
    assert set(pair.server_requests[1:]) == {"ACK"}
    finals = [s for s in pair.client_responses if s >= 200]
    assert finals and set(finals) == {200}
    assert pair.acks_sent == len(finals)
    assert pair.ist is not None and pair.ist.acked
    assert not any(isinstance(e, TransactionTimedOut) for e in pair.server_events)
    assert len(pair.client) == 0 and len(pair.server) == 0


def test_invite_without_any_loss_is_one_round() -> None:
    """No loss: INVITE, 180, 200, ACK; no retransmission at all.

    The TU answers with 180 within the input that delivered the INVITE, so
    no 100 Trying is sent (RFC 3261 §17.2.1).
    """
    pair = Pair([], 200, invite=True)
    pair.run()
    assert pair.client_responses == [180, 200]
    assert pair.server_requests == ["INVITE", "ACK"]
    assert pair.client.stats["retransmissions"] == 0
    assert pair.server.stats["retransmissions"] == 0
