"""One logical request's digest authentication across its retries (RFC 3261 §22.2-22.3).

An :class:`AuthAttempt` comes from :meth:`txsipua.auth.client.DigestClient.start`
and follows one REGISTER, INVITE, BYE... from its first sending to its final
response: pre-emptive credentials (:meth:`AuthAttempt.initial_headers`), the
answer to each 401/407 (:meth:`AuthAttempt.respond_to`, which enforces the
rules listed in :mod:`txsipua.auth.client`), and :meth:`AuthAttempt.succeeded`
to cache what worked.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import attrs

from txsipua.auth.answers import (
    ANSWER_HEADER,
    MAX_ROUNDS,
    MAX_STALE_RETRIES,
    PROXY_AUTHENTICATE,
    WWW_AUTHENTICATE,
    Answer,
    AnsweredRealm,
    CacheEntry,
    CacheKey,
    Choice,
    HopKey,
)
from txsipua.auth.challenge import Challenge, DigestAuthorization, parse_challenges
from txsipua.auth.credentials import Credential
from txsipua.auth.digest import STRENGTH, canonical_algorithm, compute_response, is_sess
from txsipua.auth.guard import HopAddress
from txsipua.errors import AuthenticationError, DigestAuthenticationError, ParseError

if TYPE_CHECKING:  # pragma: no cover
    from txsipua.auth.client import DigestClient
    from txsipua.sip.message import Response

__all__ = ["AuthAttempt"]


@attrs.define(slots=True, eq=False)
class _Refusals:
    rejected: list[str] = attrs.Factory(list)
    guarded: list[str] = attrs.Factory(list)
    unsupported: list[str] = attrs.Factory(list)
    missing: list[str] = attrs.Factory(list)
    loops: list[str] = attrs.Factory(list)
    unsupported_algorithms: list[str] = attrs.Factory(list)


@attrs.define(slots=True, eq=False)
class AuthAttempt:
    """The authentication of one logical request across its retries (RFC 3261 §22.2).

    Get one from :meth:`DigestClient.start`.

    Attributes:
        notes: human-readable notes about challenges that were skipped (other
            schemes, unparseable fields, unsupported algorithms), for logging.
        rounds: how many 401/407 responses were handled (stale refreshes included).
    """

    _client: DigestClient
    _answers: dict[CacheKey, Answer] = attrs.Factory(dict)
    notes: list[str] = attrs.Factory(list)
    rounds: int = 0
    _counted: int = 0

    @property
    def headers(self) -> list[tuple[str, str]]:
        """The credentials currently in use, as (header name, value) pairs.

        The ACK for a 2xx repeats exactly these (RFC 3261 §13.2.2.4).
        """
        return [(ANSWER_HEADER[a.header], a.value) for a in self._answers.values()]

    @property
    def answered(self) -> list[AnsweredRealm]:
        """What each value of :attr:`headers` answers, in the same order."""
        out = []
        for a in self._answers.values():
            out.append(
                AnsweredRealm(
                    header=ANSWER_HEADER[a.header],
                    realm=a.challenge.realm,
                    username=a.credential.username,
                    algorithm=a.challenge.algorithm or "MD5",
                    qop=a.choice.qop,
                    nc=a.nc,
                    pre_emptive=a.from_cache,
                )
            )
        return out

    def initial_headers(
        self,
        method: str,
        uri: str,
        body: bytes = b"",
        hop_host: str = "",
        *,
        hop: HopAddress | None = None,
    ) -> list[tuple[str, str]]:
        """Pre-emptive credentials from challenges that succeeded before (RFC 3261 §22.3).

        For each cached (header kind, realm) whose success came through the
        same transport address (and, for Authorization, with the same
        Request-URI), and only when the digest-leak guard trusts ``hop`` for
        that realm, compute credentials with the cached nonce and the next
        nonce count.

        Args:
            method: the request method.
            uri: the Request-URI as it will be sent (the digest-uri).
            body: the request body (hashed for ``auth-int``).
            hop_host: the next hop as text (``host`` or ``host:port``), when
                ``hop`` is not given.
            hop: where the request is sent (:class:`~txsipua.auth.guard.HopAddress`).

        Returns:
            ``(header name, value)`` pairs; ``[]`` when nothing is cached, and
            always for CANCEL and ACK (RFC 3261 §22.1, §13.2.2.4).
        """
        if method in ("CANCEL", "ACK"):
            return []
        client = self._client
        if hop is None:
            hop = HopAddress.parse(hop_host)
        client.leak_guard.observe(hop)
        hop_key = hop.key if hop is not None else None
        for key, entry in list(client.cached()):
            header, realm = key
            if entry.hop != hop_key or (header == WWW_AUTHENTICATE and entry.uri != uri):
                continue
            credential = client.credentials.credentials_for(realm)
            if credential is None or not client.leak_guard.allows(realm, hop):
                continue
            answer = self._answer(header, entry.choice, credential, method, uri, body, hop_key)
            if answer is None:
                continue
            answer.from_cache = True
            self._answers[key] = answer
        return self.headers

    def respond_to(
        self,
        response: Response,
        method: str,
        uri: str,
        body: bytes = b"",
        hop_host: str = "",
        *,
        hop: HopAddress | None = None,
    ) -> list[tuple[str, str]]:
        """Answer a 401/407 and return every credential header for the retried request.

        Args:
            response: the 401 or 407 (both challenge header kinds are read,
                whatever the status: RFC 3261 §16.7 aggregates).
            method: the method of the request to retry.
            uri: its Request-URI as it will be sent.
            body: its body (hashed for ``auth-int``).
            hop_host: the next hop as text, when ``hop`` is not given.
            hop: the transport address the request went to
                (:class:`~txsipua.auth.guard.HopAddress`); each realm is
                answered only if the digest-leak guard trusts it for that realm.

        Returns:
            The complete list of ``(header name, value)`` pairs for the retry:
            one Authorization per WWW-Authenticate realm, one
            Proxy-Authorization per Proxy-Authenticate realm, including those
            of earlier rounds not re-challenged.

        Raises:
            DigestAuthenticationError: (an :class:`~txsipua.errors.AuthenticationError`)
                the retry must not happen: the method is CANCEL or ACK; no
                Digest challenge could be used; no credentials for any challenged
                realm; only unsupported algorithms; credentials refused (a
                non-stale re-challenge of a realm just answered, after one fresh
                attempt when they were pre-emptive); the guard refused the hop;
                stale=true without end; too many rounds.  The error carries
                ``kind``, status, realms, algorithms, the account's realms, and a
                hint.
        """
        status = int(getattr(response, "status", 0))
        client = self._client
        groups: dict[CacheKey, list[Challenge]] = {}
        for header in (WWW_AUTHENTICATE, PROXY_AUTHENTICATE):
            for value in response.headers.get_all(header):
                try:
                    parsed = parse_challenges(value, header)
                except ParseError as e:
                    self.notes.append(f"ignored an unparseable {header}: {e.detail}")
                    continue
                for challenge in parsed:
                    if not challenge.is_digest:
                        self.notes.append(
                            f"ignored a {challenge.scheme} challenge in {header}: only Digest is answered"
                        )
                        continue
                    groups.setdefault((header, challenge.realm), []).append(challenge)
        realms = tuple(dict.fromkeys(realm for _, realm in groups))
        algorithms = tuple(
            dict.fromkeys(c.algorithm or "MD5" for cs in groups.values() for c in cs)
        )

        def fail(
            reason: str, kind: str, failed_realms: Iterable[str] = (), hint: str | None = None
        ) -> AuthenticationError:
            return DigestAuthenticationError(
                reason,
                kind=kind,
                hint=hint,
                status=status,
                realms=tuple(failed_realms) or realms,
                algorithms=algorithms,
                account_realms=client.credentials.realms(),
                response=response,
            )

        if method in ("CANCEL", "ACK"):
            raise fail(
                f"a {method} is never retried with credentials (RFC 3261 §22.1)", "method", hint=""
            )
        if not groups:
            raise fail(
                "no usable Digest challenge in the response",
                "no-challenge",
                hint="the server offered no Digest challenge txsipua can parse"
                + (f" ({'; '.join(self.notes)})" if self.notes else ""),
            )
        self.rounds += 1

        if hop is None:
            hop = HopAddress.parse(hop_host)
        client.leak_guard.observe(hop)
        hop_key = hop.key if hop is not None else None
        where = str(hop) if hop is not None else (hop_host or "(unknown)")
        entry = "that hop" if hop is None else (f"[{hop.host}]" if ":" in hop.host else hop.host)
        entry += f":{hop.port}" if hop is not None else ""
        refusals = _Refusals()
        fresh: dict[CacheKey, Answer] = {}
        for key, challenges in groups.items():
            header, realm = key
            credential = client.credentials.credentials_for(realm)
            if credential is None:
                refusals.missing.append(realm)
                continue
            if not client.leak_guard.allows(realm, hop):
                refusals.guarded.append(realm)
                continue
            choice = self._choose(challenges, credential, refusals)
            if choice is None:
                refusals.unsupported.append(realm)
                continue
            previous = self._answers.get(key)
            stale_retries = 0
            if previous is not None:
                if choice.challenge.stale:
                    stale_retries = previous.stale_retries + 1
                    if stale_retries > MAX_STALE_RETRIES:
                        refusals.loops.append(realm)
                        continue
                    if choice.challenge.nonce == previous.challenge.nonce:
                        refusals.loops.append(realm)
                        continue
                elif previous.from_cache:
                    # the cached nonce was refused: one fresh attempt, no more reuse
                    client.drop_cached(key)
                else:
                    refusals.rejected.append(realm)
                    continue
            answer = self._answer(header, choice, credential, method, uri, body, hop_key)
            if answer is None:  # a value that cannot be echoed (see _answer)
                refusals.unsupported.append(realm)
                continue
            answer.stale_retries = stale_retries
            fresh[key] = answer

        if refusals.rejected:
            raise fail(
                "the credentials were rejected for realm(s) "
                + ", ".join(repr(r) for r in refusals.rejected),
                "rejected",
                refusals.rejected,
            )
        if not fresh:
            reasons: list[str] = []
            kinds: list[tuple[str, list[str], str | None]] = []
            if refusals.loops:
                reasons.append(
                    "the server keeps answering stale=true for realm(s) "
                    + ", ".join(repr(r) for r in refusals.loops)
                )
                kinds.append(("stale-loop", refusals.loops, "the server's nonces expire at once"))
            if refusals.guarded:
                reasons.append(
                    f"refused by the digest-leak guard: hop {where!r} is not "
                    "trusted for realm(s) " + ", ".join(repr(r) for r in refusals.guarded)
                )
                kinds.append(
                    (
                        "guard",
                        refusals.guarded,
                        f"if {where!r} may challenge for {refusals.guarded[0]!r}, add "
                        f"{entry!r} to that realm's hosts (or set digest_guard = false)",
                    )
                )
            if refusals.unsupported:
                algos = ", ".join(dict.fromkeys(refusals.unsupported_algorithms))
                reasons.append(
                    "no supported algorithm/qop offered for realm(s) "
                    + ", ".join(repr(r) for r in refusals.unsupported)
                    + (f" (unsupported: {algos})" if algos else "")
                )
                kinds.append(
                    (
                        "unsupported",
                        refusals.unsupported,
                        "txsipua answers MD5, SHA-256 and SHA-512-256 (and -sess) with qop "
                        "auth/auth-int; a stored HA1 answers only its own algorithm",
                    )
                )
            if refusals.missing:
                reasons.append(
                    "no credentials for realm(s) " + ", ".join(repr(r) for r in refusals.missing)
                )
                kinds.append(("no-credentials", refusals.missing, None))
            kind, failed, hint = kinds[0]
            raise fail("; ".join(reasons), kind, failed if len(kinds) == 1 else (), hint)
        # Rounds that only refresh stale nonces do not count towards the bound
        # (they are bounded per realm by MAX_STALE_RETRIES).
        if any(a.stale_retries == 0 for a in fresh.values()):
            self._counted += 1
            if self._counted > MAX_ROUNDS:
                raise fail(
                    f"gave up after {MAX_ROUNDS} authentication rounds",
                    "rounds",
                    hint="the server keeps challenging; check its configuration",
                )
        # Credentials kept from earlier rounds (realms not re-challenged) are
        # computed again with the next nonce count: the same nc twice is a
        # replay to a server that tracks it (RFC 7616 §3.4.5).
        for key, previous in list(self._answers.items()):
            if key in fresh:
                continue
            again = self._answer(
                key[0], previous.choice, previous.credential, method, uri, body, hop_key
            )
            if again is not None:
                again.from_cache = previous.from_cache
                again.stale_retries = previous.stale_retries
                self._answers[key] = again
        self._answers.update(fresh)
        return self.headers

    def succeeded(self) -> None:
        """Record that the request got a final response other than 401/407.

        The challenges answered are cached for pre-emptive reuse by later
        attempts of the same :class:`DigestClient`.
        """
        for key, answer in self._answers.items():
            self._client.remember(key, CacheEntry(answer.choice, answer.hop, answer.uri))

    # -- internals ---------------------------------------------------------

    def _choose(
        self, challenges: list[Challenge], credential: Credential, refusals: _Refusals
    ) -> Choice | None:
        client = self._client
        usable: list[Choice] = []
        for challenge in challenges:
            algorithm = canonical_algorithm(challenge.algorithm)
            if algorithm is None:
                refusals.unsupported_algorithms.append(str(challenge.algorithm))
                self.notes.append(
                    f"skipped a challenge for realm {challenge.realm!r}: "
                    f"unsupported algorithm {challenge.algorithm!r}"
                )
                continue
            qop = client.choose_qop(challenge.qop)
            if qop is False:
                refusals.unsupported_algorithms.append(f"qop={','.join(challenge.qop)}")
                self.notes.append(
                    f"skipped a challenge for realm {challenge.realm!r}: "
                    f"unsupported qop {','.join(challenge.qop)!r}"
                )
                continue
            if not credential.can_answer(algorithm):
                refusals.unsupported_algorithms.append(f"{algorithm} (no HA1 stored)")
                self.notes.append(
                    f"skipped a {algorithm} challenge for realm {challenge.realm!r}: "
                    "no password and no stored HA1 for that algorithm"
                )
                continue
            assert qop is not True
            usable.append(Choice(challenge, algorithm, qop))
        if not usable:
            return None
        if client.prefer_strongest:
            best = max(STRENGTH[c.algorithm] for c in usable)
            return next(c for c in usable if STRENGTH[c.algorithm] == best)
        return usable[0]

    def _answer(
        self,
        header: str,
        choice: Choice,
        credential: Credential,
        method: str,
        uri: str,
        body: bytes,
        hop: HopKey | None,
    ) -> Answer | None:
        try:
            return self._compute_answer(header, choice, credential, method, uri, body, hop)
        except ValueError as e:
            # e.g. a nonce or realm holding an escaped control character: it
            # parses as a quoted-pair but cannot be echoed back (RFC 3261 §25.1)
            self.notes.append(f"cannot answer the challenge for realm {choice.challenge.realm!r}: {e}")
            return None

    def _compute_answer(
        self,
        header: str,
        choice: Choice,
        credential: Credential,
        method: str,
        uri: str,
        body: bytes,
        hop: HopKey | None,
    ) -> Answer | None:
        client = self._client
        challenge = choice.challenge
        ha1 = credential.ha1_for(choice.algorithm, challenge.realm)
        if ha1 is None:
            return None
        qop = choice.qop
        cnonce = nc = None
        if qop is not None or is_sess(choice.algorithm):
            cnonce = client.cnonce_factory()
        if qop is not None:
            nc = client.next_nc(challenge.realm, challenge.nonce)
        response = compute_response(
            algorithm=choice.algorithm,
            ha1=ha1,
            nonce=challenge.nonce,
            method=method,
            uri=uri,
            qop=qop,
            cnonce=cnonce,
            nc=nc,
            body=body,
        )
        value = DigestAuthorization(
            username=credential.username,
            realm=challenge.realm,
            nonce=challenge.nonce,
            uri=uri,
            response=response,
            # as challenged, or MD5 when the challenge named none (registrars want it)
            algorithm=challenge.algorithm if challenge.algorithm is not None else "MD5",
            cnonce=cnonce,
            nc=nc,
            qop=qop,
            opaque=challenge.opaque,
        ).to_header_value()
        return Answer(
            header=header,
            challenge=challenge,
            choice=choice,
            credential=credential,
            value=value,
            from_cache=False,
            hop=hop,
            uri=uri,
            nc=nc,
        )
