"""What the delivery phase reports: per scenario, and the execute latency under load.

The phase writes its scenario records to ``delivery.json`` in the report directory as it goes;
:func:`summary_section` turns that file (and nothing else) into the ``delivery`` section the run's
summary shows. Percentiles are nearest-rank over the answered executes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

DELIVERY_FILE = "delivery.json"


def percentiles(values: Iterable[float]) -> dict[str, Any]:
    """count, p50, p95, p99 and max (nearest rank), in milliseconds; only count when there is none."""
    ordered = sorted(values)
    if not ordered:
        return {"count": 0}

    def rank(p: float) -> float:
        return round(ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)], 2)

    return {"count": len(ordered), "p50_ms": rank(50), "p95_ms": rank(95), "p99_ms": rank(99),
            "max_ms": round(ordered[-1], 2)}


class ScenarioLog:
    """The phase's scenario records, rewritten whole to ``delivery.json`` after each one (a crash keeps them)."""

    def __init__(self, directory: Path, settings: dict[str, Any]):
        self.path = Path(directory) / DELIVERY_FILE
        self.settings = settings
        self.records: list[dict[str, Any]] = []

    def add(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        data = {"settings": self.settings, "scenarios": self.records}
        temporary = self.path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        temporary.replace(self.path)


def summary_section(report_dir: Path | str) -> dict[str, Any] | None:
    """The ``delivery`` section of summary.json: settings, execute latency per concurrency level, every scenario.

    None when the phase did not run (no delivery.json).
    """
    path = Path(report_dir) / DELIVERY_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    scenarios = data.get("scenarios", [])
    load = {
        f"c={record['concurrency']}": record["execute_latency_ms"] | {"outcome": record.get("outcome")}
        for record in scenarios if record["requirement"] == "DLV-010"
    }
    return {
        "settings": data.get("settings", {}),
        "latency": load,  # execute latency per concurrency level (reporting.charts draws it)
        "scenarios": [{k: v for k, v in record.items() if k != "exchanges"} for record in scenarios],
    }
