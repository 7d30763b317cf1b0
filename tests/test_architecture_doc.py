"""docs/architecture.md names every module of the package, and only modules that exist."""

from __future__ import annotations

import re
from pathlib import Path

import txsipua

ROOT = Path(txsipua.__file__).parent
DOC = (ROOT.parent / "docs" / "architecture.md").read_text()


def package_rows() -> dict[str, str]:
    rows = {}
    for line in DOC.splitlines():
        m = re.match(r"\| `txsipua/(\w+)/` \| (.*) \|$", line)
        if m:
            rows[m.group(1)] = m.group(2)
    return rows


def test_every_package_has_a_row() -> None:
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    assert set(package_rows()) == packages


def test_each_row_names_exactly_the_modules_of_its_package() -> None:
    for package, text in package_rows().items():
        named = set(re.findall(r"`(\w+\.(?:py|c))`", text)) - {"__init__.py"}
        present = {p.name for p in (ROOT / package).iterdir() if p.suffix in (".py", ".c")} - {"__init__.py"}
        assert named == present, package


def test_every_path_the_doc_names_exists() -> None:
    for path in set(re.findall(r"`((?:\w+/)+\w+\.(?:py|c|md))`", DOC)):
        candidates = [ROOT / path, ROOT.parent / path, ROOT.parent / "docs" / path]
        assert any(c.exists() for c in candidates), path
