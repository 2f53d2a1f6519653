"""The traceability matrix: requirement → checks → tests → verdict → evidence.

Built after a run from ``summary.json`` (verdicts per requirement, test results,
generated scenarios) and the journal files ``outcomes.jsonl`` (every check
outcome, with the exchange ids it judged) and ``exchanges.jsonl`` (where each
exchange came from). Every failing outcome points to the exchange ids that
prove it; those exchanges are in ``exchanges.jsonl`` of the same bundle.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from conformance import contract
from conformance.reporting.labels import reference_url

TRACEABILITY_FILE = "traceability.json"
EVIDENCE_KEPT = 200  # failing exchange ids listed per requirement (the count is always complete)
GENERATED_PREFIX = "test_generated"
JUDGED = ("passed", "violated", "unanswered")  # conformance.checks.Status values that judged the target


def scenario_test_name(phase: str, operation: str | None, mode: str) -> str:
    """The pytest id of the generated test for one scenario (as conformance.suite.plugin parametrises it)."""
    return f"{GENERATED_PREFIX}[{phase}-{mode}-{operation or 'all-operations'}]"


def scenario_of_origin(origin: str, operation: str | None, scenarios: Iterable[dict]) -> dict | None:
    """The generated scenario (summary.json "generated" record) an exchange's origin belongs to."""
    parts = origin.split("/")
    if len(parts) < 3 or parts[0] != "generated":
        return None
    phase, mode = parts[1], parts[2]
    for scenario in scenarios:
        if scenario.get("phase") != phase:
            continue
        if scenario.get("mode") not in (mode, "all"):
            continue
        if scenario.get("operation") in (None, operation):
            return scenario
    return None


def _jsonl(path: Path) -> Iterator[dict]:
    if not path.exists():
        return
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                try:
                    yield json.loads(line)
                except ValueError:
                    continue


def _test_of(origin: str, operation: str | None, scenarios: Iterable[dict]) -> str | None:
    """The test that produced an exchange, as a pytest node id relative to the suite."""
    if origin.startswith("handwritten/"):
        return origin.removeprefix("handwritten/")
    if origin.startswith("generated/"):
        scenario = scenario_of_origin(origin, operation, scenarios)
        if scenario is not None:
            name = scenario_test_name(scenario["phase"], scenario["operation"], scenario["mode"])
            return f"test_generated.py::{name}"
    return origin or None  # preflight, compensation, ...


def build(report_dir: Path, summary: dict[str, Any]) -> dict[str, Any]:
    catalogue = contract.load().requirements
    scenarios = summary.get("generated", [])
    origin_of: dict[str, tuple[str, str | None]] = {}
    for record in _jsonl(report_dir / "exchanges.jsonl"):
        origin_of[record["id"]] = (record.get("origin", ""), record.get("operation"))
    outcomes_of_test = {r["nodeid"]: r["outcome"] for r in summary.get("test_results", [])}

    per_check: dict[str, Counter] = defaultdict(Counter)  # requirement -> (check, passed) counts
    tests: dict[str, set[str]] = defaultdict(set)
    failing: dict[str, list[str]] = defaultdict(list)
    failing_count: Counter = Counter()
    evaluations: Counter = Counter()
    violations: Counter = Counter()
    for outcome in _jsonl(report_dir / "outcomes.jsonl"):
        rid = outcome.get("requirement")
        if not rid:
            continue
        status = outcome.get("status") or ("passed" if outcome.get("passed") else "violated")
        if status not in JUDGED:  # blocked, not applicable, suite defect: the target was not put to the rule
            continue
        passed = status == "passed"
        evaluations[rid] += 1
        per_check[rid][(outcome.get("check"), passed)] += 1
        if not passed:
            violations[rid] += 1
        for exchange_id in outcome.get("exchanges", []):
            origin, operation = origin_of.get(exchange_id, ("", None))
            test = _test_of(origin, operation, scenarios)
            if test:
                tests[rid].add(test)
            if not passed:
                failing_count[rid] += 1
                if len(failing[rid]) < EVIDENCE_KEPT and exchange_id not in failing[rid]:
                    failing[rid].append(exchange_id)
    generated_failures: dict[str, list[dict]] = defaultdict(list)
    for scenario in scenarios:
        test = f"test_generated.py::{scenario_test_name(scenario['phase'], scenario['operation'], scenario['mode'])}"
        for failure in scenario.get("failures", []):
            rid = failure.get("requirement")
            if rid:
                tests[rid].add(test)
                generated_failures[rid].append({"test": test, "check": failure.get("check"),
                                                "message": failure.get("message"), "curl": failure.get("curl")})

    rows = []
    for row in summary.get("requirements", []):
        rid = row["id"]
        requirement = catalogue.get(rid)
        checks = {name: {"name": name, "evaluations": 0, "violations": 0} for name in row.get("checks", [])}
        for (check, passed), count in sorted(per_check[rid].items(), key=lambda item: str(item[0])):
            entry = checks.setdefault(check, {"name": check, "evaluations": 0, "violations": 0})
            entry["evaluations"] += count
            if not passed:
                entry["violations"] += count
        test_names = sorted(set(row.get("tests", [])) | tests[rid])
        rows.append({
            "id": rid,
            "level": row.get("level"),
            "statement": row.get("statement"),
            "clause": requirement.clause if requirement else None,
            "source": row.get("source", []),
            "reference": [reference_url(s) for s in row.get("source", [])],
            "operations": row.get("operations", []),
            "status": row.get("status"),
            **({"reason": row["reason"]} if "reason" in row else {}),
            **{key: row[key] for key in ("waiver", "attempts") if row.get(key)},  # nightly: owner, replays
            "checks": list(checks.values()),
            "tests": [{"nodeid": name, "outcome": outcomes_of_test.get(name)} for name in test_names],
            "evaluations": row.get("evaluations", evaluations[rid]),
            "violations": row.get("violations", violations[rid]),
            "evidence": {
                "exchanges_file": "exchanges.jsonl",
                "outcomes_file": "outcomes.jsonl",
                "failing_exchanges": failing[rid],
                "failing_exchange_count": failing_count[rid],
                "generated_failures": generated_failures[rid][:20],
                "examples": row.get("failing_examples", []),
            },
        })
    return {
        "run_id": summary.get("run", {}).get("id"),
        "suite_version": summary.get("suite", {}).get("version"),
        "spec_sha256": summary.get("spec", {}).get("sha256"),
        "catalogue_sha256": summary.get("spec", {}).get("catalogue_sha256"),
        "verdict": summary.get("verdict"),
        "exit_code": summary.get("exit_code"),
        "requirements": rows,
    }
