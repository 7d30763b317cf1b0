"""A registrar and stateless proxy for one domain, sans-IO (RFC 3261 §10.3, §16, §16.11).

It is the SIP server of the domain in ``txsipua demo`` (on a UDP port through
:mod:`txsipua.server.listen`) and in in-memory scenario tests.  REGISTER goes
to the shared §10.3 logic (:mod:`txsipua.server.registrar`) over a
:class:`~txsipua.server.bindings.BindingStore`, which is also the location
service of the proxy.  Theory of operation::

    receive(data, source, now)
      |- parse (a malformed request gets 400 when a response can be built,
      |         anything else is dropped and counted)
      |- response ......... pop our Via, forward to the next Via (§16.11, §18.2.2)
      '- request
          |- §18.2.1 received/rport on the top Via
          |- ACK to one of our own non-2xx answers ... absorbed
          |- a retransmission we already answered .... same answer again
          |- top Route naming us ...................... removed (§16.4)
          |- REGISTER for our domain .................. registrar (§10.3), 401 realm
          |- OPTIONS to the server itself ............. 200
          '- anything else ............................ stateless proxy (§16.3-16.6)
                out-of-dialog, not ACK/CANCEL, from our domain: 407 challenge
                target: next Route, else location table, else an IP Request-URI

The proxy keeps no transaction state: the branch of the Via it pushes is a hash
of the incoming top Via branch (§16.11), so a CANCEL or a non-2xx ACK, which
carry the INVITE's branch, leave with the branch the forwarded INVITE had.  The
To tag of every response it makes itself is a hash of the request too, so the
ACK for such a response is recognised and absorbed.  Responses it made are kept
for 32 seconds (a NIST's Timer J) and re-sent for a retransmitted request, so
duplicated datagrams never get two different challenges; likewise a request
whose credentials verified is remembered for 32 seconds, so its retransmission
(same branch, same credentials) is forwarded again instead of being refused as
a nonce-count replay (RFC 7616 §5.9).

Nothing here reads a clock, ``random`` or a socket: time comes in as ``now``
(seconds, absolute), bytes leave through :meth:`ProxyRegistrar.outbox`, and what
happened is told through :meth:`ProxyRegistrar.next_event`, for ladder printers.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections import deque
from collections.abc import Mapping

import attrs

from txsipua.auth.challenge import parse_authorization
from txsipua.auth.server import (
    BadAuthorization,
    DigestCredentials,
    DigestServer,
    NeedChallenge,
)
from txsipua.core.transport import (
    Address,
    Outgoing,
    response_destination,
    stamp_received,
    stamped_via,
    unbracket,
)
from txsipua.errors import ParseError
from txsipua.server.bindings import Binding, BindingExpired, BindingStore
from txsipua.server.events import (
    Dropped,
    Event,
    Handled,
    PresentedCredentials,
    presented_credentials,
    summary,
)
from txsipua.server.registrar import Registrar
from txsipua.sip.message import Headers, Request, Response, parse_message, split_list_value
from txsipua.sip.uri import SipURI
from txsipua.sip.values import BRANCH_MAGIC_COOKIE, CSeq, NameAddr, Via

__all__ = [
    "Address",
    "Binding",
    "BindingExpired",
    "Dropped",
    "Event",
    "Handled",
    "Outgoing",
    "PresentedCredentials",
    "ProxyRegistrar",
]

_ANSWER_LIFETIME = 32.0
"""Seconds a response we made is kept for retransmissions (64*T1, RFC 3261 §17.2.2 Timer J)."""

_DIALOG_CREATING = frozenset({"INVITE", "SUBSCRIBE", "REFER"})
_ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE, MESSAGE, NOTIFY, SUBSCRIBE, REFER, PRACK"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(unbracket(host))
    except ValueError:
        return False
    return True


def _uri_destination(uri: SipURI) -> Address | None:
    """The UDP address a SIP URI names, if it names an IP (no DNS here, RFC 3263 skipped)."""
    host = uri.params.get("maddr") or uri.host
    if not _is_ip(host):
        return None
    return (unbracket(host), uri.port or 5060)


def _via_destination(via: Via) -> Address | None:
    """Where a response to ``via`` goes over UDP (RFC 3261 §18.2.2, RFC 3581 §4), if an IP."""
    destination = response_destination(via)
    return destination if _is_ip(destination[0]) else None


@attrs.define
class _Answer:
    data: bytes
    destination: Address
    expires_at: float
    to_tag: str | None


@attrs.define
class ProxyRegistrar:
    """A registrar (RFC 3261 §10.3) and stateless proxy (§16.11) for one domain.

    Args:
        address: its own ``(ip, port)``: the sent-by of the Via it pushes and
            the URI of the Record-Route it adds.  May be reassigned before the
            first message (e.g. once a port 0 socket knows its port).
        domain: the SIP domain it serves, e.g. ``"example.com"``.
        realm: the digest realm (RFC 3261 §22.1), e.g. ``"voip.example.net"``.
        users: auth username -> ``(password, AOR user)``, e.g.
            ``{"alice-auth": ("secret", "alice")}``: ``alice-auth`` may register
            and call as ``sip:alice@example.com``.
        secret: key for nonces, branches and tags (bytes).
        algorithms: digest algorithms offered, strongest first.
        min_expires: the shortest registration accepted, seconds (§10.3 step 7, 423).
        max_expires: longer registrations are cut down to this, seconds.
        default_expires: used when a REGISTER names no expiry, seconds.
        max_bindings: the most bindings held (``None``: no cap); past it a
            REGISTER that adds one gets 503 with Retry-After.
        nonce_instance: this instance's part of every nonce (see
            :class:`~txsipua.auth.server.DigestServer`).

    Attributes:
        store: the binding store (the registrar's and the location service's).
        malformed: datagrams that did not parse (answered 400 or dropped).
        dropped: datagrams ignored (malformed ones included).
        internal_errors: failures of this code on some input (should stay 0).
    """

    address: Address
    domain: str
    realm: str
    users: Mapping[str, tuple[str, str]]
    secret: bytes
    algorithms: tuple[str, ...] = ("MD5",)
    min_expires: int = 60
    max_expires: int = 7200
    default_expires: int = 3600
    max_bindings: int | None = None
    nonce_instance: int = 0
    store: BindingStore = attrs.field(init=False)
    malformed: int = attrs.field(default=0, init=False)
    dropped: int = attrs.field(default=0, init=False)
    internal_errors: int = attrs.field(default=0, init=False)
    _answers: dict[tuple[str, str, str, int, Address], _Answer] = attrs.field(
        factory=dict, init=False
    )
    _verified: dict[
        tuple[tuple[str, str, str, int, Address], tuple[str, ...]], tuple[str, float]
    ] = attrs.field(factory=dict, init=False)
    _outbox: list[Outgoing] = attrs.field(factory=list, init=False)
    _current_in: int | None = attrs.field(default=None, init=False)
    _events: deque[Event] = attrs.field(factory=deque, init=False)
    _registrar_auth: DigestServer = attrs.field(init=False)
    _proxy_auth: DigestServer = attrs.field(init=False)
    _registrar: Registrar = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._registrar_auth = DigestServer(
            self.realm, self.secret, algorithms=self.algorithms, proxy_role=False,
            instance=self.nonce_instance,
        )
        self._proxy_auth = DigestServer(
            self.realm, self.secret, algorithms=self.algorithms, proxy_role=True,
            instance=self.nonce_instance,
        )
        self.store = BindingStore(self.max_bindings)
        self._registrar = Registrar(
            self.store, domain=self.domain, min_expires=self.min_expires,
            max_expires=self.max_expires, default_expires=self.default_expires,
        )

    # ------------------------------------------------------------------ API

    def receive(self, data: bytes, source: Address, now: float) -> None:
        """Take one datagram.

        Args:
            data: the bytes received.
            source: ``(ip, port)`` it came from.
            now: seconds, absolute.

        Never raises: malformed requests get a 400 when one can be built,
        anything else unusable is dropped and counted.
        """
        self._current_in = None
        try:
            self._receive(data, source, now)
        except Exception as e:  # never let the peer crash the server
            self.internal_errors += 1
            self._drop(f"internal error: {type(e).__name__}: {e}", source, data)

    def outbox(self) -> list[Outgoing]:
        """The datagrams to send, in order; drained by the call."""
        out, self._outbox = self._outbox, []
        return out

    def next_event(self) -> Event | None:
        """The next :class:`Handled`, :class:`Dropped` or :class:`BindingExpired`, or ``None``."""
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        """The next deadline (a binding expiry or a cached answer's end), seconds, absolute."""
        deadlines = [a.expires_at for a in self._answers.values()]
        next_expiry = self.store.next_expiry()
        if next_expiry is not None:
            deadlines.append(next_expiry)
        deadlines.extend(until for _, until in self._verified.values())
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> None:
        """Remove the bindings and cached answers that ran out by ``now``."""
        self._events.extend(self.store.purge(now))
        for answer_key, answer in list(self._answers.items()):
            if answer.expires_at <= now:
                del self._answers[answer_key]
        for verified_key, (_, until) in list(self._verified.items()):
            if until <= now:
                del self._verified[verified_key]

    def bindings(self, aor: str, now: float) -> list[Binding]:
        """The live bindings of ``aor`` (``"sip:alice@example.com"``) at ``now``."""
        return self.store.bindings(aor, now)

    def aor_of(self, user: str) -> str:
        """The address-of-record of a SIP user of the domain: ``"sip:alice@example.com"``."""
        return f"sip:{user}@{self.domain}".lower()

    # ------------------------------------------------------------ plumbing

    def _note(self, note: str) -> None:
        """Set the note of the "in" event of the request being handled."""
        if self._current_in is not None:
            event = self._events[self._current_in]
            if isinstance(event, Handled):
                self._events[self._current_in] = attrs.evolve(event, note=note)

    def _drop(self, reason: str, source: Address, data: bytes) -> None:
        self.dropped += 1
        self._events.append(Dropped(reason, source, data))

    def _send(self, message: Request | Response, destination: Address, note: str = "") -> None:
        data = message.to_bytes()
        self._outbox.append(Outgoing(data, destination))
        creds = presented_credentials(message) if isinstance(message, Request) else ()
        self._events.append(Handled("out", summary(message), message, destination, creds, note))

    def _tag(self, request: Request) -> str:
        """A To tag for our responses to ``request``; the same for its ACK (RFC 3261 §17.1.1.3)."""
        try:
            from_tag = request.from_.tag or ""
        except ParseError:
            from_tag = ""
        branch = request.top_via.branch or ""
        material = f"tag\0{request.call_id}\0{from_tag}\0{branch}".encode()
        return hmac.new(self.secret, material, hashlib.sha256).hexdigest()[:16]

    def _answer_key(self, request: Request, source: Address) -> tuple[str, str, str, int, Address]:
        method = "INVITE" if request.method == "ACK" else request.method
        return (request.top_via.branch or "", method, request.call_id, request.cseq.seq, source)

    def _make_response(
        self, request: Request, status: int, reason: str | None = None
    ) -> Response:
        """A response copying Via, From, To (tagged), Call-ID and CSeq (RFC 3261 §8.2.6.2)."""
        headers = Headers()
        for via in request.headers.get_all("Via"):
            headers.add("Via", via)
        for name in ("From", "To", "Call-ID", "CSeq"):
            value = request.headers.get(name)
            if value is not None:
                headers.add(name, value)
        response = Response(status, reason, headers)
        self._ensure_tag(request, response)
        headers.add("Server", "txsipua-test-registrar")
        return response

    def _ensure_tag(self, request: Request, response: Response) -> None:
        if response.status == 100:
            return
        to = response.to
        if to.tag is None:
            response.headers.set("To", str(to.with_tag(self._tag(request))))

    def _respond(
        self, request: Request, response: Response, source: Address, now: float, note: str = ""
    ) -> None:
        """Send our own response to ``request`` and keep it for retransmissions."""
        self._ensure_tag(request, response)
        destination = _via_destination(response.top_via)
        if destination is None:
            self._drop(f"no IP to answer {summary(request)} at", source, b"")
            return
        self._send(response, destination, note)
        if request.method != "ACK":
            self._answers[self._answer_key(request, source)] = _Answer(
                response.to_bytes(), destination, now + _ANSWER_LIFETIME, response.to.tag
            )

    def _reply(
        self,
        request: Request,
        status: int,
        source: Address,
        now: float,
        note: str = "",
        reason: str | None = None,
        extra: list[tuple[str, str]] | None = None,
    ) -> None:
        response = self._make_response(request, status, reason)
        for name, value in extra or ():
            response.headers.add(name, value)
        self._respond(request, response, source, now, note or f"{status} {response.reason}")

    def _is_us(self, uri: SipURI) -> bool:
        """Whether ``uri`` names this server (its address, or the bare domain)."""
        host = unbracket(uri.host).lower()
        if host == self.address[0].lower() and (uri.port or 5060) == self.address[1]:
            return True
        return host == self.domain.lower() and uri.port in (None, self.address[1])

    def _ours(self, uri: SipURI) -> bool:
        """Whether ``uri`` is in our domain or names this server (RFC 3261 §16.5)."""
        return uri.host.lower() == self.domain.lower() or self._is_us(uri)

    # ---------------------------------------------------------- receiving

    def _receive(self, data: bytes, source: Address, now: float) -> None:
        try:
            message = parse_message(data)
            if isinstance(message, Request):
                message.uri  # noqa: B018 - parse now: 416 for other schemes
                message.via  # noqa: B018
                message.from_  # noqa: B018
                message.to  # noqa: B018
                message.call_id  # noqa: B018
                stamp_received(message, source)  # needs a top Via
        except ParseError as e:
            self.malformed += 1
            self._reject_malformed(data, source, e, now)
            return
        if isinstance(message, Response):
            self._forward_response(message, data, source)
            return
        creds = presented_credentials(message)
        self._events.append(Handled("in", summary(message), message, source, creds, ""))
        self._current_in = len(self._events) - 1
        try:
            self._handle_request(message, source, now)
        except ParseError as e:  # a header checked late (Expires, Contact...)
            self.malformed += 1
            try:
                self._reply(message, e.status, source, now, f"malformed: {e.detail}", _reason(e))
            except ParseError as again:
                self._drop(f"malformed: {e.detail}; no answer possible: {again.detail}", source, data)

    def _reject_malformed(
        self, data: bytes, source: Address, error: ParseError, now: float
    ) -> None:
        """Answer 400 (or the error's status) if the request has what a response needs."""
        reason = f"unparsable: {error.detail}"
        text = data.decode("utf-8", "replace")
        head = text.replace("\r\n", "\n").split("\n\n", 1)[0].split("\n")
        start = head[0] if head else ""
        if not start or start.startswith("SIP/") or len(start.split()) != 3:
            self._drop(reason, source, data)
            return
        method = start.split()[0]
        fields: dict[str, str] = {}
        names = {"via": "Via", "v": "Via", "from": "From", "f": "From", "to": "To", "t": "To",
                 "call-id": "Call-ID", "i": "Call-ID", "cseq": "CSeq"}
        for line in head[1:]:
            name, sep, value = line.partition(":")
            canon = names.get(name.strip().lower())
            if sep and canon and canon not in fields:
                fields[canon] = value.strip()
        if len(fields) != 5 or method == "ACK":
            self._drop(reason, source, data)
            return
        try:
            if not all(fields.values()):
                raise ParseError("an empty mandatory header")
            via = stamped_via(Via.parse(split_list_value(fields["Via"])[0]), source) or Via.parse(
                split_list_value(fields["Via"])[0]
            )
            NameAddr.parse(fields["To"])
            NameAddr.parse(fields["From"])
            if CSeq.parse(fields["CSeq"]).method != method:
                raise ParseError("CSeq method mismatch")
            fields["Via"] = str(via)
            request = Request(method, "sip:invalid", Headers(list(fields.items())))
            response = self._make_response(request, error.status, _reason(error))
            parse_message(response.to_bytes())  # never send what we could not read back
        except (ParseError, IndexError):
            self._drop(reason, source, data)
            return
        self._events.append(Handled("in", start[:80], request, source, (), reason))
        destination = _via_destination(via)
        if destination is None:
            self._drop(reason, source, data)
            return
        self._send(response, destination, f"{error.status}: {error.detail}")

    def _handle_request(self, request: Request, source: Address, now: float) -> None:
        cached = self._answers.get(self._answer_key(request, source))
        if request.method == "ACK":
            # the ACK for a non-2xx answer we made ourselves ends that transaction (§17.2.1)
            if cached is not None and cached.to_tag == request.to.tag:
                self._note("absorbed: ACK for our answer")
                return
        elif cached is not None:
            self._outbox.append(Outgoing(cached.data, cached.destination))
            resent = parse_message(cached.data)
            self._events.append(
                Handled("out", summary(resent), resent, cached.destination, (), "retransmitted answer")
            )
            return
        if request.uri.scheme not in ("sip", "sips"):
            self._reply(request, 416, source, now)
            return
        # §16.4: a top Route naming us is ours to remove
        routes = request.headers.get_all("Route")
        if routes:
            top = NameAddr.parse(routes[0])
            if self._is_us(top.uri):
                request.headers.pop_first_value("Route")
                routes = routes[1:]
        local = not routes and self._ours(request.uri)
        if local and request.method == "REGISTER":
            self._register(request, source, now)
            return
        if local and request.uri.user is None:
            self._server_request(request, source, now)
            return
        self._proxy(request, routes, source, now)

    def _server_request(self, request: Request, source: Address, now: float) -> None:
        """A request for the server itself (no user part): OPTIONS gets 200 (RFC 3261 §11.2)."""
        if request.method == "OPTIONS":
            self._reply(request, 200, source, now, extra=[("Allow", _ALLOW)])
        elif request.method == "ACK":
            self._note("absorbed: ACK for the server")
        else:
            self._reply(request, 405, source, now, extra=[("Allow", "OPTIONS, REGISTER")])

    # ---------------------------------------------------------- registrar

    def _authenticate(
        self, server: DigestServer, request: Request, source: Address, now: float
    ) -> str | None:
        """Run digest verification; answer and return ``None`` unless it succeeds.

        Returns the AOR user of the authenticated auth username.
        """
        credentials = tuple(request.headers.get_all(server.credentials_header))
        verified_key = (self._answer_key(request, source), credentials)
        verified = self._verified.get(verified_key)
        if verified is not None:  # a retransmission: its nonce count was already used
            return verified[0]
        result = server.inspect(request, now)
        if isinstance(result, NeedChallenge):
            note = "challenge" + (" (stale nonce)" if result.stale else "")
            if result.reason:
                note += f": {result.reason}"
            self._respond(request, server.challenge(request, now, stale=result.stale), source, now, note)
            return None
        if isinstance(result, BadAuthorization):
            self._reply(request, result.status, source, now, f"{result.status}: {result.reason}",
                        reason=result.reason if result.status == 403 else None)
            return None
        if not isinstance(result, DigestCredentials):  # Exempt: never asked for ACK/CANCEL
            self._reply(request, 500, source, now, f"500: {result.reason}")
            return None
        entry = self.users.get(result.username)
        if entry is None:
            result.check_ha1(None)  # counts like a wrong password (the same answer, too)
            note = f"challenge again: unknown auth user {result.username!r}"
        elif not result.check_password(entry[0]):
            why = {"password": "wrong password", "replay": "nonce count replayed",
                   "stale": "stale nonce"}.get(result.failure or "", "refused")
            note = f"challenge again: {why} for {result.username!r} in realm {result.realm!r}"
        else:
            self._verified[verified_key] = (entry[1], now + _ANSWER_LIFETIME)
            return entry[1]
        self._respond(request, server.challenge(request, now, stale=result.stale), source, now, note)
        return None

    def _register(self, request: Request, source: Address, now: float) -> None:
        """REGISTER processing (RFC 3261 §10.3): checks, digest, ownership, then the shared logic."""
        refused = self._registrar.check(request)
        if refused is None:
            user = self._authenticate(self._registrar_auth, request, source, now)
            if user is None:
                return
            aor = request.to.uri.address_of_record.lower()
            if self.aor_of(user) != aor:
                auth_user = self._auth_username(request, "Authorization")
                self._reply(
                    request, 403, source, now, f"403: {auth_user} does not own {aor}",
                    reason="Forbidden (not your address-of-record)",
                )
                return
            self._events.extend(self._registrar.purge(now))
            # the expiry settings are attributes of ours: they may change between requests
            self._registrar.min_expires = self.min_expires
            self._registrar.max_expires = self.max_expires
            self._registrar.default_expires = self.default_expires
            refused = self._registrar.register(request, source, now)
        self._reply(request, refused.status, source, now, refused.note, refused.reason,
                    list(refused.headers))

    @staticmethod
    def _auth_username(request: Request, header: str) -> str:
        for value in request.headers.get_all(header):
            try:
                return parse_authorization(value).username
            except ParseError:
                continue
        return "?"

    # -------------------------------------------------------------- proxy

    def _proxy(self, request: Request, routes: list[str], source: Address, now: float) -> None:
        """Stateless proxying (RFC 3261 §16.3-16.6, §16.11)."""
        max_forwards = request.max_forwards
        if max_forwards is not None and max_forwards <= 0:
            self._reply(request, 483, source, now)
            return
        proxy_require = request.headers.get_all("Proxy-Require")
        if proxy_require:
            self._reply(request, 420, source, now, extra=[("Unsupported", ", ".join(proxy_require))])
            return
        in_dialog = request.to.tag is not None
        from_local = request.from_.uri.host.lower() == self.domain.lower()
        note = ""
        if not in_dialog and request.method not in ("ACK", "CANCEL"):
            if from_local:
                user = self._authenticate(self._proxy_auth, request, source, now)
                if user is None:
                    return
                if self.aor_of(user) != request.from_.uri.address_of_record.lower():
                    auth_user = self._auth_username(request, "Proxy-Authorization")
                    self._reply(
                        request, 403, source, now,
                        f"403: {auth_user} may not send as {request.from_.uri.address_of_record}",
                        reason="Forbidden (From is not your address-of-record)",
                    )
                    return
                self._strip_our_credentials(request)
                note = "authenticated; "
            elif routes or not self._ours(request.uri):
                self._reply(request, 403, source, now, "403: relaying denied",
                            reason="Forbidden (relaying denied)")
                return
        forward = request.copy()
        if routes:
            target = NameAddr.parse(routes[0]).uri
            destination = _uri_destination(target)
            what = f"next Route {target}"
        elif self._ours(request.uri):
            found = self._lookup(request, source, now)
            if found is None:
                return
            binding, destination = found
            forward.uri = binding.contact.uri
            what = f"{binding.contact.uri}"
        else:
            destination = _uri_destination(request.uri)
            what = f"{request.uri}"
        if destination is None:
            self._reply(request, 503, source, now, f"503: cannot resolve {what} (no DNS here)",
                        reason="Service Unavailable (no DNS in the test proxy)")
            return
        if destination == self.address:
            self._reply(request, 482, source, now, "482: the next hop is this proxy")
            return
        # §16.6: Max-Forwards, Record-Route, Via
        forward.headers.set("Max-Forwards", str(69 if max_forwards is None else max_forwards - 1))
        if not in_dialog and request.method in _DIALOG_CREATING:
            forward.headers.prepend("Record-Route", f"<sip:{self._hostport()};lr>")
        forward.headers.prepend(
            "Via", f"SIP/2.0/UDP {self._hostport()};branch={self._branch(request)};rport"
        )
        self._send(forward, destination, f"{note}forwarded to {what}")

    def _hostport(self) -> str:
        host, port = self.address
        if ":" in host:
            host = f"[{host}]"
        return f"{host}:{port}"

    def _strip_our_credentials(self, request: Request) -> None:
        """Remove the Proxy-Authorization values for our realm, keep the others (RFC 3261 §22.3)."""
        keep = []
        for value in request.headers.get_all("Proxy-Authorization"):
            try:
                realm = parse_authorization(value).realm
            except ParseError:
                realm = None
            if realm != self.realm:
                keep.append(value)
        request.headers.set_all("Proxy-Authorization", keep)

    def _branch(self, request: Request) -> str:
        """The branch of the Via we push: a function of the incoming top Via (RFC 3261 §16.11)."""
        via = request.top_via
        branch = via.branch or ""
        if branch.startswith(BRANCH_MAGIC_COOKIE):
            material = f"b\0{branch}\0{via.host}:{via.port}"
        else:  # RFC 2543 peer: hash what §17.2.3 matches on, the method left out
            material = "\0".join(
                ("o", request.uri_text, request.to.tag or "", request.from_.tag or "",
                 request.call_id, str(request.cseq.seq), str(via))
            )
        digest = hmac.new(self.secret, material.encode(), hashlib.sha256).hexdigest()
        return f"{BRANCH_MAGIC_COOKIE}-txp-{digest[:24]}"

    def _lookup(self, request: Request, source: Address, now: float) -> tuple[Binding, Address] | None:
        """Location service (RFC 3261 §16.5): the newest live binding of the Request-URI."""
        uri = request.uri
        aor = f"sip:{uri.user}@{self.domain}".lower() if uri.user else ""
        if aor not in {self.aor_of(u) for _, u in self.users.values()}:
            self._reply(request, 404, source, now, f"404: no user {uri.user!r} in {self.domain}")
            return None
        live = self.bindings(aor, now)
        if not live:
            self._reply(request, 480, source, now, f"480: {aor} has no current binding")
            return None
        binding = max(live, key=lambda b: b.expires_at)
        destination = _uri_destination(binding.contact.uri) or binding.source
        return binding, destination

    def _forward_response(self, response: Response, data: bytes, source: Address) -> None:
        """Stateless response forwarding (RFC 3261 §16.7 step 3, §16.11, §18.2.2)."""
        try:
            vias = response.via
        except ParseError as e:
            self.malformed += 1
            self._drop(f"response with a bad Via: {e.detail}", source, data)
            return
        self._events.append(Handled("in", summary(response), response, source))
        if not vias or (unbracket(vias[0].host), vias[0].port or 5060) != self.address:
            self._drop("response whose top Via is not ours", source, data)
            return
        if len(vias) < 2:
            self._drop("response to a request we did not forward", source, data)
            return
        destination = _via_destination(vias[1])
        if destination is None:
            self._drop(f"no IP in the next Via {vias[1]}", source, data)
            return
        forward = response.copy()
        forward.headers.pop_first_value("Via")
        self._send(forward, destination, "forwarded back")


def _reason(error: ParseError) -> str | None:
    if error.status != 400:
        return None
    detail = "".join(c for c in error.detail if c.isprintable())[:60]
    return f"Bad Request ({detail})"
