"""The digest server: challenge requests and verify credentials (RFC 3261 §22.1-22.3, RFC 7616 §3.3-3.5).

Theory of operation.  A :class:`DigestServer` serves one realm in one role: a
UAS or registrar answers 401 with WWW-Authenticate and reads Authorization; a
proxy answers 407 with Proxy-Authenticate and reads Proxy-Authorization.

Nonces carry no server state: each is::

    nonce = hex12(issue time, ms) hex8(counter) hex8(instance)
            hex32(HMAC-SHA256(secret, time counter instance ":" realm))

so every process that shares ``secret`` verifies the others' nonces (several
instances behind one load balancer).  ``instance`` is a 32-bit number given to
each instance (``txsipua answer`` draws a random one): two instances issuing a
nonce in the same millisecond with the same counter still issue different
nonces, and the HMAC covers it, so it cannot be changed by a client.  A genuine nonce older than
``nonce_lifetime`` is *stale*: the client is challenged again with
``stale=true`` and retries without asking its user (RFC 7616 §3.3).

Replay protection (RFC 7616 §5.9): once credentials verify, the nonce count is
recorded per (nonce, cnonce) in a bounded table; a count not above the last one
seen is a replay and is refused.  When the table overflows, the oldest entries
are dropped and every nonce issued up to the dropped ones' time is treated as
stale (so nothing dropped can be replayed).

The flow in a TU::

    outcome = server.inspect(request, now)
    if isinstance(outcome, Exempt):              # ACK, CANCEL: never challenged
        ...
    elif isinstance(outcome, BadAuthorization):  # answer outcome.status (400)
        ...
    elif isinstance(outcome, NeedChallenge):
        send(server.challenge(request, now, stale=outcome.stale))
    elif outcome.check_ha1(store.get_ha1(outcome.username, outcome.realm, outcome.algorithm)):
        ...                                      # authenticated as outcome.username
    else:
        send(server.challenge(request, now, stale=outcome.stale))

Basic credentials are never accepted; they get a fresh Digest challenge.
Comparisons of secrets use :func:`hmac.compare_digest`.

The digest-uri (RFC 3261 §22.4).  Strictly it must be the Request-URI.  Unless
``strict_digest_uri`` is set, a SIP or SIPS URI naming the same host and port
as the Request-URI, with no user part or the same one, is accepted as well
(SIPp 3.6 sends ``uri="sip:HOST:PORT"`` for ``sip:svc@HOST:PORT``; Kamailio,
Asterisk and FreeSWITCH accept it).  The response digest covers the
digest-uri, so credentials still cannot be moved to another server.

Password guessing.  A failed check counts against the nonce it used: after
``max_nonce_failures`` failures that nonce is refused (a fresh challenge is
sent), so one nonce never serves unlimited guesses.  With a ``limiter`` (a
:class:`~txsipua.auth.limiter.FailureLimiter`), failures also count per source
address (the top Via's ``received``, else its host: §18.2.1 stamping makes it
the real source) and per auth username, known or not; a locked source or user
gets :class:`BadAuthorization` with status 403 and a reason saying so, before
any digest is computed, and each lockout is handed to ``on_lockout`` for the
caller to log.  A checker (twisted.cred) must call :meth:`DigestCredentials.check_ha1`
with ``None`` for an unknown user, as :class:`~txsipua.ua.cred.HA1Checker`
does, so unknown users count like wrong passwords.
"""

from __future__ import annotations

import hmac
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import attrs

from txsipua.auth.challenge import (
    Challenge,
    DigestAuthorization,
    auth_scheme,
    parse_authorization,
    quote,
)
from txsipua.auth.digest import base_algorithm, canonical_algorithm, compute_ha1, compute_response
from txsipua.auth.limiter import FailureLimiter, Lockout
from txsipua.errors import ParseError
from txsipua.sip.headers import Headers
from txsipua.sip.message import Response
from txsipua.sip.uri import SipURI

if TYPE_CHECKING:  # pragma: no cover
    from txsipua.sip.message import Request

__all__ = [
    "AuthOutcome",
    "BadAuthorization",
    "DigestCredentials",
    "DigestServer",
    "Exempt",
    "NeedChallenge",
]

_NONCE = re.compile(r"([0-9a-f]{12})([0-9a-f]{8})([0-9a-f]{8})([0-9a-f]{32})\Z")
#: The reason phrase of the 403 sent to a locked-out source or user.
LOCKED_OUT_REASON = "Forbidden (too many failed authentications, try later)"
#: How far in the future (seconds) a nonce's issue time may be (clock skew between instances).
MAX_CLOCK_SKEW = 30.0


@attrs.frozen
class NeedChallenge:
    """No acceptable credentials: answer with :meth:`DigestServer.challenge`.

    Attributes:
        stale: ``True`` when the nonce was genuine but expired: challenge with
            ``stale=true`` (RFC 7616 §3.3).
        reason: why, in words (for logs).
    """

    stale: bool
    reason: str


@attrs.frozen
class BadAuthorization:
    """Malformed credentials: answer with ``status`` (RFC 3261 §22.4: a digest-uri
    that does not match the Request-URI gets 400).

    Attributes:
        status: the status to answer with: 400, or 403 for a locked-out
            source or user (see :class:`DigestServer`'s ``limiter``).
        reason: the defect, in words; a fit reason phrase.
    """

    status: int
    reason: str


@attrs.frozen
class Exempt:
    """A request that is never challenged: ACK and CANCEL (RFC 3261 §22.1).

    Attributes:
        reason: why, in words.
    """

    reason: str


@attrs.define(slots=True, eq=False)
class DigestCredentials:
    """Well-formed digest credentials for this realm, with a fresh genuine nonce.

    Whether they are right is decided by :meth:`check_ha1` or
    :meth:`check_password`, which also do the nonce-count bookkeeping on success.

    Attributes:
        username: the auth username.
        realm: the realm (this server's).
        algorithm: the canonical algorithm (``"MD5"`` when absent); a store
            looks the HA1 up under :attr:`ha1_algorithm`.
        authorization: the parsed credentials.
        failure: after a failed check, ``"password"`` (wrong digest),
            ``"replay"`` (nonce count reused) or ``"stale"`` (nonce too old to
            be checked for replay); ``None`` otherwise.
    """

    username: str
    realm: str
    algorithm: str
    authorization: DigestAuthorization
    _server: DigestServer = attrs.field(repr=False)
    _method: str = attrs.field(repr=False)
    _body: bytes = attrs.field(repr=False)
    _issued: float = attrs.field(repr=False)
    _source: str = attrs.field(default="", repr=False)
    _now: float = attrs.field(default=0.0, repr=False)
    failure: str | None = None
    _accepted: str | None = attrs.field(default=None, repr=False)

    @property
    def ha1_algorithm(self) -> str:
        """The algorithm whose HA1 is needed: the base of a ``-sess`` algorithm."""
        return base_algorithm(self.algorithm)

    @property
    def stale(self) -> bool:
        """``True`` when a failed check should be answered with ``stale=true``."""
        return self.failure == "stale"

    def check_ha1(self, ha1: str | None) -> bool:
        """Verify the credentials against the user's base HA1 (RFC 7616 §3.4.1).

        Args:
            ha1: the stored ``H(username ":" realm ":" password)`` for
                :attr:`ha1_algorithm`, hex; ``None`` (unknown user) fails.

        Returns:
            ``True`` when the response digest matches and the nonce count was
            not seen before; the count is then recorded.  Calling again with the
            same HA1 after a success returns ``True`` again.
        """
        if ha1 is None:
            self.failure = "password"
            self._server._failed(self.authorization.nonce, self.username, self._source, self._now)
            return False
        ha1 = ha1.lower()
        if self._accepted is not None:
            return _same(self._accepted, ha1)
        auth = self.authorization
        try:
            expected = compute_response(
                algorithm=self.algorithm,
                ha1=ha1,
                nonce=auth.nonce,
                method=self._method,
                uri=auth.uri,
                qop=auth.qop,
                cnonce=auth.cnonce,
                nc=auth.nc,
                body=self._body,
            )
        except ValueError:
            self.failure = "password"
            self._server._failed(auth.nonce, self.username, self._source, self._now)
            return False
        if not _same(expected, auth.response.lower()):
            self.failure = "password"
            self._server._failed(auth.nonce, self.username, self._source, self._now)
            return False
        verdict = self._server._record_use(auth, self._issued)
        if verdict is not None:
            self.failure = verdict
            return False
        self.failure = None
        self._accepted = ha1
        if self._server.limiter is not None:
            self._server.limiter.succeeded("user", self.username)
        return True

    def check_password(self, password: str) -> bool:
        """Verify the credentials against a plaintext password (see :meth:`check_ha1`)."""
        return self.check_ha1(compute_ha1(self.algorithm, self.username, self.realm, password))


AuthOutcome = NeedChallenge | BadAuthorization | DigestCredentials | Exempt


@attrs.define(slots=True, eq=False, init=False)
class DigestServer:
    """Challenges requests and verifies digest credentials for one realm.

    Args:
        realm: the realm (RFC 3261 §22.1), e.g. ``"atlanta.example.com"``.
        secret: the HMAC key for stateless nonces; share it between instances
            that must accept each other's nonces.  At least 16 bytes.
        algorithms: the algorithms offered, one challenge each, in this order
            (e.g. ``("SHA-256", "MD5")``: RFC 8760 §2.4 puts the preferred first).
        qop: the qop values offered (``()`` for the RFC 2069 form, which has no
            replay protection beyond the nonce lifetime).
        proxy_role: challenge with 407/Proxy-Authenticate and read
            Proxy-Authorization instead of 401/WWW-Authenticate/Authorization.
        nonce_lifetime: seconds a nonce stays fresh.
        replay_table_size: entries of the nonce-count table (bounded memory).
        opaque: an opaque value to send and require back, or ``None``.
        accept_retargeted: also accept a digest-uri equal to the To URI, for a
            UAS behind a proxy that rewrote the Request-URI to its Contact
            (RFC 3261 §16.5); default True in the UAS role, False as a proxy.
        strict_digest_uri: accept only a digest-uri equal to the Request-URI
            (or the To URI, see ``accept_retargeted``); by default a SIP URI of
            the same host and port, user part absent or the same, is accepted too.
        instance: this instance's number in its nonces, 0 to 2**32-1; give
            each instance sharing ``secret`` its own (random is fine).
        limiter: counts failed checks per source and user and locks out past
            its limit (403), or ``None`` for no such limit.
        on_lockout: called with each :class:`~txsipua.auth.limiter.Lockout`
            the limiter starts (to log it).
        max_nonce_failures: failed checks one nonce may serve; later uses of
            it are challenged afresh.

    Raises:
        ValueError: an unsupported algorithm or qop, a short secret, a
            non-positive lifetime, table size or nonce failure count, or an
            instance out of range.
    """

    realm: str
    algorithms: tuple[str, ...]
    qop: tuple[str, ...]
    proxy_role: bool
    nonce_lifetime: float
    replay_table_size: int
    opaque: str | None
    accept_retargeted: bool
    strict_digest_uri: bool
    instance: int
    limiter: FailureLimiter | None
    on_lockout: Callable[[Lockout], object] | None
    max_nonce_failures: int
    _nonce_failures: OrderedDict[str, int]
    _secret: bytes
    _counter: int
    _seen: dict[tuple[str, str], int]
    _horizon: float
    _templates: dict[tuple[object, ...], list[tuple[str, str]] | None]

    def __init__(
        self,
        realm: str,
        secret: bytes,
        *,
        algorithms: Iterable[str] = ("MD5",),
        qop: Iterable[str] = ("auth", "auth-int"),
        proxy_role: bool = False,
        nonce_lifetime: float = 300.0,
        replay_table_size: int = 10000,
        opaque: str | None = None,
        accept_retargeted: bool | None = None,
        strict_digest_uri: bool = False,
        instance: int = 0,
        limiter: FailureLimiter | None = None,
        on_lockout: Callable[[Lockout], object] | None = None,
        max_nonce_failures: int = 3,
    ) -> None:
        names = []
        for algorithm in algorithms:
            name = canonical_algorithm(algorithm)
            if name is None:
                raise ValueError(f"unsupported digest algorithm {algorithm!r}")
            if name not in names:
                names.append(name)
        if not names:
            raise ValueError("offer at least one algorithm")
        qops = tuple(dict.fromkeys(q.lower() for q in qop))
        for q in qops:
            if q not in ("auth", "auth-int"):
                raise ValueError(f"unsupported qop {q!r}")
        if len(secret) < 16:
            raise ValueError("the nonce secret must be at least 16 bytes")
        if nonce_lifetime <= 0 or replay_table_size <= 0 or max_nonce_failures <= 0:
            raise ValueError("nonce_lifetime, replay_table_size and max_nonce_failures must be positive")
        if not 0 <= instance <= 0xFFFFFFFF:
            raise ValueError("instance must be between 0 and 2**32-1")
        self.realm = realm
        self.algorithms = tuple(names)
        self.qop = qops
        self.proxy_role = proxy_role
        self.nonce_lifetime = float(nonce_lifetime)
        self.replay_table_size = replay_table_size
        self.opaque = opaque
        # A UAS reached through a proxy that retargeted the request (RFC 3261
        # §16.5: Request-URI rewritten to the registered Contact) sees the
        # caller's digest-uri in the To URI, not in its Request-URI.  The
        # digest response covers the digest-uri, so accepting the To URI as
        # well keeps the integrity check; proxies (which see the original
        # Request-URI) keep the strict rule.
        self.accept_retargeted = (
            (not proxy_role) if accept_retargeted is None else accept_retargeted
        )
        self.strict_digest_uri = strict_digest_uri
        self.instance = instance
        self.limiter = limiter
        self.on_lockout = on_lockout
        self.max_nonce_failures = max_nonce_failures
        self._nonce_failures = OrderedDict()
        self._secret = bytes(secret)
        self._counter = 0
        self._seen = {}
        self._horizon = float("-inf")
        self._templates = {}

    @property
    def status(self) -> int:
        """401 (UAS, registrar) or 407 (proxy role)."""
        return 407 if self.proxy_role else 401

    @property
    def challenge_header(self) -> str:
        """``"WWW-Authenticate"`` or ``"Proxy-Authenticate"``."""
        return "Proxy-Authenticate" if self.proxy_role else "WWW-Authenticate"

    @property
    def credentials_header(self) -> str:
        """``"Authorization"`` or ``"Proxy-Authorization"``."""
        return "Proxy-Authorization" if self.proxy_role else "Authorization"

    # -- nonces -------------------------------------------------------------

    def _mac(self, stamp: str) -> str:
        data = f"{stamp}:{self.realm}".encode()
        return hmac.digest(self._secret, data, "sha256").hex()[:32]

    def make_nonce(self, now: float) -> str:
        """Return a fresh nonce issued at ``now`` (seconds, absolute)."""
        self._counter = (self._counter + 1) & 0xFFFFFFFF
        stamp = f"{max(0, int(now * 1000)) & 0xFFFFFFFFFFFF:012x}{self._counter:08x}{self.instance:08x}"
        return stamp + self._mac(stamp)

    def nonce_issued(self, nonce: str) -> float | None:
        """Return the issue time of a genuine nonce (seconds), or ``None`` if not ours."""
        m = _NONCE.match(nonce)
        if m is None:
            return None
        stamp = m.group(1) + m.group(2) + m.group(3)
        if not _same(self._mac(stamp), m.group(4)):
            return None
        return int(m.group(1), 16) / 1000.0

    # -- verification ---------------------------------------------------------

    def inspect(self, request: Request, now: float) -> AuthOutcome:
        """Examine a request's credentials for this realm (RFC 3261 §22.1, RFC 7616 §3.4).

        Args:
            request: the request received.
            now: the current time, seconds (absolute, same clock as nonces).

        Returns:
            :class:`Exempt` for ACK and CANCEL; :class:`BadAuthorization` for
            malformed credentials for this realm or a digest-uri other than the
            Request-URI (see ``strict_digest_uri``), or with status 403 for a
            locked-out source or user (see ``limiter``);
            :class:`NeedChallenge` when there are no credentials
            for this realm, only Basic ones, an algorithm/qop/opaque we did not
            offer, a nonce not ours, or an expired one (``stale=True``);
            a nonce that served ``max_nonce_failures`` failed checks;
            otherwise :class:`DigestCredentials` to check.
        """
        if request.method in ("ACK", "CANCEL"):
            return Exempt(f"{request.method} is never challenged (RFC 3261 §22.1)")
        source = ""
        if self.limiter is not None:
            source = _source_host(request)
            if self.limiter.locked_until("source", source, now) is not None:
                return BadAuthorization(403, LOCKED_OUT_REASON)
        other_scheme: str | None = None
        auth: DigestAuthorization | None = None
        for value in request.headers.get_all(self.credentials_header):
            try:
                scheme = auth_scheme(value)
            except ParseError as e:
                return BadAuthorization(400, f"malformed {self.credentials_header}: {e.detail}")
            if scheme.lower() != "digest":
                other_scheme = scheme
                continue
            try:
                parsed = parse_authorization(value)
            except ParseError as e:
                return BadAuthorization(
                    e.status, f"malformed {self.credentials_header}: {e.detail}"
                )
            if parsed.realm == self.realm:
                auth = parsed
                break
        if auth is None:
            if other_scheme is not None:
                return NeedChallenge(False, f"{other_scheme} credentials are never accepted")
            return NeedChallenge(False, f"no credentials for realm {self.realm!r}")
        if self.limiter is not None and self.limiter.locked_until("user", auth.username, now) is not None:
            return BadAuthorization(403, LOCKED_OUT_REASON)
        if auth.uri != request.uri_text and not (
            self.accept_retargeted and _same_uri(auth.uri, request)
        ) and (self.strict_digest_uri or not _same_server(auth.uri, request)):
            return BadAuthorization(
                400, f"digest-uri {auth.uri!r} does not match the Request-URI (RFC 3261 §22.4)"
            )
        algorithm = canonical_algorithm(auth.algorithm)
        if algorithm is None or algorithm not in self.algorithms:
            return NeedChallenge(False, f"algorithm {auth.algorithm or 'MD5'!r} was not offered")
        if auth.userhash:
            return NeedChallenge(False, "userhash was not offered")
        if self.qop:
            if auth.qop is None:
                return NeedChallenge(False, "qop is required (it was offered)")
            if auth.qop.lower() not in self.qop:
                return NeedChallenge(False, f"qop {auth.qop!r} was not offered")
        elif auth.qop is not None and auth.qop.lower() not in ("auth", "auth-int"):
            return NeedChallenge(False, f"qop {auth.qop!r} is not supported")
        if self.opaque is not None and (
            auth.opaque is None or not _same(auth.opaque, self.opaque)
        ):
            return NeedChallenge(False, "opaque does not match")
        issued = self.nonce_issued(auth.nonce)
        if issued is None:
            return NeedChallenge(False, "the nonce was not issued for this realm")
        if issued > now + MAX_CLOCK_SKEW:
            return NeedChallenge(False, "the nonce was issued in the future")
        if now - issued > self.nonce_lifetime:
            return NeedChallenge(True, "the nonce expired")
        if self._nonce_failures.get(auth.nonce, 0) >= self.max_nonce_failures:
            return NeedChallenge(False, "the nonce served too many failed attempts")
        return DigestCredentials(
            username=auth.username,
            realm=auth.realm,
            algorithm=algorithm,
            authorization=auth,
            server=self,
            method=request.method,
            body=request.body,
            issued=issued,
            source=source,
            now=now,
        )

    def _failed(self, nonce: str, username: str, source: str, now: float) -> None:
        """Count one failed check against its nonce, its source and its user."""
        self._nonce_failures[nonce] = self._nonce_failures.pop(nonce, 0) + 1
        while len(self._nonce_failures) > self.replay_table_size:
            self._nonce_failures.popitem(last=False)
        if self.limiter is None:
            return
        for kind, key in (("source", source), ("user", username)):
            lockout = self.limiter.failed(kind, key, now)  # type: ignore[arg-type]
            if lockout is not None and self.on_lockout is not None:
                self.on_lockout(lockout)

    def _record_use(self, auth: DigestAuthorization, issued: float) -> str | None:
        """Record a verified use; return ``"replay"``/``"stale"`` to refuse it, else ``None``."""
        if auth.qop is None or auth.nc is None or auth.cnonce is None:
            return None  # RFC 2069 form: no counter to check
        key = (auth.nonce, auth.cnonce)
        count = int(auth.nc, 16)
        last = self._seen.get(key)
        if last is None:
            if issued <= self._horizon:
                return "stale"
        elif count <= last:
            return "replay"
        if count == 0:
            return "replay"
        self._seen.pop(key, None)
        self._seen[key] = count
        while len(self._seen) > self.replay_table_size:
            oldest = next(iter(self._seen))
            del self._seen[oldest]
            dropped = self.nonce_issued(oldest[0])
            if dropped is not None and dropped > self._horizon:
                self._horizon = dropped
        return None

    # -- challenges -------------------------------------------------------------

    def challenges(self, now: float, stale: bool = False) -> list[Challenge]:
        """Return the challenges to send, one per algorithm, sharing one new nonce."""
        return self._challenges(self.make_nonce(now), stale)

    def _challenges(self, nonce: str, stale: bool) -> list[Challenge]:
        return [
            Challenge.digest(
                self.realm,
                nonce,
                opaque=self.opaque,
                algorithm=algorithm,
                qop=self.qop,
                stale=stale,
                header=self.challenge_header,
            )
            for algorithm in self.algorithms
        ]

    def challenge(self, request: Request, now: float, stale: bool = False) -> Response:
        """Build the 401 (or 407 in the proxy role) for ``request`` (RFC 3261 §22.1, §8.2.6).

        The response copies Via, From, Call-ID and CSeq, and To with a tag added
        when absent (derived from the secret, Call-ID and branch, so a
        retransmitted request gets the same tag); it carries one challenge per
        algorithm, in the configured order.

        Args:
            request: the request to challenge.
            now: the current time, seconds (absolute).
            stale: set ``stale=true`` (the nonce was genuine but expired).
        """
        # one pass over the request's fields, copied as they are (already valid)
        entries: list[tuple[str, str, str]] = []
        for entry in request.headers.entries():
            key = entry[0]
            if key in _COPIED:
                entries.append(entry)
            elif key == "to":
                entries.append((key, entry[1], self._to_with_tag(request, entry[2])))
        headers = Headers.from_entries(entries)
        name = self.challenge_header
        templates = self._challenge_templates(stale)
        if templates is None:
            for challenge in self.challenges(now, stale):
                headers.add(name, challenge.to_header_value())
        else:
            nonce = self.make_nonce(now)  # hex: quoted as it is
            for before, after in templates:
                headers.add(name, f'{before}"{nonce}"{after}')
        return Response(self.status, None, headers)

    def _challenge_templates(self, stale: bool) -> list[tuple[str, str]] | None:
        """What :meth:`challenges` serialises, split around the quoted nonce, per algorithm.

        Built once per configuration (the values around the nonce only change
        with the settings); ``None`` when the nonce's place is ambiguous.
        """
        key = (stale, self.realm, self.opaque, self.algorithms, self.qop, self.proxy_role)
        try:
            return self._templates[key]
        except KeyError:
            pass
        mark = quote(_NONCE_MARK)
        out: list[tuple[str, str]] | None = []
        for challenge in self._challenges(_NONCE_MARK, stale):
            value = challenge.to_header_value()
            if out is None or value.count(mark) != 1:
                out = None
                continue
            before, _, after = value.partition(mark)
            out.append((before, after))
        if len(self._templates) > 16:
            self._templates.clear()
        self._templates[key] = out
        return out

    def _to_with_tag(self, request: Request, value: str) -> str:
        try:
            if request.to_tag is not None:  # read without parsing the To URI
                return value
        except ParseError:
            if ";tag=" in value.lower():
                return value
        call_id = request.headers.get("Call-ID") or ""
        try:
            branch = request.top_via.branch or ""
        except ParseError:
            branch = ""
        data = f"to-tag\0{call_id}\0{branch}".encode()
        tag = hmac.digest(self._secret, data, "sha256").hex()[:16]
        return f"{value};tag={tag}"


_NONCE_MARK = "nonce-goes-here-7f3a9c"
"""Stands for the nonce in the cached challenge templates (a nonce is hex only)."""

_COPIED = frozenset({"via", "from", "call-id", "cseq"})
"""Lookup keys of the fields a challenge copies as they are (To gets a tag, §8.2.6.2)."""


def _same_uri(digest_uri: str, request: Request) -> bool:
    """True when ``digest_uri`` names the request's To URI (a retargeted request)."""
    try:
        return str(SipURI.parse(digest_uri)) == str(request.to.uri)
    except ParseError:
        return False


def _same_server(digest_uri: str, request: Request) -> bool:
    """True when ``digest_uri`` is a SIP URI of the Request-URI's host and port, user absent or the same."""
    try:
        theirs = SipURI.parse(digest_uri)
        ours = request.uri
    except ParseError:
        return False
    if theirs.scheme not in ("sip", "sips") or theirs.scheme != ours.scheme:
        return False
    default = 5061 if ours.scheme == "sips" else 5060
    return (
        theirs.host.lower() == ours.host.lower()
        and (theirs.port or default) == (ours.port or default)
        and theirs.user in (None, ours.user)
    )


def _source_host(request: Request) -> str:
    """The address a request came from: its top Via's ``received``, else its sent-by host (§18.2.1)."""
    try:
        via = request.top_via
    except ParseError:
        return ""
    return via.received or via.host


def _same(a: str, b: str) -> bool:
    """Constant-time equality of two strings of any characters.

    :func:`hmac.compare_digest` refuses non-ASCII ``str`` (TypeError), and
    those come straight from the peer's Authorization header.
    """
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))
