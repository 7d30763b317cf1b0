"""Sphinx configuration of the txsipua documentation (``sphinx-build -W docs docs/_build``).

The state-machine pages and the command-line reference are generated from the
code (``_ext/txsipua_sphinx.py``); every code sample is a file of ``samples/``
included with ``literalinclude`` and run by ``tests/test_docs.py``.  The older
Markdown notes (architecture.md, security.md...) stay beside these pages.
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "_ext"))
sys.path.insert(0, os.path.dirname(HERE))

import txsipua  # noqa: E402

project = "txsipua"
author = "the txsipua authors"
copyright = "the txsipua authors"  # noqa: A001 - Sphinx's name
release = version = txsipua.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "txsipua_sphinx",
]
source_suffix = {".rst": "restructuredtext"}
exclude_patterns = ["_build", "*.md", "samples"]
root_doc = "index"
html_theme = "furo"
html_title = f"txsipua {release}"
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True  # "Attributes:" as fields: autodoc documents the attributes themselves
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}
suppress_warnings = ["ref.python"]  # re-exported names are documented once, under txsipua
