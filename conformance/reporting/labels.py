"""Allure labels and links, in one place: for a requirement's own result and for the tests that judged it.

A requirement result (see :mod:`conformance.reporting.allure`) sits under the "Requirements" parent suite,
split by level and by the id's family (``ENV``, ``HDR``, ...); its severity follows MUST/SHOULD; its links
point into the reference text shipped beside ``report.html`` (:data:`REFERENCE_PAGE`).

Handwritten and generated tests use :func:`label_running_test` (from the suite's plugin) so that the same
catalogue facts label them the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from conformance import contract

EPIC = "MultiMarkets Webhook API"
REQUIREMENTS_SUITE = "Requirements"
#: Where the reference text is shipped, relative to report.html (and to allure-report/index.html).
REFERENCE_PAGE = "reference/webhook-api.html"
SEVERITY = {"MUST": "critical", "SHOULD": "minor"}


def reference_url(section: str) -> str:
    return f"{REFERENCE_PAGE}#section-{section}"


def reference_links(sections: Iterable[str]) -> list[dict[str, str]]:
    return [{"type": "link", "name": f"reference §{s}", "url": reference_url(s)} for s in sections]


def family(requirement_id: str) -> str:
    return requirement_id.split("-", 1)[0]


def requirement_labels(row: Mapping[str, Any]) -> list[dict[str, str]]:
    """Labels of one requirement's own result (``row``: a summary.json requirement record)."""
    rid, level = row["id"], row["level"]
    labels = [
        {"name": "parentSuite", "value": REQUIREMENTS_SUITE},
        {"name": "suite", "value": f"{level} requirements"},
        {"name": "subSuite", "value": family(rid)},
        {"name": "epic", "value": REQUIREMENTS_SUITE},
        {"name": "story", "value": f"{rid} {row['statement']}"},
        {"name": "severity", "value": SEVERITY.get(level, "normal")},
        {"name": "tag", "value": rid},
        {"name": "tag", "value": level},
        {"name": "requirement", "value": rid},
        {"name": "level", "value": level},
        {"name": "framework", "value": "conformance"},
    ]
    for operation in row.get("operations") or ["all operations"]:
        labels.append({"name": "feature", "value": operation})
    return labels


def labels_for_test(requirement_ids: Iterable[str], operation: str | None = None) -> list[dict[str, str]]:
    """Labels of a test (or generated slice) that judges ``requirement_ids``."""
    catalogue = contract.load().requirements
    ids = [rid for rid in dict.fromkeys(requirement_ids) if rid in catalogue]
    if not ids:
        return []
    operations = [operation] if operation else sorted({op for rid in ids for op in catalogue[rid].operations})
    labels = [{"name": "epic", "value": EPIC}]
    labels += [{"name": "feature", "value": op} for op in operations]
    must = any(catalogue[rid].is_must for rid in ids)
    labels.append({"name": "severity", "value": SEVERITY["MUST" if must else "SHOULD"]})
    for rid in ids:
        requirement = catalogue[rid]
        labels += [
            {"name": "story", "value": f"{rid} {requirement.statement}"},
            {"name": "tag", "value": rid},
            {"name": "requirement", "value": rid},
            {"name": "level", "value": requirement.level},
        ]
    return labels


def label_running_test(requirement_ids: Iterable[str], operation: str | None = None) -> None:
    """Apply :func:`labels_for_test` (and reference links) to the test allure-pytest is running now."""
    try:
        import allure
    except ImportError:  # allure-pytest is a dependency; tolerate its absence in odd installs
        return
    catalogue = contract.load().requirements
    ids = [rid for rid in dict.fromkeys(requirement_ids) if rid in catalogue]
    for label in labels_for_test(ids, operation):
        allure.dynamic.label(label["name"], label["value"])
    for rid in ids:
        for link in reference_links(catalogue[rid].source):
            allure.dynamic.link(link["url"], name=link["name"])
