"""Build script: everything is in setup.cfg and pyproject.toml but the optional C accelerator.

``txsipua.sip._speedups`` (the header-section split of the SIP parser) is built
when a C compiler and the Python headers are present; without them the
install still succeeds and the pure-Python parser, the reference, is used.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "txsipua.sip._speedups",
            ["txsipua/sip/_speedups.c"],
            depends=["txsipua/sip/_speedups_via.h"],  # included by _speedups.c
            optional=True,  # a failed build warns and installs the pure code only
        )
    ]
)
