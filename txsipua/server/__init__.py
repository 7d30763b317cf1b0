"""SIP servers built on the txsipua layers (RFC 3261 §10.3 registrar, §16 stateless proxy).

- :mod:`txsipua.server.bindings`: the binding store (location service), capped, purged.
- :mod:`txsipua.server.registrar`: REGISTER processing (§10.3), shared by the demo's
  registrar/proxy and the registrar of ``txsipua answer`` (:mod:`txsipua.ua.registrar`).
- :mod:`txsipua.server.proxy`: a registrar and stateless proxy for one domain, sans-IO.
- :mod:`txsipua.server.events`: what the proxy reports (for ladders and logs).
- :mod:`txsipua.server.listen`: the proxy on a UDP port (Twisted).
"""
