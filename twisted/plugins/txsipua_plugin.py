"""The ``twist txsipua`` plugin: txsipua as a long-lived Twisted service.

``twist txsipua answer ...`` and ``twist txsipua register ...`` run
:class:`txsipua.cli.service.UserAgentService` with the options of the
``txsipua`` command of the same name; see :mod:`txsipua.cli.service`.
This file is a plugin of Twisted's plugin system (found in any
``twisted/plugins`` directory on ``sys.path``), so it has no ``__init__.py``
beside it and imports txsipua only when the service is made.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import IServiceMaker
from twisted.plugin import IPlugin
from zope.interface import implementer


class _LazyOptions:
    """Builds :class:`txsipua.cli.service.Options` when ``twist`` asks for it."""

    def __call__(self) -> Any:
        from txsipua.cli.service import Options

        return Options()


@implementer(IServiceMaker, IPlugin)
class TxsipuaServiceMaker:
    """Makes the txsipua service: a registered account and an answering or scripted bot."""

    tapname = "txsipua"
    description = ("A SIP user agent as a service: answer calls (registrar, scripted bot) or keep an "
                   "account registered; hangs up and unregisters on stop.")
    options = _LazyOptions()

    def makeService(self, options: Any) -> Any:  # noqa: N802 - Twisted's name
        """The :class:`~txsipua.cli.service.UserAgentService` of the parsed options."""
        from txsipua.cli.service import make_service

        return make_service(options)


serviceMaker = TxsipuaServiceMaker()
