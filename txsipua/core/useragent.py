"""The sans-IO user agent core: UAC and UAS behaviour over the transaction layer.

Theory of operation
-------------------
:class:`UserAgentCore` sits on a :class:`~txsipua.core.transaction.TransactionLayer`
(RFC 3261 §17) and is the *transaction user*.  It is fed datagrams and told
the time (``receive(data, source, now)``, ``handle_timer(now)``), and it
answers with bytes to send (``outbox()``), one timer deadline (``get_timer()``)
and events (``next_event()``, see :mod:`txsipua.core.events`).

Outgoing requests are :class:`ClientOperation` objects (one logical request
through all its retries): a 401/407 final response is answered with digest
credentials (RFC 3261 §22.2, §22.3) through an
:class:`~txsipua.auth.client.AuthAttempt` and the request is sent again with
CSeq + 1, a new branch, the same Call-ID and From tag.  CANCEL and ACK are never
authenticated and a 401/407 to a CANCEL is final.

Calls are :class:`InviteSession` objects on either side:

UAC::

    CALLING --1xx--> PROCEEDING --2xx--> CONFIRMED --hangup/BYE--> TERMINATED
       |                 |                   ^
       | hangup          | hangup: CANCEL    | (2xx after CANCEL: ACK, then BYE)
       v                 v                   |
    (CANCEL once a 1xx arrives)  --487/non-2xx--> TERMINATED

UAS::

    RECEIVED --ring()--> RINGING --accept()--> ACCEPTED --ACK--> CONFIRMED
        |                   |                     |
        +-reject()/CANCEL---+--> TERMINATED       +--Timer L/H--> BYE, TERMINATED

The ACK for a 2xx (RFC 3261 §13.2.2.4) is built here, outside any transaction,
and repeats every Authorization and Proxy-Authorization value of its INVITE.
"""

from __future__ import annotations

import enum
import heapq
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import attrs

from txsipua.auth.guard import HopAddress
from txsipua.auth.server import BadAuthorization, DigestCredentials, NeedChallenge
from txsipua.core import events as ev
from txsipua.core.dialog import Dialog, DialogState
from txsipua.core.ids import IdGenerator
from txsipua.core.transaction import (
    ClientTransaction,
    RequestReceived,
    ResponseReceived,
    ServerTransaction,
    StrayResponse,
    Timers,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimedOut,
)
from txsipua.core.transport import Address, Outgoing, sips_needs_tls
from txsipua.errors import (
    AuthenticationError,
    CallFailed,
    LocalProtocolError,
    ParseError,
    RemoteProtocolError,
    ResolutionError,
    SIPStatusError,
    TransactionTimeout,
    TransportError,
)
from txsipua.sip.message import Headers, Request, Response
from txsipua.sip.uri import AbsoluteURI, SipURI
from txsipua.sip.values import CSeq, NameAddr

if TYPE_CHECKING:  # pragma: no cover
    from txsipua.auth.client import AuthAttempt, DigestClient
    from txsipua.auth.server import DigestServer

AUTH_HEADERS = ("Authorization", "Proxy-Authorization")
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, INFO, REFER, NOTIFY"
_APP_METHODS = frozenset({"MESSAGE", "INFO", "REFER", "NOTIFY", "REGISTER", "SUBSCRIBE", "UPDATE", "PUBLISH"})
_KNOWN_METHODS = frozenset(
    {"INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "REGISTER", "MESSAGE", "INFO", "REFER",
     "NOTIFY", "SUBSCRIBE", "UPDATE", "PRACK", "PUBLISH"}
)


_COPIED = frozenset({"from", "to", "call-id", "cseq"})
_CANON_COPIED = {"from": "From", "to": "To", "call-id": "Call-ID", "cseq": "CSeq"}


def format_host(host: str) -> str:
    """Bracket an IPv6 address for use in a URI or Via (``::1`` -> ``[::1]``)."""
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


def hop_host_of(uri: SipURI) -> str:
    """The ``host`` or ``host:port`` a request to ``uri`` really goes to: ``maddr`` when present, else the host.

    The digest-leak guard must judge this host, not the URI's nominal one: a
    peer could otherwise name our registrar as the host of its Contact and
    its own address as ``maddr`` (RFC 3261 §19.1.1, §18.1.1) and collect our
    provider's credentials.  The port, when the URI writes one, tells the
    guard how the host was located (a name with a port is not located like
    the same name without, RFC 3263 §4.2).
    """
    host = uri.params.get("maddr") or uri.host
    if uri.port is None:
        return host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{uri.port}"


def numeric_locate(uri: SipURI) -> Address:
    """Default next-hop location: the URI's host must be an IP address (no DNS).

    Honours ``maddr`` and the default port 5060 (5061 for sips), RFC 3263 §4.2
    without the DNS steps.

    Raises:
        ResolutionError: the host is a name; resolve it first (``txsipua.net.resolve``).
    """
    import ipaddress

    host = uri.params.get("maddr") or uri.host
    bare = host[1:-1] if host.startswith("[") else host
    try:
        ipaddress.ip_address(bare)
    except ValueError:
        raise ResolutionError(f"{host!r} is not an IP address and no resolver is configured") from None
    port = uri.port or (5061 if uri.scheme == "sips" or uri.transport == "tls" else 5060)
    return (bare, port)


SUPPORTED_EXTENSIONS: frozenset[str] = frozenset()
"""Option tags we implement; a request requiring any other gets 420 (RFC 3261 §8.2.2.3)."""


def _check_out_of_dialog(request: Request) -> tuple[int, str, list[tuple[str, str]]] | None:
    """Why a new request cannot be processed: ``(status, reason, extra headers)``, or ``None``.

    RFC 3261 §8.2.2: the Request-URI (416 for a scheme we do not handle), From,
    To and Max-Forwards must parse; an INVITE needs a From tag and exactly one
    usable Contact, and its Record-Route must parse (the dialog is built from
    them, §12.1.1); a Require naming an extension we lack gets 420 with
    Unsupported (§8.2.2.3).
    """
    method = request.method
    try:
        # each accessor parses its field (cached) and raises ParseError if it is malformed
        _ = (request.uri, request.from_, request.to, request.max_forwards)
        if method == "INVITE":
            contacts = request.contact
            if len(contacts) != 1 or contacts[0].wildcard:
                return (400, "INVITE needs exactly one Contact URI", [])
            if isinstance(contacts[0].uri, AbsoluteURI):  # §8.1.1.8: the target of the dialog
                return (416, f"INVITE Contact scheme {contacts[0].uri.scheme} is not SIP", [])
            if not request.from_.tag:
                return (400, "INVITE without From tag", [])
            _ = request.record_route
    except ParseError as e:
        return (e.status, e.detail, [])
    if method not in ("ACK", "CANCEL"):
        required = [t.strip() for v in request.headers.get_all("Require") for t in v.split(",") if t.strip()]
        unsupported = [t for t in required if t.lower() not in SUPPORTED_EXTENSIONS]
        if unsupported:
            return (420, "Bad Extension", [("Unsupported", ", ".join(unsupported))])
    return None


class ClientOperation:
    """One outgoing request through all its authentication retries.

    Attributes:
        request: the request as last sent (its CSeq and credentials change on retry).
        destination: where it is sent (the next hop's address).
        response: the final response, once it arrived.
        user_data: free for the application.
    """

    def __init__(
        self,
        core: UserAgentCore,
        request: Request,
        destination: Address,
        *,
        authenticate: bool = True,
        next_cseq: Callable[[], int] | None = None,
        owner: InviteSession | None = None,
        keep_via: bool = False,
        hop_host: str = "",
    ) -> None:
        self.core = core
        self.request = request
        self.destination = destination
        self.owner = owner
        self.keep_via = keep_via
        self.hop_host = hop_host or destination[0]
        self.hop = HopAddress.located(self.hop_host, destination, core.transport)
        self.response: Response | None = None
        self.transaction: ClientTransaction | None = None
        self.user_data: Any = None
        self._next_cseq = next_cseq
        self.attempt: AuthAttempt | None = None
        if authenticate and core.digest is not None and request.method not in ("ACK", "CANCEL"):
            self.attempt = core.digest.start()

    @property
    def method(self) -> str:
        """The request method."""
        return self.request.method

    @property
    def auth_headers(self) -> list[tuple[str, str]]:
        """The Authorization/Proxy-Authorization fields of the request as last sent."""
        return [(n, v) for n, v in self.request.headers.items() if n in AUTH_HEADERS]

    def _start(self, now: float) -> None:
        error = sips_needs_tls(self.request, self.core.transport)
        if error is not None:
            self._fail(error)
            return
        if self.attempt is not None:
            pre = self.attempt.initial_headers(
                self.request.method, self.request.uri_text, self.request.body, hop=self.hop
            )
            for name, value in pre:
                self.request.headers.add(name, value)
        self._send(now)

    def _send(self, now: float) -> None:
        core = self.core
        if not self.keep_via:
            core._stamp_via(self.request)
        try:
            self.transaction = core.layer.send_request(self.request, self.destination, now, reliable=core.reliable)
        except TransportError as e:
            self._fail(e)
            return
        core._client_ops[self.transaction] = self

    def _on_response(self, response: Response, now: float) -> None:
        status = response.status
        if status < 200:
            self._provisional(response)
            return
        if status in (401, 407) and self.attempt is not None:
            req = self.request
            try:
                headers = self.attempt.respond_to(
                    response, req.method, req.uri_text, req.body, hop=self.hop
                )
            except AuthenticationError as e:
                if e.response is None:
                    e.response = response
                self.response = response
                self._fail(e)
                return
            retry = req.copy()
            for name in AUTH_HEADERS:
                retry.headers.remove(name)
            for name, value in headers:
                retry.headers.add(name, value)
            seq = self._next_cseq() if self._next_cseq else req.cseq.seq + 1
            retry.headers.set("CSeq", str(CSeq(seq, req.method)))
            self.request = retry
            self._send(now)
            return
        if self.attempt is not None and status not in (401, 407):
            self.attempt.succeeded()
        self.response = response
        self._final(response, now)

    # hooks, overridden by the owner kinds
    def _provisional(self, response: Response) -> None:
        if self.owner is not None:
            self.owner._uac_provisional(self, response)
        else:
            self.core._emit(ev.ProvisionalResponse(self, response))

    def _final(self, response: Response, now: float) -> None:
        if self.owner is not None:
            self.owner._uac_final(self, response, now)
        else:
            self.core._emit(ev.RequestCompleted(self, response))

    def _fail(self, error: Exception) -> None:
        if self.owner is not None:
            self.owner._uac_error(self, error)
        else:
            self.core._emit(ev.RequestFailed(self, error))

    def __repr__(self) -> str:
        return f"<ClientOperation {self.request.method} {self.request.uri_text}>"


class SessionState(enum.Enum):
    """The lifecycle of an :class:`InviteSession` (see the module docstring)."""

    CALLING = "calling"
    PROCEEDING = "proceeding"
    RECEIVED = "received"
    RINGING = "ringing"
    ACCEPTED = "accepted"
    CONFIRMED = "confirmed"
    TERMINATING = "terminating"
    TERMINATED = "terminated"


class InviteSession:
    """A call, on either side (RFC 3261 §13, §14, §15).

    Attributes:
        is_uac: True when we sent the INVITE.
        state: the :class:`SessionState`.
        dialog: the :class:`~txsipua.core.dialog.Dialog` once established.
        invite: the INVITE as last sent (UAC) or as received (UAS).
        local_sdp: our last SDP body (bytes) or ``None``.
        remote_sdp: the peer's last SDP body or ``None``.
        identity: the authenticated username of the caller (UAS), if any.
        user_data: free for the application.
    """

    def __init__(self, core: UserAgentCore, is_uac: bool) -> None:
        self.core = core
        self.is_uac = is_uac
        self.state = SessionState.CALLING if is_uac else SessionState.RECEIVED
        self.dialog: Dialog | None = None
        self.invite: Request | None = None
        self.local_sdp: bytes | None = None
        self.remote_sdp: bytes | None = None
        self.identity: str | None = None
        self.user_data: Any = None
        self.ack: Request | None = None
        self._ack_destination: Address | None = None
        self._invite_op: ClientOperation | None = None
        self._cancel_pending = False
        self._cancelled = False
        self._ended = False
        self._end_reason: tuple[str, bool] | None = None
        self._bye_error: Exception | None = None
        self._ist: ServerTransaction | None = None
        self._local_tag: str = ""
        self._reinvite_op: ClientOperation | None = None
        self._pending_uas_2xx: dict[int, ServerTransaction] = {}

    # ------------------------------------------------------------------ UAC
    def _uac_provisional(self, op: ClientOperation, response: Response) -> None:
        if op is self._invite_op:
            if self.state is SessionState.CALLING:
                self.state = SessionState.PROCEEDING
            self.core._emit(ev.ProvisionalResponse(self, response))
            if self._cancel_pending:
                self._cancel_pending = False
                self._send_cancel(self.core._now)

    def _uac_final(self, op: ClientOperation, response: Response, now: float) -> None:
        core = self.core
        if op is self._invite_op:
            if 200 <= response.status < 300:
                self._on_invite_2xx(op, response, now)
            elif self.state in (SessionState.CALLING, SessionState.PROCEEDING):
                self.state = SessionState.TERMINATED
                if self._cancelled and response.status == 487:
                    core._emit(ev.CallEnded(self, "cancelled", False))
                else:
                    core._emit(ev.CallFailed(self, CallFailed(response, "call")))
                core._forget_session(self)
        elif op is self._reinvite_op:
            if 200 <= response.status < 300:
                assert self.dialog is not None
                self.dialog.refresh_target(response)
                if response.body:
                    self.remote_sdp = response.body
                self._send_ack_for(op, response, now)
            self._reinvite_op = None
            core._emit(ev.ReinviteCompleted(self, response))
            if response.status in (408, 481):
                self._end(now, "error", by_remote=True, send_bye=response.status != 481)
        elif op.method == "BYE":
            if not (200 <= response.status < 300 or response.status == 481):
                self._bye_error = SIPStatusError(response, "BYE")
            self._finish_termination()
        # other in-dialog requests (INFO, MESSAGE...) report like out-of-dialog ones
        elif op.method != "CANCEL":
            core._emit(ev.RequestCompleted(op, response))

    def _uac_error(self, op: ClientOperation, error: Exception) -> None:
        core = self.core
        if op is self._invite_op:
            if self.state in (SessionState.CALLING, SessionState.PROCEEDING):
                self.state = SessionState.TERMINATED
                core._emit(ev.CallFailed(self, error))
                core._forget_session(self)
        elif op is self._reinvite_op:
            self._reinvite_op = None
            core._emit(ev.ReinviteCompleted(self, None, error))
        elif op.method == "BYE":
            self._bye_error = error
            self._finish_termination()
        elif op.method != "CANCEL":
            core._emit(ev.RequestFailed(op, error))

    def _on_invite_2xx(self, op: ClientOperation, response: Response, now: float) -> None:
        core = self.core
        if self.dialog is not None and self.dialog.state is not DialogState.EARLY:
            if response.to.tag == self.dialog.remote_tag:
                # 2xx retransmission: send the same ACK again (RFC 3261 §13.2.2.4)
                if self.ack is not None and self._ack_destination is not None:
                    core.layer.send_stateless(self.ack, self._ack_destination, now)
            else:
                # a second 2xx from another fork: ACK it, then BYE it (§13.2.2.4)
                core._ack_and_bye_fork(op, response, now)
            return
        try:
            self.dialog = Dialog.from_uac_response(op.request, response)
        except (RemoteProtocolError, ParseError):
            # a 2xx we cannot build a dialog from: still ACK it (best effort,
            # so the peer stops retransmitting, RFC 3261 §13.2.2.4), then fail
            self._ack_unusable_2xx(op, response, now)
            self.state = SessionState.TERMINATED
            core._emit(ev.CallFailed(self, RemoteProtocolError("2xx without To tag or usable Contact")))
            core._forget_session(self)
            return
        if response.body:
            self.remote_sdp = response.body
        core._dialogs[self._dialog_key()] = self
        self._send_ack_for(op, response, now)
        self.state = SessionState.CONFIRMED
        if self._cancelled:
            # we hung up while it was ringing but the 2xx crossed our CANCEL
            self._end(now, "cancelled", by_remote=False, send_bye=True)
            return
        core._emit(ev.CallAnswered(self, response))

    def _ack_unusable_2xx(self, op: ClientOperation, response: Response, now: float) -> None:
        core = self.core
        invite = op.request
        target = invite.uri_text
        try:
            contacts = response.contact
            if contacts and not contacts[0].wildcard:
                target = str(contacts[0].uri)
        except ParseError:
            pass
        h = Headers()
        h.add("Via", core._via(core.ids.branch()))
        h.add("Max-Forwards", "70")
        for name in ("From", "To", "Call-ID"):
            value = (response if name == "To" else invite).headers.get(name)
            if value:
                h.add(name, value)
        h.add("CSeq", str(CSeq(invite.cseq.seq, "ACK")))
        for r in invite.headers.get_all("Route"):
            h.add("Route", r)
        for n, v in core._ack_credentials(self, invite, op.hop_host, op.destination):
            h.add(n, v)
        core.layer.send_stateless(Request("ACK", target, h), op.destination, now)

    def _send_ack_for(self, op: ClientOperation, response: Response, now: float) -> None:
        assert self.dialog is not None
        core = self.core
        invite = op.request
        try:
            dest = core.locate(self.dialog.next_hop())
            hop_host = hop_host_of(self.dialog.next_hop())
        except (ResolutionError, ParseError):
            dest, hop_host = op.destination, op.hop_host
        ack = self.dialog.create_request(
            "ACK",
            via=core._via(core.ids.branch()),
            cseq=invite.cseq.seq,
            headers=core._ack_credentials(self, invite, hop_host, dest),
        )
        if core.user_agent:
            ack.headers.add("User-Agent", core.user_agent)
        self.ack = ack
        self._ack_destination = dest
        core.layer.send_stateless(ack, dest, now)

    def _send_cancel(self, now: float) -> None:
        op = self._invite_op
        if op is None:
            return
        inv = op.request
        h = Headers()
        h.add("Via", inv.headers.get_all("Via")[0])
        h.add("Max-Forwards", "70")
        h.add("From", inv.headers.get("From") or "")
        h.add("To", inv.headers.get("To") or "")
        h.add("Call-ID", inv.call_id)
        h.add("CSeq", str(CSeq(inv.cseq.seq, "CANCEL")))
        for r in inv.headers.get_all("Route"):
            h.add("Route", r)
        if self.core.user_agent:
            h.add("User-Agent", self.core.user_agent)
        cancel = Request("CANCEL", inv.uri_text, h)
        cop = ClientOperation(
            self.core, cancel, op.destination, authenticate=False, owner=self, keep_via=True
        )
        cop._start(now)
        # RFC 3261 §9.1: no final response 64*T1 after the CANCEL: consider it cancelled
        self.core._schedule(now + self.core.layer.timers.t64, self._cancel_expired)

    def _cancel_expired(self, now: float) -> None:
        op = self._invite_op
        if self.state not in (SessionState.CALLING, SessionState.PROCEEDING) or op is None:
            return
        if op.transaction is not None:
            self.core._client_ops.pop(op.transaction, None)
            self.core.layer.abandon(op.transaction, now)
        self.core._remember_given_up(op, now)
        self.state = SessionState.TERMINATED
        self.core._emit(ev.CallEnded(self, "cancelled", False))
        self.core._forget_session(self)

    # ------------------------------------------------------------------ UAS
    def ring(self, now: float, *, body: bytes = b"", status: int = 180) -> None:
        """Send a provisional response (180 Ringing by default) with our To tag.

        Raises:
            LocalProtocolError: not an incoming call awaiting an answer.
        """
        if self.is_uac or self.state not in (SessionState.RECEIVED, SessionState.RINGING):
            raise LocalProtocolError(f"cannot ring in state {self.state.value}")
        assert self.invite is not None and self._ist is not None
        resp = self.core.make_response(self.invite, status, to_tag=self._local_tag, body=body)
        if body:
            resp.headers.add("Content-Type", "application/sdp")
        self.state = SessionState.RINGING
        self.core.layer.respond(self._ist, resp, now)

    def accept(self, now: float, *, body: bytes = b"", content_type: str = "application/sdp") -> None:
        """Answer the incoming call with 200 OK (and our SDP answer in ``body``).

        The 2xx is retransmitted until the ACK arrives (RFC 3261 §13.3.1.4).

        Raises:
            LocalProtocolError: not an incoming call awaiting an answer.
        """
        if self.is_uac or self.state not in (SessionState.RECEIVED, SessionState.RINGING):
            raise LocalProtocolError(f"cannot accept in state {self.state.value}")
        assert self.invite is not None and self._ist is not None
        core = self.core
        resp = core.make_response(self.invite, 200, to_tag=self._local_tag, body=body)
        if body:
            resp.headers.add("Content-Type", content_type)
        self.local_sdp = body or None
        self.dialog = Dialog.from_uas_request(self.invite, self._local_tag)
        core._dialogs[self._dialog_key()] = self
        self.state = SessionState.ACCEPTED
        self._pending_uas_2xx[self.invite.cseq.seq] = self._ist
        core._uas_invites.pop(self._ist, None)  # final: a CANCEL no longer applies (§9.2)
        core.layer.respond(self._ist, resp, now)

    def reject(self, now: float, status: int = 486, reason: str | None = None,
               headers: Iterable[tuple[str, str]] = ()) -> None:
        """Decline the incoming call with a final non-2xx response (486 Busy Here by default).

        Raises:
            LocalProtocolError: not an incoming call awaiting an answer.
        """
        if self.is_uac or self.state not in (SessionState.RECEIVED, SessionState.RINGING):
            raise LocalProtocolError(f"cannot reject in state {self.state.value}")
        assert self.invite is not None and self._ist is not None
        resp = self.core.make_response(self.invite, status, reason, to_tag=self._local_tag)
        for n, v in headers:
            resp.headers.add(n, v)
        self.state = SessionState.TERMINATED
        self.core._uas_invites.pop(self._ist, None)
        self.core.layer.respond(self._ist, resp, now)
        self.core._forget_session(self)

    def _on_ack(self, request: Request, now: float) -> None:
        seq = request.cseq.seq
        stxn = self._pending_uas_2xx.pop(seq, None)
        if stxn is None:
            return  # retransmitted ACK, absorbed
        self.core.layer.ack_received(stxn, now)
        if request.body and self.local_sdp is not None and self.remote_sdp is None:
            self.remote_sdp = request.body
        if self.state is SessionState.ACCEPTED:
            self.state = SessionState.CONFIRMED
            self.core._emit(ev.CallConfirmed(self))

    def _on_ack_timeout(self, stxn: ServerTransaction, now: float) -> None:
        for seq, t in list(self._pending_uas_2xx.items()):
            if t is stxn:
                del self._pending_uas_2xx[seq]
                if self.state in (SessionState.ACCEPTED, SessionState.CONFIRMED):
                    self._end(now, "no-ack", by_remote=True, send_bye=True)

    # -------------------------------------------------------------- common
    def hangup(self, now: float) -> None:
        """End the call the SIP way (RFC 3261 §15): CANCEL while ringing, BYE once connected.

        As UAC before any provisional response, the CANCEL waits for the first
        1xx (§9.1).  As UAS before answering, the call is rejected with 603.
        Idempotent once the call is ending.
        """
        s = self.state
        if s in (SessionState.TERMINATED, SessionState.TERMINATING):
            return
        if self.is_uac:
            if s is SessionState.CALLING:
                self._cancelled = True
                self._cancel_pending = True
            elif s is SessionState.PROCEEDING:
                if not self._cancelled:
                    self._cancelled = True
                    self._send_cancel(now)
            else:
                self._end(now, "hangup", by_remote=False, send_bye=True)
        else:
            if s in (SessionState.RECEIVED, SessionState.RINGING):
                self.reject(now, 603)
                self.core._emit(ev.CallEnded(self, "hangup", False))
            else:
                self._end(now, "hangup", by_remote=False, send_bye=True)

    def _end(self, now: float, reason: str, *, by_remote: bool, send_bye: bool) -> None:
        if self._ended:
            return
        self._ended = True
        self._end_reason = (reason, by_remote)
        if send_bye and self.dialog is not None and self.dialog.state is not DialogState.TERMINATED:
            # CallEnded waits for the BYE's final response (or its failure), so
            # whoever waits for the end may close the socket without losing
            # the BYE's retransmissions (RFC 3261 §15.1.1)
            self.state = SessionState.TERMINATING
            try:
                self.request("BYE", now)
            except LocalProtocolError as e:  # e.g. the next hop cannot be located
                self._bye_error = e
                self._finish_termination()
        else:
            self._finish_termination()

    def _finish_termination(self) -> None:
        self.state = SessionState.TERMINATED
        if self.dialog is not None:
            self.dialog.terminate()
        self.core._forget_session(self)
        if self._end_reason is not None:
            reason, by_remote = self._end_reason
            self._end_reason = None
            self.core._emit(ev.CallEnded(self, reason, by_remote, self._bye_error))

    def request(
        self,
        method: str,
        now: float,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> ClientOperation:
        """Send an in-dialog request (BYE, INFO, MESSAGE, REFER...), retried on 401/407.

        Completion is reported with :class:`~txsipua.core.events.RequestCompleted`
        or :class:`~txsipua.core.events.RequestFailed` (BYE ends the session).

        Raises:
            LocalProtocolError: there is no dialog yet.
        """
        if self.dialog is None:
            raise LocalProtocolError(f"cannot send {method} outside a dialog")
        core = self.core
        extra = list(headers)
        if content_type and body:
            extra.append(("Content-Type", content_type))
        if core.user_agent:
            extra.append(("User-Agent", core.user_agent))
        req = self.dialog.create_request(method, via=core._via(""), headers=extra, body=body)
        dialog = self.dialog
        try:
            dest = core.locate(dialog.next_hop())
        except ResolutionError as e:
            raise LocalProtocolError(str(e)) from e
        op = ClientOperation(core, req, dest, next_cseq=dialog.next_seq, owner=self,
                             hop_host=hop_host_of(dialog.next_hop()))
        op._start(now)
        return op

    def reinvite(self, now: float, body: bytes, content_type: str = "application/sdp") -> ClientOperation:
        """Send a re-INVITE with a new offer (hold/resume, RFC 3261 §14.1, RFC 3264 §8.4).

        Raises:
            LocalProtocolError: not confirmed, or a re-INVITE is already pending (§14.1).
        """
        if self.state is not SessionState.CONFIRMED or self.dialog is None:
            raise LocalProtocolError("re-INVITE needs a confirmed call")
        if self._reinvite_op is not None:
            raise LocalProtocolError("a re-INVITE is already in progress")
        core = self.core
        req = self.dialog.create_request(
            "INVITE", via=core._via(""), contact=core.contact_value(), body=body,
            headers=[("Content-Type", content_type)] + ([("User-Agent", core.user_agent)] if core.user_agent else []),
        )
        dest = core.locate(self.dialog.next_hop())
        op = ClientOperation(core, req, dest, next_cseq=self.dialog.next_seq, owner=self,
                             hop_host=hop_host_of(self.dialog.next_hop()))
        self.local_sdp = body
        self._reinvite_op = op
        op._start(now)
        return op

    def _dialog_key(self) -> tuple[str, str, str]:
        assert self.dialog is not None
        return (self.dialog.call_id, self.dialog.local_tag, self.dialog.remote_tag)

    def _on_in_dialog_request(self, request: Request, stxn: ServerTransaction, now: float) -> None:
        core = self.core
        assert self.dialog is not None
        try:
            self.dialog.check_request(request)
        except RemoteProtocolError as e:
            core.layer.respond(stxn, core.make_response(request, e.status, e.detail), now)
            return
        method = request.method
        if method == "BYE":
            core.layer.respond(stxn, core.make_response(request, 200), now)
            # RFC 3261 §15.1.2: a BYE before the ACK also ends the call; stop
            # the 2xx retransmissions of every INVITE still waiting for its ACK
            for pending in self._pending_uas_2xx.values():
                core.layer.ack_received(pending, now)
            self._pending_uas_2xx.clear()
            if not self._ended:
                self._ended = True
                self.core._emit(ev.CallEnded(self, "bye", True))
            self._finish_termination()
        elif method == "INVITE":
            if self._reinvite_op is not None or self._pending_uas_2xx:
                core.layer.respond(stxn, core.make_response(request, 491), now)
                return
            self.dialog.refresh_target(request)
            core._emit(ev.IncomingRequest(request, stxn, self))
        else:
            if method in ("UPDATE",):
                self.dialog.refresh_target(request)
            core._emit(ev.IncomingRequest(request, stxn, self))

    def answer_reinvite(self, transaction: ServerTransaction, request: Request, now: float,
                        *, status: int = 200, body: bytes = b"") -> None:
        """Answer a received re-INVITE (RFC 3261 §14.2); a 2xx waits for its ACK like the first."""
        core = self.core
        resp = core.make_response(request, status, body=body)
        if body:
            resp.headers.add("Content-Type", "application/sdp")
        if 200 <= status < 300:
            if request.body:
                self.remote_sdp = request.body
            if body:
                self.local_sdp = body
            self._pending_uas_2xx[request.cseq.seq] = transaction
        core.layer.respond(transaction, resp, now)

    @property
    def call_id(self) -> str:
        """The Call-ID of the call."""
        if self.dialog is not None:
            return self.dialog.call_id
        assert self.invite is not None
        return self.invite.call_id

    def __repr__(self) -> str:
        side = "UAC" if self.is_uac else "UAS"
        return f"<InviteSession {side} {self.state.value}>"


@attrs.define
class _ParkedRequest:
    request: Request
    transaction: ServerTransaction
    source: Address


class UserAgentCore:
    """The sans-IO user agent: UAC and UAS cores over the transaction layer.

    Args:
        local: our ``(host, port)`` as seen in Via and Contact.
        transport: ``"UDP"``, ``"TCP"`` or ``"TLS"`` for Via and Contact.
        ids: the identifier generator (branches, tags, Call-IDs).
        timers: RFC 3261 T1/T2/T4 (seconds).
        digest: the digest client answering 401/407 challenges, or ``None``.
        authenticator: a :class:`~txsipua.auth.server.DigestServer` that
            challenges incoming out-of-dialog requests (INVITE, REGISTER,
            MESSAGE...; never ACK or CANCEL), or ``None``.
        register_authenticator: challenges REGISTER instead of
            ``authenticator`` (a registrar answers 401 even where the rest is
            challenged with 407 in the proxy role, RFC 3261 §22.3), or ``None``.
        user_agent: the User-Agent/Server header value ("" for none).
        contact_user: the user part of our Contact URI.
        locate: maps a next-hop URI to an address (default: numeric hosts only).
        reliable: True when the transport is reliable (TCP/TLS: no retransmissions).
    """

    def __init__(
        self,
        *,
        local: Address,
        transport: str = "UDP",
        ids: IdGenerator | None = None,
        timers: Timers | None = None,
        digest: DigestClient | None = None,
        authenticator: DigestServer | None = None,
        register_authenticator: DigestServer | None = None,
        user_agent: str = "txsipua/0.1",
        contact_user: str | None = None,
        locate: Callable[[SipURI], Address] = numeric_locate,
        reliable: bool = False,
    ) -> None:
        self.local = local
        self.transport = transport.upper()
        self.ids = ids or IdGenerator()
        self.layer = TransactionLayer(timers=timers or Timers())
        self.digest = digest
        self.authenticator = authenticator
        self.register_authenticator = register_authenticator
        self.user_agent = user_agent
        self.contact_user = contact_user
        self.locate = locate
        self.reliable = reliable
        self._events: deque[ev.Event] = deque()
        self._client_ops: dict[ClientTransaction, ClientOperation] = {}
        self._dialogs: dict[tuple[str, str, str], InviteSession] = {}
        self._uas_invites: dict[ServerTransaction, InviteSession] = {}
        self._parked: dict[int, _ParkedRequest] = {}
        self._timers: list[tuple[float, int, Callable[[float], None]]] = []
        self._given_up: dict[tuple[str, str], ClientOperation] = {}
        self._timer_seq = 0
        self._now = 0.0

    # ----------------------------------------------------------- contract
    def receive(self, data: bytes, source: Address, now: float) -> None:
        """Feed one datagram (or framed stream message) received from ``source``.

        Never raises on bad input: malformed requests are answered with 400
        (or the status the defect calls for) by the transaction layer.
        """
        self._now = now
        self.layer.receive(data, source, now, reliable=self.reliable)
        self._drain_layer(now)

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at ``now`` (seconds, absolute)."""
        self._now = now
        self.layer.handle_timer(now)
        self._drain_layer(now)
        timers = self._timers
        while timers and timers[0][0] <= now:
            _, _, fire = heapq.heappop(timers)
            fire(now)
            self._drain_layer(now)

    def get_timer(self) -> float | None:
        """The next absolute deadline (seconds), or ``None``."""
        t = self.layer.get_timer()
        if self._timers:
            own = self._timers[0][0]
            return own if t is None or own < t else t
        return t

    def _schedule(self, deadline: float, fire: Callable[[float], None]) -> None:
        self._timer_seq += 1
        heapq.heappush(self._timers, (deadline, self._timer_seq, fire))

    def transport_error(self, destination: Address, now: float) -> None:
        """Report that nothing can be sent to ``destination`` (RFC 3261 §18.4).

        Requests in progress there fail with
        :class:`~txsipua.errors.TransportError` at once instead of timing out.
        """
        self._now = now
        self.layer.transport_error(destination, now)
        self._drain_layer(now)

    def outbox(self) -> list[Outgoing]:
        """Everything to send now, in order; the list is drained."""
        return self.layer.outbox()

    def next_event(self) -> ev.Event | None:
        """The next event for the application, or ``None``."""
        if self._events:
            return self._events.popleft()
        return None

    def _emit(self, event: ev.Event) -> None:
        self._events.append(event)

    # ------------------------------------------------------- construction
    def _via(self, branch: str) -> str:
        host, port = self.local
        b = f";branch={branch}" if branch else ""
        rport = ";rport" if self.transport == "UDP" else ""
        return f"SIP/2.0/{self.transport} {format_host(host)}:{port}{rport}{b}"

    def _stamp_via(self, request: Request) -> None:
        request.headers.set("Via", self._via(self.ids.branch()))

    def contact_uri(self) -> SipURI:
        """Our Contact URI (RFC 3261 §8.1.1.8)."""
        host, port = self.local
        params: dict[str, str | None] = {}
        if self.transport != "UDP":
            params["transport"] = self.transport.lower()
        scheme = "sips" if self.transport == "TLS" else "sip"
        return SipURI(scheme=scheme, user=self.contact_user, host=format_host(host), port=port, params=params)

    def contact_value(self) -> str:
        """Our Contact header value, ``<sip:user@host:port>``."""
        return f"<{self.contact_uri()}>"

    def new_request(
        self,
        method: str,
        request_uri: SipURI | str,
        from_: NameAddr,
        to: NameAddr,
        *,
        call_id: str | None = None,
        cseq: int = 1,
        contact: bool = True,
        route: Iterable[SipURI] = (),
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Request:
        """Build an out-of-dialog request (RFC 3261 §8.1.1).

        A From tag is added when ``from_`` has none; the Via is stamped with a
        fresh branch when the request is sent.
        """
        if from_.tag is None:
            from_ = from_.with_tag(self.ids.tag())
        h = Headers()
        h.add("Via", self._via(""))
        h.add("Max-Forwards", "70")
        h.add("From", str(from_))
        h.add("To", str(to))
        h.add("Call-ID", call_id or self.ids.call_id(self.local[0]))
        h.add("CSeq", str(CSeq(cseq, method)))
        for r in route:
            h.add("Route", f"<{r}>")
        if contact and method in ("INVITE", "REGISTER", "SUBSCRIBE", "REFER", "OPTIONS"):
            h.add("Contact", self.contact_value())
        if method == "INVITE":
            h.add("Allow", ALLOW)
        if self.user_agent:
            h.add("User-Agent", self.user_agent)
        for n, v in headers:
            h.add(n, v)
        if body and content_type:
            h.add("Content-Type", content_type)
        return Request(method, request_uri, h, body)

    def make_response(
        self,
        request: Request,
        status: int,
        reason: str | None = None,
        *,
        to_tag: str | None = None,
        body: bytes = b"",
        headers: Iterable[tuple[str, str]] = (),
    ) -> Response:
        """Build a response to ``request`` (RFC 3261 §8.2.6).

        Copies Via, From, Call-ID, CSeq and To (adding ``to_tag`` when the To
        has none and the status is above 100); dialog-creating responses to
        INVITE get our Contact and a copy of the Record-Route (§12.1.1).
        """
        # one pass over the request's already-validated fields (hot path of a UAS)
        vias: list[tuple[str, str, str]] = []
        rrs: list[tuple[str, str, str]] = []
        copied: dict[str, tuple[str, str, str]] = {}
        for f in request.headers._fields:
            k = f[0]
            if k == "via":
                vias.append(f)
            elif k == "record-route":
                rrs.append(f)
            elif k in _COPIED and k not in copied:
                copied[k] = f
        if to_tag is None and status > 100:
            to_tag = self.ids.tag()  # RFC 3261 §8.2.6.2: a UAS adds a To tag when there is none
        add_tag = False
        if to_tag and status > 100:
            # the To's tag parameter as dialogs read it (not ";tag=" in a URI, a quoted
            # display name or a quoted parameter)
            try:
                add_tag = request.to_tag is None
            except ParseError:  # an unparsable To: the plain text decides
                add_tag = ";tag=" not in (copied.get("to") or ("", "", ""))[2].replace(" ", "").lower()
        fields = vias
        for k in ("from", "to", "call-id", "cseq"):
            f = copied.get(k) or (k, _CANON_COPIED[k], "")
            if k == "to" and add_tag:
                f = (k, f[1], f"{f[2]};tag={to_tag}")
            fields.append(f)
        if 100 < status < 300 and request.method in ("INVITE", "SUBSCRIBE"):
            fields.extend(rrs)
            fields.append(("contact", "Contact", self.contact_value()))
        if status == 405 or (200 <= status < 300 and request.method in ("INVITE", "OPTIONS")):
            fields.append(("allow", "Allow", ALLOW))
        if self.user_agent:
            fields.append(("server", "Server", self.user_agent))
        h = Headers._from_parsed(fields)
        for n, v in headers:
            h.add(n, v)
        return Response(status, reason, h, body)

    def respond(self, transaction: ServerTransaction, response: Response, now: float) -> None:
        """Send a response on a server transaction (RFC 3261 §17.2)."""
        self._now = now
        self.layer.respond(transaction, response, now)
        self._drain_layer(now)

    # ---------------------------------------------------------------- UAC
    def send_request(
        self,
        request: Request,
        destination: Address,
        now: float,
        *,
        authenticate: bool = True,
        hop_host: str = "",
    ) -> ClientOperation:
        """Send an out-of-dialog non-INVITE request (REGISTER, OPTIONS, MESSAGE...).

        A 401/407 is answered with credentials from the digest client and the
        request resent (RFC 3261 §22.2).  The outcome is a
        :class:`~txsipua.core.events.RequestCompleted` or
        :class:`~txsipua.core.events.RequestFailed` event.

        Args:
            request: from :meth:`new_request`.
            destination: the next hop's address.
            now: seconds, absolute.
            authenticate: False to report 401/407 as the final response.
            hop_host: the next hop's host as named in the URI (digest-leak guard).

        Raises:
            LocalProtocolError: for INVITE (use :meth:`invite`) or ACK.
        """
        if request.method in ("INVITE", "ACK"):
            raise LocalProtocolError(f"use invite() for INVITE; ACK is sent by the core ({request.method})")
        self._now = now
        op = ClientOperation(self, request, destination, authenticate=authenticate, hop_host=hop_host)
        op._start(now)
        self._drain_layer(now)
        return op

    def invite(self, request: Request, destination: Address, now: float, *, hop_host: str = "") -> InviteSession:
        """Start a call with an INVITE from :meth:`new_request` (RFC 3261 §13.2).

        Outcome events: ProvisionalResponse*, then CallAnswered or CallFailed;
        later CallEnded.
        """
        if request.method != "INVITE":
            raise LocalProtocolError("invite() sends INVITE requests only")
        self._now = now
        session = InviteSession(self, is_uac=True)
        session.invite = request
        session.local_sdp = request.body or None
        op = ClientOperation(self, request, destination, owner=session, hop_host=hop_host)
        session._invite_op = op
        op._start(now)
        self._drain_layer(now)
        return session

    def _ack_and_bye_fork(self, op: ClientOperation, response: Response, now: float) -> None:
        try:
            d = Dialog.from_uac_response(op.request, response)
        except (RemoteProtocolError, ParseError):
            return
        try:
            dest = self.locate(d.next_hop())
            hop_host = hop_host_of(d.next_hop())
        except (ResolutionError, ParseError):
            dest, hop_host = op.destination, op.hop_host
        ack = d.create_request("ACK", via=self._via(self.ids.branch()), cseq=op.request.cseq.seq,
                               headers=self._ack_credentials(op.owner, op.request, hop_host, dest))
        self.layer.send_stateless(ack, dest, now)
        bye = d.create_request("BYE", via=self._via(""))
        ClientOperation(self, bye, dest, authenticate=False)._start(now)

    def _ack_credentials(self, owner: Any, invite: Request, hop_host: str, dest: Address) -> list[tuple[str, str]]:
        """The INVITE's credentials its 2xx ACK may repeat (RFC 3261 §13.2.2.4): those of realms
        the ACK's next hop (``hop_host`` located at ``dest``) is trusted for; the digest-leak
        guard leaves out the others, with a :class:`~txsipua.core.events.CredentialsWithheld`."""
        fields = [(n, v) for n, v in invite.headers.items() if n in AUTH_HEADERS]
        if self.digest is None or not fields:
            return fields
        hop = HopAddress.located(hop_host, dest, self.transport)
        kept, withheld = self.digest.credentials_for_hop(fields, hop)
        if withheld is not None:
            self._emit(ev.CredentialsWithheld(owner, "ACK", withheld))
        return kept

    # ---------------------------------------------------------------- UAS
    def _drain_layer(self, now: float) -> None:
        layer = self.layer
        while True:
            e = layer.next_event()
            if e is None:
                return
            try:
                self._dispatch(e, now)
            except ParseError:
                # a typed accessor found a malformed header late: drop, never crash
                continue

    def _dispatch(self, e: Any, now: float) -> None:
        if isinstance(e, ResponseReceived):
            op = self._client_ops.get(e.transaction)
            if op is not None:
                op._on_response(e.response, now)
        elif isinstance(e, RequestReceived):
            self._on_request(e.request, e.transaction, e.source, now)
        elif isinstance(e, StrayResponse):
            self._on_stray(e.response, now)
        elif isinstance(e, TransactionTimedOut):
            txn = e.transaction
            if isinstance(txn, ClientTransaction):
                op = self._client_ops.pop(txn, None)
                if op is not None:
                    if e.timer == "transport":
                        op._fail(TransportError(f"could not send {op.method} to {op.destination}"))
                    else:
                        op._fail(TransactionTimeout(e.timer, op.method))
            elif isinstance(txn, ServerTransaction):
                for session in list(self._dialogs.values()) + list(self._uas_invites.values()):
                    if txn in session._pending_uas_2xx.values():
                        session._on_ack_timeout(txn, now)
                        break
        elif isinstance(e, TransactionTerminated):
            txn = e.transaction
            if isinstance(txn, ClientTransaction):
                self._client_ops.pop(txn, None)
            elif isinstance(txn, ServerTransaction):
                self._uas_invites.pop(txn, None)

    def _on_stray(self, response: Response, now: float) -> None:
        # a 2xx retransmission for an INVITE whose transaction is gone: re-ACK
        try:
            if not (200 <= response.status < 300) or response.cseq.method != "INVITE":
                return
            key = (response.call_id, response.from_tag or "", response.to_tag or "")
        except ParseError:
            return
        session = self._dialogs.get(key)
        if (
            session is not None
            and session.ack is not None
            and session._ack_destination is not None
            and session.ack.cseq.seq == response.cseq.seq
        ):
            self.layer.send_stateless(session.ack, session._ack_destination, now)
            return
        # a 2xx for an INVITE given up after its CANCEL (§9.1): ACK it, then BYE (§13.2.2.4)
        given_up = self._given_up.pop((response.call_id, response.from_tag or ""), None)
        if given_up is not None and session is None:
            self._ack_and_bye_fork(given_up, response, now)

    def _on_request(self, request: Request, stxn: ServerTransaction | None, source: Address, now: float) -> None:
        method = request.method
        to_tag = request.to_tag
        if method == "ACK":
            if to_tag:
                session = self._dialogs.get((request.call_id, to_tag, request.from_tag or ""))
                if session is not None:
                    session._on_ack(request, now)
            return
        assert stxn is not None
        if method == "CANCEL":
            self._on_cancel(request, stxn, now)
            return
        if to_tag:
            session = self._dialogs.get((request.call_id, to_tag, request.from_tag or ""))
            if session is None:
                self.layer.respond(stxn, self.make_response(request, 481), now)
                return
            session._on_in_dialog_request(request, stxn, now)
            return
        if method not in _KNOWN_METHODS:
            self.layer.respond(stxn, self.make_response(request, 501), now)
            return
        # out of dialog: the fields the UAS relies on must parse (RFC 3261 §8.2.2)
        problem = _check_out_of_dialog(request)
        if problem is not None:
            status, detail, extra = problem
            self.layer.respond(stxn, self.make_response(request, status, detail, headers=extra), now)
            return
        # authenticate when configured (RFC 3261 §22.1)
        auth = self._authenticator_for(method)
        if auth is not None and method not in ("OPTIONS",):
            outcome = auth.inspect(request, now)
            if isinstance(outcome, NeedChallenge):
                resp = auth.challenge(request, now, stale=outcome.stale)
                self.layer.respond(stxn, resp, now)
                return
            if isinstance(outcome, BadAuthorization):
                self.layer.respond(stxn, self.make_response(request, outcome.status, outcome.reason), now)
                return
            if isinstance(outcome, DigestCredentials):
                self._parked[id(stxn)] = _ParkedRequest(request, stxn, source)
                self._emit(ev.AuthenticationNeeded(request, stxn, outcome))
                return
        self._accept_request(request, stxn, now, None)

    def _authenticator_for(self, method: str) -> DigestServer | None:
        if method == "REGISTER" and self.register_authenticator is not None:
            return self.register_authenticator
        return self.authenticator

    def authentication_result(self, event: ev.AuthenticationNeeded, ok: bool, identity: str | None, now: float) -> None:
        """Continue a request parked by :class:`~txsipua.core.events.AuthenticationNeeded`.

        Args:
            event: the event.
            ok: True when the credentials were verified.
            identity: the authenticated username.
            now: seconds, absolute.
        """
        self._now = now
        parked = self._parked.pop(id(event.transaction), None)
        if parked is None:
            return
        if ok:
            self._accept_request(parked.request, parked.transaction, now, identity)
        else:
            auth = self._authenticator_for(parked.request.method)
            assert auth is not None
            # credentials refused only because their nonce aged out of the
            # replay check get a stale=true challenge (RFC 7616 §3.3)
            stale = bool(getattr(event.credentials, "stale", False))
            resp = auth.challenge(parked.request, now, stale=stale)
            self.layer.respond(parked.transaction, resp, now)
        self._drain_layer(now)

    def _accept_request(self, request: Request, stxn: ServerTransaction, now: float, identity: str | None) -> None:
        method = request.method
        if method == "INVITE":
            session = InviteSession(self, is_uac=False)
            session.invite = request
            session._ist = stxn
            session._local_tag = self.ids.tag()
            session.identity = identity
            session.remote_sdp = request.body or None
            self._uas_invites[stxn] = session
            self._emit(ev.IncomingCall(session, request))
        elif method == "OPTIONS":
            resp = self.make_response(request, 200, headers=[("Accept", "application/sdp"), ("Supported", "")])
            resp.headers.remove("Supported")
            self.layer.respond(stxn, resp, now)
        elif method == "BYE":
            self.layer.respond(stxn, self.make_response(request, 481), now)
        elif method in _APP_METHODS:
            self._emit(ev.IncomingRequest(request, stxn, None, identity))
        else:
            self.layer.respond(stxn, self.make_response(request, 405), now)

    def _on_cancel(self, request: Request, stxn: ServerTransaction, now: float) -> None:
        ist = self.layer.matching_invite(request)
        if ist is None:
            self.layer.respond(stxn, self.make_response(request, 481), now)
            return
        # a CANCEL matching an INVITE already answered has no effect, but is answered 200 (§9.2)
        self.layer.respond(stxn, self.make_response(request, 200), now)
        session = self._uas_invites.pop(ist, None)
        if session is None:
            return
        if session.state in (SessionState.RECEIVED, SessionState.RINGING):
            assert session.invite is not None
            resp = self.make_response(session.invite, 487, to_tag=session._local_tag)
            session.state = SessionState.TERMINATED
            self.layer.respond(ist, resp, now)
            session._ended = True
            self._emit(ev.CallEnded(session, "cancelled", True))
            self._forget_session(session)

    def _remember_given_up(self, op: ClientOperation, now: float) -> None:
        """Keep an abandoned INVITE for 64*T1 so that a late 2xx is still ACKed and BYEd."""
        try:
            key = (op.request.call_id, op.request.from_tag or "")
        except ParseError:
            return
        self._given_up[key] = op

        def forget(_now: float) -> None:
            self._given_up.pop(key, None)

        self._schedule(now + self.layer.timers.t64, forget)

    def abort(self, session: InviteSession, now: float, error: Exception) -> None:
        """Give up a call at once: its client transactions are destroyed, nothing more is sent.

        For a UA shutting down with hang-ups still unconfirmed.  A
        :class:`~txsipua.core.events.CallEnded` (reason ``"hangup"``,
        ``bye_error=error``) follows unless the call had ended already.
        """
        self._now = now
        for txn, op in list(self._client_ops.items()):
            if op.owner is session:
                del self._client_ops[txn]
                self.layer.abandon(txn, now)
        if session.state is not SessionState.TERMINATED:
            if session._end_reason is None:
                ringing = session.state in (SessionState.CALLING, SessionState.PROCEEDING)
                session._end_reason = ("cancelled" if ringing else "hangup", False)
            session._bye_error = session._bye_error or error
            session._finish_termination()
        self._drain_layer(now)

    def _forget_session(self, session: InviteSession) -> None:
        if session.dialog is not None:
            self._dialogs.pop(session._dialog_key(), None)

    @property
    def session_count(self) -> int:
        """The number of calls with a live dialog (for leak checks and memory figures)."""
        return len(self._dialogs)


__all__ = ["ClientOperation", "InviteSession", "SessionState", "UserAgentCore", "hop_host_of", "numeric_locate"]
