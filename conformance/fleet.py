"""Many targets: per-target summaries rolled into one target x requirement table (text and HTML).

A certification team runs the same suite against many wallets or tenants, one CI job per target (see
``examples/fleet.yml``: the CI engine's own matrix does the fanning out, the suite has no scheduler). Each
job keeps its report directory as an artifact; ``conformance fleet DIR`` (or ``SUMMARY...``) reads them
and shows each requirement's status on each target, with the targets' verdicts and, per requirement, how
many targets fail it. A target is named after the directory its ``summary.json`` sits in (the artifact
name, e.g. ``fleet/wallet-a/summary.json`` is ``wallet-a``); when one target has several summaries, the
latest run counts.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from conformance.reporting import trend


@dataclass(frozen=True)
class Fleet:
    columns: tuple[trend.Column, ...]

    def failing(self, rid: str) -> list[str]:
        return [c.key for c in self.columns if c.status(rid) in trend.BAD]

    def _note(self, rid: str) -> str:
        failing = self.failing(rid)
        waived = [c.key for c in self.columns if c.status(rid) == "waived"]
        parts = []
        if failing:
            parts.append(f"failing on {len(failing)}/{len(self.columns)}")
        if waived:
            parts.append(f"waived on {len(waived)}")
        return ", ".join(parts)

    def text(self) -> list[str]:
        lines = trend.text_grid(f"fleet of {len(self.columns)} target(s)", self.columns, self._note)
        lines.append("")
        for column in self.columns:
            counts = {}
            for row in column.rows.values():
                counts[row.get("status")] = counts.get(row.get("status"), 0) + 1
            shown = ", ".join(f"{counts[s]} {s}" for s in trend.MARKS if s and counts.get(s))
            lines.append(f"{column.key}: {column.verdict.upper()} ({shown})")
        return lines

    def html(self) -> str:
        verdicts = ", ".join(f"{c.key} {c.verdict}" for c in self.columns)
        return trend.html_page("Conformance fleet", f"{len(self.columns)} targets: {verdicts}", self.columns,
                               note_header="across targets", note=self._note)


def build(paths) -> Fleet:
    latest: dict[str, trend.Column] = {}
    for path in trend.find_summaries(paths):
        column = trend.load_column(path, key=path.parent.name)
        known = latest.get(column.key)
        if known is None or (column.started_at, column.path) > (known.started_at, known.path):
            latest[column.key] = column
    return Fleet(tuple(latest[key] for key in sorted(latest)))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="SUMMARY_OR_DIR",
                        help="per-target summary.json files or report dirs, or one dir holding them")
    parser.add_argument("--html", default="fleet.html", metavar="FILE", help="where to write the page "
                        "(default fleet.html)")
    parser.add_argument("--text", metavar="FILE", help="also write the text table to FILE")
    parser.set_defaults(handler=command)


def command(args: argparse.Namespace) -> int:
    try:
        fleet = build(args.paths)
    except trend.NotUsable as error:
        print(f"conformance: fleet: {error}", file=sys.stderr)
        return 2
    return trend.write(fleet.text(), fleet.html(), args.html, args.text, "fleet")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(command(argparse.Namespace(paths=sys.argv[1:], html="fleet.html", text=None)))
