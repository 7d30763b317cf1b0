"""Accounts: one SIP identity and a set of credentials, one per realm.

An account file is TOML::

    user = "alice"                         # SIP user: the AOR is sip:alice@example.com
    domain = "example.com"                 # SIP domain: a host, "host:port" or "[v6]:port"
    display_name = "Alice"                 # optional
    registrar = "sip:203.0.113.5:5060"     # optional; default sip:<domain>
    outbound_proxy = "sip:203.0.113.5"     # optional; every request is routed through it
    digest_guard = true                    # optional; false sends credentials to any hop
    prefer_qop = "auth"                    # optional; or "auth-int"
    prefer_strongest = false               # optional; answer the strongest algorithm offered
    [[credentials]]                        # one table per realm
    realm = "voip.example.net"             # need not be the domain
    username = "alice-auth"                # need not be the SIP user
    password = "..."                       # or: ha1 = "...", algorithm = "MD5"
    hosts = ["198.51.100.7", "proxy.example.net:5070"]  # optional: more hosts trusted for
                                           # this realm: "host" (any port) or "host:port"

The auth username need not be the SIP user and the realm need not be the SIP
domain (RFC 3261 §22.1); credentials are only ever sent to their own realm.
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from txsipua.auth.client import DigestClient
from txsipua.auth.credentials import (
    CredentialsConfigError,
    InMemoryCredentials,
    credentials_from_toml,
)
from txsipua.errors import AccountError as AccountError
from txsipua.errors import ParseError
from txsipua.sip.uri import SipURI
from txsipua.sip.values import NameAddr


def _uri(value: str | SipURI | None, key: str) -> SipURI | None:
    if value is None or isinstance(value, SipURI):
        return value
    text = value if ":" in value and value.split(":", 1)[0].lower() in ("sip", "sips") else f"sip:{value}"
    try:
        return SipURI.parse(text)
    except ParseError as e:
        raise AccountError(f"{key}: {e.detail}") from None


def split_domain(domain: str) -> tuple[str, int | None]:
    """``"host"``, ``"host:port"``, ``"[v6]"``, ``"[v6]:port"`` or a bare IPv6 address -> ``(host, port)``.

    The host comes back as a SIP URI holds it (IPv6 in brackets), so it is
    never handed to a resolver with a port still attached.

    Raises:
        AccountError: not a host with an optional port.
    """
    text = domain.strip()
    try:
        if ipaddress.ip_address(text).version == 6:
            return f"[{text}]", None
    except ValueError:
        pass
    if not text or "@" in text or ";" in text or "?" in text:
        raise AccountError(f"domain: {domain!r} is not a host with an optional port")
    try:
        uri = SipURI.parse(f"sip:{text}")
    except ParseError as e:
        raise AccountError(f"domain: {domain!r}: {e.detail}") from None
    if uri.user is not None or uri.params or not uri.host:
        raise AccountError(f"domain: {domain!r} is not a host with an optional port")
    return uri.host, uri.port


def _check_domain(instance: object, attribute: object, value: str) -> None:
    split_domain(value)


def _control(text: str, allowed: str = "") -> str | None:
    """The first control character (C0 or DEL) of ``text`` not in ``allowed``, or None."""
    for ch in text:
        if (ch < " " or ch == "\x7f") and ch not in allowed:
            return ch
    return None


def _check_user(instance: object, attribute: object, value: str) -> None:
    # RFC 3261 §25: user = 1*( unreserved / escaped / user-unreserved ); the
    # other characters are escaped on the wire, but an empty user (sip:@host)
    # has no form at all, and a control character is a mistake, not a name
    if not isinstance(value, str) or not value:
        raise AccountError(f"user: must be a non-empty string, not {value!r}")
    bad = _control(value)
    if bad is not None:
        raise AccountError(f"user: {value!r} holds the control character {bad!r}")


def _check_display_name(instance: object, attribute: object, value: str | None) -> None:
    # RFC 3261 §25: display-name = *(token LWS) / quoted-string; it is sent
    # quoted ('"' and '\\' escaped), where CR/LF would end the header and other
    # control characters are not qdtext (a tab is LWS: allowed)
    if value is None:
        return
    if not isinstance(value, str):
        raise AccountError(f"display_name: must be a string, not {value!r}")
    bad = _control(value, allowed="\t")
    if bad is not None:
        raise AccountError(f"display_name: {value!r} holds the control character {bad!r}")


def _registrar_uri(value: str | SipURI | None) -> SipURI | None:
    return _uri(value, "registrar")


def _outbound_proxy_uri(value: str | SipURI | None) -> SipURI | None:
    return _uri(value, "outbound_proxy")


@attrs.frozen
class Account:
    """A SIP identity (user, domain) and its credentials.

    Raises ``AccountError`` (a ``ValueError``) naming the field when ``user``
    is empty or holds a control character, when ``display_name`` holds a
    control character other than a tab (CR/LF would end the From header), or
    when ``domain`` is not a host with an optional port.  A user agent with no
    identity at all is made with ``account=None``, not an empty user.

    Attributes:
        user: the SIP user; the address of record is ``sip:user@domain``.
        domain: the SIP domain: a host, or ``host:port`` / ``[v6]:port``
            (:attr:`domain_host` and :attr:`domain_port` split it).
        credentials: an :class:`~txsipua.auth.credentials.ICredentialSource`
            (one credential per realm).
        display_name: shown in From, or ``None``.
        registrar: the registrar URI; ``sip:<domain>`` when ``None``.
        outbound_proxy: every out-of-dialog request is sent there (with a
            loose Route), or ``None``.
        digest_guard: send credentials only to transport addresses trusted
            for their realm: the registrar's, the outbound proxy's and those
            of the hosts listed for the realm (:mod:`txsipua.auth.guard`).
        prefer_qop: ``"auth"`` or ``"auth-int"``.
        prefer_strongest: answer the strongest algorithm a realm offers.
        srtp: require SRTP (RFC 3711, SDES keys RFC 4568) on every call:
            offers are RTP/SAVP and plain RTP/AVP offers are refused (488).
            A ``sips:`` registrar or outbound proxy requires it too
            (:attr:`requires_srtp`).  Needs ``pip install 'txsipua[srtp]'``.
    """

    user: str = attrs.field(validator=_check_user)
    domain: str = attrs.field(validator=_check_domain)
    credentials: Any = attrs.field(factory=InMemoryCredentials)  # ICredentialSource
    display_name: str | None = attrs.field(default=None, validator=_check_display_name)
    registrar: SipURI | None = attrs.field(default=None, converter=_registrar_uri)
    outbound_proxy: SipURI | None = attrs.field(
        default=None, converter=_outbound_proxy_uri
    )
    digest_guard: bool = True
    prefer_qop: str = "auth"
    prefer_strongest: bool = False
    srtp: bool = False

    @property
    def requires_srtp(self) -> bool:
        """True when calls must use SRTP: :attr:`srtp`, or a ``sips:`` registrar or outbound proxy."""
        return self.srtp or any(u is not None and u.scheme == "sips" for u in (self.registrar, self.outbound_proxy))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Account:
        """Build an account from a parsed TOML table.

        Raises:
            AccountError: a missing or mistyped key, naming it.
        """
        for key in ("user", "domain"):
            if not isinstance(data.get(key), str) or not data[key]:
                raise AccountError(f"account needs a non-empty string {key!r}")
        creds = data.get("credentials", [])
        if not isinstance(creds, list):
            raise AccountError("'credentials' must be an array of tables ([[credentials]])")
        known = {"user", "domain", "display_name", "registrar", "outbound_proxy", "credentials",
                 "digest_guard", "prefer_qop", "prefer_strongest", "srtp"}
        unknown = set(data) - known
        if unknown:
            raise AccountError(f"unknown account key(s): {', '.join(sorted(unknown))}")
        for flag in ("digest_guard", "prefer_strongest", "srtp"):
            if flag in data and not isinstance(data[flag], bool):
                raise AccountError(f"{flag!r} must be true or false (a TOML boolean), not {data[flag]!r}")
        if data.get("prefer_qop", "auth") not in ("auth", "auth-int"):
            raise AccountError(f"'prefer_qop' must be \"auth\" or \"auth-int\", not {data['prefer_qop']!r}")
        try:
            source = credentials_from_toml(creds)
        except CredentialsConfigError as e:
            raise AccountError(str(e)) from None
        return cls(
            user=data["user"],
            domain=data["domain"],
            credentials=source,
            display_name=data.get("display_name"),
            registrar=data.get("registrar"),
            outbound_proxy=data.get("outbound_proxy"),
            digest_guard=bool(data.get("digest_guard", True)),
            prefer_qop=str(data.get("prefer_qop", "auth")),
            prefer_strongest=bool(data.get("prefer_strongest", False)),
            srtp=bool(data.get("srtp", False)),
        )

    @classmethod
    def from_toml(cls, path: str | Path) -> Account:
        """Read an account file (TOML, see the module docstring).

        Raises:
            AccountError: the file cannot be read or is not a valid account.
        """
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except OSError as e:
            raise AccountError(f"cannot read account file {path}: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise AccountError(f"account file {path} is not valid TOML: {e}") from None
        return cls.from_mapping(data)

    @property
    def domain_host(self) -> str:
        """The host of :attr:`domain` (IPv6 in brackets), without its port."""
        return split_domain(self.domain)[0]

    @property
    def domain_port(self) -> int | None:
        """The port of :attr:`domain`, or ``None``."""
        return split_domain(self.domain)[1]

    def domain_uri(self, user: str | None = None) -> SipURI:
        """``sip:[user@]domain`` with the domain's host and port as separate URI parts."""
        host, port = split_domain(self.domain)
        return SipURI(scheme="sip", user=user, host=host, port=port)

    @property
    def aor(self) -> SipURI:
        """The address of record, ``sip:user@domain`` (RFC 3261 §10.2)."""
        return self.domain_uri(self.user)

    @property
    def identity(self) -> NameAddr:
        """From/To value for this account (without tag)."""
        return NameAddr(self.aor, self.display_name)

    @property
    def registrar_uri(self) -> SipURI:
        """The registrar's URI: :attr:`registrar` or ``sip:<domain>``."""
        return self.registrar or self.domain_uri()

    @property
    def trusted_hops(self) -> tuple[SipURI, ...]:
        """The URIs trusted for every realm by the digest-leak guard: registrar, outbound proxy.

        The guard trusts each where requests to it really go: its ``maddr``
        or host, at its port (else the transport's default port), on its
        transport if it names one; a host name at the addresses its location
        (RFC 3263) gave (:class:`~txsipua.auth.guard.LeakGuard`).
        """
        return tuple(u for u in (self.registrar_uri, self.outbound_proxy) if u is not None)

    @property
    def trusted_hosts(self) -> tuple[str, ...]:
        """The host names of the registrar and outbound proxy, and their ``maddr`` (for display).

        The digest-leak guard does not judge by these names but by
        :attr:`trusted_hops` (transport addresses: host, port, transport).
        """
        hosts: list[str] = []
        for uri in (self.registrar_uri, self.outbound_proxy):
            if uri is None:
                continue
            hosts.append(uri.host)
            maddr = uri.params.get("maddr")
            if maddr:
                hosts.append(maddr)
        return tuple(hosts)

    def digest_client(self) -> DigestClient:
        """A :class:`~txsipua.auth.client.DigestClient` for this account's credentials."""
        return DigestClient(
            self.credentials,
            prefer_qop=self.prefer_qop,
            prefer_strongest=self.prefer_strongest,
            trusted_hosts=self.trusted_hops,
            guard=self.digest_guard,
        )
