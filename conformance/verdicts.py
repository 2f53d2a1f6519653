"""Verdicts: the run's typed outcomes aggregated once, per requirement.

Every view (the table on screen, ``summary.json``, JUnit, Allure, the evidence bundle) is a rendering of
the :class:`RunVerdict` built here; nothing downstream re-derives a status, and nothing here reads the
text of a failure message: only :class:`~conformance.checks.Status` values recorded where they were judged.

Status of a requirement:

- ``failed``  a MUST requirement was violated, or a documented call probing it got no answer;
- ``warning`` the same for a SHOULD requirement: reported, never fails the run;
- ``flaky``   it failed, but every failing probe passed when replayed (counts as a failure only when the
  profile says ``flaky_fails``);
- ``waived``  it failed, and a valid waiver covers it (set by :mod:`conformance.waivers`);
- ``passed``  judged at least once, and nothing counted against it (or, with a reason, it held vacuously:
  the probes were answered but the rule's condition never arose, e.g. an optional field never sent);
- ``skipped`` never judged, with the reason: money movement not allowed, blocked by another requirement's
  violation, made inapplicable by the target's own answers, a suite defect, not exercised.

The run's verdict: ``failed`` (exit 1) when a MUST failed; ``incomplete`` (exit 4) when nothing failed but a
MUST was not judged or the run was not sound (suite errors); ``passed`` (exit 0) otherwise.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from typing import Any

from conformance import contract
from conformance.checks import Outcome, Status, checks_for
from conformance.exchange import Exchange

EXIT_PASSED, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_INCOMPLETE = 0, 1, 2, 3, 4
EXAMPLES_KEPT = 5
STATUSES = ("passed", "failed", "warning", "flaky", "waived", "skipped")
#: Statuses that mean "something counted against the target" (for views that colour or count failures).
FAILING = frozenset({"failed", "warning"})


@dataclass(frozen=True)
class Example:
    """One outcome that counted against a requirement, with the exchange that shows it."""

    check: str
    status: str
    message: str | None
    exchanges: tuple[str, ...]
    origin: str
    attempt: int = 0
    curl: str | None = None
    response: dict | None = None

    def to_record(self) -> dict[str, Any]:
        record = {"check": self.check, "status": self.status, "message": self.message,
                  "exchanges": list(self.exchanges), "origin": self.origin, "attempt": self.attempt}
        if self.curl is not None:
            record["curl"] = self.curl
        if self.response is not None:
            record["response"] = self.response
        return record


@dataclass(frozen=True)
class RequirementVerdict:
    id: str
    level: str
    basis: str
    statement: str
    clause: str
    source: tuple[str, ...]
    operations: tuple[str, ...]
    money: bool
    status: str
    reason: str | None = None
    counts: dict[str, int] = field(default_factory=dict)  # outcomes per Status value
    checks: tuple[str, ...] = ()
    tests: tuple[str, ...] = ()  # origins (test node ids, generated slices) whose outcomes judged it
    examples: tuple[Example, ...] = ()
    blocked_by: tuple[str, ...] = ()
    waiver: dict | None = None  # the waiver that applies (set by conformance.waivers)
    attempts: dict[str, list[str]] = field(default_factory=dict)  # flaky: origin -> statuses per attempt

    @property
    def is_must(self) -> bool:
        return self.level == "MUST"

    @property
    def evaluations(self) -> int:
        return sum(self.counts.get(s.value, 0) for s in Status if s.judged)

    @property
    def violations(self) -> int:
        return sum(self.counts.get(s.value, 0) for s in Status if s.against_target)

    def with_status(self, status: str, **changes: Any) -> RequirementVerdict:
        return replace(self, status=status, **changes)

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "id": self.id, "level": self.level, "basis": self.basis, "statement": self.statement,
            "clause": self.clause, "operations": list(self.operations), "source": list(self.source),
            "money": self.money, "status": self.status, "evaluations": self.evaluations,
            "violations": self.violations, "outcomes": dict(self.counts), "checks": list(self.checks),
            "tests": list(self.tests), "failing_examples": [e.to_record() for e in self.examples],
        }
        if self.reason is not None:
            record["reason"] = self.reason
        if self.blocked_by:
            record["blocked_by"] = list(self.blocked_by)
        if self.waiver is not None:
            record["waiver"] = self.waiver
        if self.attempts:
            record["attempts"] = self.attempts
        return record


@dataclass(frozen=True)
class RunVerdict:
    requirements: tuple[RequirementVerdict, ...]
    suite_errors: tuple[str, ...] = ()
    flaky_fails: bool = False

    @property
    def verdict(self) -> str:
        return overall(self.requirements, self.suite_errors, self.flaky_fails)[0]

    @property
    def exit_code(self) -> int:
        return overall(self.requirements, self.suite_errors, self.flaky_fails)[1]

    def by_status(self, status: str, level: str | None = None) -> list[str]:
        return [r.id for r in self.requirements if r.status == status and (level is None or r.level == level)]

    def counts(self) -> dict[str, dict[str, int]]:
        table: dict[str, dict[str, int]] = {}
        for level in ("MUST", "SHOULD"):
            table[level] = dict.fromkeys(STATUSES, 0)
            for row in self.requirements:
                if _level(row) == level:
                    table[level][_status(row)] += 1
        return table

    def rows(self) -> list[dict[str, Any]]:
        return [r.to_record() for r in self.requirements]


def aggregate(
    outcomes: list[Outcome],
    *,
    exchanges: dict[str, Exchange],
    secrets: frozenset[str],
    money_allowed: bool,
    skip_reasons: dict[str, list[str]] | None = None,
    secret_values: tuple[str, ...] = (),
) -> list[RequirementVerdict]:
    """One verdict per catalogue requirement, from the typed outcomes alone.

    ``skip_reasons`` maps a requirement id to the reasons the tests that would have judged it were skipped
    (a profile without accounts, say): used only to explain a requirement that nothing judged.
    """
    catalogue = contract.load().requirements
    by_requirement: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        by_requirement[outcome.requirement].append(outcome)
    rows = []
    for rid, requirement in catalogue.items():
        mine = by_requirement.get(rid, [])
        counts = Counter(o.status.value for o in mine)
        against = [o for o in mine if o.status.against_target]
        judged = [o for o in mine if o.status.judged]
        examples = tuple(_example(o, exchanges, secrets, secret_values) for o in against[:EXAMPLES_KEPT])
        blocked_by = tuple(sorted({o.blocked_by for o in mine if o.status is Status.BLOCKED and o.blocked_by}))
        attempts = _attempts(mine)
        reason = None
        if against and attempts and _all_recovered(against, attempts):
            status = "flaky"
            reason = "every failing probe passed when replayed"
        elif against:
            status = "failed" if requirement.is_must else "warning"
        elif judged:
            status = "passed"
        elif any(o.status is Status.VACUOUS for o in mine):
            status = "passed"  # answered probes, none of which gave the rule's condition a chance to arise
            first = next(o for o in mine if o.status is Status.VACUOUS)
            reason = f"holds vacuously: {first.message}"
        else:
            status = "skipped"
            reason = _skip_reason(requirement, mine, blocked_by, money_allowed, (skip_reasons or {}).get(rid, []))
        rows.append(RequirementVerdict(
            id=rid, level=requirement.level, basis=requirement.basis, statement=requirement.statement,
            clause=requirement.clause, source=requirement.source, operations=requirement.operations,
            money=requirement.money, status=status, reason=reason, counts=dict(counts),
            checks=tuple(c.name for c in checks_for(rid)),
            tests=tuple(sorted({o.origin for o in mine if o.origin})),
            examples=examples, blocked_by=blocked_by,
            attempts={k: v for k, v in attempts.items() if any(s != "passed" for s in v)} if status == "flaky" else {},
        ))
    return rows


def _attempts(outcomes: list[Outcome]) -> dict[str, list[str]]:
    """Per origin that was replayed: the worst status of each attempt (index = attempt number)."""
    replayed = {o.origin for o in outcomes if o.attempt > 0}
    result: dict[str, list[str]] = {}
    for origin in sorted(replayed):
        per_attempt: dict[int, list[Outcome]] = defaultdict(list)
        for o in outcomes:
            if o.origin == origin:
                per_attempt[o.attempt].append(o)
        result[origin] = [
            "violated" if any(o.status.against_target for o in per_attempt[n])
            else "passed" if any(o.status is Status.PASSED for o in per_attempt[n]) else "not judged"
            for n in sorted(per_attempt)
        ]
    return result


def _all_recovered(against: list[Outcome], attempts: dict[str, list[str]]) -> bool:
    """Flaky: every origin with a failure was replayed, and some replay of it passed."""
    origins = {o.origin for o in against}
    return all(origin in attempts and "passed" in attempts[origin][1:] for origin in origins)


def _skip_reason(requirement, mine: list[Outcome], blocked_by: tuple[str, ...], money_allowed: bool,
                 test_reasons: list[str]) -> str:
    if requirement.money and not money_allowed:
        return "money movement is not allowed for this target (use --allow-money-movement)"
    if blocked_by:
        return "not judged: blocked by the violation of " + ", ".join(blocked_by)
    defects = [o for o in mine if o.status is Status.SUITE_DEFECT]
    if defects:
        return f"not judged: suite defect ({defects[0].message or defects[0].check})"
    inapplicable = [o for o in mine if o.status is Status.NOT_APPLICABLE]
    if inapplicable:
        first = inapplicable[0]
        return f"not judged: the target's answers made it inapplicable ({first.message or first.check})"
    reasons = sorted(set(test_reasons))
    if reasons:
        return "; ".join(reasons)
    return "not exercised by this run (phase not selected, or no probe reached it)"


def _example(outcome: Outcome, exchanges: dict[str, Exchange], secrets: frozenset[str],
             secret_values: tuple[str, ...]) -> Example:
    curl = response = None
    found = [exchanges[i] for i in outcome.exchanges if i in exchanges]
    if found:
        last = found[-1]
        curl = last.as_curl(secrets)
        if last.response is not None:
            response = {"status": last.response.status,
                        "body": last.response.body[:500].decode("utf-8", "replace")}
    return Example(check=outcome.check, status=outcome.status.value, message=outcome.message,
                   exchanges=outcome.exchanges, origin=outcome.origin, attempt=outcome.attempt,
                   curl=curl, response=response)


def suite_errors_from(outcomes: list[Outcome]) -> list[str]:
    """The suite's own defects among the outcomes: they make a run unsound (never the target's fault)."""
    defects = [o for o in outcomes if o.status is Status.SUITE_DEFECT]
    if not defects:
        return []
    where = sorted({o.origin or o.check for o in defects})
    return [f"{len(defects)} probe(s) were not judged because of a suite defect: {', '.join(where[:5])}"]


def overall(rows, suite_errors=(), flaky_fails: bool = False) -> tuple[str, int]:
    musts = [r for r in rows if _level(r) == "MUST"]
    failing = {"failed", "flaky"} if flaky_fails else {"failed"}
    if any(_status(r) in failing for r in musts):
        return "failed", EXIT_FAILED
    if suite_errors or any(_status(r) == "skipped" for r in musts):
        return "incomplete", EXIT_INCOMPLETE
    return "passed", EXIT_PASSED


def _level(row) -> str:
    return row["level"] if isinstance(row, dict) else row.level


def _status(row) -> str:
    return row["status"] if isinstance(row, dict) else row.status


def latency(exchanges: dict[str, Exchange]) -> dict[str, dict[str, Any]]:
    """p50/p95/p99/max of every documented operation's answered POSTs, in milliseconds (to the last byte)."""
    samples: dict[str, list[float]] = defaultdict(list)
    for exchange in exchanges.values():
        if exchange.operation and exchange.request.method == "POST" and exchange.response is not None:
            samples[exchange.operation].append(exchange.response.elapsed_ms)
    return {operation: percentiles(samples.get(operation, [])) for operation in contract.load().operations}


def percentiles(values: list[float]) -> dict[str, Any]:
    values = sorted(values)
    if not values:
        return {"count": 0}

    def at(q: float) -> float:
        return round(values[min(len(values) - 1, int(q * len(values)))], 2)

    return {"count": len(values), "p50_ms": round(statistics.median(values), 2), "p95_ms": at(0.95),
            "p99_ms": at(0.99), "max_ms": round(values[-1], 2)}
