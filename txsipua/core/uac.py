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
from txsipua.errors import AuthenticationError, TransportError
from txsipua.sip.message import Request, Response
from txsipua.sip.values import CSeq

if TYPE_CHECKING:  # pragma: no cover
    from txsipua.auth.client import AuthAttempt
    from txsipua.core.context import SessionHost


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
    ) -> None:
        self.host = host
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
        if authenticate and host.digest is not None and request.method not in ("ACK", "CANCEL"):
            self.attempt = host.digest.start()

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
            self.owner.operation_failed(self, e, now)

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
        if attempt is not None and status not in (401, 407):
            attempt.succeeded()
        self.response = response
        self.owner.operation_final(self, response, now)

    def on_failure(self, error: Exception, now: float) -> None:
        """The current transaction timed out or could not be sent, from the core."""
        self.owner.operation_failed(self, error, now)

    def __repr__(self) -> str:
        return f"<ClientOperation {self.request.method} {self.request.uri_text}>"


__all__ = ["ClientOperation", "EventOwner", "OperationOwner"]
