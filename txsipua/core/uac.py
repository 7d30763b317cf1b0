"""The UAC request: one outgoing request through its digest retries (RFC 3261 §8.1, §22.2).

Theory of operation
-------------------
A :class:`ClientOperation` is one logical request.  It is sent in a client
transaction through the :class:`~txsipua.core.context.SessionHost` seam; its
responses come back through the core (:meth:`ClientOperation.on_response`).
A 401/407 final response is answered with digest credentials (§22.2, §22.3)
through an :class:`~txsipua.auth.client.AuthAttempt`, and the request is sent
again in a new transaction: CSeq + 1 (the dialog's next number in a dialog),
a new branch, the same Call-ID and From tag.  CANCEL and ACK are never
authenticated, and a 401/407 to a CANCEL is final.

Failover (RFC 3263 §4.3): an operation given ``alternatives`` (the rest of
the targets its next hop was located to, see
:class:`~txsipua.net.locate.Failover`) that times out (Timer B/F), fails at
the transport or gets a 503 sends the request again to the next target, in a
new client transaction (new branch, CSeq + 1), with credentials judged
afresh for that address by the digest-leak guard; a 503's ``Retry-After``
is handed to the alternatives so that the server is skipped that long.
Only when no target is left does the owner hear the failure or the 503.

Once its owner has given the request up (a call hung up or aborted while the
INVITE was being challenged), :meth:`ClientOperation.stop_retrying` makes
every later challenge final: the transaction layer ACKs it (§17.1.1.3) and
no new request goes out.

The outcome goes to the operation's *owner* (:class:`OperationOwner`): an
INVITE session for the requests of a call, else :class:`EventOwner`, which
emits :class:`~txsipua.core.events.ProvisionalResponse`,
:class:`~txsipua.core.events.RequestCompleted` and
:class:`~txsipua.core.events.RequestFailed`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from txsipua.auth.guard import HopAddress
from txsipua.core import events as ev
from txsipua.core.builders import AUTH_HEADERS
from txsipua.core.transaction import ClientTransaction
from txsipua.core.transport import Address, sips_needs_tls
from txsipua.errors import AuthenticationError, TransactionTimeout, TransportError
from txsipua.sip.message import Request, Response
from txsipua.sip.values import CSeq

if TYPE_CHECKING:  # pragma: no cover
    from txsipua.auth.client import AuthAttempt, DigestClient
    from txsipua.core.context import SessionHost


class Alternatives(Protocol):
    """Where a request goes next when its target fails (RFC 3263 §4.3)."""

    def next_target(self, failed: Address, retry_after: float | None, now: float) -> Address | None:
        """The next target after ``failed`` (``retry_after``: seconds from a 503), or ``None``."""


HOST_DIGEST: Any = object()
"""``ClientOperation(digest=...)`` default: the core's digest client."""


def retry_after_seconds(response: Response) -> float | None:
    """The delta-seconds of a response's Retry-After (RFC 3261 §20.33), or ``None``."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    text = value.split(";", 1)[0].split("(", 1)[0].strip()
    return float(text) if text.isdigit() else None


class OperationOwner(Protocol):
    """Who hears how a :class:`ClientOperation` went."""

    def operation_provisional(self, operation: ClientOperation, response: Response, now: float) -> None:
        """A 1xx arrived."""

    def operation_final(self, operation: ClientOperation, response: Response, now: float) -> None:
        """The final response arrived (after any authentication retry)."""

    def operation_failed(self, operation: ClientOperation, error: Exception, now: float) -> None:
        """No usable final response: timeout, transport error or authentication failure."""


class EventOwner:
    """The owner of requests outside a call: reports them as events."""

    __slots__ = ("host",)

    def __init__(self, host: SessionHost) -> None:
        self.host = host

    def operation_provisional(self, operation: ClientOperation, response: Response, now: float) -> None:
        """Emit :class:`~txsipua.core.events.ProvisionalResponse`."""
        self.host.emit(ev.ProvisionalResponse(operation, response))

    def operation_final(self, operation: ClientOperation, response: Response, now: float) -> None:
        """Emit :class:`~txsipua.core.events.RequestCompleted`."""
        self.host.emit(ev.RequestCompleted(operation, response))

    def operation_failed(self, operation: ClientOperation, error: Exception, now: float) -> None:
        """Emit :class:`~txsipua.core.events.RequestFailed`."""
        self.host.emit(ev.RequestFailed(operation, error))


class ClientOperation:
    """One outgoing request through all its authentication retries.

    Args:
        host: the core seam.
        request: the request (its Via is stamped when sent unless ``keep_via``).
        destination: the next hop's address.
        owner: who hears the outcome (default: events).
        authenticate: False to report 401/407 as final responses.
        next_cseq: gives the CSeq number of a retry (a dialog's ``next_seq``);
            by default the last number + 1.
        keep_via: send the request's own top Via (a CANCEL, §9.1).
        hop_host: the next hop's host as named in the URI (digest-leak guard).
        alternatives: the other targets of the next hop (failover), or ``None``.
        digest: the digest client answering challenges (another account's);
            the core's by default.

    Attributes:
        request: the request as last sent (its CSeq and credentials change on retry).
        destination: where it is sent.
        response: the final response, once it arrived.
        transaction: the client transaction of the last attempt.
        attempt: the digest attempt, or ``None``.
        owner: who hears the outcome.
        user_data: free for the application.
    """

    def __init__(
        self,
        host: SessionHost,
        request: Request,
        destination: Address,
        *,
        owner: OperationOwner | None = None,
        authenticate: bool = True,
        next_cseq: Callable[[], int] | None = None,
        keep_via: bool = False,
        hop_host: str = "",
        alternatives: Alternatives | None = None,
        digest: DigestClient | None = HOST_DIGEST,
    ) -> None:
        self.host = host
        self.alternatives = alternatives
        self.request = request
        self.destination = destination
        self.owner: OperationOwner = owner if owner is not None else EventOwner(host)
        self.keep_via = keep_via
        self.hop_host = hop_host or destination[0]
        self.hop = HopAddress.located(self.hop_host, destination, host.transport)
        self.response: Response | None = None
        self.transaction: ClientTransaction | None = None
        self.user_data: Any = None
        self.next_cseq = next_cseq
        self.retrying = True
        self.attempt: AuthAttempt | None = None
        client = host.digest if digest is HOST_DIGEST else digest
        self.digest: DigestClient | None = client
        if authenticate and client is not None and request.method not in ("ACK", "CANCEL"):
            self.attempt = client.start()

    @property
    def method(self) -> str:
        """The request method."""
        return self.request.method

    @property
    def auth_headers(self) -> list[tuple[str, str]]:
        """The Authorization/Proxy-Authorization fields of the request as last sent."""
        return [(n, v) for n, v in self.request.headers.items() if n in AUTH_HEADERS]

    def start(self, now: float) -> None:
        """Send the request, with pre-emptive credentials when the digest client has some.

        A ``sips`` Request-URI or Route over a transport other than TLS fails
        the operation (``TransportError``) before anything is sent (RFC 3261 §26.2.2).
        """
        error = sips_needs_tls(self.request, self.host.transport)
        if error is not None:
            self.owner.operation_failed(self, error, now)
            return
        if self.attempt is not None:
            req = self.request
            for name, value in self.attempt.initial_headers(req.method, req.uri_text, req.body, hop=self.hop):
                req.headers.add(name, value)
        self._send(now)

    def stop_retrying(self) -> None:
        """Answer no further challenge: a later 401/407 is the final response."""
        self.retrying = False

    def resend(self, now: float, fields: Iterable[tuple[str, str]]) -> None:
        """Send the request again in a new transaction with ``fields`` set (replacing those names).

        For a request refused for one of its fields (a 422 naming the Min-SE
        to use, RFC 4028 §7.1): CSeq + 1 (the dialog's next number in a
        dialog), a new branch, the same Call-ID, From tag and credentials.
        """
        retry = self.request.copy()
        for name, value in fields:
            retry.headers.set(name, value)
        seq = self.next_cseq() if self.next_cseq else self.request.cseq.seq + 1
        retry.headers.set("CSeq", str(CSeq(seq, self.request.method)))
        self.request = retry
        self._send(now)

    def _send(self, now: float) -> None:
        try:
            self.transaction = self.host.send(self, not self.keep_via, now)
        except TransportError as e:
            if not self._fail_over(None, now):
                self.owner.operation_failed(self, e, now)

    def _fail_over(self, retry_after: float | None, now: float) -> bool:
        """Send the request to the next target, if there is one (RFC 3263 §4.3); True when sent."""
        alternatives = self.alternatives
        if alternatives is None or self.keep_via or not self.retrying or self.method in ("ACK", "CANCEL"):
            return False
        nxt = alternatives.next_target(self.destination, retry_after, now)
        if nxt is None:
            return False
        self.destination = nxt
        self.hop = HopAddress.located(self.hop_host, nxt, self.host.transport)
        req = self.request
        retry = req.copy()
        for name in AUTH_HEADERS:
            retry.headers.remove(name)
        seq = self.next_cseq() if self.next_cseq else req.cseq.seq + 1
        retry.headers.set("CSeq", str(CSeq(seq, req.method)))
        if self.attempt is not None and self.digest is not None:
            # a new attempt: the answers given to the last target are not carried
            # over; only cached ones whose address and trust fit this one are sent
            self.attempt = self.digest.start()
            for name, value in self.attempt.initial_headers(req.method, req.uri_text, req.body, hop=self.hop):
                retry.headers.add(name, value)
        self.request = retry
        self._send(now)
        return True

    def on_response(self, response: Response, now: float) -> None:
        """A response of the current transaction, from the core."""
        status = response.status
        if status < 200:
            self.owner.operation_provisional(self, response, now)
            return
        attempt = self.attempt
        if attempt is not None and status in (401, 407) and self.retrying:
            req = self.request
            try:
                headers = attempt.respond_to(response, req.method, req.uri_text, req.body, hop=self.hop)
            except AuthenticationError as e:
                if e.response is None:
                    e.response = response
                self.response = response
                self.owner.operation_failed(self, e, now)
                return
            retry = req.copy()
            for name in AUTH_HEADERS:
                retry.headers.remove(name)
            for name, value in headers:
                retry.headers.add(name, value)
            seq = self.next_cseq() if self.next_cseq else req.cseq.seq + 1
            retry.headers.set("CSeq", str(CSeq(seq, req.method)))
            self.request = retry
            self._send(now)
            return
        if status == 503 and self._fail_over(retry_after_seconds(response), now):
            return
        if attempt is not None and status not in (401, 407):
            attempt.succeeded()
        self.response = response
        self.owner.operation_final(self, response, now)

    def on_failure(self, error: Exception, now: float) -> None:
        """The current transaction timed out or could not be sent, from the core.

        With alternatives left, the request goes to the next target instead.
        """
        if isinstance(error, (TransactionTimeout, TransportError)) and self._fail_over(None, now):
            return
        self.owner.operation_failed(self, error, now)

    def __repr__(self) -> str:
        return f"<ClientOperation {self.request.method} {self.request.uri_text}>"


__all__ = ["HOST_DIGEST", "Alternatives", "ClientOperation", "EventOwner", "OperationOwner", "retry_after_seconds"]
