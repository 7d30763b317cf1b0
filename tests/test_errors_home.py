"""Every exception class of the package lives in ``txsipua/errors.py`` and is a ``SIPError``."""

from __future__ import annotations

import ast
import pathlib

import txsipua
from txsipua import errors

PACKAGE = pathlib.Path(txsipua.__file__).parent
# a private control-flow signal of the dialog-info parser
ALLOWED_ELSEWHERE = {("sip/dialog_info.py", "_Refused")}


def _exception_classes_outside_errors() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel == "errors.py" or rel.startswith("testing/"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ClassDef):
                continue
            bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
            if (any(b.endswith(("Error", "Exception", "Unavailable")) for b in bases)
                    and (rel, node.name) not in ALLOWED_ELSEWHERE):
                found.append(f"{rel}:{node.name}")
    return found


def test_exception_classes_live_in_errors() -> None:
    """No module defines its own exception class: one hierarchy, one file (DESIGN §3)."""
    assert _exception_classes_outside_errors() == []


def test_every_error_is_a_sip_error_and_exported() -> None:
    """``except txsipua.SIPError`` catches every error the package raises (the CLI's UsageError apart)."""
    for name in dir(errors):
        obj = getattr(errors, name)
        if isinstance(obj, type) and issubclass(obj, BaseException) and obj.__module__ == errors.__name__:
            if name == "UsageError":
                continue
            assert issubclass(obj, errors.SIPError), name
    for name in ("MediaUnavailable", "AudioError", "CodecUnavailable", "SrtpError", "SrtpUnavailable",
                 "OfferAnswerError", "NoCommonCodec", "WavError"):
        assert getattr(txsipua, name) is getattr(errors, name)
