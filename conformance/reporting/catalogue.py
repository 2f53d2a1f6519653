"""``conformance requirements``: the requirement catalogue as a table with headers, or as JSON, filtered."""

from __future__ import annotations

import io
import json
from typing import Any

from rich.console import Console
from rich.table import Table

from conformance import contract
from conformance.reporting.table import terminal_width


def select(prefix: str | None = None, level: str | None = None, operation: str | None = None) -> list[dict[str, Any]]:
    rows = []
    for requirement in contract.load().requirements.values():
        if prefix and not requirement.id.upper().startswith(prefix.upper()):
            continue
        if level and requirement.level != level.upper():
            continue
        if operation and operation not in requirement.operations:
            continue
        rows.append({"id": requirement.id, "level": requirement.level, "basis": requirement.basis,
                     "operations": list(requirement.operations), "source": list(requirement.source),
                     "money": requirement.money, "statement": requirement.statement, "clause": requirement.clause})
    return rows


def render(rows: list[dict[str, Any]], fmt: str = "table", width: int | None = None) -> list[str]:
    if fmt == "json":
        return [json.dumps(rows, indent=2, ensure_ascii=False)]
    table = Table(box=None, pad_edge=False, header_style="bold")
    for name, wrap in (("id", False), ("level", False), ("operations", True), ("reference", False),
                       ("statement", True)):
        table.add_column(name, no_wrap=not wrap, overflow="fold", ratio=3 if name == "statement" else None)
    for row in rows:
        table.add_row(row["id"], row["level"], ", ".join(row["operations"]) or "all",
                      "§" + ", §".join(row["source"]) if row["source"] else "", row["statement"])
    buffer = io.StringIO()
    Console(file=buffer, width=width or terminal_width(), no_color=True, color_system=None, highlight=False,
            emoji=False).print(table)
    return [line.rstrip() for line in buffer.getvalue().splitlines()] + [f"{len(rows)} requirement(s)"]
