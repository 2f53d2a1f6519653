"""Allure categories of the requirement results, consistent with ``summary.json`` counts by construction.

Each requirement result's status message starts with a headline written from its verdict status by
:func:`headline` (never from a test's failure text); each category matches exactly one headline, so the
Categories tab lists as many failed MUST requirements as ``summary.json["counts"]["MUST"]["failed"]``,
and so on for every status.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

#: verdict status -> (Allure status, headline template). The headline opens the result's message.
STATUS = {
    "failed": ("failed", "{level} requirement failed"),
    "warning": ("failed", "{level} requirement violated (warning)"),
    "flaky": ("failed", "{level} requirement flaky"),
    "waived": ("unknown", "{level} requirement waived"),
    "skipped": ("skipped", "{level} requirement not judged"),
    "passed": ("passed", "{level} requirement passed"),
}
CATEGORY_NAMES = {
    ("failed", "MUST"): "Requirement failed (MUST)",
    ("warning", "SHOULD"): "Requirement violated (SHOULD, warning)",
    ("warning", "MUST"): "Requirement violated (MUST, warning)",
    ("flaky", "MUST"): "Flaky requirement (MUST)",
    ("flaky", "SHOULD"): "Flaky requirement (SHOULD)",
    ("waived", "MUST"): "Waived requirement (MUST)",
    ("waived", "SHOULD"): "Waived requirement (SHOULD)",
    ("skipped", "MUST"): "Not judged (MUST)",
    ("skipped", "SHOULD"): "Not judged (SHOULD)",
}


def allure_status(status: str, level: str = "SHOULD") -> str:
    """Allure's status for a verdict. An unjudged MUST is "broken" (could not be judged), not "skipped": it is
    what makes the run incomplete, and Allure's percentage counts only passed against failed and broken (an
    incomplete run shown as skipped would read 100%)."""
    if status == "skipped" and level == "MUST":
        return "broken"
    return STATUS[status][0]


def headline(status: str, level: str) -> str:
    return STATUS[status][1].format(level=level)


def categories() -> list[dict[str, Any]]:
    """One category per (verdict status, level) that counts against or leaves out a requirement."""
    table = []
    for (status, level), name in CATEGORY_NAMES.items():
        table.append({
            "name": name,
            "matchedStatuses": [allure_status(status, level)],
            "messageRegex": rf"(?s){re.escape(headline(status, level))}\b.*",
        })
    return table


def category_of(message: str, status: str, table: list[dict[str, Any]] | None = None) -> list[str]:
    """The categories Allure puts a result in (same whole-message matching, for self-tests and tooling)."""
    names = []
    for category in table or categories():
        if status not in category.get("matchedStatuses", []):
            continue
        regex = category.get("messageRegex")
        if regex is None or re.fullmatch(regex, message or ""):
            names.append(category["name"])
    return names


def write_categories(results: Path) -> Path:
    path = results / "categories.json"
    path.write_text(json.dumps(categories(), indent=2) + "\n", encoding="utf-8")
    return path
