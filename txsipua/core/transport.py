"""Transport-layer rules of RFC 3261 §18 and RFC 3581 (rport), sans-IO.

Theory of operation: the transaction layer hands every received request to
:func:`stamp_received` (§18.2.1), which records on the top Via where the
request really came from, and computes where responses go with
:func:`response_destination` (§18.2.2, RFC 3581 §4).  Outgoing bytes leave
the core as :class:`Outgoing` values; the Twisted driver (``txsipua.net``)
writes them to sockets.

Addresses are ``(host, port)`` tuples as Twisted uses them: an IPv6 host is
written without brackets (``("2001:db8::1", 5060)``).  A response destination
may carry a host *name* (a Via sent-by); resolving it (RFC 3263 §5) is the
driver's job.
"""

from __future__ import annotations

import ipaddress

import attrs

from txsipua.errors import TransportError
from txsipua.sip.message import Request
from txsipua.sip.values import Via

Address = tuple[str, int]
"""A transport address: ``(host, port)``; IPv6 hosts without brackets."""

DEFAULT_PORT = 5060
"""The default SIP port for UDP, TCP and SCTP (RFC 3261 §19.1.2)."""

DEFAULT_TLS_PORT = 5061
"""The default SIP port for TLS (RFC 3261 §19.1.2, RFC 3263 §4.2)."""


@attrs.frozen
class Outgoing:
    """Bytes the core wants sent.

    Attributes:
        data: one complete SIP message (or other datagram), bytes.
        destination: where to send it, an :data:`Address`.
    """

    data: bytes
    destination: Address


def unbracket(host: str) -> str:
    """``"[2001:db8::1]"`` -> ``"2001:db8::1"``; any other host unchanged."""
    if host[:1] == "[" and host[-1:] == "]":
        return host[1:-1]
    return host


def _same_address(sent_by_host: str, source_ip: str) -> bool:
    """True when the sent-by host is the IP address ``source_ip`` (§18.2.1).

    A domain name never equals an address.  IPv6 textual forms are compared as
    addresses (``2001:DB8::1`` equals ``2001:db8:0::1``).
    """
    host = unbracket(sent_by_host)
    if host == source_ip:
        return True
    if ":" not in host or ":" not in source_ip:
        return False
    try:
        return ipaddress.ip_address(host) == ipaddress.ip_address(source_ip.split("%", 1)[0])
    except ValueError:
        return False


def stamped_via(via: Via, source: Address) -> Via | None:
    """The top Via as the receiving server must rewrite it, or ``None`` if unchanged.

    RFC 3261 §18.2.1: when the sent-by host is a domain name or an address other
    than the packet's source address, add ``received=<source address>``.
    RFC 3581 §4: when the Via carries an ``rport`` parameter, set it to the
    source port and add ``received`` even when the address is the same.

    ``received`` and ``rport`` are ours to write, never the sender's: a value
    the sender put there (it should send ``rport`` empty and no ``received``)
    is replaced by the real source, so that responses never go to an address
    or port the peer merely named (a reflection, §18.2.2).

    Args:
        via: the top Via of a received request.
        source: ``(ip, port)`` the request came from.

    Returns:
        The new :class:`~txsipua.sip.values.Via`, or ``None`` when no parameter
        needs adding.
    """
    ip, port = source
    params = via.params
    if "rport" in params:
        return via.with_params(received=ip, rport=str(port))
    if "received" in params:  # written by the sender: replace it with the truth
        return via.with_params(received=ip)
    if _same_address(via.host, ip):
        return None
    return via.with_params(received=ip)


def stamp_received(request: Request, source: Address) -> Request:
    """Apply §18.2.1 and RFC 3581 §4 to a received request.

    The request is modified in place (its top Via value is replaced, any other
    Via values stay as they were, in the same field line) and returned, so
    responses built from it copy the stamped Via.

    Args:
        request: a request just received.
        source: ``(ip, port)`` the request came from.

    Returns:
        ``request`` itself.

    Raises:
        ParseError: the top Via is missing or malformed.
    """
    new = stamped_via(request.top_via, source)
    if new is not None:
        headers = request.headers
        headers.pop_first_value("Via")
        headers.prepend("Via", str(new))
    return request


def response_destination(via: Via) -> Address:
    """Where to send a response over an unreliable transport (§18.2.2, RFC 3581 §4).

    Args:
        via: the top Via of the request, as stamped by :func:`stamp_received`.

    Returns:
        ``(received or sent-by host, rport)`` when ``rport`` has a value;
        else ``(received, sent-by port or the default port)`` when ``received``
        is present; else the sent-by itself (a host name is left for the driver
        to resolve, RFC 3263 §5).  The default port is 5061 for TLS and 5060
        otherwise.  ``maddr`` (multicast) is not supported and is ignored.
    """
    rport = via.rport
    received = via.received
    if isinstance(rport, int):
        return (unbracket(received or via.host), rport)
    port = via.port
    if port is None:
        port = DEFAULT_TLS_PORT if via.transport == "TLS" else DEFAULT_PORT
    if received:
        return (unbracket(received), port)
    return (unbracket(via.host), port)


__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_TLS_PORT",
    "Address",
    "Outgoing",
    "response_destination",
    "stamp_received",
    "stamped_via",
    "unbracket",
]


def sips_needs_tls(request: Request, transport: str) -> TransportError | None:
    """The error for sending ``request`` over ``transport`` when its next hop forbids it.

    A ``sips`` URI means TLS on every hop the request is sent over (RFC 3261
    §19.1, §26.2.2): a ``sips`` Request-URI or a ``sips`` Route entry (the next
    hop, or one after it) cannot go over UDP or TCP, and silently sending it
    in clear would defeat what the user asked for.  The next hop (the first
    Route, else the Request-URI) may also name its transport with a
    ``transport`` parameter (§19.1.1): ``transport=tls`` needs TLS, and any
    other value that is not the user agent's transport (``transport=tcp`` on
    a UDP user agent) cannot be honoured either.  Check before anything is
    sent; the same check guards the ACK of a 2xx (see :func:`hop_transport_error`).

    Args:
        request: the request about to be sent.
        transport: the transport it would go over (``"UDP"``, ``"TCP"``, ``"TLS"``).

    Returns:
        A :class:`~txsipua.errors.TransportError` naming the URI and the
        transport, or ``None`` when the request may be sent.  A Route that
        cannot be parsed is left to the code that routes on it.
    """
    routes = [part.strip() for value in request.headers.get_all("Route") for part in value.split(",")]
    return hop_transport_error(request.method, request.uri_text, routes, transport)


def hop_transport_error(method: str, uri_text: str, routes: list[str], transport: str) -> TransportError | None:
    """The error for sending a ``method`` request to ``uri_text`` via ``routes`` over ``transport``.

    The rule of :func:`sips_needs_tls`, for a request not built yet (the ACK
    of a 2xx, from its dialog's remote target and route set).

    Args:
        method: the request method, for the message.
        uri_text: the Request-URI text.
        routes: the Route entries in order (``"<sip:p.example;lr>"`` or bare URIs).
        transport: the user agent's transport (``"UDP"``, ``"TCP"``, ``"TLS"``).

    Returns:
        A :class:`~txsipua.errors.TransportError`, or ``None`` when the request may be sent.
    """
    ours = transport.upper()
    bare = [_bare_uri(r) for r in routes if r]
    if ours not in ("TLS", "WSS"):  # WSS is TLS too (RFC 7118 §7)
        for uri, where in [(uri_text.strip(), f"the Request-URI {uri_text}"),
                           *((b, f"the route {b}") for b in bare)]:
            if uri[:5].lower() == "sips:":
                return TransportError(
                    f"{method} not sent: {where} is a sips URI, which requires TLS on every hop "
                    f"(RFC 3261 §26.2.2), and this user agent sends over {ours} only")
    hop = bare[0] if bare else uri_text.strip()
    wanted = _transport_param(hop)
    if wanted == "TCP" and hop[:5].lower() == "sips:":
        wanted = "TLS"  # sips over TCP is TLS (RFC 3261 §26.2.2)
    elif wanted == "WS" and hop[:5].lower() == "sips:":
        wanted = "WSS"  # sips over WebSocket is secure WebSocket (RFC 7118 §7)
    if wanted is None or wanted == ours:
        return None
    return TransportError(
        f"{method} not sent: the next hop {hop} asks for transport={wanted.lower()} "
        f"(RFC 3261 §19.1.1), and this user agent sends over {ours} only")


def _bare_uri(entry: str) -> str:
    """The URI of a Route entry: inside its angle brackets when it has them."""
    entry = entry.strip()
    lt = entry.find("<")
    if lt >= 0:
        gt = entry.find(">", lt)
        return entry[lt + 1:gt if gt > 0 else len(entry)].strip()
    return entry


def _transport_param(uri: str) -> str | None:
    """The upper-case ``transport`` parameter of a URI's text, or ``None`` when it has none."""
    at = uri.rfind("@", 0, uri.find("?") if "?" in uri else len(uri))
    params = uri[at + 1:].split("?", 1)[0].split(";")[1:]
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "transport" and value.strip():
            return value.strip().upper()
    return None
