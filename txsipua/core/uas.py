"""The UAS core: checks on received requests and method dispatch (RFC 3261 §8.2, §9.2, §12.2.2).

Theory of operation
-------------------
:class:`UasCore` receives every request the transaction layer passes up
(``RequestReceived``) and decides who answers it:

1. ACK goes to the session of its dialog (§13.3.1.4); an ACK of nothing is
   dropped.  CANCEL is answered 200 (or 481 when it matches no INVITE) and,
   while the INVITE is unanswered, cancels its session (§9.2).
2. A request with a To tag is in a dialog: it goes to the session found by
   dialog id in the dialog table, a NOTIFY to the subscription of ours its
   To tag and Call-ID name (RFC 6665 §4.1.3), or it gets 481 (§12.2.2).
3. Out of a dialog: method (501 when unknown, §8.2.1); a new INVITE past
   ``max_calls`` is refused (below).
4. Digest authentication when configured (§22.1), before the request is
   examined (§8.2: "once a request is authenticated (or authentication is
   skipped), the UAS MUST examine the request"): a request without usable
   credentials is challenged (or refused) at once.  Then the §8.2 checks on
   the fields the UAS relies on (400, 416 for a Request-URI scheme we do not
   handle, §8.2.2.1) and Require (420 with Unsupported, §8.2.2.3).  A request
   with credentials that passes them is *parked* and the application
   verifies the credentials (``AuthenticationNeeded``, then
   :meth:`UasCore.authentication_result`).
5. Method dispatch: INVITE makes an
   :class:`~txsipua.core.invite_server.InviteServerSession`
   (``IncomingCall``; with Replaces it names the session it replaces, or is
   refused as :mod:`txsipua.core.replaces` says), or 422 with Min-SE when its
   Session-Expires is below ours (RFC 4028 §9); OPTIONS is answered 200 here
   (§11.2); BYE and PRACK out of a dialog get 481; MESSAGE, INFO, REFER,
   NOTIFY, REGISTER, SUBSCRIBE,
   UPDATE and PUBLISH go to the application (``IncomingRequest``); other
   known methods get 405 with Allow (§8.2.1).

A new INVITE (one without a To tag) of a known method is refused with
503 and Retry-After (RFC 3261 §21.5.4) while the core already holds
``max_calls`` live INVITE sessions, before any challenge; the refusal is
counted (``stats["calls_refused"]``) and reported with
:class:`~txsipua.core.events.CallRefused` for a log line.

A :class:`~txsipua.errors.ParseError` met anywhere on the way (a field is
parsed when first read: the From tag of an in-dialog request, the Contact of a
re-INVITE...) answers the request with the error's status (400 unless it names
another) and a reason naming the defect, like the transaction layer's answer
to a message that does not parse (§8.2, §21.4.1); an ACK with one is dropped.
So no server transaction is left without a final response: each request is
answered here, or handed to a session or the application in an event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from txsipua.auth.server import BadAuthorization, DigestCredentials, NeedChallenge
from txsipua.core import capabilities
from txsipua.core import events as ev
from txsipua.core.invite_server import InviteServerSession
from txsipua.core.replaces import find_replaced
from txsipua.core.session_timer import refusal
from txsipua.core.transaction import ServerTransaction, State
from txsipua.core.transport import Address
from txsipua.errors import ParseError
from txsipua.sip.message import Request, reason_phrase
from txsipua.sip.uri import AbsoluteURI

if TYPE_CHECKING:  # pragma: no cover
    from txsipua.auth.server import DigestServer
    from txsipua.core.context import CoreContext

SUPPORTED_EXTENSIONS: frozenset[str] = capabilities.SUPPORTED_EXTENSIONS
"""Option tags we implement; a request requiring any other gets 420 (RFC 3261 §8.2.2.3)."""

APP_METHODS = frozenset({"MESSAGE", "INFO", "REFER", "NOTIFY", "REGISTER", "SUBSCRIBE", "UPDATE", "PUBLISH"})
"""Methods the application answers (``IncomingRequest``)."""

KNOWN_METHODS = frozenset(
    {"INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "REGISTER", "MESSAGE", "INFO", "REFER",
     "NOTIFY", "SUBSCRIBE", "UPDATE", "PRACK", "PUBLISH"}
)
"""Methods we know; any other gets 501 (RFC 3261 §8.2.1)."""


def check_out_of_dialog(request: Request) -> tuple[int, str, list[tuple[str, str]]] | None:
    """Why a new request cannot be processed: ``(status, reason, extra headers)``, or ``None``.

    RFC 3261 §8.2.2: the Request-URI (416 for a scheme we do not handle), From,
    To and Max-Forwards must parse; an INVITE needs a From tag and exactly one
    usable SIP or SIPS Contact (§8.1.1.8; 400 otherwise: only the Request-URI
    scheme gives 416), and its Record-Route must parse (the dialog is built from
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
            if isinstance(contacts[0].uri, AbsoluteURI):  # §8.1.1.8: the dialog's remote target
                return (400, f"INVITE Contact must be a SIP or SIPS URI, not {contacts[0].uri.scheme}", [])
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


@attrs.define
class _Parked:
    request: Request
    transaction: ServerTransaction
    source: Address


class UasCore:
    """Answers or routes every received request (see the module docstring).

    Args:
        context: the core's shared state.
        authenticator: challenges out-of-dialog requests other than
            OPTIONS, ACK and CANCEL, or ``None``.
        register_authenticator: challenges REGISTER instead, or ``None``.
    """

    def __init__(self, context: CoreContext, authenticator: DigestServer | None,
                 register_authenticator: DigestServer | None) -> None:
        self.context = context
        self.authenticator = authenticator
        self.register_authenticator = register_authenticator
        self._parked: dict[int, _Parked] = {}

    def on_request(self, request: Request, stxn: ServerTransaction | None, source: Address, now: float) -> None:
        """Route or answer a received request (``stxn`` is ``None`` only for an ACK).

        Never raises ParseError: a malformed field found on the way is answered
        (:meth:`answer_parse_error`).
        """
        try:
            self._route(request, stxn, source, now)
        except ParseError as e:
            self.answer_parse_error(request, stxn, e, now)

    def answer_parse_error(self, request: Request, stxn: ServerTransaction | None, error: ParseError,
                           now: float) -> None:
        """Answer ``request`` with ``error.status`` (400 unless 300-699) and a reason naming the defect.

        Nothing is sent for an ACK (``stxn`` is ``None``) or when the server
        transaction has its final response already; both are counted in the
        core's ``stats["malformed_late"]``.
        """
        ctx = self.context
        if stxn is None or stxn.state not in (State.TRYING, State.PROCEEDING):
            ctx.stats["malformed_late"] += 1
            return
        status = error.status if 300 <= error.status <= 699 else 400
        detail = "".join(c if c.isprintable() else " " for c in error.detail)[:120]
        ctx.respond(stxn, ctx.make_response(request, status, f"{reason_phrase(status)} ({detail})"), now)

    def _route(self, request: Request, stxn: ServerTransaction | None, source: Address, now: float) -> None:
        ctx = self.context
        method = request.method
        to_tag = request.to_tag
        if method == "ACK":
            if to_tag:
                session = ctx.dialogs.get((request.call_id, to_tag, request.from_tag or ""))
                if session is not None:
                    session.on_ack(request, now)
            return
        assert stxn is not None
        if method == "CANCEL":
            self._on_cancel(request, stxn, now)
            return
        if to_tag:
            session = ctx.dialogs.get((request.call_id, to_tag, request.from_tag or ""))
            if session is None:
                subscription = ctx.subscriptions.get((request.call_id, to_tag)) if method == "NOTIFY" else None
                if subscription is not None:  # RFC 6665 §4.1.3
                    subscription.on_notify(request, stxn, now)
                else:
                    ctx.respond(stxn, ctx.make_response(request, 481), now)
            else:
                session.on_in_dialog_request(request, stxn, now)
            return
        if method not in KNOWN_METHODS:
            ctx.respond(stxn, ctx.make_response(request, 501), now)
            return
        if method == "INVITE" and ctx.live_calls >= ctx.max_calls:
            self._refuse_call(request, stxn, now)
            return
        auth = self._authenticator_for(method)
        if auth is not None and method != "OPTIONS":
            # RFC 3261 §8.2: authentication comes before the request is examined,
            # so a request without usable credentials is challenged (or refused)
            # without the §8.2.2 checks; credentials to verify are checked first
            # (the verification may wait on a credential store)
            outcome = auth.inspect(request, now)
            if isinstance(outcome, NeedChallenge):
                ctx.respond(stxn, auth.challenge(request, now, stale=outcome.stale), now)
                return
            if isinstance(outcome, BadAuthorization):
                ctx.respond(stxn, ctx.make_response(request, outcome.status, outcome.reason), now)
                return
            if not self._checked(request, stxn, now):
                return
            if isinstance(outcome, DigestCredentials):
                self._parked[id(stxn)] = _Parked(request, stxn, source)
                ctx.emit(ev.AuthenticationNeeded(request, stxn, outcome))
                return
        elif not self._checked(request, stxn, now):
            return
        self._accept(request, stxn, source, now, None)

    def _checked(self, request: Request, stxn: ServerTransaction, now: float) -> bool:
        """Run the §8.2.2 checks; answer and return False when the request fails them."""
        problem = check_out_of_dialog(request)
        if problem is None:
            return True
        status, detail, extra = problem
        ctx = self.context
        ctx.respond(stxn, ctx.make_response(request, status, detail, headers=extra), now)
        return False

    def authentication_result(self, event: ev.AuthenticationNeeded, ok: bool, identity: str | None,
                              now: float) -> None:
        """Continue a request parked by :class:`~txsipua.core.events.AuthenticationNeeded`."""
        parked = self._parked.pop(id(event.transaction), None)
        if parked is None:
            return
        if ok:
            try:
                self._accept(parked.request, parked.transaction, parked.source, now, identity)
            except ParseError as e:
                self.answer_parse_error(parked.request, parked.transaction, e, now)
            return
        auth = self._authenticator_for(parked.request.method)
        assert auth is not None
        # credentials refused only because their nonce aged out of the
        # replay check get a stale=true challenge (RFC 7616 §3.3)
        stale = bool(getattr(event.credentials, "stale", False))
        self.context.respond(parked.transaction, auth.challenge(parked.request, now, stale=stale), now)

    def _refuse_call(self, request: Request, stxn: ServerTransaction, now: float) -> None:
        """503 + Retry-After for a new INVITE past ``max_calls`` (§21.5.4, §20.33)."""
        ctx = self.context
        ctx.stats["calls_refused"] += 1
        retry_after = str(ctx.layer.overload_retry_after)
        ctx.respond(stxn, ctx.make_response(request, 503, "Too Many Calls",
                                            headers=[("Retry-After", retry_after)]), now)
        ctx.emit(ev.CallRefused(request, ctx.live_calls, ctx.stats["calls_refused"]))

    def _authenticator_for(self, method: str) -> DigestServer | None:
        if method == "REGISTER" and self.register_authenticator is not None:
            return self.register_authenticator
        return self.authenticator

    def _accept(self, request: Request, stxn: ServerTransaction, source: Address, now: float,
                identity: str | None) -> None:
        ctx = self.context
        method = request.method
        if method == "INVITE":
            refused = refusal(request, ctx.min_se)
            if refused is not None:  # RFC 4028 §9: Session-Expires below our minimum
                ctx.respond(stxn, ctx.make_response(request, refused[0], refused[1], headers=refused[2]), now)
                return
            replaced = None
            if "Replaces" in request.headers:  # RFC 3891 §3
                found = find_replaced(ctx.dialogs, request)
                if isinstance(found, tuple):
                    ctx.respond(stxn, ctx.make_response(request, found[0], found[1]), now)
                    return
                replaced = found
            session = InviteServerSession(ctx, request, stxn, source, identity)
            ctx.dialogs.add_unanswered(stxn, session)
            ctx.emit(ev.IncomingCall(session, request, replaced))
        elif method == "OPTIONS":
            resp = ctx.make_response(request, 200, headers=capabilities.capability_headers())
            ctx.respond(stxn, resp, now)
        elif method in ("BYE", "PRACK"):
            ctx.respond(stxn, ctx.make_response(request, 481), now)
        elif method in APP_METHODS:
            ctx.emit(ev.IncomingRequest(request, stxn, None, identity))
        else:
            ctx.respond(stxn, ctx.make_response(request, 405), now)

    def _on_cancel(self, request: Request, stxn: ServerTransaction, now: float) -> None:
        ctx = self.context
        ist = ctx.layer.matching_invite(request)
        if ist is None:
            ctx.respond(stxn, ctx.make_response(request, 481), now)
            return
        # a CANCEL matching an INVITE already answered has no effect, but is answered 200 (§9.2)
        ctx.respond(stxn, ctx.make_response(request, 200), now)
        session = ctx.dialogs.pop_unanswered(ist)
        if session is not None:
            session.on_cancel(now)


__all__ = ["APP_METHODS", "KNOWN_METHODS", "SUPPORTED_EXTENSIONS", "UasCore", "check_out_of_dialog"]
