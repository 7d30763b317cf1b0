"""twisted.cred for digest-authenticated SIP requests (RFC 3261 §22, RFC 7616).

The pure :class:`~txsipua.auth.server.DigestServer` says *whether* a request
carries well-formed credentials; deciding *who* may log in goes through
twisted.cred, so users plug in their own checkers::

    portal = make_portal(HtdigestFileStore("/etc/txsipua/users.htdigest"))
    outcome = server.inspect(request, now)
    if isinstance(outcome, DigestCredentials):
        d = portal.login(outcome, None, ISIPUser)   # avatar: the username
        d.addCallbacks(accepted, lambda f: send(server.challenge(request, now, outcome.stale)))

:class:`~txsipua.auth.server.DigestCredentials` provides
:class:`IDigestHA1Credentials` (declared here, so the pure package needs no
Twisted).  :class:`HA1Checker` asks an :class:`IHA1Store` for the stored HA1
``H(username ":" realm ":" password)`` of the credentials' base algorithm
(``MD5`` for ``MD5-sess``) and lets the credentials verify it; the plaintext
password never needs to be stored.

File format of :class:`HtdigestFileStore`: Apache's ``htdigest`` lines::

    alice:atlanta.example.com:5cf0f8b4b1e14d1a4f0b1b9c3a1e5d3f

each with an MD5 HA1, as ``htdigest`` writes them.  txsipua's extension for
other algorithms adds the algorithm as a fourth field (the HA1 then has that
algorithm's length)::

    alice:atlanta.example.com:3ba6...e1f0:SHA-256
    alice:atlanta.example.com:9cc2...77ad:SHA-512-256

A fifth field lists the users whose address of record this auth username may
register besides its own name (comma-separated; the fourth field may then be
empty for MD5): the rule a registrar applies when the auth username is not
the SIP user (RFC 3261 §10.3 step 3)::

    alice-auth:voip.example.net:5cf0...5d3f::alice
    pbx:voip.example.net:3ba6...e1f0:SHA-256:alice,bob

Blank lines and lines starting with ``#`` are ignored.  Neither username nor
realm may contain ``:``.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Coroutine
from typing import Any

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import ICredentials, IUsernameDigestHash
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import IRealm, Portal
from twisted.internet import defer
from zope.interface import Attribute, Interface, classImplements, implementer

from txsipua.auth.digest import base_algorithm, canonical_algorithm, compute_ha1, digest_length
from txsipua.auth.server import DigestCredentials
from txsipua.errors import HtdigestFormatError

__all__ = [
    "HA1Checker",
    "HtdigestFileStore",
    "HtdigestFormatError",
    "IDigestHA1Credentials",
    "IHA1Store",
    "ISIPUser",
    "InMemoryHA1Store",
    "UsernameDigestHash",
    "make_portal",
]

_HEX = re.compile(r"[0-9a-fA-F]+\Z")


class IDigestHA1Credentials(ICredentials):
    """Digest credentials that verify themselves against a stored HA1 (RFC 7616 §3.4.2)."""

    username = Attribute("The auth username (str).")
    realm = Attribute("The realm (str).")
    algorithm = Attribute("The canonical algorithm, e.g. 'SHA-256' or 'MD5-sess' (str).")

    def check_ha1(ha1):  # noqa: N805
        """Return True when the credentials match ``ha1`` (hex base HA1; None never matches)."""


classImplements(DigestCredentials, IDigestHA1Credentials)


@implementer(IUsernameDigestHash)
class UsernameDigestHash:
    """Presents :class:`IDigestHA1Credentials` as twisted.cred's ``IUsernameDigestHash``.

    For checkers written against Twisted's own HTTP digest convention
    (``checkHash(HA1)``), e.g. ``portal.login(UsernameDigestHash(creds), None, iface)``.

    Attributes:
        username: the auth username (str).
        realm: the realm (str).
        credentials: the wrapped credentials.
    """

    def __init__(self, credentials: Any) -> None:
        self.credentials = credentials
        self.username = credentials.username
        self.realm = credentials.realm

    def checkHash(self, digestHash: str | bytes | None) -> bool:  # noqa: N802, N803
        """Return True when ``digestHash`` (hex HA1 of the base algorithm) verifies."""
        if isinstance(digestHash, bytes):
            try:
                digestHash = digestHash.decode("ascii")
            except UnicodeDecodeError:
                return False
        return bool(self.credentials.check_ha1(digestHash))


class IHA1Store(Interface):
    """Stored HA1 values by (username, realm, algorithm)."""

    def get_ha1(username, realm, algorithm):  # noqa: N805
        """Return the hex HA1 (str), ``None`` when unknown, or a Deferred firing with either.

        ``algorithm`` is a canonical base algorithm (``"MD5"``, ``"SHA-256"``,
        ``"SHA-512-256"``).
        """


class ISIPUser(Interface):
    """The avatar interface of :func:`make_portal`'s realm: the avatar is the username (str)."""


def _check_ha1_value(algorithm: str, ha1: str) -> str:
    if not _HEX.match(ha1) or len(ha1) != digest_length(algorithm):
        raise ValueError(
            f"a {algorithm} HA1 has {digest_length(algorithm)} hex digits, got {ha1!r}"
        )
    return ha1.lower()


def _algorithm(name: str) -> str:
    canonical = canonical_algorithm(name)
    if canonical is None:
        raise ValueError(f"unsupported digest algorithm {name!r}")
    return base_algorithm(canonical)


@implementer(IHA1Store)
class InMemoryHA1Store:
    """An :class:`IHA1Store` in a dict.

    Example::

        store = InMemoryHA1Store()
        store.add_password("alice", "atlanta.example.com", "secret", ("MD5", "SHA-256"))
        store.add_ha1("bob", "atlanta.example.com", "SHA-256", "3ba6...")
    """

    __slots__ = ("_ha1", "owners")

    def __init__(self) -> None:
        self._ha1: dict[tuple[str, str, str], str] = {}
        self.owners: dict[str, frozenset[str]] = {}
        """auth username -> the AOR users it may register besides its own name."""

    def add_ha1(self, username: str, realm: str, algorithm: str, ha1: str) -> None:
        """Store an HA1 for ``algorithm`` (a ``-sess`` name stores its base's).

        Raises:
            ValueError: unsupported algorithm or an HA1 of the wrong shape.
        """
        name = _algorithm(algorithm)
        self._ha1[(username, realm, name)] = _check_ha1_value(name, ha1)

    def add_password(
        self,
        username: str,
        realm: str,
        password: str,
        algorithms: tuple[str, ...] = ("MD5", "SHA-256", "SHA-512-256"),
    ) -> None:
        """Store the HA1 of ``password`` for each algorithm (the password itself is not kept)."""
        for algorithm in algorithms:
            name = _algorithm(algorithm)
            self._ha1[(username, realm, name)] = compute_ha1(name, username, realm, password)

    def remove(self, username: str, realm: str) -> None:
        """Forget every HA1 of a user in a realm."""
        for key in [k for k in self._ha1 if k[:2] == (username, realm)]:
            del self._ha1[key]

    def get_ha1(self, username: str, realm: str, algorithm: str) -> str | None:
        """Return the stored HA1, or ``None``."""
        return self._ha1.get((username, realm, _algorithm(algorithm)))

    def __len__(self) -> int:
        return len(self._ha1)

    def algorithms(self, realm: str) -> set[str]:
        """The base algorithms (``"MD5"``, ``"SHA-256"``...) some user of ``realm`` has an HA1 for."""
        return {algorithm for (_, r, algorithm) in self._ha1 if r == realm}


@implementer(IHA1Store)
class HtdigestFileStore:
    """An :class:`IHA1Store` over an htdigest file (format in the module docstring).

    The file is read on construction and again whenever its modification time
    or size changes, so users can be added while serving.  The change is
    looked for on each lookup, or at most once per ``check_every`` seconds
    (a busy registrar need not ask the file system on every request).

    Args:
        path: the file path.
        stat: injected ``os.stat`` (tests).
        check_every: seconds between looks at the file; 0 (the default)
            looks on every lookup.
        clock: seconds, for ``check_every`` (default :func:`time.monotonic`).

    Raises:
        OSError: the file cannot be read.
        HtdigestFormatError: a line is malformed.
    """

    def __init__(self, path: str | os.PathLike[str], stat: Callable[[Any], Any] = os.stat,
                 check_every: float = 0.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = os.fspath(path)
        self._stat = stat
        self._signature: tuple[int, int] | None = None
        self._store = InMemoryHA1Store()
        self.check_every = check_every
        self._clock = clock
        self._next_check = 0.0
        self.reload()

    def reload(self) -> None:
        """Read the file now.

        Raises:
            OSError: the file cannot be read.
            HtdigestFormatError: a line is malformed (the previous content stays).
        """
        st = self._stat(self.path)
        with open(self.path, encoding="utf-8-sig") as f:
            text = f.read()
        self._store = self.parse(text, self.path)
        self._signature = (st.st_mtime_ns, st.st_size)

    @staticmethod
    def parse(text: str, name: str = "<htdigest>") -> InMemoryHA1Store:
        """Parse htdigest text into an :class:`InMemoryHA1Store`.

        Raises:
            HtdigestFormatError: a line is malformed.
        """
        store = InMemoryHA1Store()
        for number, raw in enumerate(text.removeprefix("\ufeff").splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            fields = line.split(":")
            if len(fields) == 3:
                fields.append("MD5")
            if len(fields) == 5:
                aor_users = frozenset(u.strip() for u in fields.pop().split(",") if u.strip())
                store.owners[fields[0]] = store.owners.get(fields[0], frozenset()) | aor_users
                fields[3] = fields[3] or "MD5"
            if len(fields) != 4 or not fields[0] or not fields[1]:
                raise HtdigestFormatError(
                    f"{name}:{number}: expected user:realm:HA1, user:realm:HA1:ALGORITHM "
                    "or user:realm:HA1:ALGORITHM:AORUSER[,AORUSER...]"
                )
            user, realm, ha1, algorithm = fields
            try:
                store.add_ha1(user, realm, algorithm.strip(), ha1.strip())
            except ValueError as e:
                raise HtdigestFormatError(f"{name}:{number}: {e}") from None
        return store

    def _refresh(self) -> None:
        if self.check_every > 0:
            now = self._clock()
            if now < self._next_check:
                return
            self._next_check = now + self.check_every
        try:
            st = self._stat(self.path)
        except OSError:
            return  # keep serving what was read
        if (st.st_mtime_ns, st.st_size) != self._signature:
            try:
                self.reload()
            except (OSError, HtdigestFormatError):
                return

    def get_ha1(self, username: str, realm: str, algorithm: str) -> str | None:
        """Return the HA1 from the file (re-read if it changed), or ``None``."""
        self._refresh()
        return self._store.get_ha1(username, realm, algorithm)

    def algorithms(self, realm: str) -> set[str]:
        """The base algorithms some user of ``realm`` has an HA1 for in the file (as last read)."""
        return self._store.algorithms(realm)

    def may_register(self, username: str) -> frozenset[str]:
        """The AOR users the file's fifth field lets ``username`` register (re-read if it changed)."""
        self._refresh()
        return self._store.owners.get(username, frozenset())


@implementer(ICredentialsChecker)
class HA1Checker:
    """A twisted.cred checker of :class:`IDigestHA1Credentials` over an :class:`IHA1Store`.

    ``requestAvatarId`` fires with the username (str) when the stored HA1 for
    (username, realm, base algorithm) verifies the credentials, else fails with
    :class:`~twisted.cred.error.UnauthorizedLogin`.
    """

    credentialInterfaces = (IDigestHA1Credentials,)

    def __init__(self, store: Any) -> None:
        self.store = store

    def requestAvatarId(self, credentials: Any) -> defer.Deferred[Any]:  # noqa: N802
        """Verify ``credentials``; see the class docstring."""
        try:
            algorithm = base_algorithm(credentials.algorithm)
        except ValueError:
            return defer.fail(UnauthorizedLogin(f"unsupported algorithm {credentials.algorithm!r}"))
        get_ha1: Callable[..., Any] = self.store.get_ha1
        try:
            ha1 = get_ha1(credentials.username, credentials.realm, algorithm)
        except Exception:
            return defer.fail()

        def verify(ha1: str | None) -> Any:
            if ha1 is None:
                # counted like a wrong password (nonce, source and user limits): an unknown
                # user must look exactly like a known one to a guesser (svwar, svcrack)
                credentials.check_ha1(None)
                raise UnauthorizedLogin(
                    f"no {algorithm} HA1 for {credentials.username!r} in {credentials.realm!r}"
                )
            if credentials.check_ha1(ha1):
                return credentials.username
            raise UnauthorizedLogin(
                f"digest rejected for {credentials.username!r} in {credentials.realm!r}"
            )

        if isinstance(ha1, Coroutine):  # what maybeDeferred would accept too
            ha1 = defer.ensureDeferred(ha1)
        if isinstance(ha1, defer.Deferred):  # a store that looks HA1 values up asynchronously
            return ha1.addCallback(verify)
        try:  # a synchronous store (the usual case): no Deferred chain to run
            return defer.succeed(verify(ha1))
        except Exception:
            return defer.fail()


@implementer(IRealm)
class _UsernameRealm:
    """Gives the username itself as the avatar, for any interface."""

    def requestAvatar(self, avatarId: Any, mind: Any, *interfaces: Any) -> Any:  # noqa: N802, N803
        if not interfaces:
            raise NotImplementedError("no interface requested")
        return interfaces[0], avatarId, lambda: None


def make_portal(store: Any, realm: Any = None) -> Portal:
    """Return a :class:`~twisted.cred.portal.Portal` checking digest credentials against ``store``.

    Args:
        store: where HA1 values come from (an :class:`IHA1Store`).
        realm: the twisted.cred :class:`~twisted.cred.portal.IRealm` producing avatars; by default the avatar
            is the username (str), whatever interface is asked (e.g. :class:`ISIPUser`).
    """
    checker: Any = HA1Checker(store)
    avatars: Any = realm if realm is not None else _UsernameRealm()
    return Portal(avatars, [checker])
