"""The per-requirement table printed at the end of a run."""

from __future__ import annotations

from typing import Any

from conformance import waivers

MARKS = {"passed": "PASS", "failed": "FAIL", "warning": "WARN", "skipped": "SKIP", "flaky": "FLKY", "waived": "WAIV"}


def render(summary: dict[str, Any], width: int = 72) -> list[str]:
    lines = ["", f"{'requirement':<9} {'level':<6} {'status':<6} {'judged':>6}  statement"]
    for row in summary["requirements"]:
        statement = row["statement"]
        if len(statement) > width:
            statement = statement[: width - 1] + "…"
        lines.append(f"{row['id']:<9} {row['level']:<6} {MARKS[row['status']]:<6} {row['evaluations']:>6}  {statement}")
        if row["status"] in ("failed", "warning"):
            for example in row["failing_examples"][:2]:
                message = (example.get("message") or "").splitlines()[0] if example.get("message") else ""
                lines.append(f"{'':<24}↳ {message[:110]}")
        elif row["status"] in ("waived", "flaky"):  # nightly: who owns the waiver, how the replays went
            waiver = row.get("waiver") or {}
            if waiver:
                lines.append(f"{'':<24}↳ waived until {waiver.get('expires')} by {waiver.get('owner')} "
                             f"({waiver.get('ticket')}): {str(waiver.get('reason'))[:60]}")
            for origin, attempts in (row.get("attempts") or {}).items():
                lines.append(f"{'':<24}↳ attempts {'/'.join(attempts)}: {origin[:80]}")
        elif row["status"] == "skipped":
            lines.append(f"{'':<24}↳ skipped: {row.get('reason', '')[:110]}")
    counts = summary["counts"]
    lines.append("")
    for level in ("MUST", "SHOULD"):
        c = counts[level]
        lines.append(
            f"{level:<6}: {c['passed']} passed, {c['failed']} failed, {c['warning']} warnings, {c['skipped']} skipped"
            + "".join(f", {c[s]} {s}" for s in ("flaky", "waived") if c.get(s))
        )
    latency = summary.get("latency", {})
    for operation, stats in latency.items():
        if stats.get("count"):
            lines.append(
                f"latency {operation}: n={stats['count']} p50={stats['p50_ms']} ms p95={stats['p95_ms']} ms "
                f"max={stats['max_ms']} ms"
            )
    money = summary.get("money", {})
    if money:
        lines.append(
            f"money: {money.get('executes_sent', 0)} executes sent, {money.get('applied', 0)} applied, "
            f"{money.get('reversed', 0)} reversed, {money.get('compensated_by_suite', 0)} compensated at the end, "
            f"{len(money.get('outstanding', []))} outstanding"
        )
    for error in summary.get("suite_errors", []):
        lines.append(f"suite: {error}")
    lines += waivers.lines(summary.get("waivers"))  # nightly: applied, expired, no longer needed
    lines.append(
        f"verdict: {summary['verdict'].upper()} (exit {summary['exit_code']}) in {summary['run']['duration_s']} s"
    )
    return lines
