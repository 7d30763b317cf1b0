"""txsipua: a Twisted-based SIP user agent.

The package is layered (see ``docs/architecture.md``):

- :mod:`txsipua.sip` - the wire format (RFC 3261 §7, §20, §25), pure.
- :mod:`txsipua.auth` - digest authentication (RFC 3261 §22, RFC 7616, RFC 8760), pure.
- :mod:`txsipua.core` - transactions, dialogs and UA cores, pure and told the time.
- :mod:`txsipua.media` - SDP, RTP, G.711 and RFC 4733 events, pure.
- :mod:`txsipua.net` - Twisted adapters that move bytes and arm timers.
- :mod:`txsipua.ua` - the user API: ``UserAgent``, ``Account``, ``Registration``, ``Call``.

The user API is re-exported here, lazily (PEP 562): ``txsipua.UserAgent`` imports
:mod:`txsipua.ua` (and so Twisted) on first use, while ``import txsipua.sip``
and the other pure packages never import Twisted::

    import txsipua
    ua = txsipua.UserAgent(reactor, txsipua.Configuration(), txsipua.Account("alice", "example.com"),
                           txsipua.UDPTransport(reactor, "192.0.2.10", 5060))
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    # the user API
    "UserAgent": "txsipua.ua.useragent",
    "Configuration": "txsipua.ua.config",
    "Account": "txsipua.ua.account",
    "AccountError": "txsipua.ua.account",
    "Call": "txsipua.ua.call",
    "IncomingCall": "txsipua.ua.call",
    "Responder": "txsipua.ua.call",
    "Registration": "txsipua.ua.registration",
    "RegistrationState": "txsipua.ua.registration",
    "RegistrationResult": "txsipua.ua.registration",
    "Binding": "txsipua.ua.registration",
    "CallMedia": "txsipua.ua.media",
    "PCMSource": "txsipua.ua.media",
    "WavSource": "txsipua.ua.media",
    "WavSink": "txsipua.ua.media",
    "ToneSource": "txsipua.media.tones",
    "SilenceSource": "txsipua.media.tones",
    "MemorySink": "txsipua.media.audio",
    "CallAudio": "txsipua.ua.audio",
    "AudioDevice": "txsipua.ua.device",
    "UDPTransport": "txsipua.ua.transports",
    "TCPTransport": "txsipua.ua.transports",
    "TLSTransport": "txsipua.ua.transports",
    "transport_for": "txsipua.ua.transports",
    "WSTransport": "txsipua.ua.wstransports",
    "WSSTransport": "txsipua.ua.wstransports",
    "AccountLine": "txsipua.ua.accounts",
    "IUserAgent": "txsipua.ua.interfaces",
    "ICall": "txsipua.ua.interfaces",
    "IRegistration": "txsipua.ua.interfaces",
    "ISIPTransportFactory": "txsipua.ua.interfaces",
    "IAudioSource": "txsipua.ua.interfaces",
    "IAudioSink": "txsipua.ua.interfaces",
    "Timers": "txsipua.core.transaction",
    # errors
    "SIPError": "txsipua.errors",
    "ParseError": "txsipua.errors",
    "LocalProtocolError": "txsipua.errors",
    "RemoteProtocolError": "txsipua.errors",
    "TransactionTimeout": "txsipua.errors",
    "TransportError": "txsipua.errors",
    "ResolutionError": "txsipua.errors",
    "AuthenticationError": "txsipua.errors",
    "DigestAuthenticationError": "txsipua.errors",
    "SIPStatusError": "txsipua.errors",
    "RegistrationFailed": "txsipua.errors",
    "CallFailed": "txsipua.errors",
    "CallNotAnswered": "txsipua.errors",
    "ReinviteFailed": "txsipua.errors",
    "TransferFailed": "txsipua.errors",
    "SubscriptionFailed": "txsipua.errors",
    "MediaUnavailable": "txsipua.errors",
    "AudioError": "txsipua.errors",
    "CodecUnavailable": "txsipua.errors",
    "SrtpError": "txsipua.errors",
    "SrtpUnavailable": "txsipua.errors",
    "OfferAnswerError": "txsipua.errors",
    "NoCommonCodec": "txsipua.errors",
    "WavError": "txsipua.errors",
    "MediaNegotiationFailed": "txsipua.errors",
    "Transfer": "txsipua.ua.transfer",
    "ReferRequest": "txsipua.ua.transfer",
    "Subscription": "txsipua.ua.subscription",
}

__all__ = [
    "__version__",
    "UserAgent",
    "Configuration",
    "Account",
    "AccountError",
    "Call",
    "IncomingCall",
    "Responder",
    "Registration",
    "RegistrationState",
    "RegistrationResult",
    "Binding",
    "CallMedia",
    "PCMSource",
    "WavSource",
    "WavSink",
    "ToneSource",
    "SilenceSource",
    "MemorySink",
    "CallAudio",
    "AudioDevice",
    "UDPTransport",
    "TCPTransport",
    "TLSTransport",
    "transport_for",
    "WSTransport",
    "WSSTransport",
    "AccountLine",
    "IUserAgent",
    "ICall",
    "IRegistration",
    "ISIPTransportFactory",
    "IAudioSource",
    "IAudioSink",
    "Timers",
    "SIPError",
    "ParseError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "TransactionTimeout",
    "TransportError",
    "ResolutionError",
    "AuthenticationError",
    "DigestAuthenticationError",
    "SIPStatusError",
    "RegistrationFailed",
    "CallFailed",
    "CallNotAnswered",
    "ReinviteFailed",
    "TransferFailed",
    "SubscriptionFailed",
    "MediaUnavailable",
    "AudioError",
    "CodecUnavailable",
    "SrtpError",
    "SrtpUnavailable",
    "OfferAnswerError",
    "NoCommonCodec",
    "WavError",
    "MediaNegotiationFailed",
    "Transfer",
    "ReferRequest",
    "Subscription",
]


def __getattr__(name: str) -> Any:
    """Import a re-exported name on first use (PEP 562).

    Raises:
        AttributeError: ``name`` is not a public name of the package.
    """
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'txsipua' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    """The public names (``__all__``, re-exported lazily) and the module's dunders, nothing else."""
    return sorted(set(__all__) | {name for name in globals() if name.startswith("__") and name.endswith("__")})


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from txsipua.core.transaction import Timers
    from txsipua.errors import (
        AuthenticationError,
        CallFailed,
        CallNotAnswered,
        DigestAuthenticationError,
        LocalProtocolError,
        MediaNegotiationFailed,
        ParseError,
        RegistrationFailed,
        ReinviteFailed,
        RemoteProtocolError,
        ResolutionError,
        SIPError,
        SIPStatusError,
        SubscriptionFailed,
        TransactionTimeout,
        TransferFailed,
        TransportError,
    )
    from txsipua.media.audio import MemorySink
    from txsipua.media.tones import SilenceSource, ToneSource
    from txsipua.ua.account import Account, AccountError
    from txsipua.ua.accounts import AccountLine
    from txsipua.ua.audio import CallAudio
    from txsipua.ua.call import Call, IncomingCall, Responder
    from txsipua.ua.config import Configuration
    from txsipua.ua.device import AudioDevice
    from txsipua.ua.interfaces import (
        IAudioSink,
        IAudioSource,
        ICall,
        IRegistration,
        ISIPTransportFactory,
        IUserAgent,
    )
    from txsipua.ua.media import CallMedia, PCMSource, WavSink, WavSource
    from txsipua.ua.registration import Binding, Registration, RegistrationResult, RegistrationState
    from txsipua.ua.subscription import Subscription
    from txsipua.ua.transfer import ReferRequest, Transfer
    from txsipua.ua.transports import TCPTransport, TLSTransport, UDPTransport, transport_for
    from txsipua.ua.useragent import UserAgent
    from txsipua.ua.wstransports import WSSTransport, WSTransport
