"""The digest client: answer 401/407 challenges, once per realm, without looping (RFC 3261 §22.2-22.3).

Theory of operation.  One :class:`DigestClient` lives as long as an account: it
holds the credential source, the preferences, the digest-leak guard, and the
caches that outlive single requests (challenges that succeeded, nonce counts).
Each logical request - a REGISTER, an INVITE, a BYE, followed across its
retries - gets one :class:`AuthAttempt` from :meth:`DigestClient.start`::

    attempt = client.start()
    hop = HopAddress.located(next_hop_uri, (ip, port), "UDP")  # where it really goes
    headers = attempt.initial_headers("REGISTER", uri, hop=hop)  # pre-emptive, maybe []
    ... send; a 401/407 comes back ...
    headers = attempt.respond_to(response, "REGISTER", uri, hop=hop)  # may raise
    ... send again with CSeq+1 and ``headers``; a 2xx (any non-401/407 final) ...
    attempt.succeeded()

The rules it enforces:

* Authorization answers WWW-Authenticate, Proxy-Authorization answers
  Proxy-Authenticate, one value per realm; a response carrying both kinds (a
  forking proxy's aggregate, RFC 3261 §16.7) is answered with both at once, and
  credentials for realms not re-challenged are kept on the next retry.
* Several challenges for one realm (different algorithms): the topmost
  supported one is answered (RFC 8760 §2.4), or the strongest if asked.
* A realm re-challenged without ``stale=true`` after we answered it means the
  credentials were refused: :class:`~txsipua.errors.AuthenticationError`, unless
  the refused credentials were pre-emptive (computed from a cached nonce), in
  which case one fresh attempt is made.  ``stale=true`` retries with the new nonce
  (a bounded number of times).  The total number of rounds is bounded too.
* Digest-leak guard (:mod:`txsipua.auth.guard`): when on and trusted hops are
  configured, a challenge for a realm is answered only if the transport
  address the request went to is trusted for it (the account's registrar and
  outbound proxy, or one of the hosts listed for that realm); pre-emptive
  credentials and those an ACK repeats (:meth:`DigestClient.credentials_for_hop`)
  follow the same rule.
* Pre-emptive reuse: after a success the challenge is cached per (header kind,
  realm) with the transport address it came through; later requests to the
  same address (host, port and transport) carry credentials with the next nc.
  An Authorization (end-to-end) value is only reused for the same
  Request-URI, so it never reaches a different far end through the same proxy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import attrs

from txsipua.auth.answers import (
    MAX_CACHED,
    MAX_NONCE_COUNTS,
    MAX_ROUNDS,
    AnsweredRealm,
    CacheEntry,
    CacheKey,
    token_cnonce,
)
from txsipua.auth.attempt import AuthAttempt
from txsipua.auth.credentials import CredentialSource
from txsipua.auth.guard import HopAddress, LeakGuard, WithheldCredentials, host_key
from txsipua.errors import DigestAuthenticationError

if TYPE_CHECKING:  # pragma: no cover
    from txsipua.sip.uri import SipURI

__all__ = ["MAX_ROUNDS", "AnsweredRealm", "AuthAttempt", "DigestAuthenticationError", "DigestClient",
           "HopAddress", "WithheldCredentials", "host_key"]


@attrs.define(slots=True, eq=False, init=False)
class DigestClient:
    """Answers digest challenges for one account (RFC 3261 §22, RFC 7616, RFC 8760).

    Args:
        credentials: where credentials per realm come from.
        cnonce_factory: returns a fresh client nonce (at least 64 bits of
            entropy); defaults to ``secrets.token_hex(8)``.  Inject a
            deterministic one in tests.
        prefer_qop: ``"auth"`` (default) or ``"auth-int"``: which to use when a
            challenge offers both.
        prefer_strongest: answer the strongest algorithm offered for a realm
            instead of the topmost supported one (RFC 8760 §2.4's rule).
        trusted_hosts: the parties credentials may be sent to for any realm:
            the account's registrar and outbound proxy, as URIs
            (``sip:registrar.example.net``, ``sips:203.0.113.5:5071``) or
            ``host``/``host:port`` text.  Without a port, the default port
            of the transport used; a host name is trusted at the addresses
            its location gave (:class:`~txsipua.auth.guard.LeakGuard`).
        guard: enable the digest-leak guard.  It acts only when
            ``trusted_hosts`` is not empty.

    Attributes:
        leak_guard: the :class:`~txsipua.auth.guard.LeakGuard` deciding which
            hops get which realm's credentials (the realm's ``hosts`` come
            from the credential source); feed it location results with
            ``leak_guard.learn(uri, targets)``.
        trusted_hosts: the trusted hosts, normalised (for display).

    Raises:
        ValueError: ``prefer_qop`` is neither ``"auth"`` nor ``"auth-int"``, or
            a ``trusted_hosts`` entry cannot be read.
    """

    credentials: CredentialSource
    cnonce_factory: Callable[[], str]
    prefer_qop: str
    prefer_strongest: bool
    trusted_hosts: frozenset[str]
    guard: bool
    leak_guard: LeakGuard
    _cache: dict[CacheKey, CacheEntry]
    _nc: dict[tuple[str, str], int]

    def __init__(
        self,
        credentials: CredentialSource,
        *,
        cnonce_factory: Callable[[], str] | None = None,
        prefer_qop: str = "auth",
        prefer_strongest: bool = False,
        trusted_hosts: Iterable[str | SipURI] = (),
        guard: bool = True,
    ) -> None:
        if prefer_qop.lower() not in ("auth", "auth-int"):
            raise ValueError(f"prefer_qop must be 'auth' or 'auth-int', not {prefer_qop!r}")
        self.credentials = credentials
        self.cnonce_factory = cnonce_factory if cnonce_factory is not None else token_cnonce
        self.prefer_qop = prefer_qop.lower()
        self.prefer_strongest = prefer_strongest
        trusted = tuple(trusted_hosts)
        self.trusted_hosts = frozenset(host_key(str(h)) for h in trusted)
        self.guard = guard
        self.leak_guard = LeakGuard(
            trusted, enabled=guard, realm_hosts=self._realm_hosts, realms=credentials.realms
        )
        self._cache = {}
        self._nc = {}

    def start(self) -> AuthAttempt:
        """Begin authenticating one logical request (followed across its retries)."""
        return AuthAttempt(self)

    def forget(self, realm: str | None = None) -> None:
        """Drop cached challenges (all, or one realm's), e.g. after a credential change."""
        for key in list(self._cache):
            if realm is None or key[1] == realm:
                del self._cache[key]

    @property
    def cached_realms(self) -> tuple[tuple[str, str], ...]:
        """The (challenge header, realm) pairs whose challenges are cached for reuse."""
        return tuple(self._cache)

    # -- the narrow interface AuthAttempt uses ------------------------------

    def credentials_for_hop(
        self, headers: Iterable[tuple[str, str]], hop: HopAddress | None
    ) -> tuple[list[tuple[str, str]], WithheldCredentials | None]:
        """Keep the credential fields ``hop`` is trusted for, for a request the guard did not see.

        The 2xx ACK repeats its INVITE's credentials (RFC 3261 §13.2.2.4) but
        goes to the dialog's next hop, maybe not the proxy that challenged.
        Authorization/Proxy-Authorization values of realms ``hop`` (``None``:
        unknown) is not trusted for, or whose realm cannot be read, are left
        out; other fields pass through.  Returns ``(kept fields, withheld)``,
        ``withheld`` (for a warning) being ``None`` when nothing was left out.
        """
        return self.leak_guard.filter(headers, hop)

    def _realm_hosts(self, realm: str) -> tuple[str, ...]:
        credential = self.credentials.credentials_for(realm)
        return credential.hosts if credential is not None else ()

    def cached(self) -> list[tuple[CacheKey, CacheEntry]]:
        """The cached challenges as ``((challenge header, realm), entry)`` pairs, oldest first."""
        return list(self._cache.items())

    def drop_cached(self, key: CacheKey) -> None:
        """Forget the cached challenge under ``(challenge header, realm)`` (no error if absent)."""
        self._cache.pop(key, None)

    def next_nc(self, realm: str, nonce: str) -> str:
        """The next nonce count (8 hex digits, RFC 2617 §3.2.2); :data:`MAX_NONCE_COUNTS` kept."""
        key = (realm, nonce)
        count = self._nc.pop(key, 0) + 1
        self._nc[key] = count  # re-inserted: most recently used last
        while len(self._nc) > MAX_NONCE_COUNTS:
            del self._nc[next(iter(self._nc))]
        return f"{count & 0xFFFFFFFF:08x}"

    def choose_qop(self, offered: tuple[str, ...]) -> str | None | bool:
        """Return the qop to use, ``None`` for none offered, ``False`` when unusable."""
        if not offered:
            return None
        lowered = [q.lower() for q in offered]
        if self.prefer_qop in lowered:
            return self.prefer_qop
        for q in ("auth", "auth-int"):
            if q in lowered:
                return q
        return False

    def remember(self, key: CacheKey, entry: CacheEntry) -> None:
        """Cache ``entry`` under ``(header, realm)`` for reuse; the oldest go past :data:`MAX_CACHED`."""
        self._cache.pop(key, None)
        self._cache[key] = entry
        while len(self._cache) > MAX_CACHED:
            del self._cache[next(iter(self._cache))]
