"""txsipua.ua: the user API, on Twisted (the names are re-exported by :mod:`txsipua`).

- :mod:`~txsipua.ua.useragent` - :class:`~txsipua.ua.useragent.UserAgent` (setup, addresses, location);
  :mod:`~txsipua.ua.outgoing` its out-of-dialog requests, :mod:`~txsipua.ua.dispatch` its core events
- :mod:`~txsipua.ua.config` - :class:`~txsipua.ua.config.Configuration`
- :mod:`~txsipua.ua.transports` - ``UDPTransport``, ``TCPTransport``, ``TLSTransport``
- :mod:`~txsipua.ua.registration` - :class:`~txsipua.ua.registration.Registration`; its table in
  :mod:`~txsipua.ua.registration_table`
- :mod:`~txsipua.ua.call` - ``Call`` (its offer/answer in :mod:`~txsipua.ua.call_offers`);
  ``IncomingCall``, ``Responder`` (:mod:`~txsipua.ua.incoming`)
- :mod:`~txsipua.ua.media` - :class:`~txsipua.ua.media.CallMedia`, audio sources and sinks
- :mod:`~txsipua.ua.interfaces` - the zope.interface seams
- :mod:`~txsipua.ua.account`, :mod:`~txsipua.ua.cred` - accounts and twisted.cred checking
"""
