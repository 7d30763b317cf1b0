"""What this user agent implements, in one place: Allow, Supported, Accept, Allow-Events.

RFC 3261 §20.5 (Allow), §20.37 (Supported), §20.1 (Accept), RFC 6665 §8.2.2
(Allow-Events).  Capabilities are honest: each list names exactly what the
core and the user API handle, and every builder and check reads it from here
(:data:`~txsipua.core.builders.ALLOW`, the 420 check of
:func:`~txsipua.core.uas.check_out_of_dialog`, the 200 to OPTIONS).  A track
that implements a new method, option tag or body adds it here and nowhere else.

=================  ==========================================================
``INVITE ACK CANCEL BYE``   calls (RFC 3261 §13-§15)
``OPTIONS``                 answered 200 by the core (§11.2)
``MESSAGE``                 RFC 3428, to the application
``INFO``                    RFC 6086, DTMF bodies decoded (``Call.on_dtmf``)
``REFER``                   RFC 3515 in a call (we are transferred)
``NOTIFY``                  RFC 6665: refer progress, our subscriptions, MWI
``UPDATE``                  RFC 3311, early and confirmed dialogs (offer/answer, refresh)
``PRACK``                   RFC 3262, both sides
``100rel``                  RFC 3262: reliable provisional responses
``timer``                   RFC 4028: session timers, refresh and expiry
``replaces``                RFC 3891: an INVITE replacing one of our dialogs
=================  ==========================================================

SUBSCRIBE is sent (we subscribe) but never accepted: we are a notifier of no
package but the implicit ``refer`` subscription, so a SUBSCRIBE received gets
501 like any method we do not implement as a server.
"""

from __future__ import annotations

ALLOW_METHODS: tuple[str, ...] = ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "MESSAGE", "INFO", "REFER", "NOTIFY",
                                  "UPDATE", "PRACK")
"""Methods we accept as a UAS, in the order of our Allow value (RFC 3261 §20.5)."""

SUPPORTED_OPTIONS: tuple[str, ...] = ("100rel", "timer", "replaces")
"""Option tags we implement (RFC 3261 §20.37); a Require naming any other gets 420."""

ACCEPT_TYPES: tuple[str, ...] = (
    "application/sdp",
    "message/sipfrag",
    "application/simple-message-summary",
    "application/dialog-info+xml",
    "application/dtmf-relay",
    "application/dtmf",
    "text/plain",
)
"""Body types we understand (RFC 3261 §20.1): SDP, the NOTIFY bodies of refer, MWI and
dialog events, the DTMF bodies of INFO, MESSAGE's text."""

ALLOW_EVENTS: tuple[str, ...] = ("refer", "message-summary", "dialog")
"""Event packages whose NOTIFYs we understand (RFC 6665 §8.2.2)."""

ALLOW = ", ".join(ALLOW_METHODS)
"""The Allow header value."""

SUPPORTED = ", ".join(SUPPORTED_OPTIONS)
"""The Supported header value."""

ACCEPT = ", ".join(ACCEPT_TYPES)
"""The Accept header value."""

ALLOW_EVENTS_VALUE = ", ".join(ALLOW_EVENTS)
"""The Allow-Events header value."""

SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(SUPPORTED_OPTIONS)
"""The option tags in lower case, for the Require check (RFC 3261 §8.2.2.3)."""


def capability_headers() -> list[tuple[str, str]]:
    """The fields of a 200 to OPTIONS beside Allow (RFC 3261 §11.2): Accept, Supported, Allow-Events."""
    return [("Accept", ACCEPT), ("Supported", SUPPORTED), ("Allow-Events", ALLOW_EVENTS_VALUE)]


__all__ = [
    "ACCEPT",
    "ACCEPT_TYPES",
    "ALLOW",
    "ALLOW_EVENTS",
    "ALLOW_EVENTS_VALUE",
    "ALLOW_METHODS",
    "SUPPORTED",
    "SUPPORTED_EXTENSIONS",
    "SUPPORTED_OPTIONS",
    "capability_headers",
]
