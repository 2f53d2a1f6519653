"""Trends across runs: a requirement-by-run matrix, as a self-contained HTML page and as text.

``conformance trend SUMMARY... | DIR`` reads ``summary.json`` files (or report directories, or a history
directory holding one report directory per run), orders the runs by their start time, and shows each
requirement's status in each run (passed, failed, warning, flaky, waived, skipped) with, for every
requirement failing in the latest run, the first run of its current failing streak. The page has no
scripts, fonts or links to fetch: it opens offline, in a CI artifact viewer or an e-mail.

The matrix renderer (:func:`html_page`, :func:`text_grid`) is shared with :mod:`conformance.fleet`, whose
columns are targets instead of runs.
"""

from __future__ import annotations

import argparse
import html
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance import contract
from conformance.reporting import allure, charts, compare

SUMMARY = "summary.json"
BAD = frozenset({"failed", "warning"})
#: One character per status in the text grid.
MARKS = {"passed": ".", "failed": "F", "warning": "!", "flaky": "~", "waived": "w", "skipped": "-", None: " "}
COLOURS = {"passed": "#1a7f37", "failed": "#cf222e", "warning": "#bf8700", "flaky": "#8250df",
           "waived": "#0969da", "skipped": "#8c959f", None: "#ffffff"}
LABELS = {"passed": "pass", "failed": "FAIL", "warning": "warn", "flaky": "flaky", "waived": "waived",
          "skipped": "skip", None: ""}


class NotUsable(ValueError):
    """A path given to trend or fleet is not a summary, a report dir or a history dir (one line, exit 2)."""


@dataclass(frozen=True)
class Column:
    """One run (trend) or one target (fleet): its header and each requirement's row from summary.json."""

    key: str  # the header shown
    detail: str  # a second header line (date, verdict)
    verdict: str
    path: str
    started_at: str
    target: str
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    latency: dict[str, dict[str, Any]] = field(default_factory=dict)  # summary.json "latency" of the run

    def status(self, rid: str) -> str | None:
        row = self.rows.get(rid)
        return row.get("status") if row else None


# --------------------------------------------------------------------------------------------- loading
def find_summaries(paths: Iterable[str | Path]) -> list[Path]:
    """summary.json files from files, report directories and history directories (searched recursively)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            direct = path / SUMMARY
            nested = [direct] if direct.is_file() else sorted(path.rglob(SUMMARY))
            if not nested:
                raise NotUsable(f"{path} holds no {SUMMARY} (give summary files, report dirs or a history dir)")
            found += nested
        else:
            raise NotUsable(f"{path} does not exist")
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        raise NotUsable("no summary.json given")
    return unique


def load_column(path: Path, key: str | None = None) -> Column:
    try:
        summary = compare.load_previous(path)
    except compare.NotASummary as error:
        raise NotUsable(str(error)) from None
    run = summary.get("run") if isinstance(summary.get("run"), dict) else {}
    target = summary.get("target") if isinstance(summary.get("target"), dict) else {}
    started = str(run.get("started_at") or "")
    verdict = str(summary.get("verdict") or "?")
    return Column(
        key=key or str(run.get("id") or path.parent.name),
        detail=f"{started[:16].replace('T', ' ')} {verdict}".strip(),
        verdict=verdict, path=str(path), started_at=started,
        target=allure.public_url(target.get("base_url")) or "embedded reference wallet",
        rows={row["id"]: row for row in summary["requirements"]},
        latency=summary.get("latency") if isinstance(summary.get("latency"), dict) else {},
    )


def runs(paths: Iterable[str | Path]) -> list[Column]:
    """The runs, oldest first (by start time, then path)."""
    columns = [load_column(p) for p in find_summaries(paths)]
    return sorted(columns, key=lambda c: (c.started_at, c.path))


# ---------------------------------------------------------------------------------------------- matrix
def requirement_ids(columns: Sequence[Column]) -> list[str]:
    """Catalogue order, then ids only older runs know (a catalogue change)."""
    known = list(contract.load().requirements)
    seen = {rid for c in columns for rid in c.rows}
    return [rid for rid in known if rid in seen] + sorted(seen - set(known))


def failing_since(columns: Sequence[Column]) -> dict[str, int]:
    """For each requirement failing (or warning) in the last run: the index of the first run of that streak."""
    if not columns:
        return {}
    since: dict[str, int] = {}
    for rid in requirement_ids(columns):
        if columns[-1].status(rid) not in BAD:
            continue
        first = len(columns) - 1
        while first > 0 and columns[first - 1].status(rid) in BAD:
            first -= 1
        since[rid] = first
    return since


def _describe(row: dict[str, Any] | None) -> str:
    """A cell's tooltip: status, reason, waiver owner, attempts."""
    if not row:
        return "not in this run's catalogue"
    parts = [row.get("status", "?")]
    if row.get("reason"):
        parts.append(str(row["reason"]))
    waiver = row.get("waiver")
    if isinstance(waiver, dict):
        parts.append(f"waiver ({waiver.get('state', '')}): owner {waiver.get('owner')}, {waiver.get('ticket')}, "
                     f"expires {waiver.get('expires')}")
    for origin, attempts in (row.get("attempts") or {}).items():
        parts.append(f"attempts {'/'.join(attempts)} of {origin}")
    examples = row.get("failing_examples") or []
    if examples and examples[0].get("message"):
        parts.append(str(examples[0]["message"]).splitlines()[0][:200])
    return " | ".join(parts)


def text_grid(title: str, columns: Sequence[Column], extra: Callable[[str], str] | None = None) -> list[str]:
    """The matrix as text: one line per requirement, one character per column."""
    ids = requirement_ids(columns)
    out = [title, "legend: " + "  ".join(f"{MARKS[s]} {s}" for s in MARKS if s), ""]
    for index, column in enumerate(columns, 1):
        out.append(f"  [{index}] {column.key}  {column.detail}  {column.target}")
    out.append("")
    width = len(columns)
    header = "".join(str(i % 10) for i in range(1, width + 1))
    out.append(f"{'requirement':<9} {'level':<6} {header}")
    for rid in ids:
        level = next((c.rows[rid].get("level") for c in columns if rid in c.rows), "")
        cells = "".join(MARKS.get(c.status(rid), "?") for c in columns)
        tail = extra(rid) if extra else ""
        out.append(f"{rid:<9} {level:<6} {cells}{('  ' + tail) if tail else ''}")
    return out


_STYLE = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1f2328;background:#fff}
h1{font-size:20px;margin:0 0 4px} p.sub{margin:0 0 16px;color:#57606a}
table{border-collapse:collapse} th,td{border:1px solid #d0d7de;padding:3px 6px;vertical-align:middle}
thead th{position:sticky;top:0;background:#f6f8fa;font-weight:600;font-size:12px;white-space:nowrap}
thead th.col{white-space:normal;max-width:130px;min-width:70px} th.col .target{font-weight:400;font-size:10px;
word-break:break-all;color:#57606a}
td.id{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;white-space:nowrap} td.level{font-size:12px}
td.statement{max-width:340px;font-size:12px;color:#424a53;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
td.cell{text-align:center;font-size:11px;font-weight:600;color:#fff;min-width:46px}
td.note{font-size:12px;white-space:nowrap}
.legend span{display:inline-block;padding:1px 8px;margin-right:6px;border-radius:3px;color:#fff;font-size:12px}
.verdict-passed{color:#1a7f37}.verdict-failed{color:#cf222e}.verdict-incomplete{color:#bf8700}
ul.failures{margin:0 0 16px} code{font-family:ui-monospace,monospace}
"""


def html_page(title: str, subtitle: str, columns: Sequence[Column], *, note_header: str = "",
              note: Callable[[str], str] | None = None, preface: Sequence[str] = ()) -> str:
    """The matrix as one self-contained HTML page (inline CSS, no scripts, nothing fetched)."""
    esc = html.escape
    ids = requirement_ids(columns)
    legend = "".join(f'<span style="background:{COLOURS[s]}">{esc(s)}</span>' for s in COLOURS if s)
    head = "".join(
        f'<th class="col" title="{esc(c.path)}">{esc(c.key)}<br><span class="verdict-{esc(c.verdict)}">'
        f'{esc(c.detail)}</span><br><span class="target">{esc(c.target)}</span></th>'
        for c in columns
    )
    body = []
    for rid in ids:
        sample = next(c.rows[rid] for c in columns if rid in c.rows)
        cells = []
        for column in columns:
            row = column.rows.get(rid)
            status = row.get("status") if row else None
            label = LABELS.get(status, str(status))
            if status == "waived" and isinstance(row.get("waiver"), dict):
                label = f"waived<br><span style=\"font-weight:400\">{esc(str(row['waiver'].get('owner')))}</span>"
            cells.append(f'<td class="cell" style="background:{COLOURS.get(status, "#6e7781")}" '
                         f'title="{esc(_describe(row))}">{label}</td>')
        extra = f'<td class="note">{esc(note(rid))}</td>' if note else ""
        body.append(
            f'<tr><td class="id">{esc(rid)}</td><td class="level">{esc(str(sample.get("level", "")))}</td>'
            f'<td class="statement" title="{esc(str(sample.get("statement", "")))}">'
            f'{esc(str(sample.get("statement", "")))}</td>{"".join(cells)}{extra}</tr>'
        )
    note_th = f"<th>{esc(note_header)}</th>" if note else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{esc(title)}</h1><p class=\"sub\">{esc(subtitle)}</p>"
        + "".join(preface)
        + f'<p class="legend">{legend}</p>'
        f"<table><thead><tr><th>requirement</th><th>level</th><th>statement</th>{head}{note_th}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></body></html>\n"
    )


# ----------------------------------------------------------------------------------------------- trend
@dataclass(frozen=True)
class Trend:
    columns: tuple[Column, ...]
    since: dict[str, int]

    def _note(self, rid: str) -> str:
        if rid not in self.since:
            return ""
        first = self.since[rid]
        count = len(self.columns) - first
        column = self.columns[first]
        return f"failing since run [{first + 1}] {column.key} ({column.detail.split(' ')[0]}), {count} run(s)"

    def text(self) -> list[str]:
        lines = text_grid(f"trend over {len(self.columns)} run(s)", self.columns, self._note)
        lines.append("")
        if self.since:
            lines.append(f"{len(self.since)} requirement(s) failing in the latest run:")
            lines += [f"  {rid}: {self._note(rid)}" for rid in self.since]
        else:
            lines.append("nothing failing in the latest run")
        if len(self.columns) >= 2:
            older, newer = self.columns[-2], self.columns[-1]
            comparison = compare.compare(_as_summary(newer), _as_summary(older), older.path)
            lines += compare.lines(comparison)
        return lines

    def html(self) -> str:
        latest = self.columns[-1]
        items = "".join(f"<li><code>{html.escape(rid)}</code>: {html.escape(self._note(rid))}</li>"
                        for rid in self.since)
        preface = [f"<p>Latest run <b>{html.escape(latest.key)}</b>: verdict "
                   f"<b class=\"verdict-{html.escape(latest.verdict)}\">{html.escape(latest.verdict)}</b>; "
                   f"{len(self.since)} requirement(s) failing.</p>"]
        if items:
            preface.append(f'<ul class="failures">{items}</ul>')
        if any(c.latency for c in self.columns):  # offline SVG, inline: the page still fetches nothing
            svg = charts.latency_trend_svg([(c.key, c.latency) for c in self.columns])
            preface.append("<p>" + svg.replace(' xmlns="http://www.w3.org/2000/svg"', "", 1) + "</p>")  # inline: HTML5
        subtitle = (f"{len(self.columns)} runs, oldest first, from {self.columns[0].detail.split(' ')[0]} to "
                    f"{latest.detail.split(' ')[0]}; hover a cell for its reason, waiver owner and attempts")
        return html_page("Conformance trend", subtitle, self.columns, note_header="failing since",
                         note=self._note, preface=preface)


def _as_summary(column: Column) -> dict[str, Any]:
    return {"requirements": list(column.rows.values()), "verdict": column.verdict,
            "run": {"id": column.key, "started_at": column.started_at}, "target": {"base_url": column.target}}


def build(paths: Iterable[str | Path]) -> Trend:
    columns = tuple(runs(paths))
    return Trend(columns, failing_since(columns))


# ------------------------------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="SUMMARY_OR_DIR",
                        help="summary.json files, report directories, or a history directory of report dirs")
    parser.add_argument("--html", default="trend.html", metavar="FILE", help="where to write the page "
                        "(default trend.html)")
    parser.add_argument("--text", metavar="FILE", help="also write the text matrix to FILE")
    parser.set_defaults(handler=command)


def command(args: argparse.Namespace) -> int:
    try:
        trend = build(args.paths)
    except NotUsable as error:
        print(f"conformance: trend: {error}", file=sys.stderr)
        return 2
    return write(trend.text(), trend.html(), args.html, args.text, "trend")


def write(lines: list[str], page: str, html_path: str, text_path: str | None, name: str) -> int:
    try:
        Path(html_path).write_text(page, encoding="utf-8")
        if text_path:
            Path(text_path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    except OSError as error:
        print(f"conformance: {name}: cannot write {error.filename}: {error.strerror}", file=sys.stderr)
        return 2
    for line in lines:
        print(line)
    print(f"{name}: {html_path}")
    return 0

