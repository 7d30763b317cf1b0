"""Sphinx directives that draw the documentation from the code, so it cannot drift.

``.. txsipua-machine:: txsipua.core.transaction.ICT_TABLE``
    renders a transition table ``{(State, Input): (Action, Next)}``: the
    transitions drawn state by state (``STATE --INPUT / ACTION--> NEXT``) and
    the full table.
``.. txsipua-cli:: answer``
    renders ``txsipua answer --help`` from the argument parser itself (no
    argument: ``txsipua --help``).
"""

from __future__ import annotations

import importlib
from typing import Any

from docutils import nodes
from docutils.parsers.rst import Directive


def _name(value: Any) -> str:
    return str(getattr(value, "name", value))


def load_table(path: str) -> dict[tuple[Any, Any], tuple[Any, Any]]:
    """The table named by ``module.NAME``."""
    module, _, name = path.rpartition(".")
    return dict(getattr(importlib.import_module(module), name))


def draw(table: dict[tuple[Any, Any], tuple[Any, Any]]) -> str:
    """The transitions grouped by state, in the order of the table."""
    lines: list[str] = []
    current = None
    for (state, event), (action, nxt) in table.items():
        if state != current:
            if current is not None:
                lines.append("")
            lines.append(f"[{_name(state)}]")
            current = state
        act = _name(action)
        label = _name(event) if act in ("NONE", "none") else f"{_name(event)} / {act}"
        target = "(stays)" if nxt == state else f"[{_name(nxt)}]"
        lines.append(f"   --{label}--> {target}")
    return "\n".join(lines)


class MachineDirective(Directive):
    """``.. txsipua-machine:: module.TABLE``"""

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        table = load_table(self.arguments[0])
        out: list[nodes.Node] = [nodes.literal_block(text=draw(table))]
        tgroup = nodes.tgroup(cols=4)
        for _ in range(4):
            tgroup += nodes.colspec(colwidth=1)
        thead = nodes.thead()
        row = nodes.row()
        for title in ("state", "input", "action", "next state"):
            row += nodes.entry("", nodes.paragraph(text=title))
        thead += row
        tgroup += thead
        tbody = nodes.tbody()
        for (state, event), (action, nxt) in table.items():
            row = nodes.row()
            for cell in (state, event, action, nxt):
                row += nodes.entry("", nodes.paragraph(text=_name(cell)))
            tbody += row
        tgroup += tbody
        out.append(nodes.table("", tgroup))
        out.append(nodes.paragraph(text=f"{len(table)} transitions, from {self.arguments[0]}; any other "
                                        "(state, input) pair is ignored and counted."))
        return out


class CLIDirective(Directive):
    """``.. txsipua-cli:: [COMMAND]``"""

    optional_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        import argparse

        from txsipua.cli.main import build_parser

        parser = build_parser()
        if self.arguments:
            subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
            parser = subparsers.choices[self.arguments[0]]
        return [nodes.literal_block(text=parser.format_help())]


class APIDirective(Directive):
    """``.. txsipua-api::`` an autodoc entry for every name of ``txsipua.__all__``."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        import inspect

        from docutils.statemachine import StringList

        import txsipua

        lines: list[str] = []
        for name in txsipua.__all__:
            if name.startswith("__"):
                continue
            value = getattr(txsipua, name)
            if inspect.isclass(value) and issubclass(value, BaseException):
                lines += [f".. autoexception:: txsipua.{name}", ""]
            elif inspect.isclass(value):
                lines += [f".. autoclass:: txsipua.{name}", ""]
            else:
                lines += [f".. autofunction:: txsipua.{name}", ""]
        node = nodes.section()
        node.document = self.state.document
        self.state.nested_parse(StringList(lines, source="txsipua.__all__"), self.content_offset, node)
        return list(node.children)


def setup(app: Any) -> dict[str, Any]:
    """Register the directives."""
    app.add_directive("txsipua-api", APIDirective)
    app.add_directive("txsipua-machine", MachineDirective)
    app.add_directive("txsipua-cli", CLIDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
