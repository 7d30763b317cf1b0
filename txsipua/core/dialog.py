"""Dialogs (RFC 3261 §12).

Theory of operation: a :class:`Dialog` is the peer-to-peer relationship that an
INVITE's 2xx (or a reliable 1xx with a To tag: an early dialog) creates.  It
holds the dialog id (Call-ID, local tag, remote tag), the local and remote
sequence numbers, the local and remote URIs, the remote target and the route
set.  It builds in-dialog requests (§12.2.1.1) and checks in-dialog requests
received (§12.2.2).  It is a plain object: it never sends anything itself.

Route sets: on the UAC side the route set is the Record-Route of the response
in reverse order, on the UAS side the Record-Route of the request in order
(§12.1.1, §12.1.2).  :meth:`Dialog.create_request` applies loose routing
(first route has ``lr``: Request-URI is the remote target, Route is the route
set) or strict routing (Request-URI is the first route, the remote target is
appended as the last Route), §12.2.1.1.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

import attrs

from txsipua.errors import LocalProtocolError, RemoteProtocolError
from txsipua.sip.message import Headers, Request, Response
from txsipua.sip.uri import SipURI
from txsipua.sip.values import NameAddr


class DialogState(enum.Enum):
    """RFC 3261 §12: early (from a 1xx with a tag), confirmed (2xx), terminated."""

    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


@attrs.frozen
class DialogId:
    """The dialog identifier (RFC 3261 §12): Call-ID, local tag, remote tag."""

    call_id: str
    local_tag: str
    remote_tag: str


@attrs.define(slots=True)
class Dialog:
    """One dialog, seen from our side.

    Attributes:
        call_id: the Call-ID.
        local_tag: our tag (From tag as UAC, To tag as UAS).
        remote_tag: the peer's tag.
        local_seq: the last CSeq number we used (next request uses +1).
        remote_seq: the last CSeq number the peer used, or ``None``.
        local_uri: our URI with display name (From as UAC, To as UAS), no tag.
        remote_uri: the peer's URI with display name, no tag.
        remote_target: the peer's Contact URI (§12.1).
        route_set: the route set, as URIs in the order they are used.
        secure: True when the dialog was created over sips (§12.1.1).
        state: :class:`DialogState`.
        is_uac: True when we sent the dialog-creating request.
    """

    call_id: str
    local_tag: str
    remote_tag: str
    local_seq: int
    remote_seq: int | None
    local_uri: NameAddr
    remote_uri: NameAddr
    remote_target: SipURI
    route_set: list[SipURI] = attrs.field(factory=list)
    secure: bool = False
    state: DialogState = DialogState.CONFIRMED
    is_uac: bool = True
    # the From and To values of our requests, made on first use (they never change)
    _from_to: tuple[str, str] | None = attrs.field(default=None, init=False, repr=False, eq=False)

    @property
    def id(self) -> DialogId:
        """The :class:`DialogId`."""
        return DialogId(self.call_id, self.local_tag, self.remote_tag)

    @classmethod
    def from_uac_response(cls, request: Request, response: Response) -> Dialog:
        """Create the UAC side of a dialog from our INVITE and its 2xx or tagged 1xx (§12.1.2).

        A 2xx without a To tag (from an RFC 2543 peer) makes a dialog whose
        remote tag is null (``""``): its requests carry the To without a tag.

        Raises:
            RemoteProtocolError: a 1xx without To tag, or no usable Contact.
        """
        remote_tag = response.to.tag or ""
        if not remote_tag and response.status < 200:
            raise RemoteProtocolError("early dialog from a response without a To tag")
        contacts = response.contact
        if not contacts or contacts[0].wildcard:
            raise RemoteProtocolError("dialog-creating response without a usable Contact")
        local = request.from_
        route_set = [na.uri for na in reversed(response.record_route)]
        return cls(
            call_id=request.call_id,
            local_tag=local.tag or "",
            remote_tag=remote_tag,
            local_seq=request.cseq.seq,
            remote_seq=None,
            local_uri=local.without_tag(),
            remote_uri=response.to.without_tag(),
            remote_target=contacts[0].uri,
            route_set=route_set,
            secure=request.uri.scheme == "sips",
            state=DialogState.CONFIRMED if 200 <= response.status < 300 else DialogState.EARLY,
            is_uac=True,
        )

    @classmethod
    def from_uas_request(cls, request: Request, local_tag: str) -> Dialog:
        """Create the UAS side of a dialog from an INVITE we answer (§12.1.1).

        Raises:
            RemoteProtocolError: the request has no From tag or no Contact.
        """
        remote = request.from_
        if not remote.tag:
            raise RemoteProtocolError("INVITE without a From tag")
        contacts = request.contact
        if not contacts:
            raise RemoteProtocolError("INVITE without a Contact", status=400)
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=remote.tag,
            local_seq=0,
            remote_seq=request.cseq.seq,
            local_uri=request.to.without_tag(),
            remote_uri=remote.without_tag(),
            remote_target=contacts[0].uri,
            route_set=[na.uri for na in request.record_route],
            secure=request.uri.scheme == "sips",
            state=DialogState.CONFIRMED,
            is_uac=False,
        )

    def next_seq(self) -> int:
        """Advance and return the local CSeq number (§12.2.1.1).

        A UAS dialog starts from 0, so its first request gets 1; RFC 3261 only
        asks that it be chosen freely and then increase by one.
        """
        self.local_seq += 1
        return self.local_seq

    def create_request(
        self,
        method: str,
        *,
        via: str,
        contact: str | None = None,
        cseq: int | None = None,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        max_forwards: int = 70,
    ) -> Request:
        """Build an in-dialog request (RFC 3261 §12.2.1.1).

        Args:
            method: the method, e.g. ``"BYE"``.
            via: the top Via value (with a fresh branch).
            contact: our Contact value, for target-refresh requests (re-INVITE).
            cseq: the CSeq number; by default :meth:`next_seq` (ACK and CANCEL
                pass the INVITE's number).
            headers: extra header fields, appended.
            body: the body.
            max_forwards: the Max-Forwards value.

        Raises:
            LocalProtocolError: the dialog is terminated.
        """
        if self.state is DialogState.TERMINATED:
            raise LocalProtocolError(f"cannot send {method}: the dialog is terminated")
        seq = self.next_seq() if cseq is None else cseq
        routes = self.route_set
        if routes and not routes[0].lr:
            # strict routing (RFC 3261 §12.2.1.1, second case)
            request_uri = _strip_uri_for_request(routes[0])
            route_values = [f"<{u}>" for u in routes[1:]] + [f"<{self.remote_target}>"]
        else:
            request_uri = self.remote_target
            route_values = [f"<{u}>" for u in routes]
        # the dialog's own fields come from parsed values: no need to validate
        # them again (Headers.from_entries);
        # the caller's extra fields are checked by add()
        from_to = self._from_to
        if from_to is None:
            # a null remote tag (§12.1.2) leaves the To without a tag parameter
            remote = self.remote_uri.with_tag(self.remote_tag) if self.remote_tag else self.remote_uri
            from_to = self._from_to = (str(self.local_uri.with_tag(self.local_tag)), str(remote))
        fields = [
            ("via", "Via", via),
            ("max-forwards", "Max-Forwards", str(max_forwards)),
            ("from", "From", from_to[0]),
            ("to", "To", from_to[1]),
            ("call-id", "Call-ID", self.call_id),
            ("cseq", "CSeq", f"{seq} {method}"),
        ]
        fields.extend(("route", "Route", r) for r in route_values)
        if contact is not None:
            fields.append(("contact", "Contact", contact))
        h = Headers.from_entries(fields)
        for name, value in headers:
            h.add(name, value)
        return Request(method, request_uri, h, body)

    def next_hop(self) -> SipURI:
        """The URI of the next hop for in-dialog requests: first route, else the remote target."""
        if self.route_set:
            return self.route_set[0]
        return self.remote_target

    def check_request(self, request: Request) -> None:
        """Check an in-dialog request's CSeq and record it (RFC 3261 §12.2.2).

        ACK and CANCEL carry the INVITE's number and are not checked.

        Raises:
            RemoteProtocolError: status 500 when the CSeq number is lower than
                the last one seen (out of order).
        """
        if request.method in ("ACK", "CANCEL"):
            return
        seq = request.cseq.seq
        if self.remote_seq is not None and seq <= self.remote_seq:
            raise RemoteProtocolError(f"CSeq {seq} is not above {self.remote_seq}", status=500)
        self.remote_seq = seq

    def refresh_target(self, message: Request | Response) -> None:
        """Update the remote target from a target-refresh request or its 2xx (§12.2)."""
        contacts = message.contact
        if contacts and not contacts[0].wildcard:
            self.remote_target = contacts[0].uri

    def confirm(self, response: Response) -> None:
        """Move an early dialog to confirmed on a 2xx, taking its route set (§12.1.2, §13.2.2.4)."""
        self.state = DialogState.CONFIRMED
        self.route_set = [na.uri for na in reversed(response.record_route)]
        self.refresh_target(response)

    def terminate(self) -> None:
        """Mark the dialog terminated."""
        self.state = DialogState.TERMINATED


def _strip_uri_for_request(uri: SipURI) -> SipURI:
    # Request-URI may not carry method or headers params (RFC 3261 §19.1.5)
    if uri.headers or "method" in uri.params:
        params = {k: v for k, v in uri.params.items() if k != "method"}
        return uri.replace(headers={}, params=params)
    return uri
