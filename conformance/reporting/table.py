"""The per-requirement table printed at the end of a run, rendered from ``summary.json`` with ``rich``.

It fits the terminal: the statement column wraps at word boundaries (never cut mid-word); colour only
when the output is a terminal (``color=True``), plain text otherwise (CI logs, pipes).
"""

from __future__ import annotations

import io
import shutil
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from conformance import waivers

MARKS = {"passed": "PASS", "failed": "FAIL", "warning": "WARN", "flaky": "FLAKY", "waived": "WAIVED",
         "skipped": "SKIP"}
STYLES = {"passed": "green", "failed": "bold red", "warning": "yellow", "flaky": "magenta", "waived": "cyan",
          "skipped": "dim"}


def terminal_width(default: int = 100) -> int:
    return max(60, shutil.get_terminal_size((default, 24)).columns)


def _detail(row: dict) -> str | None:
    if row["status"] in ("failed", "warning", "flaky"):
        examples = row.get("failing_examples") or []
        if examples:
            message = (examples[0].get("message") or examples[0].get("status") or "").splitlines()
            return f"↳ [{examples[0].get('check')}] {message[0] if message else ''}"
    if row.get("reason"):
        return f"↳ {row['reason']}"
    return None


def requirement_table(summary: dict[str, Any]) -> Table:
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold", expand=False)
    table.add_column("requirement", no_wrap=True)
    table.add_column("level", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("judged", justify="right", no_wrap=True)
    table.add_column("statement", overflow="fold", ratio=1)
    for row in summary["requirements"]:
        statement = Text(row["statement"])
        detail = _detail(row)
        if detail:
            statement.append("\n" + detail, style="dim" if row["status"] == "skipped" else STYLES[row["status"]])
        table.add_row(row["id"], row["level"], Text(MARKS[row["status"]], style=STYLES[row["status"]]),
                      str(row.get("evaluations", 0)), statement)
    return table


def footer(summary: dict[str, Any]) -> list[str]:
    lines = [""]
    counts = summary["counts"]
    for level in ("MUST", "SHOULD"):
        c = counts[level]
        extra = "".join(f", {c[s]} {s}" for s in ("flaky", "waived") if c.get(s))
        lines.append(f"{level:<6}: {c['passed']} passed, {c['failed']} failed, {c['warning']} warnings, "
                     f"{c['skipped']} skipped{extra}")
    for operation, stats in summary.get("latency", {}).items():
        if stats.get("count"):
            lines.append(f"latency {operation}: n={stats['count']} p50={stats['p50_ms']} ms "
                         f"p95={stats['p95_ms']} ms p99={stats.get('p99_ms')} ms max={stats['max_ms']} ms")
    money = summary.get("money", {})
    if money:
        lines.append(
            f"money: {money.get('executes_sent', 0)} executes sent, {money.get('applied', 0)} applied, "
            f"{money.get('reversed', 0)} answered reversed, {money.get('compensated_by_suite', 0)} compensated by the "
            f"suite, {len(money.get('outstanding', []))} outstanding"
        )
        balances = money.get("balances") or {}
        for account in balances.get("accounts", []):
            if account.get("meaning") != "unchanged":  # the wallet's books say what the answers did not
                lines.append(f"money: {account.get('account')} {account.get('before')} -> {account.get('after')} "
                             f"({account.get('difference')}): {account.get('meaning')}")
    for error in summary.get("suite_errors", []):
        lines.append(f"suite: {error}")
    lines += waivers.lines(summary.get("waivers"))  # nightly: applied, expired, no longer needed
    lines.append(
        f"verdict: {summary['verdict'].upper()} (exit {summary['exit_code']}) in {summary['run']['duration_s']} s"
    )
    return lines


def render(summary: dict[str, Any], width: int | None = None, color: bool = False) -> list[str]:
    """The table and its footer as lines of at most ``width`` characters (ANSI colour only with ``color``)."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=width or terminal_width(), force_terminal=color,
                      color_system="standard" if color else None, no_color=not color, highlight=False,
                      emoji=False, soft_wrap=False)
    console.print(requirement_table(summary))
    lines = [""] + [line.rstrip() for line in buffer.getvalue().splitlines()]
    verdict = footer(summary)
    if color:
        style = "bold red" if summary["verdict"] == "failed" else "bold green" if summary["verdict"] == "passed" \
            else "bold yellow"
        buffer = io.StringIO()
        Console(file=buffer, force_terminal=True, color_system="standard", width=width or terminal_width(),
                highlight=False).print(Text(verdict[-1], style=style))
        verdict[-1] = buffer.getvalue().rstrip("\n")
    return lines + verdict
