"""The seams of the user API, as zope.interface interfaces.

Applications program against these (and tests check the classes with
``zope.interface.verify.verifyObject``):

- :class:`IUserAgent` - one SIP user agent (RFC 3261 §8): register, call,
  send out-of-dialog requests, answer what arrives.
- :class:`IRegistration` - a binding kept alive at a registrar (§10.2).
- :class:`ICall` - one call on either side (§13-§15) and its media.
- :class:`ISIPTransportFactory` - how a user agent listens and reaches its
  peers (§18): one factory per transport, in :mod:`txsipua.ua.transports`.
- :class:`IAudioSource` / :class:`IAudioSink` - where a call's audio comes
  from and goes to, 20 ms frames of 16-bit PCM (defined in
  :mod:`txsipua.media.audio`, re-exported here).
"""

from __future__ import annotations

from zope.interface import Attribute, Interface

from txsipua.media.audio import IAudioSink, IAudioSource

__all__ = ["IAudioSink", "IAudioSource", "ICall", "IRegistration", "ISIPTransportFactory", "IUserAgent"]


class IUserAgent(Interface):
    """A SIP user agent: both a UAC and a UAS (RFC 3261 §8)."""

    reactor = Attribute("The injected reactor (IReactorTime and the transport's IReactor*).")
    config = Attribute("The :class:`~txsipua.ua.config.Configuration` in force.")
    account = Attribute("The :class:`~txsipua.ua.account.Account`, or None for a UA that only answers.")
    calls = Attribute("The set of live :class:`ICall` providers.")
    on_incoming_call = Attribute("Callable taking an IncomingCall, or None.")
    on_request = Attribute("Callable ``(request, respond)`` for out-of-call requests, or None.")
    auto_answer = Attribute("Answer incoming calls when ``on_incoming_call`` is None.")
    local_address = Attribute("Our ``(host, port)`` once started.")

    def start():  # type: ignore[misc]
        """Listen; a Deferred firing with the bound ``(host, port)``."""

    def stop(grace=None):
        """Hang up live calls (waiting ``grace`` seconds at most), then close; a Deferred."""

    def registration(expires=3600):
        """A new :class:`IRegistration` for the account, not yet started."""

    def register(expires=3600):
        """One REGISTER without refresh; a Deferred firing with the RegistrationResult."""

    def call(target):
        """Call ``target``; a Deferred firing with the answered :class:`ICall` (keyword ``offer=False``: delayed offer)."""

    def place_call(target):
        """Start a call and return its :class:`ICall` at once."""

    def options(target):
        """Send OPTIONS (§11); a Deferred firing with the final response."""

    def message(target, text, content_type="text/plain"):
        """Send a MESSAGE (RFC 3428); a Deferred firing with the final response."""


class IRegistration(Interface):
    """A registration kept alive: register, refresh before expiry, unregister (RFC 3261 §10.2)."""

    state = Attribute("The :class:`~txsipua.ua.registration.RegistrationState`.")
    registered = Attribute("True while our binding is held (derived from ``state``).")
    expires = Attribute("The expiry asked for, seconds.")
    result = Attribute("The last RegistrationResult, or None.")
    next_attempt = Attribute("When the next REGISTER is due (seconds, absolute), or None.")
    on_refresh_failed = Attribute("Callable taking the error when a refresh fails, or None.")
    on_state_change = Attribute("Callable taking a RegistrationStateChanged at every change of state, or None.")

    def start():  # type: ignore[misc]
        """Register and keep refreshing; a Deferred firing with the first result."""

    def flow_failed(reason="flow failed"):
        """The flow to the registrar died: register again on a new one (RFC 5626 §4.4.1)."""

    def stop():  # type: ignore[misc]
        """Stop refreshing and unregister (Expires: 0); a Deferred."""

    def abandon():  # type: ignore[misc]
        """Stop refreshing and leave the binding to run out at the registrar."""


class ICall(Interface):
    """One call, on either side, with its media (RFC 3261 §13-§15, RFC 3264)."""

    state = Attribute("The core session state.")
    call_id = Attribute("The Call-ID.")
    media = Attribute("The RTP stream, or None.")
    media_params = Attribute("The negotiated MediaParams, or None.")
    audio = Attribute("The :class:`~txsipua.ua.audio.CallAudio` (prompts, frames, digits), or None without media.")
    call_media = Attribute("The :class:`~txsipua.ua.media.CallMedia` (SDP offer/answer and the RTP stream; "
                           "``play()``, ``record()``), or None with ``Configuration(media=False)``.")
    answered = Attribute("Caller (UAC): Deferred firing with the call once answered (2xx, our ACK sent); "
                         "failing with CallFailed..., or MediaNegotiationFailed when the 2xx's SDP cannot be used. "
                         "Cancelling it hangs up (CANCEL before the 2xx, BYE after, RFC 3261 §9.1, §15). "
                         "The callee's (UAS) never fires: it waits on ``confirmed``.")
    confirmed = Attribute("Deferred firing with the call once the dialog is confirmed: as caller (UAC) once the 2xx "
                          "arrived and our ACK was sent (§13.2.2.4); as callee (UAS) once the caller's ACK arrived "
                          "(§13.3.1.4), failing with MediaNegotiationFailed when that ACK's answer cannot be used. "
                          "Cancelling it hangs up.")
    ended = Attribute('Deferred firing with the end reason ("bye", "hangup", "cancelled", "media", "media-timeout"...).')
    media_error = Attribute("The MediaNegotiationFailed that made us hang up, or None.")
    on_progress = Attribute("Callable taking each provisional response to our INVITE (caller), or None.")
    bye_error = Attribute("Why our BYE was not confirmed, or None.")
    held_locally = Attribute("True while we hold the peer (RFC 3264 §8.4).")
    held_remotely = Attribute("True while the peer holds us.")
    on_hold_change = Attribute("Callable (held_locally, held_remotely) told of each change, or None.")

    def hangup():  # type: ignore[misc]
        """End the call as its state requires (CANCEL or BYE); a Deferred firing with the reason."""

    def hold():  # type: ignore[misc]
        """Re-INVITE with a sendonly offer; a Deferred firing with the 2xx (a 491 is retried after
        the §14.1 back-off), failing with ReinviteFailed on a final non-2xx."""

    def resume():  # type: ignore[misc]
        """Re-INVITE with a sendrecv offer; as :meth:`hold`."""

    def change_codecs(codecs):
        """Re-INVITE offering only ``codecs``; as :meth:`hold`."""

    def send_dtmf(digits):
        """Send RFC 4733 events; a Deferred."""

    def request(method, body=b"", content_type=None, headers=()):
        """Send an in-dialog request; a Deferred firing with the final response."""

    def update(direction="sendrecv"):
        """Send an UPDATE (RFC 3311) in the early or confirmed dialog, with a new offer unless
        ``direction`` is None (a session refresh); a Deferred firing with its final response."""

    on_dtmf = Attribute("Callable taking each DTMF digit received in an INFO (one call per digit), or None.")
    transfer_in_progress = Attribute("The Transfer we started and that is not done yet, or None.")

    def transfer(target):
        """REFER the peer to ``target`` (RFC 3515); a Transfer.  Keywords: ``replaces`` (the call it
        replaces: attended), ``hangup_on_success`` (default True)."""

    def attended_transfer(other):
        """REFER the peer to ``other``'s peer with the Replaces of ``other``'s dialog (RFC 3891); a
        Transfer.  Keyword: ``hangup_on_success`` (default True)."""


class ISIPTransportFactory(Interface):
    """Builds the driver for one transport and listens on it (RFC 3261 §18), like a Twisted endpoint."""

    name = Attribute('The transport token of Via and ``transport=``: "UDP", "TCP" or "TLS".')
    reliable = Attribute("True for stream transports (no retransmissions, §17.1.1.1).")
    host = Attribute("The host to bind.")
    port = Attribute("The port to bind, 0 for any.")

    def driver(core, on_event, trace):
        """A :class:`~txsipua.net.driver.CoreDriver` moving the core's messages over this transport."""

    def listen(driver, socket_buffer=None):
        """Start listening; returns a Listening (address and ``close()``)."""
