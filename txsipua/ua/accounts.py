"""Several accounts on one :class:`~txsipua.ua.useragent.UserAgent` and one port.

Theory of operation.  A user agent has its own account (``UserAgent(...,
account, ...)``, unchanged) and any number more, added with
:meth:`UserAgent.add_account <txsipua.ua.useragent.UserAgent.add_account>`.
Each added account is an :class:`AccountLine`: its own identity (From), its
own credentials (a digest client of its own, with its own digest-leak guard:
credentials of one account never go where only another is trusted), its own
outbound proxy, registration and Contact user, on the same transport, socket
and transaction layer::

    ua = UserAgent(reactor, config, alice, UDPTransport(reactor, "192.0.2.10", 5060))
    work = ua.add_account(Account.from_toml("alice-work.toml"))
    yield ua.start()
    yield ua.registration(600).start()       # alice, as before
    yield work.registration(600).start()     # alice-work, its own REGISTER and credentials
    work.on_incoming_call = ring_the_work_phone
    call = yield work.call("sip:carol@work.example")

Contact users.  An added account's Contact user is its SIP user, unless that
user is already the Contact user of the user agent or of another account
(two providers, the same user name): then ``user-2``, ``user-3``... so that
every account's Contact is distinct and an incoming request says by its
Request-URI which account it is for.

Matching an incoming out-of-dialog request (:meth:`AccountSet.match`), first
rule that holds:

1. the Request-URI is an account's address of record (user and domain: a
   request a proxy did not retarget);
2. the Request-URI's user is an account's Contact user (the Contact it
   registered, which the registrar's proxy put in the Request-URI);
3. the To URI is an account's address of record.

A request the user agent's own Contact user or address of record matches,
and a request matching **no** account, is the user agent's own: it goes to
``UserAgent.on_incoming_call`` / ``on_request`` / ``auto_answer`` exactly as
with a single account.  In-dialog requests follow their dialog.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, cast

from twisted.internet import defer

from txsipua.errors import ParseError, SIPError
from txsipua.sip.message import Request, Response
from txsipua.sip.uri import SipURI
from txsipua.sip.values import NameAddr
from txsipua.ua.account import Account

if TYPE_CHECKING:  # pragma: no cover
    from txsipua.auth.client import DigestClient
    from txsipua.core.useragent import InviteSession, UserAgentCore
    from txsipua.ua.call import Call, IncomingCall
    from txsipua.ua.registration import Registration, RegistrationResult
    from txsipua.ua.useragent import UserAgent


def _aor_key(uri: SipURI) -> tuple[str, str, int | None]:
    return ((uri.user or ""), uri.host.lower().rstrip("."), uri.port)


class _LineCore:
    """The core as one account's :class:`~txsipua.ua.registration.Registration` sees it.

    Everything is the user agent's core, except that requests carry the
    account's Contact user, and :meth:`contact_uri` is that Contact.
    """

    def __init__(self, core: UserAgentCore, contact_user: str) -> None:
        object.__setattr__(self, "_core", core)
        object.__setattr__(self, "_contact_user", contact_user)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._core, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._core, name, value)  # one core: a change (our address...) is the user agent's

    def new_request(self, *args: Any, **kwargs: Any) -> Request:
        """:meth:`UserAgentCore.new_request` with this account's Contact user."""
        kwargs.setdefault("contact_user", self._contact_user)
        return self._core.new_request(*args, **kwargs)

    def contact_uri(self, secure: bool | None = None, user: str | None = None) -> SipURI:
        """This account's Contact URI."""
        return self._core.contact_uri(secure, user if user is not None else self._contact_user)


class AccountLine:
    """One more account on a user agent: what it sends as, and what it receives.

    Get one from :meth:`UserAgent.add_account
    <txsipua.ua.useragent.UserAgent.add_account>`.  It offers the user
    agent's request API for this account (:meth:`registration`,
    :meth:`register`, :meth:`call`, :meth:`place_call`, :meth:`send`,
    :meth:`options`, :meth:`message`); calls and registrations it starts are
    the user agent's (``ua.calls``, ``ua.registrations``: ``ua.stop()`` ends
    them too).

    Attributes:
        ua: the user agent.
        account: the :class:`~txsipua.ua.account.Account`.
        contact_user: the user part of this account's Contact.
        digest: this account's :class:`~txsipua.auth.client.DigestClient`.
        core: the core as this account's requests see it (its Contact).
        on_incoming_call: like ``UserAgent.on_incoming_call``, for calls
            matched to this account.
        on_request: like ``UserAgent.on_request``, for requests matched to it.
        auto_answer: like ``UserAgent.auto_answer``, for its calls.
    """

    def __init__(self, ua: UserAgent, account: Account, contact_user: str) -> None:
        self.ua = ua
        self.account = account
        self.contact_user = contact_user
        self.digest: DigestClient = account.digest_client()
        self.core = _LineCore(ua.core, contact_user)
        self.on_incoming_call: Callable[[IncomingCall], object] | None = None
        self.on_request: Callable[[Request, Callable[..., None]], object] | None = None
        self.auto_answer = False

    # what a Registration asks of its user agent (ua/registration.py)
    def __getattr__(self, name: str) -> Any:
        # config, reactor, registrations, random... are the user agent's
        return getattr(self.ua, name)

    def require_account(self) -> Account:
        """This account."""
        return self.account

    def outbound_route(self) -> list[SipURI]:
        """This account's pre-loaded Route set (its outbound proxy, RFC 3261 §8.1.2)."""
        return self.ua.outbound_route(self.account)

    def send(self, request: Request, *, authenticate: bool = True) -> defer.Deferred[Response]:
        """Send an out-of-dialog request as this account (its credentials and guard)."""
        return self.ua.send(request, authenticate=authenticate, line=self)

    # the request API
    def registration(self, expires: int = 3600) -> Registration:
        """A :class:`~txsipua.ua.registration.Registration` of this account's AOR and Contact."""
        from txsipua.ua.registration import Registration

        return Registration(cast(Any, self), expires, random=self.ua.random)

    def register(self, expires: int = 3600) -> defer.Deferred[RegistrationResult]:
        """Register once (no refresh)."""
        from txsipua.ua.registration import Registration

        return Registration(cast(Any, self), expires).register_once(expires)

    def place_call(self, target: str | SipURI) -> Call:
        """Start a call as this account (see ``UserAgent.place_call``)."""
        return self.ua.place_call(target, line=self)

    def call(self, target: str | SipURI) -> defer.Deferred[Call]:
        """Call ``target`` as this account; fires with the answered Call (see ``UserAgent.call``)."""
        from txsipua.ua.call import call_attempt  # noqa: I001 - a top-level import would be circular

        try:
            return call_attempt(self.place_call(target))  # cancelling it hangs up
        except SIPError as e:
            return defer.fail(e)

    def _request(self, method: str, target: str | SipURI, body: bytes = b"",
                 content_type: str | None = None) -> Request:
        uri = target if isinstance(target, SipURI) else SipURI.parse(target)
        return self.core.new_request(method, uri, self.account.identity, NameAddr(uri),
                                     route=self.outbound_route(), body=body, content_type=content_type)

    def options(self, target: str | SipURI) -> defer.Deferred[Response]:
        """Send OPTIONS as this account."""
        return self.send(self._request("OPTIONS", target))

    def message(self, target: str | SipURI, text: str, content_type: str = "text/plain") -> defer.Deferred[Response]:
        """Send a MESSAGE (RFC 3428) as this account."""
        return self.send(self._request("MESSAGE", target, text.encode("utf-8"), content_type))

    def adopt(self, session: InviteSession) -> None:
        """Make an incoming call's later requests (BYE, re-INVITE) use this account's credentials."""
        session.digest = self.digest

    def __repr__(self) -> str:
        return f"<AccountLine {self.account.aor} contact user {self.contact_user!r}>"


class AccountSet:
    """The accounts added to a user agent, and which one an incoming request is for.

    Args:
        ua: the user agent.
    """

    def __init__(self, ua: UserAgent) -> None:
        self.ua = ua
        self._lines: list[AccountLine] = []

    def __iter__(self) -> Iterator[AccountLine]:
        return iter(list(self._lines))

    def __len__(self) -> int:
        return len(self._lines)

    def add(self, account: Account) -> AccountLine:
        """Add ``account``; its Contact user is made distinct from every other (``user-2``...).

        Raises:
            ValueError: the account is already served by this user agent.
        """
        own = self.ua.account
        if (own is not None and own.aor == account.aor) or any(line.account.aor == account.aor for line in self._lines):
            raise ValueError(f"{account.aor} is already an account of this user agent")
        taken = {line.contact_user for line in self._lines}
        if self.ua.core.contact_user is not None:
            taken.add(self.ua.core.contact_user)
        user, n = account.user, 1
        while user in taken:
            n += 1
            user = f"{account.user}-{n}"
        line = AccountLine(self.ua, account, user)
        self._lines.append(line)
        self.ua.core.context.contact_users.add(user)  # its calls are answered with its Contact
        return line

    def remove(self, line: AccountLine) -> None:
        """Stop matching requests to ``line`` (its registrations are left as they are)."""
        self._lines.remove(line)
        self.ua.core.context.contact_users.discard(line.contact_user)

    def digest_clients(self, own: DigestClient | None) -> list[DigestClient]:
        """``own`` (the user agent's, when not ``None``) and every added account's digest client."""
        return ([own] if own is not None else []) + [line.digest for line in self._lines]

    def match(self, request: Request) -> AccountLine | None:
        """The added account ``request`` is for, or ``None`` when it is the user agent's own.

        The rules are in this module's docstring: the Request-URI against the
        addresses of record, its user against the Contact users, then the To
        URI against the addresses of record; the user agent's own account wins
        its own matches; a malformed Request-URI or To matches nothing.
        """
        lines = self._lines
        if not lines:
            return None
        try:
            ruri = request.uri
        except ParseError:
            return None
        own = self.ua.account
        own_aor = _aor_key(own.aor) if own is not None else None
        key = _aor_key(ruri)
        if key == own_aor:
            return None
        for line in lines:
            if key == _aor_key(line.account.aor):
                return line
        user = ruri.user or ""
        if user and user == self.ua.core.contact_user:
            return None
        for line in lines:
            if user and user == line.contact_user:
                return line
        to = self._to(request)
        if to is not None:
            key = _aor_key(to)
            if key == own_aor:
                return None
            for line in lines:
                if key == _aor_key(line.account.aor):
                    return line
        return None

    @staticmethod
    def _to(request: Request) -> SipURI | None:
        try:
            to = request.to.uri
        except ParseError:
            return None
        return to if isinstance(to, SipURI) else None


__all__ = ["AccountLine", "AccountSet"]
