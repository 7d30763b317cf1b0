"""Values shared by the digest client and its attempts (RFC 3261 §22.2-22.3, RFC 7616).

The bounds a :class:`~txsipua.auth.client.DigestClient` keeps, the choice made
for one challenge (:class:`Choice`), one computed answer (:class:`Answer`), a
cached success (:class:`CacheEntry`), and what one credential value answered
(:class:`AnsweredRealm`, for logs and call ladders).
"""

from __future__ import annotations

import attrs

from txsipua.auth.challenge import Challenge
from txsipua.auth.credentials import Credential

__all__ = ["ANSWER_HEADER", "MAX_CACHED", "MAX_NONCE_COUNTS", "MAX_ROUNDS", "MAX_STALE_RETRIES",
           "PROXY_AUTHENTICATE", "WWW_AUTHENTICATE", "Answer", "AnsweredRealm", "CacheEntry", "CacheKey",
           "Choice", "HopKey", "token_cnonce"]

WWW_AUTHENTICATE = "WWW-Authenticate"
PROXY_AUTHENTICATE = "Proxy-Authenticate"
#: The header that answers each challenge header (RFC 3261 §22.2, §22.3).
ANSWER_HEADER = {WWW_AUTHENTICATE: "Authorization", PROXY_AUTHENTICATE: "Proxy-Authorization"}

#: Retries with ``stale=true`` allowed per realm within one attempt.
MAX_STALE_RETRIES = 3
#: 401/407 responses answered within one attempt, not counting those that only
#: refresh stale nonces.
MAX_ROUNDS = 8
#: Bound of the (realm, nonce) -> nc table.
MAX_NONCE_COUNTS = 1024
#: Bound of the cache of successful challenges.
MAX_CACHED = 64

CacheKey = tuple[str, str]  # (challenge header, realm)
HopKey = tuple[str, int, str]  # HopAddress.key: (host, port, transport)




@attrs.frozen
class Choice:
    challenge: Challenge
    algorithm: str  # canonical
    qop: str | None


@attrs.define(slots=True)
class Answer:
    header: str  # the challenge header answered
    challenge: Challenge
    choice: Choice
    credential: Credential
    value: str
    from_cache: bool
    hop: HopKey | None
    uri: str
    nc: str | None = None
    stale_retries: int = 0


@attrs.frozen
class CacheEntry:
    choice: Choice
    hop: HopKey | None
    uri: str


@attrs.frozen
class AnsweredRealm:
    """What one credential value answers, for logs and call ladders.

    Attributes:
        header: ``"Authorization"`` or ``"Proxy-Authorization"``.
        realm: the realm answered.
        username: the auth username sent.
        algorithm: the algorithm, as sent.
        qop: the qop used, or ``None``.
        nc: the nonce count sent, or ``None``.
        pre_emptive: ``True`` when computed from a cached challenge.
    """

    header: str
    realm: str
    username: str
    algorithm: str
    qop: str | None
    nc: str | None
    pre_emptive: bool


def token_cnonce() -> str:
    """64 random bits from the OS (``secrets``, imported only when needed)."""
    import secrets

    return secrets.token_hex(8)
