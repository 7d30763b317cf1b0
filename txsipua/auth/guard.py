"""The digest-leak guard: which next hops may receive credentials, for which realm.

Theory of operation.  A digest response is a password hash that can be cracked
offline or relayed, so credentials go only to the parties the account trusts
(RFC 3261 §22.3, §26.2.3).  The guard decides on *transport addresses*, never on
host names as text:

* Every request goes to a :class:`HopAddress`: the IP address, port and
  transport it is really sent to, plus the host name it was located from
  (RFC 3263), when the next-hop URI named one.
* The account's registrar and outbound proxy, and the hosts listed for a realm,
  are :class:`TrustedHop` entries.  An entry whose host is an IP address is
  trusted at that address only: at its port, or without one at the default
  port of the transport used (5060 for UDP and TCP, 5061 for TLS); with a
  ``transport`` (a ``;transport=`` parameter, or ``sips:`` meaning TLS) on that
  transport only.  A party on the same IP at another port is someone else.
* An entry named by a host name is trusted at the addresses its location gave:
  a request whose next hop was located from that very name (and port as
  written) is trusted wherever the location sent it, and :class:`LeakGuard`
  remembers those addresses, so a later request that reaches the registrar
  by its IP (a Record-Route or Contact written with the address) is trusted
  too.  :meth:`LeakGuard.learn` feeds it the complete result of a location.
* A realm's ``hosts`` entries are trusted for that realm only; a bare host
  there means that host on any port (``host:port`` narrows it to one port).
  A name listed there is trusted, for that realm, at the addresses its
  location gave, in the same way.

Nothing here does I/O: location results come in through :meth:`LeakGuard.learn`
and :meth:`LeakGuard.observe`.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from txsipua.auth.challenge import parse_authorization
from txsipua.errors import ParseError
from txsipua.sip.uri import SipURI

__all__ = [
    "DEFAULT_PORTS",
    "HopAddress",
    "LeakGuard",
    "TrustedHop",
    "WithheldCredentials",
    "default_port",
    "host_key",
]

#: The default port per transport (RFC 3261 §19.1.2, RFC 3263 §4.2).
DEFAULT_PORTS = {"UDP": 5060, "TCP": 5060, "TLS": 5061}
#: Bound of the addresses learned from locations of trusted names.
MAX_LEARNED = 64

_TRANSPORTS = ("UDP", "TCP", "TLS", "WS", "WSS")
_DEFAULTS = frozenset(DEFAULT_PORTS.values())


def default_port(transport: str) -> int:
    """The default port of ``transport`` (``"UDP"``, ``"TCP"``, ``"TLS"``; any case)."""
    return DEFAULT_PORTS.get(transport.upper(), 5060)


def host_key(text: str) -> str:
    """Normalise a host for comparison.

    Lower-cases, drops a ``sip:``/``sips:`` scheme, a ``user@`` part, URI
    parameters, IPv6 brackets, a port and a trailing dot:
    ``"sip:Proxy.Example.COM:5060;lr"`` -> ``"proxy.example.com"``,
    ``"[2001:DB8::1]:5060"`` -> ``"2001:db8::1"``.
    """
    try:
        return _split(text)[0]
    except ValueError:  # a port that is not a number: the host is what comes before it
        return _split(text.rsplit(":", 1)[0])[0]


def _canonical_host(host: str) -> str:
    t = host.strip().lower()
    if t.startswith("["):
        end = t.find("]")
        t = t[1:end] if end >= 0 else t[1:]
    t = t.rstrip(".")
    if ":" in t:  # one spelling per IPv6 address: 0:0:0:0:0:0:0:1 is ::1
        with contextlib.suppress(ValueError):
            t = ipaddress.IPv6Address(t.split("%", 1)[0]).compressed
    return t


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _split(text: str) -> tuple[str, int | None, str | None]:
    """``(host, port, transport)`` of ``host``, ``host:port``, ``[v6]:port`` or a SIP URI.

    ``maddr`` wins over the host (where requests to the URI really go, RFC 3261
    §19.1.1); ``sips:`` means TLS whatever its ``transport`` parameter says
    (``sips:...;transport=tcp`` is TLS over TCP).  Raises ValueError for a
    port that is not a number.
    """
    t = text.strip()
    lowered = t.lower()
    scheme = None
    for prefix in ("sips:", "sip:"):
        if lowered.startswith(prefix):
            scheme = prefix[:-1]
            t = t[len(prefix) :]
            break
    params: dict[str, str] = {}
    t, _, rest = t.partition("?")[0].partition(";")
    for p in rest.split(";") if rest else ():
        name, _, value = p.partition("=")
        params[name.strip().lower()] = value.strip()
    if "@" in t:
        t = t.rsplit("@", 1)[1]
    port: int | None = None
    if t.startswith("["):
        end = t.find("]")
        host, after = (t[: end + 1], t[end + 1 :]) if end >= 0 else (t, "")
        if after.startswith(":"):
            port = _port(after[1:], text)
    elif t.count(":") == 1:
        host, _, p = t.partition(":")
        port = _port(p, text)
    else:
        host = t
    transport = params.get("transport", "").upper() or None
    if scheme == "sips":
        transport = "TLS"
    maddr = params.get("maddr")
    return _canonical_host(maddr or host), port, transport


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{whole!r}: {text!r} is not a port")
    return int(text)


@attrs.frozen
class HopAddress:
    """Where one request is sent: a transport address and the name it was located from.

    Attributes:
        host: the IP address the request is sent to (normalised: no brackets,
            IPv6 compressed); a host name only when the address is unknown.
        port: the port it is sent to.
        transport: ``"UDP"``, ``"TCP"`` or ``"TLS"``: the transport used.
        name: the host of the next-hop URI as written (its ``maddr`` when it
            has one), normalised: the name (or address) the transport address
            was located from (RFC 3263); ``None`` when unknown.
        name_port: the port written in the next-hop URI, or ``None``.
    """

    host: str
    port: int
    transport: str = "UDP"
    name: str | None = None
    name_port: int | None = None

    @classmethod
    def located(
        cls, uri: SipURI | str, address: tuple[str, int] | None, transport: str
    ) -> HopAddress:
        """The hop of a request sent to ``address`` over ``transport``, located from ``uri``.

        Args:
            uri: the next-hop URI (the first Route, else the Request-URI), or
                its host text; its ``maddr`` is where the request went.
            address: ``(ip, port)`` the request is sent to, or ``None`` when
                unknown (then the URI's host and port, or the default port).
            transport: the transport the request is sent over.
        """
        t = transport.upper()
        if isinstance(uri, SipURI):
            maddr = uri.params.get("maddr")
            name, name_port = _canonical_host(maddr or uri.host), uri.port
        else:
            try:
                name, name_port, _ = _split(uri)
            except ValueError:  # a port that is not a number: no port
                name, name_port = host_key(uri), None
        if address is None:
            host, port = name, name_port or default_port(t)
        else:
            host, port = _canonical_host(address[0]), int(address[1])
        return cls(host, port, t, name or None, name_port)

    @classmethod
    def parse(cls, text: str, transport: str = "UDP") -> HopAddress | None:
        """A hop from text only (``host``, ``host:port`` or a URI); ``None`` for ``""``.

        Without an address the host stands for itself: a numeric one is the
        address, a name is compared as the name the hop was located from.
        """
        if not text.strip():
            return None
        return cls.located(text, None, transport)

    @property
    def key(self) -> tuple[str, int, str]:
        """``(host, port, transport)``: what identifies the party at this hop."""
        return (self.host, self.port, self.transport)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        named = f" ({self.name})" if self.name and not _is_ip(self.name) else ""
        return f"{host}:{self.port}/{self.transport}{named}"


@attrs.frozen
class TrustedHop:
    """A party credentials may go to (one entry of the digest-leak guard).

    Attributes:
        host: an IP address (normalised) or a host name (lower case).
        port: the port; ``None`` means the default port of the transport used
            (or, with ``any_port``, every port).
        transport: ``"UDP"``, ``"TCP"``, ``"TLS"``, or ``None`` for any.
        any_port: trust the host on every port (a realm's bare ``hosts`` entry).
    """

    host: str
    port: int | None = None
    transport: str | None = None
    any_port: bool = False

    @classmethod
    def parse(cls, text: str | SipURI, *, any_port: bool = False) -> TrustedHop:
        """An entry from ``host``, ``host:port``, ``[v6]:port`` or a ``sip:``/``sips:`` URI.

        Args:
            text: the entry; a URI's ``maddr`` and ``transport`` parameters and a
                ``sips`` scheme (TLS) count.
            any_port: without a port, trust every port (else the default port).

        Raises:
            ValueError: empty, a port that is not a number, or an unknown transport.
        """
        host, port, transport = _split(str(text))
        if not host:
            raise ValueError(f"{str(text)!r} names no host")
        if transport is not None and transport not in _TRANSPORTS:
            raise ValueError(f"{str(text)!r}: unknown transport {transport!r}")
        return cls(host, port, transport, any_port and port is None)

    def matches(self, hop: HopAddress) -> bool:
        """Whether ``hop`` is this party (the rules of the module docstring)."""
        if self.transport is not None and self.transport != hop.transport:
            return False
        if _is_ip(self.host):
            if self.host != hop.host:
                return False
            if self.any_port:
                return True
            if self.port is not None:
                return hop.port == self.port
            # the transport's default port, or the default port the same address
            # written without a port was located at (a TLS UA reaches sip:IP on 5060)
            return hop.port == default_port(hop.transport) or (
                hop.name == self.host and hop.name_port is None and hop.port in _DEFAULTS
            )
        # a name: the hop must have been located from it, with the same port
        if hop.name != self.host:
            return False
        if self.any_port:
            return True
        if self.port is not None:
            return hop.port == self.port
        return hop.name_port is None or hop.name_port == default_port(hop.transport)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "*" if self.any_port else (str(self.port) if self.port else "default")
        return f"{host}:{port}" + (f"/{self.transport}" if self.transport else "")


def _entry(value: str | SipURI | TrustedHop) -> TrustedHop:
    return value if isinstance(value, TrustedHop) else TrustedHop.parse(value)


@attrs.define(slots=True, eq=False, init=False)
class LeakGuard:
    """The digest-leak guard of one account.

    Args:
        trusted: the parties trusted for every realm: the account's registrar
            and outbound proxy (URIs, ``host``/``host:port`` text, or
            :class:`TrustedHop`).  Without a port, the default port by
            transport; a name is trusted at the addresses its location gave.
        enabled: ``False`` lets credentials go to any hop.
        realm_hosts: ``realm -> hosts`` listed for that realm (``host``:
            every port, ``host:port``: that port); default none.
        realms: the realms that may list hosts (``ICredentialSource.realms``),
            so that the location of a name listed for a realm is learned
            for that realm; default none.

    The guard acts only when enabled and ``trusted`` is not empty.

    Raises:
        ValueError: a ``trusted`` entry cannot be read (see :meth:`TrustedHop.parse`).
    """

    trusted: tuple[TrustedHop, ...]
    enabled: bool
    _realm_hosts: Callable[[str], Iterable[str]]
    _realms: Callable[[], Iterable[str]]
    _learned: dict[tuple[str, int, str], frozenset[str] | None]  # address -> realms (None: all)
    _parsed: dict[str, TrustedHop | None]

    def __init__(
        self,
        trusted: Iterable[str | SipURI | TrustedHop] = (),
        *,
        enabled: bool = True,
        realm_hosts: Callable[[str], Iterable[str]] | None = None,
        realms: Callable[[], Iterable[str]] | None = None,
    ) -> None:
        self.trusted = tuple(_entry(t) for t in trusted)
        self.enabled = enabled
        self._realm_hosts = realm_hosts if realm_hosts is not None else _no_hosts
        self._realms = realms if realms is not None else tuple
        self._learned = {}
        self._parsed = {}

    @property
    def active(self) -> bool:
        """True when the guard refuses untrusted hops (enabled, something trusted)."""
        return self.enabled and bool(self.trusted)

    @property
    def learned(self) -> tuple[HopAddress, ...]:
        """The addresses learned from locations of trusted names, oldest first."""
        return tuple(HopAddress(h, p, t) for h, p, t in self._learned)

    def allows(self, realm: str, hop: HopAddress | None) -> bool:
        """Whether credentials for ``realm`` may be sent to ``hop``.

        ``hop=None`` (unknown) is refused while the guard is active.
        """
        if not self.active:
            return True
        if hop is None:
            return False
        if hop.key in self._learned:
            scope = self._learned[hop.key]
            if scope is None or realm in scope:
                return True
        if any(t.matches(hop) for t in self.trusted):
            return True
        return any(e is not None and e.matches(hop) for e in self._realm_entries(realm))

    def observe(self, hop: HopAddress | None) -> None:
        """Note where a request went: a hop located from a trusted name teaches its address.

        The address becomes trusted for every realm when the name is the
        registrar's or the outbound proxy's, for a realm when the name is
        listed in that realm's hosts.
        """
        if hop is None or hop.name is None or _is_ip(hop.name) or not _is_ip(hop.host):
            return
        scope: frozenset[str] | None
        if any(not _is_ip(t.host) and t.matches(hop) for t in self.trusted):
            scope = None
        else:
            realms = frozenset(
                realm
                for realm in self._realms()
                if any(
                    e is not None and not _is_ip(e.host) and e.matches(hop)
                    for e in self._realm_entries(realm)
                )
            )
            if not realms:
                return
            previous = self._learned.get(hop.key, frozenset())
            scope = None if previous is None else realms | previous
        self._learned.pop(hop.key, None)
        self._learned[hop.key] = scope
        while len(self._learned) > MAX_LEARNED:
            del self._learned[next(iter(self._learned))]

    def learn(self, uri: SipURI | str, targets: Iterable[Any]) -> None:
        """Record the result of locating ``uri`` (RFC 3263).

        Args:
            uri: the URI that was located.
            targets: what its location gave: objects with ``transport``,
                ``host`` and ``port`` attributes (``txsipua.net.resolve.Target``)
                or ``(transport, host, port)`` tuples.

        Only a URI naming a trusted name teaches anything (see :meth:`observe`).
        """
        for target in targets:
            if isinstance(target, tuple):
                transport, host, port = target
            else:
                transport, host, port = target.transport, target.host, target.port
            self.observe(HopAddress.located(uri, (host, port), transport))

    def filter(
        self, headers: Iterable[tuple[str, str]], hop: HopAddress | None
    ) -> tuple[list[tuple[str, str]], WithheldCredentials | None]:
        """Keep the credential fields ``hop`` is trusted for (see ``DigestClient.credentials_for_hop``).

        Authorization and Proxy-Authorization values for realms ``hop`` is not
        trusted for, or whose realm cannot be read, are left out; other fields
        pass through.

        Returns:
            ``(kept fields, withheld)``; ``withheld`` is ``None`` when nothing was left out.
        """
        kept: list[tuple[str, str]] = []
        left_out: list[str] = []
        for name, value in headers:
            if name.lower() in ("authorization", "proxy-authorization"):
                try:
                    realm = parse_authorization(value).realm
                except ParseError:
                    left_out.append(f"{name} (unreadable realm)")
                    continue
                if not self.allows(realm, hop):
                    left_out.append(f"{name} for realm {realm!r}")
                    continue
            kept.append((name, value))
        if not left_out:
            return kept, None
        return kept, WithheldCredentials(tuple(left_out), str(hop) if hop else "(unknown)")

    def _realm_entries(self, realm: str) -> list[TrustedHop | None]:
        out = []
        for text in self._realm_hosts(realm):
            if text not in self._parsed:
                try:
                    self._parsed[text] = TrustedHop.parse(text, any_port=True)
                except ValueError:
                    self._parsed[text] = None
            out.append(self._parsed[text])
        return out


@attrs.frozen
class WithheldCredentials:
    """Credentials the digest-leak guard kept out of a request it did not see.

    Attributes:
        fields: what was left out, e.g. ``("Proxy-Authorization for realm 'voip.example.net'",)``.
        hop: the next hop they were kept from, as text.
    """

    fields: tuple[str, ...]
    hop: str

    def __str__(self) -> str:
        return (
            f"digest-leak guard: left out {', '.join(self.fields)}: next hop {self.hop} "
            "is not trusted for them"
        )


def _no_hosts(realm: str) -> Iterable[str]:
    return ()
