"""The bodies of event packages we read: which type each carries, and reading one (RFC 6665 §4.1.3).

``message-summary`` NOTIFYs carry ``application/simple-message-summary``
(RFC 3842), ``dialog`` ones ``application/dialog-info+xml`` (RFC 4235); we
send that type as the SUBSCRIBE's Accept.  A NOTIFY body of another type,
or one that does not parse, cannot be read: :func:`document_refusal` names
the response (415 with our Accept, 400 with the defect) the subscriber
sends instead of 200.  Other packages' bodies are taken as raw bytes.
"""

from __future__ import annotations

from typing import Any

from txsipua.errors import ParseError
from txsipua.sip.dialog_info import parse_dialog_info
from txsipua.sip.message import Request
from txsipua.sip.message_summary import parse_message_summary

DOCUMENT_TYPES = {
    "message-summary": "application/simple-message-summary",
    "dialog": "application/dialog-info+xml",
}
"""The body type each known package's NOTIFYs carry (sent as Accept)."""


def read_document(package: str, body: bytes, content_type: str | None = None) -> Any:
    """The NOTIFY body of ``package`` as a value (raw bytes for other packages; ``None`` when empty).

    Args:
        package: the event package (``Event`` without parameters).
        body: the body.
        content_type: its media type (lower case, no parameters), or ``None``
            when unknown; a type other than the package's is never parsed as
            the package's document (the raw bytes are returned).

    Raises:
        ParseError: the body is not a valid document of its package.
    """
    if not body:
        return None
    wanted = DOCUMENT_TYPES.get(package)
    if wanted is None or (content_type is not None and content_type != wanted):
        return body
    if package == "message-summary":
        return parse_message_summary(body)
    return parse_dialog_info(body)


def document_refusal(request: Request, package: str) -> tuple[int, str | None, list[tuple[str, str]]] | None:
    """Why the NOTIFY ``request`` of ``package`` cannot be read, as ``(status, reason, headers)``, else ``None``.

    415 (with ``Accept``) for a body whose type is not the package's (RFC
    3261 §21.4.13); 400 (413 when too large) for a body that does not parse.
    An empty body, or a package we do not read, is fine.
    """
    wanted = DOCUMENT_TYPES.get(package)
    if not request.body or wanted is None:
        return None
    if request.content_type != wanted:
        return 415, None, [("Accept", wanted)]
    try:
        read_document(package, request.body, wanted)
    except ParseError as e:
        return e.status, f"Bad Request ({e.detail})" if e.status == 400 else None, []
    return None


__all__ = ["DOCUMENT_TYPES", "document_refusal", "read_document"]
