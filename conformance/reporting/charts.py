"""Charts of a run, as self-contained SVG (no script, no CDN): they render offline, in Allure and in a browser.

- :func:`latency_svg`: p50/p95/p99/max per documented operation (``summary["latency"]``, and the delivery
  simulator's ``summary["delivery"]["latency"]`` when it ran);
- :func:`money_svg`: money moved over the run, per currency: the cumulative amount the wallet applied, and
  what was still outstanding (applied, not yet reversed), from ``ledger.json`` and the exchanges' times.
"""

from __future__ import annotations

import json
from collections import defaultdict
from decimal import Decimal, InvalidOperation
from html import escape
from pathlib import Path
from typing import Any

PERCENTILES = (("p50_ms", "p50", "#4e79a7"), ("p95_ms", "p95", "#f28e2b"), ("p99_ms", "p99", "#e15759"),
               ("max_ms", "max", "#76b7b2"))
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2", "#edc948")
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 720, 300, 60, 50, 36


def _frame(title: str, body: list[str], legend: list[tuple[str, str]]) -> str:
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">',
             f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
             f'<text x="{LEFT}" y="18" font-size="14" font-weight="bold">{escape(title)}</text>']
    parts += body
    x = WIDTH - 20 - 80 * len(legend)
    for name, colour in legend:
        parts.append(f'<rect x="{x}" y="8" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{x + 14}" y="17">{escape(name)}</text>')
        x += 80
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _axis(maximum: float, unit: str) -> list[str]:
    plot_h = HEIGHT - BOTTOM - TOP
    lines = [f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{HEIGHT - BOTTOM}" stroke="#333"/>',
             f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - 20}" y2="{HEIGHT - BOTTOM}" stroke="#333"/>']
    for step in range(5):
        value = maximum * step / 4
        y = HEIGHT - BOTTOM - plot_h * step / 4
        lines.append(f'<line x1="{LEFT - 4}" y1="{y:.1f}" x2="{WIDTH - 20}" y2="{y:.1f}" stroke="#ddd"/>'
                     f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{value:.4g}</text>')
    lines.append(f'<text x="14" y="{TOP + plot_h / 2:.0f}" transform="rotate(-90 14 {TOP + plot_h / 2:.0f})" '
                 f'text-anchor="middle">{escape(unit)}</text>')
    return lines


def latency_svg(latency: dict[str, dict[str, Any]], title: str = "Latency per operation") -> str:
    """Grouped bars: one group per operation with an answered call, one bar per percentile."""
    operations = [(op, stats) for op, stats in latency.items() if stats.get("count")]
    legend = [(label, colour) for _, label, colour in PERCENTILES]
    if not operations:
        return _frame(title, [f'<text x="{LEFT}" y="{HEIGHT / 2}">no answered calls</text>'], [])
    maximum = max(float(stats.get(key) or 0) for _, stats in operations for key, _, _ in PERCENTILES) or 1.0
    body = _axis(maximum, "ms (to the last byte)")
    plot_w, plot_h = WIDTH - 20 - LEFT, HEIGHT - BOTTOM - TOP
    group = plot_w / len(operations)
    bar = min(28.0, group * 0.8 / len(PERCENTILES))
    for index, (operation, stats) in enumerate(operations):
        x0 = LEFT + group * index + (group - bar * len(PERCENTILES)) / 2
        for k, (key, label, colour) in enumerate(PERCENTILES):
            value = float(stats.get(key) or 0)
            h = plot_h * value / maximum
            x = x0 + k * bar
            body.append(f'<rect x="{x:.1f}" y="{HEIGHT - BOTTOM - h:.1f}" width="{bar - 2:.1f}" height="{h:.1f}" '
                        f'fill="{colour}"><title>{escape(operation)} {label}: {value} ms</title></rect>')
        body.append(f'<text x="{LEFT + group * (index + 0.5):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">'
                    f'{escape(operation)} (n={stats["count"]})</text>')
    return _frame(title, body, legend)


def _amount(value: Any) -> Decimal:
    try:
        return abs(Decimal(str(value)))
    except (InvalidOperation, ValueError):
        return Decimal(0)


def money_series(ledger: dict[str, Any], times: dict[str, float]) -> dict[str, list[tuple[float, float, float]]]:
    """Per currency: (seconds since the first adjustment, cumulative applied, outstanding) at each change."""
    events: list[tuple[float, str, Decimal]] = []  # (time, currency, +amount applied / -amount reversed)
    for entry in ledger.get("entries", []):
        if entry.get("outcome") != "applied":
            continue
        currency = str(entry.get("account", "::?")).rsplit(":", 1)[-1]
        amount = _amount(entry.get("amount"))
        applied_at = [times[i] for i in entry.get("execute_exchanges", []) if i in times]
        if not applied_at:
            continue
        events.append((min(applied_at), currency, amount))
        if entry.get("settlement") == "reversed":  # cancels by exchange id, or (money journal) by request number
            cancels = entry.get("cancel_exchanges") or entry.get("cancels") or []
            reversed_at = [times[i] for i in cancels if i in times]
            if reversed_at:
                events.append((max(min(reversed_at), min(applied_at)), currency, -amount))
    events.sort(key=lambda e: e[0])
    start = events[0][0] if events else 0.0
    moved: dict[str, Decimal] = defaultdict(Decimal)
    outstanding: dict[str, Decimal] = defaultdict(Decimal)
    series: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    for at, currency, delta in events:
        if delta > 0:
            moved[currency] += delta
        outstanding[currency] += delta
        series[currency].append((round(at - start, 3), float(moved[currency]), float(outstanding[currency])))
    return dict(series)


def money_svg(series: dict[str, list[tuple[float, float, float]]], title: str = "Money moved over the run") -> str:
    """Step lines per currency: cumulative applied (solid) and outstanding (dashed), against seconds."""
    if not series:
        return _frame(title, [f'<text x="{LEFT}" y="{HEIGHT / 2}">no money was moved</text>'], [])
    maximum = max(max(p[1], p[2]) for points in series.values() for p in points) or 1.0
    duration = max(p[0] for points in series.values() for p in points) or 1.0
    body = _axis(maximum, "amount (per currency)")
    plot_w, plot_h = WIDTH - 20 - LEFT, HEIGHT - BOTTOM - TOP
    legend = []
    for index, (currency, points) in enumerate(sorted(series.items())):
        colour = PALETTE[index % len(PALETTE)]
        legend.append((currency, colour))
        for column, dash in ((1, ""), (2, ' stroke-dasharray="4 3"')):
            coords, last = [], 0.0
            for at, *values in points:
                x = LEFT + plot_w * at / duration
                coords.append(f"{x:.1f},{HEIGHT - BOTTOM - plot_h * last / maximum:.1f}")
                last = values[column - 1]
                coords.append(f"{x:.1f},{HEIGHT - BOTTOM - plot_h * last / maximum:.1f}")
            body.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5"{dash} '
                        f'points="{" ".join(coords)}"><title>{escape(currency)}</title></polyline>')
    body.append(f'<text x="{LEFT + plot_w / 2:.0f}" y="{HEIGHT - 12}" text-anchor="middle">seconds since the first '
                f'adjustment ({duration:.1f} s); solid: applied so far, dashed: outstanding</text>')
    return _frame(title, body, legend[:6])


def exchange_times(report_dir: Path) -> dict[str, float]:
    """When each exchange started, by exchange id and by the requestUniqueNo it first carried."""
    times: dict[str, float] = {}
    path = report_dir / "exchanges.jsonl"
    if path.exists():
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                    at = float(record.get("started_at") or 0)
                    times[record["id"]] = at
                    body = json.loads((record.get("request") or {}).get("body") or "null")
                except (ValueError, KeyError, TypeError):
                    continue
                number = body.get("requestUniqueNo") if isinstance(body, dict) else None
                if isinstance(number, str):  # the first call carrying a request number
                    times.setdefault(number, at)
    return times


def render(report_dir: Path, summary: dict[str, Any]) -> dict[str, str]:
    """{file name: SVG} of the run's charts (written under charts/ by :mod:`conformance.reporting`)."""
    charts = {"latency.svg": latency_svg(summary.get("latency", {}))}
    delivery = (summary.get("delivery") or {}).get("latency")
    if delivery:
        charts["latency-under-load.svg"] = latency_svg(delivery, "Latency under load (delivery simulator)")
    try:
        ledger = json.loads((report_dir / "ledger.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        ledger = {}
    charts["money.svg"] = money_svg(money_series(ledger, exchange_times(report_dir)))
    return charts


def latency_trend_svg(runs: list[tuple[str, dict[str, dict[str, Any]]]],
                      title: str = "p95 latency per operation across runs") -> str:
    """One line per operation: its p95 (ms) in each run, oldest first (``runs``: (label, summary latency))."""
    operations = sorted({op for _, latency in runs for op, stats in latency.items() if stats.get("count")})
    points = {op: [(i, float(latency.get(op, {}).get("p95_ms") or 0)) for i, (_, latency) in enumerate(runs)
                   if latency.get(op, {}).get("count")] for op in operations}
    if not operations or not runs:
        return _frame(title, [f'<text x="{LEFT}" y="{HEIGHT / 2}">no latency recorded</text>'], [])
    maximum = max(v for series in points.values() for _, v in series) or 1.0
    body = _axis(maximum, "p95 ms")
    plot_w, plot_h = WIDTH - 20 - LEFT, HEIGHT - BOTTOM - TOP
    step = plot_w / max(1, len(runs) - 1)
    legend = []
    for index, operation in enumerate(operations):
        colour = PALETTE[index % len(PALETTE)]
        legend.append((operation[:12], colour))
        coords = [f"{LEFT + step * i:.1f},{HEIGHT - BOTTOM - plot_h * v / maximum:.1f}" for i, v in points[operation]]
        body.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(coords)}">'
                    f'<title>{escape(operation)}</title></polyline>')
        for coord, (i, v) in zip(coords, points[operation], strict=True):
            x, y = coord.split(",")
            body.append(f'<circle cx="{x}" cy="{y}" r="3" fill="{colour}"><title>{escape(operation)} '
                        f'{escape(runs[i][0])}: p95 {v} ms</title></circle>')
    for i, (label, _) in enumerate(runs):
        body.append(f'<text x="{LEFT + step * i:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">'
                    f'{escape(label[:10])}</text>')
    return _frame(title, body, legend)
