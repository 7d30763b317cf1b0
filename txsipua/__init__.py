"""txsipua: a Twisted-based SIP user agent.

The package is layered (see ``docs/architecture.md``):

- :mod:`txsipua.sip` - the wire format (RFC 3261 §7, §20, §25), pure.
- :mod:`txsipua.auth` - digest authentication (RFC 3261 §22, RFC 7616, RFC 8760), pure.
- :mod:`txsipua.core` - transactions, dialogs and UA cores, pure and told the time.
- :mod:`txsipua.media` - SDP, RTP, G.711 and RFC 4733 events, pure.
- :mod:`txsipua.net` - Twisted adapters that move bytes and arm timers.
- :mod:`txsipua.ua` - the user API: ``UserAgent``, ``Account``, ``Registration``, ``Call``.
"""

__version__ = "0.1.0"
