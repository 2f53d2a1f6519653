"""Verdicts: the run's judgements aggregated once, per requirement, into ``summary.json``.

Status of a requirement:

- ``failed``  a MUST requirement was violated at least once (or could not be judged
  because the target did not answer a documented call);
- ``warning`` the same for a SHOULD requirement: reported, never fails the run;
- ``passed``  judged at least once and never violated;
- ``skipped`` never judged, with the reason (money movement not allowed, no test
  accounts, phase not selected, ...). A skipped requirement is never counted as passed.

The run's verdict: ``failed`` (exit 1) when any MUST failed; ``passed`` (exit 0)
when every MUST passed; ``incomplete`` (exit 4) when none failed but some MUST
requirements were not judged.
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from typing import Any

from conformance import contract
from conformance.checks import Outcome, checks_for
from conformance.exchange import Exchange

EXIT_PASSED, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_INCOMPLETE = 0, 1, 2, 3, 4
EXAMPLES_KEPT = 5
#: Marks a failure that is the suite's own fault (a probe no check judged): a suite error, never the target's.
SUITE_DEFECT = "suite defect"
#: A failure message's first line names the requirement it blames, after the exception's type if present.
_MESSAGE_ID = re.compile(
    r"^(?:(?:[A-Za-z_][\w.]*)?(?:Error|Exception|Failed): )?((?:ENV|HDR|VAL|CUR|BAL|EXE|CAN|ROB|DLV)-\d{3})\b"
)


def requirement_statuses(
    outcomes: list[Outcome],
    test_results: list[dict],
    exchanges: dict[str, Exchange],
    secrets: frozenset[str],
    money_allowed: bool,
) -> list[dict[str, Any]]:
    catalogue = contract.load().requirements
    by_requirement: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        by_requirement[outcome.requirement].append(outcome)
    tests_by_requirement: dict[str, list[dict]] = defaultdict(list)
    for result in test_results:
        for rid in result["requirements"]:
            tests_by_requirement[rid].append(result)

    rows = []
    for rid, requirement in catalogue.items():
        judged = by_requirement.get(rid, [])
        violations = [o for o in judged if not o.passed]
        examples = [_example(o, exchanges, secrets) for o in violations[:EXAMPLES_KEPT]]
        tests = tests_by_requirement.get(rid, [])
        # A test that failed blaming this requirement (by name, or naming none: a conversation stopped early,
        # a call got no answer) fails it even when other evaluations passed: one unanswered cancel is enough.
        unjudged_failures = [
            t for t in tests
            if t["outcome"] == "failed" and _blames(t.get("message") or "", rid)
            and not (violations and _names(t.get("message") or "", rid))
        ]
        for test in unjudged_failures[: EXAMPLES_KEPT - len(examples)]:
            examples.append({"check": None, "message": test["message"], "test": test["nodeid"]})
        if violations or unjudged_failures:
            status = "failed" if requirement.is_must else "warning"
        elif judged:
            status = "passed"
        else:
            status = "skipped"
        row: dict[str, Any] = {
            "id": rid,
            "level": requirement.level,
            "basis": requirement.basis,
            "statement": requirement.statement,
            "operations": list(requirement.operations),
            "source": list(requirement.source),
            "status": status,
            "evaluations": len(judged),
            "violations": len(violations),
            "checks": [c.name for c in checks_for(rid)],
            "tests": sorted({t["nodeid"] for t in tests}),
            "failing_examples": examples,
        }
        if status == "skipped":
            row["reason"] = _skip_reason(requirement, tests, money_allowed)
        rows.append(row)
    return rows


def _named(message: str) -> str | None:
    """The requirement id a failure message's first line names, if any."""
    first = message.strip().splitlines()[0] if message.strip() else ""
    match = _MESSAGE_ID.match(first)
    return match.group(1) if match else None


def _names(message: str, rid: str) -> bool:
    """The failure message names the requirement (its violation is already among the recorded outcomes)."""
    return _named(message) == rid


def _blames(message: str, rid: str) -> bool:
    """A failure message names the requirement, or names none (a conversation stopped early); suite defects never."""
    return SUITE_DEFECT not in message and _named(message) in (None, rid)


def _skip_reason(requirement, tests: list[dict], money_allowed: bool) -> str:
    if requirement.money and not money_allowed:
        return "money movement is not allowed for this target (use --allow-money-movement)"
    reasons = sorted({t["message"] for t in tests if t["outcome"] == "skipped" and t["message"]})
    if reasons:
        return "; ".join(reasons)
    marker = f"{requirement.id}: not judged, blocked by "
    blocked = sorted({
        line.strip()[len(marker):].replace(" above", "") + f" ({t['nodeid']})"
        for t in tests if t["outcome"] == "failed"
        for line in (t.get("message") or "").splitlines() if line.strip().startswith(marker)
    })
    if blocked:
        return "not judged: blocked by " + "; ".join(blocked)
    return "not exercised by this run (phase not selected, or no probe reached it)"


def _example(outcome: Outcome, exchanges: dict[str, Exchange], secrets: frozenset[str]) -> dict[str, Any]:
    example: dict[str, Any] = {"check": outcome.check, "message": outcome.message, "exchanges": list(outcome.exchanges)}
    found = [exchanges[i] for i in outcome.exchanges if i in exchanges]
    if found:
        last = found[-1]
        example["curl"] = last.as_curl(secrets)
        example["origin"] = last.origin
        if last.response is not None:
            example["response"] = {"status": last.response.status,
                                   "body": last.response.body[:500].decode("utf-8", "replace")}
    return example


def overall(rows: list[dict[str, Any]]) -> tuple[str, int]:
    musts = [r for r in rows if r["level"] == "MUST"]
    if any(r["status"] == "failed" for r in musts):
        return "failed", EXIT_FAILED
    if any(r["status"] == "skipped" for r in musts):
        return "incomplete", EXIT_INCOMPLETE
    return "passed", EXIT_PASSED


def counts(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = {}
    for level in ("MUST", "SHOULD"):
        table[level] = {s: 0 for s in ("passed", "failed", "warning", "skipped")}
        for row in rows:
            if row["level"] == level:
                table[level][row["status"]] += 1
    return table


def latency(exchanges: dict[str, Exchange]) -> dict[str, dict[str, Any]]:
    """p50/p95/max of every documented operation's answered POSTs, in milliseconds."""
    samples: dict[str, list[float]] = defaultdict(list)
    for exchange in exchanges.values():
        if exchange.operation and exchange.request.method == "POST" and exchange.response is not None:
            samples[exchange.operation].append(exchange.response.elapsed_ms)
    report = {}
    for operation in contract.load().operations:
        values = sorted(samples.get(operation, []))
        if not values:
            report[operation] = {"count": 0}
            continue
        report[operation] = {
            "count": len(values),
            "p50_ms": round(statistics.median(values), 2),
            "p95_ms": round(values[min(len(values) - 1, int(0.95 * len(values)))], 2),
            "max_ms": round(values[-1], 2),
        }
    return report
