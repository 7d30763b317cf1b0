"""Fixtures for the loopback integration tests (helpers are in :mod:`loopback`)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import pytest_twisted
from loopback import DOMAIN, FAST, REALM, USERS, Proxy, Wire, within
from twisted.internet import defer

from txsipua.net.driver import SIPDatagramProtocol
from txsipua.server.proxy import ProxyRegistrar
from txsipua.ua.account import Account
from txsipua.ua.config import Configuration
from txsipua.ua.transports import UDPTransport
from txsipua.ua.useragent import UserAgent


@pytest.fixture
def reactor() -> Any:
    """The global reactor pytest-twisted runs."""
    from twisted.internet import reactor as r

    return r


@pytest.fixture
def proxy(reactor: Any) -> Iterator[Proxy]:
    """The test registrar/proxy for example.com (realm voip.example.net) on 127.0.0.1:0."""
    core = ProxyRegistrar(
        address=("127.0.0.1", 0), domain=DOMAIN, realm=REALM, users=USERS,
        secret=secrets.token_bytes(32), min_expires=1,
    )
    wire = Wire()
    protocol = SIPDatagramProtocol(reactor, core, lambda e: None, wire.trace)  # type: ignore[arg-type]
    port = reactor.listenUDP(0, protocol, interface="127.0.0.1")
    core.address = ("127.0.0.1", port.getHost().port)
    yield Proxy(core, protocol, port, wire)
    pytest_twisted.blockon(defer.maybeDeferred(port.stopListening))


@pytest.fixture
def make_ua(reactor: Any) -> Iterator[Callable[..., defer.Deferred[UserAgent]]]:
    """A factory of started UserAgents on 127.0.0.1:0 with :data:`FAST` timers.

    ``ua = yield make_ua(account)``; ``ua.wire`` is its :class:`Wire`.  Every
    UA is stopped at teardown.
    """
    started: list[UserAgent] = []

    @defer.inlineCallbacks
    def make(acct: Account | None, **kw: Any) -> Any:
        wire = Wire()
        config = Configuration(timers=kw.pop("timers", FAST), media=kw.pop("media", True),
                               **{k: kw.pop(k) for k in ("codecs", "media_timeout", "idle_silence", "rtcp_mux") if k in kw})
        ua = UserAgent(reactor, config, acct, UDPTransport(reactor, "127.0.0.1", 0), trace=wire.trace, **kw)
        ua.wire = wire  # type: ignore[attr-defined]
        yield ua.start()
        started.append(ua)
        return ua

    yield make
    for ua in started:
        pytest_twisted.blockon(within(reactor, ua.stop(), 3.0))
