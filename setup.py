"""Build script: everything is in setup.cfg and pyproject.toml but the optional C accelerator.

``txsipua.sip._speedups`` (the header-section split of the SIP parser) is built
when a C compiler and the Python headers are present; without them the
install still succeeds and the pure-Python parser, the reference, is used.
"""

import os

from setuptools import Extension, find_packages, setup

# The accelerator is built for the stable ABI (Py_LIMITED_API 3.11: one abi3 wheel serves every
# CPython from 3.11 on); TXSIPUA_FULL_API=1 builds it against the full API of this interpreter
# instead (str storage read and written directly; see docs/performance.md).
_abi: dict = ({} if os.environ.get("TXSIPUA_FULL_API") == "1" else
              {"py_limited_api": True, "define_macros": [("Py_LIMITED_API", "0x030B0000")]})

setup(
    # twisted/plugins/txsipua_plugin.py is a drop-in for Twisted's plugin system (`twist txsipua`):
    # twisted.plugins has no __init__.py of ours, so it is listed by name.  Twisted finds plugins
    # in the twisted/plugins directories of sys.path entries, so an editable install must put this
    # tree's root on sys.path: package_dir {"": "."} makes setuptools' editable install a plain
    # .pth of the root (its import-hook mode would hide twisted/plugins from Twisted)
    package_dir={"": "."},
    packages=[*find_packages(include=["txsipua", "txsipua.*"]), "twisted.plugins"],
    ext_modules=[
        Extension(
            "txsipua.sip._speedups",
            ["txsipua/sip/_speedups.c"],
            depends=["txsipua/sip/_speedups_via.h"],  # included by _speedups.c
            optional=True,  # a failed build warns and installs the pure code only
            **_abi,
        )
    ],
    options={"bdist_wheel": {"py_limited_api": "cp311"}} if _abi else {},
)
