"""application/dialog-info+xml bodies: the dialog event package, busy lamp fields (RFC 4235 §4).

Anatomy (what is read; everything else is ignored)::

    <dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="3"
                 state="full" entity="sip:bob@example.com">
      <dialog id="as7d900as8" call-id="a84b4c76e66710" local-tag="1928301774"
              remote-tag="456887766" direction="initiator">
        <state>confirmed</state>
      </dialog>
    </dialog-info>

Parsed with the standard library's expat, with entity caution at the level
of defusedxml: a document declaring a DOCTYPE, any entity, or an external
reference is refused before a single entity is expanded, so "billion laughs"
and external-entity attacks cannot run; the size is bounded too.
"""

from __future__ import annotations

import xml.parsers.expat

import attrs

from txsipua.errors import ParseError

NS = "urn:ietf:params:xml:ns:dialog-info"
"""The dialog-info namespace (RFC 4235 §4.1)."""

MAX_DIALOG_INFO = 65536
"""A body longer than this (bytes) is refused (ParseError 413)."""

DIALOG_STATES = ("trying", "proceeding", "early", "confirmed", "terminated")
"""The dialog states of RFC 4235 §3.7.1."""


@attrs.frozen
class DialogEntry:
    """One ``<dialog>`` element (RFC 4235 §4.1.2).

    Attributes:
        id: its id attribute.
        state: its ``<state>`` (one of :data:`DIALOG_STATES`, or ``""`` if missing).
        call_id: the call-id attribute, or ``None``.
        local_tag: the local-tag attribute, or ``None``.
        remote_tag: the remote-tag attribute, or ``None``.
        direction: ``"initiator"``, ``"recipient"`` or ``None``.
    """

    id: str
    state: str
    call_id: str | None = None
    local_tag: str | None = None
    remote_tag: str | None = None
    direction: str | None = None


@attrs.frozen
class DialogInfo:
    """A dialog-info document (RFC 4235 §4.1).

    Attributes:
        entity: the monitored URI.
        version: the document version.
        full: True for ``state="full"``, False for ``partial``.
        dialogs: the dialogs, in document order.
    """

    entity: str
    version: int
    full: bool
    dialogs: tuple[DialogEntry, ...] = ()

    @property
    def busy(self) -> bool:
        """True when any dialog is not terminated (the lamp is lit)."""
        return any(d.state not in ("terminated", "") for d in self.dialogs)

    def __str__(self) -> str:
        states = ",".join(d.state or "?" for d in self.dialogs) or "idle"
        return f"{self.entity} {'busy' if self.busy else 'idle'} ({states})"


class _Refused(Exception):
    pass


def parse_dialog_info(body: bytes) -> DialogInfo:
    """Parse a dialog-info document safely.

    Raises:
        ParseError: too large (413); a DOCTYPE, entity declaration or external
            reference (refused, never expanded); malformed XML; a root that is
            not ``dialog-info`` in the RFC 4235 namespace; a missing or bad
            version, state or entity attribute; a dialog without id (400).
    """
    if len(body) > MAX_DIALOG_INFO:
        raise ParseError(f"dialog-info body of {len(body)} bytes", status=413)
    parser = xml.parsers.expat.ParserCreate(namespace_separator=" ")
    root: dict[str, str] = {}
    dialogs: list[dict[str, str]] = []
    path: list[str] = []
    text: list[str] = []

    def refuse(*_: object) -> None:
        raise _Refused("DOCTYPE, entities and external references are refused")

    def start(name: str, attributes: dict[str, str]) -> None:
        path.append(name)
        if len(path) == 1:
            if name != f"{NS} dialog-info":
                raise _Refused(f"root element is {name!r}, not dialog-info")
            root.update(attributes)
        elif len(path) == 2 and name == f"{NS} dialog":
            dialogs.append(dict(attributes))
        elif len(path) == 3 and name == f"{NS} state" and path[1] == f"{NS} dialog":
            text.clear()

    def end(name: str) -> None:
        if len(path) == 3 and name == f"{NS} state" and path[1] == f"{NS} dialog":
            dialogs[-1]["#state"] = "".join(text).strip().lower()
        path.pop()

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse  # type: ignore[assignment]
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text.append
    try:
        parser.Parse(body, True)
    except _Refused as e:
        raise ParseError(f"dialog-info refused: {e}") from None
    except xml.parsers.expat.ExpatError as e:
        raise ParseError(f"dialog-info is not well-formed XML: {e}") from None
    version = root.get("version", "")
    if not version.isdigit() or len(version) > 10:
        raise ParseError(f"dialog-info version is not a number: {version[:20]!r}")
    state = root.get("state")
    if state not in ("full", "partial"):
        raise ParseError(f"dialog-info state must be full or partial, not {str(state)[:20]!r}")
    entity = root.get("entity")
    if not entity:
        raise ParseError("dialog-info without entity")
    entries = []
    for d in dialogs:
        if not d.get("id"):
            raise ParseError("dialog without id")
        entries.append(DialogEntry(d["id"], d.get("#state", ""), d.get("call-id"), d.get("local-tag"),
                                   d.get("remote-tag"), d.get("direction")))
    return DialogInfo(entity, int(version), state == "full", tuple(entries))


__all__ = ["DIALOG_STATES", "MAX_DIALOG_INFO", "NS", "DialogEntry", "DialogInfo", "parse_dialog_info"]
