"""Digest authentication, client and server (RFC 3261 §22, RFC 2617, RFC 7616, RFC 8760).

Pure: no Twisted, no clock, no sockets.  Modules, in the order data flows:

* :mod:`~txsipua.auth.digest` - HA1, HA2 and request-digest computations.
* :mod:`~txsipua.auth.challenge` - parse/serialise challenges and credentials.
* :mod:`~txsipua.auth.credentials` - credentials per realm and their source seam.
* :mod:`~txsipua.auth.client` - answering 401/407 (:class:`DigestClient`).
* :mod:`~txsipua.auth.server` - challenging and verifying (:class:`DigestServer`).
"""

from txsipua.auth.challenge import (
    Challenge,
    DigestAuthorization,
    parse_authorization,
    parse_challenges,
)
from txsipua.auth.client import AuthAttempt, DigestClient
from txsipua.auth.credentials import (
    Credential,
    ICredentialSource,
    InMemoryCredentials,
    credentials_from_toml,
)
from txsipua.auth.digest import ALGORITHMS, compute_ha1, compute_response
from txsipua.auth.server import (
    BadAuthorization,
    DigestCredentials,
    DigestServer,
    Exempt,
    NeedChallenge,
)

__all__ = [
    "ALGORITHMS",
    "AuthAttempt",
    "BadAuthorization",
    "Challenge",
    "Credential",
    "DigestAuthorization",
    "DigestClient",
    "DigestCredentials",
    "DigestServer",
    "Exempt",
    "ICredentialSource",
    "InMemoryCredentials",
    "NeedChallenge",
    "compute_ha1",
    "compute_response",
    "credentials_from_toml",
    "parse_authorization",
    "parse_challenges",
]
