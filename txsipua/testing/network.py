"""An in-memory datagram network joining sans-IO endpoints, for scenario tests.

Theory of operation: each endpoint (a UA core, :class:`~txsipua.server.proxy.ProxyRegistrar`,
a :class:`Mailbox`...) is attached at an address.  The network is the only
clock: :meth:`FakeNetwork.run` repeatedly collects every endpoint's outbox,
then does the earliest pending thing (deliver a datagram, or fire an endpoint's
timer), telling the endpoint the time as ``now``, until a deadline.  Nothing
sleeps; a test that runs 32 simulated seconds takes microseconds.

Faults are drawn from a :class:`random.Random` seeded by the test, so a given
seed always loses, duplicates and reorders the same datagrams::

    sent at t --(latency)--> delivered at t + latency
              --(loss)-----> lost
              --(reorder)--> delivered at t + latency + U(0, reorder_delay)
              --(duplicate)> delivered twice, the copy a little later

:meth:`FakeNetwork.drop_next` loses chosen datagrams deterministically ("the
first 200 OK going to Alice"); every datagram's fate is recorded in
:attr:`FakeNetwork.log`.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from typing import Literal, Protocol

import attrs

from txsipua.core.transport import Address, Outgoing

__all__ = [
    "Datagram",
    "Endpoint",
    "FakeNetwork",
    "Fate",
    "Mailbox",
    "Record",
    "first_line",
]

Fate = Literal["delivered", "lost", "dropped", "unreachable"]
"""What became of a datagram: delivered; lost at random; dropped by a
:meth:`FakeNetwork.drop_next` rule; or sent to an address nobody is attached at."""


class Endpoint(Protocol):
    """What the network needs of an endpoint: the sans-IO core contract."""

    def receive(self, data: bytes, source: Address, now: float) -> None:
        """Take one datagram from ``source`` at ``now`` (seconds)."""

    def outbox(self) -> list[Outgoing]:
        """Return and forget the datagrams to send."""

    def get_timer(self) -> float | None:
        """Return the next deadline (seconds, absolute) or ``None``."""

    def handle_timer(self, now: float) -> None:
        """Fire whatever is due at ``now``."""


def first_line(data: bytes) -> str:
    """The start line of a SIP datagram, for logs and ladders (``""`` if none)."""
    return data.split(b"\r\n", 1)[0].split(b"\n", 1)[0].decode("utf-8", "replace")


@attrs.frozen
class Datagram:
    """One datagram on the wire.

    Attributes:
        source: the sender's address.
        destination: where it was sent.
        data: the bytes.
        sent_at: when it was sent, seconds (absolute).
    """

    source: Address
    destination: Address
    data: bytes
    sent_at: float

    @property
    def first_line(self) -> str:
        """The SIP start line of :attr:`data`."""
        return first_line(self.data)


@attrs.frozen
class Record:
    """The fate of one datagram (one copy, for a duplicated one).

    Attributes:
        time: when it was delivered or lost, seconds (absolute).
        datagram: the datagram.
        fate: what happened to it.
        duplicate: True for the extra copy of a duplicated datagram.
    """

    time: float
    datagram: Datagram
    fate: Fate
    duplicate: bool = False


@attrs.define
class Mailbox:
    """A dumb endpoint for tests: keeps what it receives, sends what it is given.

    Attributes:
        received: ``(data, source, now)`` for each datagram received, in order.
    """

    received: list[tuple[bytes, Address, float]] = attrs.field(factory=list)
    _outbox: list[Outgoing] = attrs.field(factory=list)

    def send(self, data: bytes, destination: Address) -> None:
        """Queue ``data`` for ``destination``; it leaves at the network's next step."""
        self._outbox.append(Outgoing(data, destination))

    def receive(self, data: bytes, source: Address, now: float) -> None:
        """Keep the datagram."""
        self.received.append((data, source, now))

    def outbox(self) -> list[Outgoing]:
        """Return and forget the queued datagrams."""
        out, self._outbox = self._outbox, []
        return out

    def get_timer(self) -> float | None:
        """A mailbox has no timers: ``None``."""
        return None

    def handle_timer(self, now: float) -> None:
        """Nothing to do."""

    def take(self) -> list[bytes]:
        """Return and forget the data received so far."""
        out = [data for data, _, _ in self.received]
        self.received.clear()
        return out


@attrs.define
class _DropRule:
    predicate: Callable[[Datagram], bool]
    count: int


@attrs.define
class _Attached:
    endpoint: Endpoint
    after: Callable[[float], None] | None


@attrs.define
class FakeNetwork:
    """A seeded, lossy, in-memory datagram network with its own clock.

    Args:
        seed: seeds the fault generator; the same seed gives the same faults.
        latency: one-way delay of every datagram, seconds.
        loss: probability that a datagram is lost, 0..1.
        duplication: probability that a datagram is delivered twice, 0..1.
        reordering: probability that a datagram is held back by up to
            ``reorder_delay`` seconds (so later ones overtake it), 0..1.
        reorder_delay: the longest extra delay of a held-back datagram, seconds.
        now: the starting time, seconds.
        max_steps: bound on deliveries plus timer firings in one :meth:`run`;
            exceeding it raises ``RuntimeError`` (a timer that never advances).

    Attributes:
        log: every datagram's :class:`Record`, in the order their fates were decided.
    """

    seed: int = 0
    latency: float = 0.001
    loss: float = 0.0
    duplication: float = 0.0
    reordering: float = 0.0
    reorder_delay: float = 0.05
    now: float = 0.0
    max_steps: int = 100_000
    log: list[Record] = attrs.field(factory=list, init=False)
    _rng: random.Random = attrs.field(init=False)
    _endpoints: dict[Address, _Attached] = attrs.field(factory=dict, init=False)
    _queue: list[tuple[float, int, Datagram, bool]] = attrs.field(factory=list, init=False)
    _seq: int = attrs.field(default=0, init=False)
    _drop_rules: list[_DropRule] = attrs.field(factory=list, init=False)

    def __attrs_post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    # ------------------------------------------------------------ wiring

    def attach(
        self,
        address: Address,
        endpoint: Endpoint,
        after: Callable[[float], None] | None = None,
    ) -> Endpoint:
        """Attach ``endpoint`` at ``address`` and return it.

        Args:
            address: its ``(ip, port)``; datagrams it sends have this source.
            endpoint: the sans-IO endpoint.
            after: called with ``now`` after each datagram it receives and each
                timer it handles (a test harness drains its events there).

        Raises:
            ValueError: the address is taken.
        """
        if address in self._endpoints:
            raise ValueError(f"{address} is already attached")
        self._endpoints[address] = _Attached(endpoint, after)
        return endpoint

    def detach(self, address: Address) -> None:
        """Remove the endpoint at ``address``; datagrams to it become unreachable."""
        del self._endpoints[address]

    def send(self, data: bytes, source: Address, destination: Address) -> None:
        """Put a datagram on the wire at :attr:`now`, as if ``source`` sent it."""
        self._transmit(Datagram(source, destination, bytes(data), self.now))

    def drop_next(self, predicate: Callable[[Datagram], bool], count: int = 1) -> None:
        """Lose the next ``count`` datagrams for which ``predicate`` is true.

        Example: ``net.drop_next(lambda d: d.first_line.startswith("SIP/2.0 200"))``.
        """
        if count > 0:
            self._drop_rules.append(_DropRule(predicate, count))

    # ------------------------------------------------------------ running

    def flush(self) -> None:
        """Collect every endpoint's outbox onto the wire at :attr:`now`."""
        for address, attached in list(self._endpoints.items()):
            for out in attached.endpoint.outbox():
                self._transmit(Datagram(address, out.destination, out.data, self.now))

    def in_flight(self) -> int:
        """Datagrams sent but not yet delivered or lost."""
        return len(self._queue)

    def run(self, until: float) -> None:
        """Deliver datagrams and fire timers in time order up to ``until``, then set the clock.

        Args:
            until: seconds, absolute; things due exactly then happen.

        Raises:
            RuntimeError: more than ``max_steps`` steps (a runaway timer or a
                message storm).
        """
        for _ in range(self.max_steps):
            if not self._step(until, timers=True):
                self.now = max(self.now, until)
                return
        raise RuntimeError(f"network did not settle within {self.max_steps} steps")

    def advance(self, seconds: float) -> None:
        """``run(now + seconds)``."""
        self.run(self.now + seconds)

    def settle(self, limit: float = 64.0) -> None:
        """Deliver everything in flight, and whatever that causes, but fire no timer.

        Stops when nothing is in flight or ``limit`` seconds after :attr:`now`.

        Raises:
            RuntimeError: more than ``max_steps`` deliveries.
        """
        until = self.now + limit
        for _ in range(self.max_steps):
            if not self._step(until, timers=False):
                return
        raise RuntimeError(f"network did not settle within {self.max_steps} steps")

    def delivered(self) -> list[Datagram]:
        """The datagrams delivered so far, in delivery order."""
        return [r.datagram for r in self.log if r.fate == "delivered"]

    def ladder(self) -> list[tuple[Address, Address, str]]:
        """``(source, destination, start line)`` of each delivered datagram, in order."""
        return [(d.source, d.destination, d.first_line) for d in self.delivered()]

    # ------------------------------------------------------------ internals

    def _transmit(self, datagram: Datagram) -> None:
        for rule in self._drop_rules:
            if rule.predicate(datagram):
                rule.count -= 1
                self.log.append(Record(self.now, datagram, "dropped"))
                self._drop_rules = [r for r in self._drop_rules if r.count > 0]
                return
        rng = self._rng
        if self.loss and rng.random() < self.loss:
            self.log.append(Record(self.now, datagram, "lost"))
            return
        delay = self.latency
        if self.reordering and rng.random() < self.reordering:
            delay += rng.random() * self.reorder_delay
        self._enqueue(self.now + delay, datagram, False)
        if self.duplication and rng.random() < self.duplication:
            self._enqueue(self.now + delay + rng.random() * self.reorder_delay, datagram, True)

    def _enqueue(self, at: float, datagram: Datagram, duplicate: bool) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (at, self._seq, datagram, duplicate))

    def _next_timer(self) -> tuple[float, Address] | None:
        best: tuple[float, Address] | None = None
        for address, attached in self._endpoints.items():
            deadline = attached.endpoint.get_timer()
            if deadline is not None and (best is None or deadline < best[0]):
                best = (deadline, address)
        return best

    def _step(self, until: float, timers: bool) -> bool:
        self.flush()
        delivery = self._queue[0][0] if self._queue else None
        timer = self._next_timer() if timers else None
        if timer is not None and timer[0] <= until and (delivery is None or timer[0] < delivery):
            self.now = max(self.now, timer[0])
            attached = self._endpoints[timer[1]]
            attached.endpoint.handle_timer(self.now)
            if attached.after is not None:
                attached.after(self.now)
            return True
        if delivery is None or delivery > until:
            return False
        at, _, datagram, duplicate = heapq.heappop(self._queue)
        self.now = max(self.now, at)
        target = self._endpoints.get(datagram.destination)
        if target is None:
            self.log.append(Record(self.now, datagram, "unreachable", duplicate))
            return True
        self.log.append(Record(self.now, datagram, "delivered", duplicate))
        target.endpoint.receive(datagram.data, datagram.source, self.now)
        if target.after is not None:
            target.after(self.now)
        return True
