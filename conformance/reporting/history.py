"""Allure history between runs: carried over from a previous report so nightly reports show trends.

Requirement results keep a stable ``historyId`` (derived from the requirement id), so a requirement's
history follows it across runs whatever tests judged it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

RESULTS_DIR = "allure-results"
REPORT_DIR = "allure-report"
EPIC = "MultiMarkets Webhook API"


def history_id(requirement_id: str) -> str:
    return hashlib.md5(f"requirement:{requirement_id}".encode(), usedforsecurity=False).hexdigest()


def history_source(previous: str | Path) -> Path | None:
    """The Allure history folder of a previous report dir (or of a report, or the folder itself)."""
    base = Path(previous)
    for candidate in (base / REPORT_DIR / "history", base / RESULTS_DIR / "history", base / "history", base):
        if candidate.is_dir() and any(candidate.glob("*.json")) and candidate.name == "history":
            return candidate
    return None


def carry_history(results: Path, previous: str | Path) -> Path | None:
    """Copy a previous run's Allure history into this run's results, so the report shows trends."""
    source = history_source(previous)
    if source is None:
        return None
    target = results / "history"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    return target


def next_build_order(results: Path) -> int:
    """One more than the newest build in the carried-over history trend (1 without history)."""
    try:
        trend = json.loads((results / "history" / "history-trend.json").read_text(encoding="utf-8"))
        orders = [int(item.get("buildOrder", 0)) for item in trend if isinstance(item, dict)]
        return max(orders, default=len(trend)) + 1 if trend else 1
    except (OSError, ValueError, TypeError, AttributeError):
        return 1


def write_executor(results: Path, summary: dict[str, Any], environ: Mapping[str, str]) -> Path:
    """executor.json: who ran the build; GitHub Actions runs link back to the workflow run."""
    run = summary.get("run", {})
    executor: dict[str, Any] = {
        "name": "conformance",
        "type": "conformance",
        "buildName": f"run {run.get('id', '')}",
        "buildOrder": next_build_order(results),
        "reportName": f"{EPIC} conformance: {str(summary.get('verdict', '')).upper()}",
    }
    if environ.get("GITHUB_ACTIONS") == "true" and environ.get("GITHUB_RUN_ID"):
        server = environ.get("GITHUB_SERVER_URL", "https://github.com")
        executor.update(
            name="GitHub Actions", type="github",
            buildUrl=f"{server}/{environ.get('GITHUB_REPOSITORY', '')}/actions/runs/{environ['GITHUB_RUN_ID']}",
            buildName=f"{environ.get('GITHUB_WORKFLOW', 'conformance')} #{environ.get('GITHUB_RUN_NUMBER', '')} "
                      f"(run {run.get('id', '')})",
        )
    path = results / "executor.json"
    path.write_text(json.dumps(executor, indent=2) + "\n", encoding="utf-8")
    return path
