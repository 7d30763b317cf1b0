"""Our address as others see it: wildcard binds, static NAT, RFC 3581 learning, RFC 5626 Contacts.

Theory of operation
-------------------
Via and Contact (and the SDP ``c=`` line) must name an address a peer can
reach.  Three sources give it, strongest first:

1. configuration: :attr:`Configuration.public_host
   <txsipua.ua.config.Configuration.public_host>` (and ``rtp_public_host``)
   for a static NAT, where the public address is known in advance;
2. the signalling (RFC 3581): the ``received``/``rport`` parameters the
   registrar wrote into the top Via of its answer to our REGISTER are the
   address and port our request came from after any NAT;
   :func:`learned_address` reads them, and the registration re-registers once
   with a Contact naming them (RFC 3581 §9 describes the technique);
3. the routing table: bound to a wildcard (``0.0.0.0``, ``::``) we advertise
   the address of the interface that routes to the next hop;
   :func:`route_source` asks the kernel by connecting a UDP socket, which
   sends nothing (``connect(2)`` on a datagram socket only sets the default
   peer and picks the source address).

:func:`repick_for_new_flow` re-picks the routed interface after a flow
over TCP/TLS failed (no ``received``/``rport`` correction there).

:func:`outbound_contact` writes the RFC 5626 §4.2 Contact of a registration
using SIP Outbound: the ``+sip.instance`` and ``reg-id`` parameters.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from twisted.logger import Logger

from txsipua.core.transport import Address
from txsipua.sip.message import Response
from txsipua.sip.uri import SipURI

if TYPE_CHECKING:
    from txsipua.ua.config import Configuration
    from txsipua.ua.useragent import UserAgent

log = Logger()

WILDCARDS = frozenset({"", "0.0.0.0", "::", "[::]"})
"""Bind hosts meaning "every interface"; never advertised."""


def is_wildcard(host: str) -> bool:
    """True for a bind host that means every interface (``""``, ``0.0.0.0``, ``::``)."""
    return host in WILDCARDS


def _plain(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def route_source(destination: str, port: int = 5060) -> str | None:
    """The local address the kernel would send from to reach ``destination``.

    A UDP socket is connected to ``(destination, port)`` and closed again:
    nothing is sent.

    Args:
        destination: an IPv4 or IPv6 address (not a name: no lookup is made).
        port: the destination port (routing rarely depends on it).

    Returns:
        The source address, or ``None`` when there is no route (or
        ``destination`` is not an IP address).
    """
    host = _plain(destination)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        socket.inet_pton(family, host)
    except (OSError, ValueError):
        return None
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect((host, port))
            found = str(sock.getsockname()[0])
    except OSError:
        return None
    return None if is_wildcard(found) else found


def advertised(local: Address, public_host: str | None, toward: str | None) -> Address:
    """The ``(host, port)`` Via and Contact should name for a transport bound at ``local``.

    Args:
        local: the bound ``(host, port)`` (or what was advertised so far).
        public_host: a configured static-NAT address, or ``None``.
        toward: the next hop's IP address (a name is never looked up), or ``None``.

    Returns:
        ``(public_host, port)`` when configured; for a wildcard host the
        interface routing ``toward`` (:func:`route_source`) when there is one,
        else (``toward`` an address with no route) the interface of the
        default route, else loopback: a wildcard is never advertised.  With
        no ``toward``, or a host name not located yet, ``local`` unchanged.
    """
    host, port = local
    if public_host:
        return (public_host, port)
    if not is_wildcard(host) or not toward:
        return local
    found = route_source(toward)
    if found is None and _is_address(toward):
        v6 = ":" in toward
        found = route_source("2001:db8::1" if v6 else "192.0.2.1") or ("::1" if v6 else "127.0.0.1")
    return (found, port) if found is not None else local


def _is_address(host: str) -> bool:
    host = _plain(host)
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except (OSError, ValueError):
            continue
        return True
    return False


def media_addresses(config: Configuration, sip_bind: str, sip_advertised: str, default: str) -> tuple[str, str]:
    """``(bind, advertise)`` for RTP sockets.

    Args:
        config: the user agent's configuration (``rtp_host``, ``rtp_public_host``).
        sip_bind: the SIP transport's bind host.
        sip_advertised: the host Via and Contact name now.
        default: the RTP host otherwise (:meth:`Configuration.media_host
            <txsipua.ua.config.Configuration.media_host>` of the bind host).

    Returns:
        bind: ``rtp_host``; else a wildcard SIP bind host stays a wildcard
        (media may arrive on any interface); else ``default``.  advertise:
        ``rtp_public_host``; else ``rtp_host``; else the advertised SIP host
        when it is not the bind host (a wildcard bind routed, a static
        ``public_host``, or an address learned from ``received``/``rport``:
        a NAT that keeps ports, as most do, then carries RTP to the same
        public address); else ``default``.
    """
    if config.rtp_host:
        bind = config.rtp_host
    else:
        bind = sip_bind if sip_bind and is_wildcard(sip_bind) else default
    if config.rtp_public_host:
        shown = config.rtp_public_host
    elif config.rtp_host:
        shown = config.rtp_host
    elif not is_wildcard(sip_advertised) and _plain(sip_advertised) != _plain(sip_bind):
        shown = _plain(sip_advertised)
    else:
        shown = default
    return bind, shown


def learned_address(response: Response, advertised: Address, transport: str) -> Address | None:
    """The public ``(host, port)`` a REGISTER response shows, when it is not the one we advertise.

    RFC 3581 §4: a server receiving a request with ``rport`` writes the source
    port into it, and ``received`` holds the source address when it differs
    from the Via's sent-by (RFC 3261 §18.2.1).  Only UDP is considered: over a
    connection the source port is an ephemeral one that accepts nothing.

    Args:
        response: a response to our REGISTER.
        advertised: the ``(host, port)`` our Via and Contact named.
        transport: ``"UDP"``, ``"TCP"``, ``"TLS"``...

    Returns:
        ``(host, port)`` when ``received`` or a numeric ``rport`` show another
        address than ``advertised``; ``None`` otherwise (also when the top Via
        cannot be read).
    """
    if transport.upper() != "UDP":
        return None
    try:
        via = response.top_via
    except Exception:  # noqa: BLE001 - ParseError or a missing Via: nothing learned
        return None
    received = via.received
    rport = via.rport
    if received is None and not isinstance(rport, int):
        return None
    host = _plain(received) if received else _plain(via.host)
    port = rport if isinstance(rport, int) and 0 < rport < 65536 else (via.port or 5060)
    if (host, port) == (_plain(advertised[0]), advertised[1]):
        return None
    return (host, port)


def outbound_contact(contact: SipURI, instance_id: str, reg_id: int) -> str:
    """Our Contact value for a REGISTER using SIP Outbound (RFC 5626 §4.2).

    Args:
        contact: our Contact URI.
        instance_id: the instance URN (``urn:uuid:...``, RFC 5626 §4.1).
        reg_id: the registration's ``reg-id`` (a positive integer).

    Returns:
        ``<sip:...>;+sip.instance="<urn:uuid:...>";reg-id=N``.
    """
    return f'<{contact}>;+sip.instance="<{instance_id}>";reg-id={reg_id}'


def repick_for_new_flow(ua: UserAgent) -> SipURI | None:
    """TCP/TLS without Outbound, the flow to the registrar dead: advertise the interface routing to it now.

    The local address may have changed (another network); a new connection
    leaves from the interface :func:`route_source` names.  Only for a
    wildcard bind with Contact correction on and no static public address.

    Returns:
        The old Contact URI when the advertised host changed (the next
        REGISTER removes it with ``expires=0``), else ``None``.
    """
    config = ua.config
    if (not ua.transport.reliable or config.outbound or config.public_host or not config.nat_contact
            or not is_wildcard(getattr(ua.transport, "host", ""))):
        return None
    try:
        route = ua.outbound_route()
        toward = ua.core.locate(route[0] if route else ua.require_account().registrar_uri)[0]
    except Exception:  # noqa: BLE001 - not located (yet): keep the Contact
        return None
    found = route_source(toward)
    if found is None or found == ua.core.local[0]:
        return None
    old = ua.core.contact_uri()
    log.info("the route to the registrar now leaves from {host}: re-registering with it", host=found)
    ua.advertise((found, ua.core.local[1]))
    return old
