"""Servers live in txsipua/server, test kit in txsipua/testing (issue 8)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "txsipua"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module if node.level == 0 else "." * node.level + node.module)
    return names


def test_no_module_outside_testing_imports_the_test_kit() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if "testing" in path.relative_to(PACKAGE).parts:
            continue
        for name in _imports(path):
            if name.startswith("txsipua.testing") or name.lstrip(".").startswith("testing"):
                offenders.append(f"{path.relative_to(PACKAGE)}: {name}")
    assert offenders == []


def test_one_registrar_logic() -> None:
    """The demo's proxy and answer's registrar both use server.registrar over server.bindings."""
    proxy = _imports(PACKAGE / "server" / "proxy.py")
    answer = _imports(PACKAGE / "ua" / "registrar.py")
    for imports in (proxy, answer):
        assert "txsipua.server.registrar" in imports and "txsipua.server.bindings" in imports
    assert not (PACKAGE / "testing" / "registrar.py").exists()
    assert not (PACKAGE / "net" / "proxy.py").exists()
