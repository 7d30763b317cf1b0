"""Digest computations: HA1, HA2 and the request-digest (RFC 2617 §3.2.2, RFC 7616 §3.4).

Pure functions over text; no I/O, no clock, no randomness.  All hex digests are
lower-case.  Text is hashed as UTF-8 (RFC 7616 §3.4.1 with ``charset=UTF-8``, the
only charset SIP uses, RFC 3261 §25.1).

The anatomy of a response (``H`` is the algorithm's hash, hex encoded)::

    HA1      = H(username ":" realm ":" password)                   plain algorithms
    HA1-sess = H(HA1 ":" nonce ":" cnonce)                          "-sess" algorithms
    HA2      = H(method ":" digest-uri)                             qop=auth or no qop
    HA2      = H(method ":" digest-uri ":" H(entity-body))          qop=auth-int
    response = H(HA1 ":" nonce ":" nc ":" cnonce ":" qop ":" HA2)   with qop
    response = H(HA1 ":" nonce ":" HA2)                             without qop (RFC 2069)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

__all__ = [
    "ALGORITHMS",
    "STRENGTH",
    "base_algorithm",
    "canonical_algorithm",
    "compute_ha1",
    "compute_ha2",
    "compute_response",
    "compute_userhash",
    "digest_length",
    "hash_hex",
    "is_sess",
]

#: Supported algorithm names, as RFC 7616 §6.1 / RFC 8760 spell them.
ALGORITHMS: tuple[str, ...] = (
    "MD5",
    "MD5-sess",
    "SHA-256",
    "SHA-256-sess",
    "SHA-512-256",
    "SHA-512-256-sess",
)

#: Relative strength of each supported algorithm (higher is stronger); used when
#: an account prefers the strongest of several challenges for one realm.
STRENGTH: dict[str, int] = {
    "MD5": 1,
    "MD5-sess": 1,
    "SHA-256": 2,
    "SHA-256-sess": 2,
    "SHA-512-256": 3,
    "SHA-512-256-sess": 3,
}


def _sha512_256_factory() -> Callable[..., Any]:
    template = hashlib.new("sha512_256")

    def sha512_256(data: bytes = b"") -> Any:
        h = template.copy()
        h.update(data)
        return h

    return sha512_256


_HASH: dict[str, Callable[..., Any]] = {
    "MD5": hashlib.md5,
    "SHA-256": hashlib.sha256,
    "SHA-512-256": _sha512_256_factory(),
}

# lower-case name -> (canonical name, hash constructor, is -sess)
_TABLE: dict[str, tuple[str, Callable[..., Any], bool]] = {}
for _name in ALGORITHMS:
    _base = _name[:-5] if _name.endswith("-sess") else _name
    _TABLE[_name.lower()] = (_name, _HASH[_base], _name.endswith("-sess"))
del _name, _base

_DIGEST_LENGTH = {"MD5": 32, "SHA-256": 64, "SHA-512-256": 64}


# exact spellings too, so the common case needs no .lower()
_FAST: dict[str | None, tuple[str, Callable[..., Any], bool]] = {None: _TABLE["md5"]}
_FAST.update(_TABLE)
_FAST.update((entry[0], entry) for entry in _TABLE.values())


def _lookup(algorithm: str | None) -> tuple[str, Callable[..., Any], bool]:
    entry = _FAST.get(algorithm)
    if entry is not None:
        return entry
    try:
        return _TABLE[(algorithm or "MD5").lower()]
    except KeyError:
        raise ValueError(f"unsupported digest algorithm {algorithm!r}") from None


def canonical_algorithm(algorithm: str | None) -> str | None:
    """Return the canonical spelling of a supported algorithm name.

    Args:
        algorithm: a name as sent on the wire, matched case-insensitively
            (RFC 7616 §3.3); ``None`` (absent) means ``"MD5"`` (RFC 2617 §3.2.1).

    Returns:
        One of :data:`ALGORITHMS`, or ``None`` when the name is not supported.
    """
    entry = _TABLE.get((algorithm or "MD5").lower())
    return entry[0] if entry else None


def is_sess(algorithm: str | None) -> bool:
    """Tell whether ``algorithm`` is a session variant (``*-sess``).

    Raises:
        ValueError: the algorithm is not supported.
    """
    return _lookup(algorithm)[2]


def base_algorithm(algorithm: str | None) -> str:
    """Return the non-session algorithm whose HA1 a ``*-sess`` variant builds on.

    ``"MD5-sess"`` -> ``"MD5"``; ``"SHA-256"`` -> ``"SHA-256"``.

    Raises:
        ValueError: the algorithm is not supported.
    """
    name, _, sess = _lookup(algorithm)
    return name[:-5] if sess else name


def digest_length(algorithm: str | None) -> int:
    """Return the number of hex digits of ``algorithm``'s digests (32 or 64).

    Raises:
        ValueError: the algorithm is not supported.
    """
    return _DIGEST_LENGTH[base_algorithm(algorithm)]


def hash_hex(algorithm: str | None, data: bytes) -> str:
    """Return ``H(data)`` as lower-case hex for the algorithm's hash function.

    Raises:
        ValueError: the algorithm is not supported.
    """
    return _lookup(algorithm)[1](data).hexdigest()


def compute_ha1(algorithm: str | None, username: str, realm: str, password: str) -> str:
    """Return ``HA1 = H(username ":" realm ":" password)`` (RFC 7616 §3.4.2).

    For a ``*-sess`` algorithm this is the base HA1 (the value a server stores);
    :func:`compute_response` derives the session HA1 from it.

    Args:
        algorithm: a supported algorithm name (case-insensitive); ``None`` means MD5.
        username: the authentication username, unquoted.
        realm: the realm, unquoted.
        password: the password.

    Returns:
        The lower-case hex digest.

    Raises:
        ValueError: the algorithm is not supported.
    """
    hasher = _lookup(algorithm)[1]
    return hasher(f"{username}:{realm}:{password}".encode()).hexdigest()


def compute_userhash(algorithm: str | None, username: str, realm: str) -> str:
    """Return the hashed username ``H(username ":" realm)`` (RFC 7616 §3.4.4).

    Raises:
        ValueError: the algorithm is not supported.
    """
    hasher = _lookup(algorithm)[1]
    return hasher(f"{username}:{realm}".encode()).hexdigest()


def compute_ha2(
    algorithm: str | None, method: str, uri: str, qop: str | None = None, body: bytes = b""
) -> str:
    """Return HA2 (RFC 7616 §3.4.3): ``H(method ":" uri)``, plus ``":" H(body)`` for auth-int.

    Raises:
        ValueError: the algorithm is not supported.
    """
    hasher = _lookup(algorithm)[1]
    if qop is not None and qop.lower() == "auth-int":
        data = f"{method}:{uri}:{hasher(body).hexdigest()}"
    else:
        data = f"{method}:{uri}"
    return hasher(data.encode()).hexdigest()


def compute_response(
    *,
    algorithm: str | None,
    ha1: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None,
    cnonce: str | None,
    nc: str | None,
    body: bytes = b"",
    cnonce_for_sess: str | None = None,
    nonce_for_sess: str | None = None,
) -> str:
    """Return the request-digest, the ``response`` parameter (RFC 7616 §3.4.1, RFC 2617 §3.2.2.1).

    Args:
        algorithm: a supported algorithm name (case-insensitive); ``None`` means MD5.
        ha1: the base HA1, hex (from :func:`compute_ha1` or a store).  For a
            ``*-sess`` algorithm the session HA1 is derived here.
        nonce: the server nonce, unquoted.
        method: the request method (``"REGISTER"``; for an ACK, ``"ACK"``).
        uri: the digest-uri, i.e. the Request-URI as sent (RFC 3261 §22.4).
        qop: ``"auth"``, ``"auth-int"`` or ``None`` for the RFC 2069 form.
        cnonce: the client nonce; required with a qop or a ``*-sess`` algorithm.
        nc: the nonce count, 8 hex digits; required with a qop.
        body: the message body, hashed for ``auth-int`` (an empty body too).
        cnonce_for_sess: the cnonce to derive the session HA1 with, when it is
            not ``cnonce`` (RFC 2617 §3.2.2.2 computes it once per session).
        nonce_for_sess: likewise, the nonce to derive the session HA1 with.

    Returns:
        The lower-case hex digest.

    Raises:
        ValueError: the algorithm or qop is not supported, or cnonce/nc are
            missing where they are needed.
    """
    entry = _FAST.get(algorithm)
    _, hasher, sess = entry if entry is not None else _lookup(algorithm)
    if sess:
        s_cnonce = cnonce if cnonce_for_sess is None else cnonce_for_sess
        if s_cnonce is None:
            raise ValueError("a -sess algorithm needs a cnonce")
        s_nonce = nonce if nonce_for_sess is None else nonce_for_sess
        ha1 = hasher(f"{ha1}:{s_nonce}:{s_cnonce}".encode()).hexdigest()
    if qop is None:
        ha2 = hasher(f"{method}:{uri}".encode()).hexdigest()
        return hasher(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()
    if cnonce is None or nc is None:
        raise ValueError("qop needs both cnonce and nc")
    q = qop if qop == "auth" or qop == "auth-int" else qop.lower()
    if q == "auth":
        ha2 = hasher(f"{method}:{uri}".encode()).hexdigest()
    elif q == "auth-int":
        ha2 = hasher(f"{method}:{uri}:{hasher(body).hexdigest()}".encode()).hexdigest()
    else:
        raise ValueError(f"unsupported qop {qop!r}")
    return hasher(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}".encode()).hexdigest()
