"""Credentials per realm and the seam through which the digest client finds them.

An account has one SIP identity and any number of :class:`Credential` values,
one per realm (RFC 3261 §22.1: "the realm string alone defines the protection
domain").  The auth username may differ from the SIP user and the realm from the
SIP domain.  Credentials are looked up by the exact realm a challenge names; a
wildcard realm ``"*"`` answers any realm, but only when the user configured one.

A credential holds either the password or, so that a deployment can avoid
plaintext, a stored HA1 per algorithm (``H(username ":" realm ":" password)``,
RFC 7616 §3.4.2).  A stored HA1 also serves that algorithm's ``-sess`` variant.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, Protocol

import attrs
import zope.interface

from txsipua.auth.digest import base_algorithm, canonical_algorithm, compute_ha1, digest_length
from txsipua.auth.guard import TrustedHop
from txsipua.errors import CredentialsConfigError

__all__ = [
    "WILDCARD_REALM",
    "Credential",
    "CredentialSource",
    "CredentialsConfigError",
    "ICredentialSource",
    "InMemoryCredentials",
    "credentials_from_toml",
]

#: The realm name that matches every realm, when given explicitly.
WILDCARD_REALM = "*"

_HEX = re.compile(r"[0-9a-fA-F]+\Z")


def _normalise_ha1(value: Mapping[str, str]) -> Mapping[str, str]:
    out: dict[str, str] = {}
    for algorithm, ha1 in dict(value).items():
        name = canonical_algorithm(algorithm)
        if name is None:
            raise CredentialsConfigError(f"unsupported algorithm {algorithm!r} for a stored HA1")
        name = base_algorithm(name)
        if not isinstance(ha1, str) or not _HEX.match(ha1) or len(ha1) != digest_length(name):
            raise CredentialsConfigError(
                f"the {name} HA1 must be {digest_length(name)} hex digits, got {ha1!r}"
            )
        if name in out and out[name] != ha1.lower():
            raise CredentialsConfigError(f"two different HA1 values for {name}")
        out[name] = ha1.lower()
    return MappingProxyType(out)


def _hosts(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        raise CredentialsConfigError("hosts must be a list of host names, not one string")
    hosts = tuple(value)
    for host in hosts:
        try:
            TrustedHop.parse(host, any_port=True)
        except ValueError as e:
            raise CredentialsConfigError(f"hosts: {e} (write host or host:port)") from None
    return hosts


@attrs.frozen
class Credential:
    """The credentials for one realm (RFC 3261 §22.1).

    Attributes:
        realm: the realm they answer, exactly as servers send it; ``"*"``
            answers any realm (only when the user asks for it, and only with a
            password since a stored HA1 is bound to one realm).
        username: the authentication username (need not be the SIP user).
        password: the password, or ``None`` when only HA1 values are stored.
        ha1: stored HA1 per algorithm, hex (``{"MD5": "...", "SHA-256": "..."}``);
            keys are normalised to canonical base algorithm names (a value for
            ``MD5-sess`` is stored under ``MD5``: the base HA1 is the same).
        hosts: extra parties trusted with this realm's credentials, beyond
            the account's registrar and outbound proxy (the digest-leak guard,
            :mod:`txsipua.auth.guard`): ``"host"`` (a name or an address, on
            any port), ``"host:port"`` or ``"[v6]:port"`` (that port only).

    Raises:
        CredentialsConfigError: neither password nor HA1, a malformed HA1, a
            ``hosts`` entry that is not ``host`` or ``host:port``, or a
            wildcard realm without password.
    """

    realm: str
    username: str
    password: str | None = attrs.field(default=None, repr=False)
    ha1: Mapping[str, str] = attrs.field(
        factory=dict, converter=_normalise_ha1, hash=False, repr=False
    )
    hosts: tuple[str, ...] = attrs.field(default=(), converter=_hosts)

    def __attrs_post_init__(self) -> None:
        if self.password is None and not self.ha1:
            raise CredentialsConfigError(
                f"credentials for realm {self.realm!r} need a password or an HA1"
            )
        if self.realm == WILDCARD_REALM and self.password is None:
            raise CredentialsConfigError(
                "a wildcard realm needs a password (an HA1 names one realm)"
            )

    @property
    def is_wildcard(self) -> bool:
        """``True`` for the explicit wildcard realm ``"*"``."""
        return self.realm == WILDCARD_REALM

    def can_answer(self, algorithm: str | None) -> bool:
        """Tell whether an HA1 for ``algorithm`` (``None``: MD5) is available.

        Unsupported algorithms give ``False``.
        """
        name = canonical_algorithm(algorithm)
        if name is None:
            return False
        return self.password is not None or base_algorithm(name) in self.ha1

    def ha1_for(self, algorithm: str | None, realm: str | None = None) -> str | None:
        """Return the base HA1 for ``algorithm`` in ``realm`` (RFC 7616 §3.4.2).

        Args:
            algorithm: a supported algorithm name (``None``: MD5); the base HA1 of
                a ``-sess`` variant is returned.
            realm: the challenged realm (needed for a wildcard credential);
                defaults to :attr:`realm`.

        Returns:
            The hex HA1, or ``None`` when neither a password nor a stored HA1
            for that algorithm exists, or the algorithm is unsupported.
        """
        name = canonical_algorithm(algorithm)
        if name is None:
            return None
        base = base_algorithm(name)
        stored = self.ha1.get(base)
        if stored is not None and (realm is None or realm == self.realm):
            return stored
        if self.password is None:
            return None
        return compute_ha1(
            base, self.username, self.realm if realm is None else realm, self.password
        )


class ICredentialSource(zope.interface.Interface):
    """Where the digest client finds credentials, one :class:`Credential` per realm."""

    def credentials_for(realm):  # noqa: N805
        """Return the :class:`Credential` for exactly ``realm`` (str), else the explicit
        wildcard's, else ``None``."""

    def realms():  # type: ignore[misc]
        """Return the realms (``tuple[str, ...]``) credentials exist for (``"*"`` included when configured)."""


class CredentialSource(Protocol):
    """The static-typing twin of :class:`ICredentialSource` (for annotations)."""

    def credentials_for(self, realm: str) -> Credential | None:
        """See :meth:`ICredentialSource.credentials_for`."""

    def realms(self) -> tuple[str, ...]:
        """See :meth:`ICredentialSource.realms`."""


@zope.interface.implementer(ICredentialSource)
class InMemoryCredentials:
    """An :class:`ICredentialSource` over a fixed list of credentials.

    Args:
        credentials: one :class:`Credential` per realm; the wildcard realm
            ``"*"`` is honoured only when one is in the list.

    Raises:
        CredentialsConfigError: two credentials for the same realm.
    """

    __slots__ = ("_by_realm",)

    def __init__(self, credentials: Iterable[Credential] = ()) -> None:
        by_realm: dict[str, Credential] = {}
        for credential in credentials:
            if credential.realm in by_realm:
                raise CredentialsConfigError(f"two credentials for realm {credential.realm!r}")
            by_realm[credential.realm] = credential
        self._by_realm = by_realm

    def credentials_for(self, realm: str) -> Credential | None:
        """Return the credentials for ``realm``, the wildcard's if configured, else ``None``."""
        found = self._by_realm.get(realm)
        if found is None and realm != WILDCARD_REALM:
            found = self._by_realm.get(WILDCARD_REALM)
        return found

    def realms(self) -> tuple[str, ...]:
        """Return the configured realms in configuration order."""
        return tuple(self._by_realm)

    def __repr__(self) -> str:
        return f"InMemoryCredentials(realms={self.realms()!r})"


def _table_error(index: int, table: Mapping[str, Any], what: str) -> CredentialsConfigError:
    realm = table.get("realm") if isinstance(table, Mapping) else None
    where = f"[[credentials]] table {index + 1}" + (f" (realm {realm!r})" if realm else "")
    return CredentialsConfigError(f"{where}: {what}")


def credentials_from_toml(tables: Iterable[Mapping[str, Any]]) -> InMemoryCredentials:
    """Build credentials from an account file's ``[[credentials]]`` tables.

    Each table::

        [[credentials]]
        realm = "voip.example.net"      # required; "*" for an explicit wildcard
        username = "alice-auth"         # required
        password = "..."                # either this ...
        ha1 = "8d7f..."                 # ... or a stored HA1 ...
        algorithm = "SHA-256"           # ... of this algorithm (default MD5)
        # ha1 = { MD5 = "...", SHA-256 = "..." }   # or several at once
        hosts = ["198.51.100.7"]        # optional: more hosts trusted: "host" or "host:port"

    Args:
        tables: the parsed tables (e.g. ``tomllib.load(f)["credentials"]``).

    Returns:
        The credentials.

    Raises:
        CredentialsConfigError: a table is malformed; the message names the
            table and the defect.
    """
    credentials = []
    known = {"realm", "username", "password", "ha1", "algorithm", "hosts"}
    for index, table in enumerate(tables):
        if not isinstance(table, Mapping):
            raise CredentialsConfigError(f"[[credentials]] entry {index + 1} is not a table")
        unknown = sorted(set(table) - known)
        if unknown:
            raise _table_error(index, table, f"unknown key(s) {', '.join(unknown)}")
        for key in ("realm", "username"):
            if key not in table:
                raise _table_error(index, table, f"{key} is missing")
            if not isinstance(table[key], str):
                raise _table_error(index, table, f"{key} must be a string")
        password = table.get("password")
        if password is not None and not isinstance(password, str):
            raise _table_error(index, table, "password must be a string")
        raw_ha1 = table.get("ha1")
        algorithm = table.get("algorithm", "MD5")
        ha1: dict[str, str] = {}
        if isinstance(raw_ha1, str):
            if not isinstance(algorithm, str):
                raise _table_error(index, table, "algorithm must be a string")
            ha1 = {algorithm: raw_ha1}
        elif isinstance(raw_ha1, Mapping):
            ha1 = dict(raw_ha1)
            if "algorithm" in table:
                raise _table_error(index, table, "algorithm goes with a single ha1 string")
        elif raw_ha1 is not None:
            raise _table_error(index, table, "ha1 must be a string or a table")
        elif "algorithm" in table and password is not None:
            raise _table_error(index, table, "algorithm goes with ha1, not with password")
        hosts = table.get("hosts", [])
        if not isinstance(hosts, list | tuple) or not all(isinstance(h, str) for h in hosts):
            raise _table_error(index, table, "hosts must be a list of strings")
        try:
            credentials.append(
                Credential(
                    realm=table["realm"],
                    username=table["username"],
                    password=password,
                    ha1=ha1,
                    hosts=tuple(hosts),
                )
            )
        except CredentialsConfigError as e:
            raise _table_error(index, table, str(e)) from None
    try:
        return InMemoryCredentials(credentials)
    except CredentialsConfigError as e:
        raise CredentialsConfigError(f"[[credentials]]: {e}") from None
