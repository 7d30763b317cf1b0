"""Message builders: one per message kind a user agent makes (RFC 3261 §8.1.1, §8.2.6, §9.1, §17.1.1.3).

Theory of operation
-------------------
Every SIP message the core sends is built here, by exactly one function per
kind, so the rules of each kind live in one place:

==========================  ==================================================
:func:`new_request`          an out-of-dialog request (§8.1.1)
:func:`make_response`        a response to a received request (§8.2.6)
:func:`build_cancel`         the CANCEL of an INVITE (§9.1)
:func:`build_ack`            an ACK without a dialog: the non-2xx ACK the INVITE
                             client transaction sends (§17.1.1.3), or the best-effort
                             ACK of a 2xx no dialog can be made from (§13.2.2.4)
:func:`build_2xx_ack`        the ACK of a 2xx, an in-dialog request (§13.2.2.4)
==========================  ==================================================

In-dialog requests other than ACK are built by
:meth:`~txsipua.core.dialog.Dialog.create_request` (§12.2.1.1), which owns
the route set.  The builders are pure functions: identifiers (tags, branches,
Call-IDs) and our own addresses come in as arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

import attrs

from txsipua.core import capabilities
from txsipua.errors import ParseError
from txsipua.sip.headers import canonical_name, header_key
from txsipua.sip.message import Headers, Request, Response, split_list_value
from txsipua.sip.uri import SipURI
from txsipua.sip.values import CSeq, NameAddr

if TYPE_CHECKING:  # pragma: no cover
    from txsipua.core.dialog import Dialog

AUTH_HEADERS = ("Authorization", "Proxy-Authorization")
"""The credential header fields (RFC 3261 §22.2, §22.3)."""

ALLOW = capabilities.ALLOW
"""Our Allow header value: the methods we implement (RFC 3261 §20.5; :mod:`~txsipua.core.capabilities`)."""

SUPPORTED = capabilities.SUPPORTED
"""Our Supported header value: the extensions we implement (RFC 3262, RFC 4028, RFC 3891; RFC 3261 §20.37)."""

_CONTACT_METHODS = frozenset({"INVITE", "REGISTER", "SUBSCRIBE", "REFER", "OPTIONS"})

URI_HEADERS_REFUSED = frozenset(header_key(name) for name in (
    # RFC 3261 §19.1.5: "obviously dangerous" (From, Call-ID, CSeq, Via, Record-Route),
    # Route (an unwitting agent), and those falsely advertising our location or
    # capabilities (Accept*, Allow, Contact, Organization, Supported, User-Agent)
    "From", "Call-ID", "CSeq", "Via", "Record-Route", "Route", "Accept", "Accept-Encoding",
    "Accept-Language", "Allow", "Contact", "Organization", "Supported", "User-Agent",
    # what the request's own framing, addressing, credentials and extensions decide
    "To", "Content-Length", "Max-Forwards", "Authorization", "Proxy-Authorization",
    "Require", "Proxy-Require", "Path", "Service-Route", "RAck", "RSeq",
    "Session-Expires", "Min-SE", "Subscription-State", "Allow-Events",
))
"""Header fields a URI's ``?name=value`` never sets (:func:`new_request`; RFC 3261 §19.1.5)."""

_BODY_FIELDS = frozenset(header_key(n) for n in (
    "Content-Type", "Content-Encoding", "Content-Disposition", "Content-Language"))
_COPIED = frozenset({"from", "to", "call-id", "cseq"})
_CANON_COPIED = {"from": "From", "to": "To", "call-id": "Call-ID", "cseq": "CSeq"}


def format_host(host: str) -> str:
    """Bracket an IPv6 address for use in a URI or Via (``::1`` -> ``[::1]``)."""
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


def via_value(local: tuple[str, int], transport: str, branch: str) -> str:
    """Our Via header value (RFC 3261 §8.1.1.7, RFC 3581 ``rport`` over UDP).

    Args:
        local: our ``(host, port)``.
        transport: ``"UDP"``, ``"TCP"`` or ``"TLS"``.
        branch: the branch parameter, or ``""`` for none (stamped when sent).
    """
    host, port = local
    b = f";branch={branch}" if branch else ""
    rport = ";rport" if transport == "UDP" else ""
    return f"SIP/2.0/{transport} {format_host(host)}:{port}{rport}{b}"


def contact_uri(local: tuple[str, int], transport: str, user: str | None, secure: bool = True) -> SipURI:
    """Our Contact URI (RFC 3261 §8.1.1.8; over TLS, RFC 5630 §3.1.3 and §4.1).

    Over TLS the Contact is ``sips:user@host:port`` when ``secure`` (TLS on
    every hop; no ``transport`` parameter: ``transport=tls`` is deprecated and
    ``sips`` already means TLS), else ``sip:user@host:port;transport=tls``
    (reach us over TLS for requests that are not SIPS).  Other transports
    name themselves in ``transport=`` unless UDP.
    """
    host, port = local
    params: dict[str, str | None] = {}
    scheme = "sip"
    if transport == "TLS" and secure:
        scheme = "sips"
    elif transport != "UDP":
        params["transport"] = transport.lower()
    return SipURI(scheme=scheme, user=user, host=format_host(host), port=port, params=params)


def new_request(
    method: str,
    request_uri: SipURI | str,
    from_: NameAddr,
    to: NameAddr,
    *,
    via: str,
    call_id: str,
    cseq: int = 1,
    contact: str | None = None,
    route: Iterable[SipURI] = (),
    user_agent: str = "",
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    content_type: str | None = None,
) -> Request:
    """Build an out-of-dialog request (RFC 3261 §8.1.1).

    Headers of a URI (``sip:bob@example.com?Subject=hi&Priority=urgent``) are
    not allowed in a Request-URI, To or From (RFC 3261 §19.1.1 Table 1): they
    are taken off all three, and those of the Request-URI become header
    fields of the request (§19.1.5), unless the request already has that
    field, the field is one of :data:`URI_HEADERS_REFUSED`, or its name is
    not a token or its value holds a control character (CR/LF would inject
    fields).  ``body=`` sets the body (with the URI's ``Content-Type``, else
    ``text/plain``) of a request other than INVITE that has none, its
    ``Content-*`` fields going with it; an INVITE's body is its session
    description (RFC 3264) and is never set from a URI.

    Args:
        method: the method.
        request_uri: the Request-URI (a ``str`` holding ``?`` is parsed).
        from_: the From, with its tag already chosen.
        to: the To (no tag).
        via: the top Via value.
        call_id: the Call-ID.
        cseq: the CSeq number.
        contact: our Contact value, added for the methods that carry one
            (INVITE, REGISTER, SUBSCRIBE, REFER, OPTIONS), or ``None``.
        route: a pre-loaded route set (§8.1.2), in order.
        user_agent: the User-Agent value (``""`` for none).
        headers: extra fields, appended.
        body: the body.
        content_type: the body's type, when there is a body.

    Raises:
        ParseError: ``request_uri`` is a ``str`` holding ``?`` that is not a SIP URI.
    """
    uri_headers: Mapping[str, str] = {}
    if isinstance(request_uri, str) and "?" in request_uri:
        request_uri = SipURI.parse(request_uri)
    if isinstance(request_uri, SipURI) and request_uri.headers:
        uri_headers = request_uri.headers
        request_uri = request_uri.replace(headers={})
    if to.uri.headers:
        to = attrs.evolve(to, uri=to.uri.replace(headers={}))
    if from_.uri.headers:
        from_ = attrs.evolve(from_, uri=from_.uri.replace(headers={}))
    h = Headers()
    h.add("Via", via)
    h.add("Max-Forwards", "70")
    h.add("From", str(from_))
    h.add("To", str(to))
    h.add("Call-ID", call_id)
    h.add("CSeq", str(CSeq(cseq, method)))
    for r in route:
        h.add("Route", f"<{r}>")
    if contact is not None and method in _CONTACT_METHODS:
        h.add("Contact", contact)
    if method == "INVITE":
        h.add("Allow", ALLOW)
        h.add("Supported", capabilities.SUPPORTED)
    if user_agent:
        h.add("User-Agent", user_agent)
    for n, v in headers:
        h.add(n, v)
    if body and content_type:
        h.add("Content-Type", content_type)
    if uri_headers:
        body = _honour_uri_headers(h, method, uri_headers, body)
    return Request(method, request_uri, h, body)


def _honour_uri_headers(h: Headers, method: str, uri_headers: Mapping[str, str], body: bytes) -> bytes:
    """Add a Request-URI's headers to ``h`` as :func:`new_request` says (RFC 3261 §19.1.5); the body."""
    fields = {header_key(n): (canonical_name(n), v) for n, v in uri_headers.items()}
    uri_body = fields.pop("body", None)
    with_body = uri_body is not None and bool(uri_body[1]) and not body and method != "INVITE"
    if with_body:
        assert uri_body is not None
        body = uri_body[1].encode("utf-8")
        fields.setdefault("content-type", ("Content-Type", "text/plain"))
    for key, (name, value) in fields.items():
        if (key in URI_HEADERS_REFUSED or key in h or (key in _BODY_FIELDS and not with_body)
                or not _is_token(name) or any(c < " " and c != "\t" or c == "\x7f" for c in value)):
            continue
        h.add(name, value)
    return body


def _is_token(name: str) -> bool:
    return bool(name) and all(c.isascii() and (c.isalnum() or c in "-.!%*_+`'~") for c in name)


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    new_tag: Callable[[], str] | None = None,
    contact: str = "",
    server: str = "",
    body: bytes = b"",
    headers: Iterable[tuple[str, str]] = (),
) -> Response:
    """Build a response to ``request`` (RFC 3261 §8.2.6).

    Copies Via, From, Call-ID, CSeq and To, adding a To tag when the status is
    above 100 and the To has no tag parameter (§8.2.6.2), and the Timestamp
    into a 100 (§8.2.6.1); dialog-creating
    responses to INVITE and SUBSCRIBE get our Contact and a copy of the
    Record-Route (§12.1.1); 405 and 2xx to INVITE/OPTIONS carry Allow, a 2xx to INVITE Supported.

    Args:
        request: the request answered (its top Via already stamped, §18.2.1).
        status: 100-699.
        reason: the reason phrase, or ``None`` for the standard one.
        to_tag: our To tag, or ``None`` to take one from ``new_tag``.
        new_tag: makes a fresh tag when ``to_tag`` is ``None``.
        contact: our Contact value.
        server: the Server value (``""`` for none).
        body: the body.
        headers: extra fields, appended.
    """
    # one pass over the request's already-validated fields (hot path of a UAS)
    vias: list[tuple[str, str, str]] = []
    rrs: list[tuple[str, str, str]] = []
    timestamp: tuple[str, str, str] | None = None
    copied: dict[str, tuple[str, str, str]] = {}
    for f in request.headers.entries():
        k = f[0]
        if k == "via":
            vias.append(f)
        elif k == "record-route":
            rrs.append(f)
        elif k in _COPIED and k not in copied:
            copied[k] = f
        elif k == "timestamp" and status == 100:
            timestamp = f
    if to_tag is None and status > 100 and new_tag is not None:
        to_tag = new_tag()
    add_tag = False
    if to_tag and status > 100:
        # the To's tag parameter as dialogs read it (not ";tag=" in a URI, a quoted
        # display name or a quoted parameter)
        try:
            add_tag = request.to_tag is None
        except ParseError:  # an unparsable To: the plain text decides
            add_tag = ";tag=" not in (copied.get("to") or ("", "", ""))[2].replace(" ", "").lower()
    fields = vias
    for k in ("from", "to", "call-id", "cseq"):
        f = copied.get(k) or (k, _CANON_COPIED[k], "")
        if k == "to" and add_tag:
            f = (k, f[1], f"{f[2]};tag={to_tag}")
        fields.append(f)
    if timestamp is not None:  # §8.2.6.1: a 100 (Trying) carries the request's Timestamp
        fields.append(timestamp)
    method = request.method
    if 100 < status < 300 and method in ("INVITE", "SUBSCRIBE"):
        fields.extend(rrs)
        fields.append(("contact", "Contact", contact))
    if status == 405 or (200 <= status < 300 and method in ("INVITE", "OPTIONS")):
        fields.append(("allow", "Allow", ALLOW))
        if method == "INVITE" and status != 405:  # §20.37; OPTIONS gets it with the other capabilities
            fields.append(("supported", "Supported", capabilities.SUPPORTED))
    if server:
        fields.append(("server", "Server", server))
    h = Headers.from_entries(fields)
    for n, v in headers:
        h.add(n, v)
    return Response(status, reason, h, body)


def build_cancel(invite: Request, user_agent: str = "") -> Request:
    """The CANCEL of ``invite`` (RFC 3261 §9.1).

    Same Request-URI, Call-ID, From, To (without the response's tag), CSeq
    number and top Via (so the branch matches) as the INVITE, method CANCEL,
    the INVITE's Route values; no credentials (CANCEL is never challenged).
    """
    h = Headers()
    h.add("Via", invite.headers.get_all("Via")[0])
    h.add("Max-Forwards", "70")
    h.add("From", invite.headers.get("From") or "")
    h.add("To", invite.headers.get("To") or "")
    h.add("Call-ID", invite.call_id)
    h.add("CSeq", str(CSeq(invite.cseq.seq, "CANCEL")))
    for r in invite.headers.get_all("Route"):
        h.add("Route", r)
    if user_agent:
        h.add("User-Agent", user_agent)
    return Request("CANCEL", invite.uri_text, h)


def build_ack(
    invite: Request,
    response: Response,
    *,
    via: str | None = None,
    request_uri: str | None = None,
    credentials: Iterable[tuple[str, str]] = (),
) -> Request:
    """An ACK for a final response to ``invite`` without a dialog.

    By default, the ACK of a non-2xx final response (RFC 3261 §17.1.1.3) that
    the INVITE client transaction sends: same Request-URI, Call-ID, From and
    CSeq number as the INVITE, CSeq method ACK, the To of the response (with
    its tag), only the INVITE's top Via, the INVITE's Route values,
    Max-Forwards copied (70 when absent); no body, no credentials.

    For a 2xx no dialog can be made from (no usable Contact), the core still
    ACKs it so that the peer stops retransmitting (§13.2.2.4): then ``via``
    carries a new branch, ``request_uri`` the response's Contact when it has
    one, and ``credentials`` the INVITE's Authorization and
    Proxy-Authorization values its next hop may receive (digest-leak guard).

    Raises:
        ParseError: the INVITE lacks Via, From, Call-ID or CSeq, or the
            response lacks To.
    """
    h = invite.headers
    top = via if via is not None else h.get("Via")
    frm = h.get("From")
    call_id = h.get("Call-ID")
    to = response.headers.get("To")
    if top is None or frm is None or call_id is None or to is None:
        raise ParseError("cannot build an ACK: Via, From, Call-ID or To missing")
    if "," in top:
        top = split_list_value(top)[0]
    fields = [
        ("Via", top),
        ("Max-Forwards", h.get("Max-Forwards") or "70"),
        ("From", frm),
        ("To", to),
        ("Call-ID", call_id),
        ("CSeq", f"{invite.cseq.seq} ACK"),
    ]
    fields.extend(("Route", r) for r in h.get_all("Route"))
    fields.extend(credentials)
    return Request("ACK", request_uri or invite.uri_text, fields)


def build_2xx_ack(dialog: Dialog, invite: Request, *, via: str, user_agent: str = "",
                  credentials: Iterable[tuple[str, str]] | None = None, body: bytes = b"",
                  content_type: str = "application/sdp") -> Request:
    """The ACK of a 2xx to ``invite`` within ``dialog`` (RFC 3261 §13.2.2.4).

    An in-dialog request (§12.2.1.1) with the INVITE's CSeq number and the
    INVITE's Authorization and Proxy-Authorization values (§22.4).

    Args:
        dialog: the dialog the 2xx created or confirmed.
        invite: the INVITE as last sent.
        via: the top Via, with a fresh branch (the ACK is its own transaction).
        user_agent: the User-Agent value (``""`` for none).
        credentials: the credential fields to repeat, as the digest-leak guard
            allows them for the ACK's next hop; ``None``: every one of the INVITE's.
        body: the ACK's body: the answer when the 2xx made the offer (§13.2.1).
        content_type: the body's Content-Type (with a body only).

    Raises:
        LocalProtocolError: the dialog is terminated.
    """
    if credentials is None:
        extra = [(n, v) for n, v in invite.headers.items() if n in AUTH_HEADERS]
    else:
        extra = list(credentials)
    if user_agent:
        extra.append(("User-Agent", user_agent))
    if body:
        extra.append(("Content-Type", content_type))
    return dialog.create_request("ACK", via=via, cseq=invite.cseq.seq, headers=extra, body=body)


__all__ = [
    "ALLOW",
    "AUTH_HEADERS",
    "SUPPORTED",
    "build_2xx_ack",
    "build_ack",
    "build_cancel",
    "contact_uri",
    "format_host",
    "make_response",
    "new_request",
    "via_value",
]
