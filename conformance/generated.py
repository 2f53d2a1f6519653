"""Property-based runs: Schemathesis' engine (the one ``st run`` uses) over the spec, in-process.

One :func:`run_scenario` call runs one Schemathesis phase (examples, coverage,
fuzzing, stateful) for one operation and one generation mode, so that every
operation/phase/mode has its own identity in the reports. Every response is
judged by the suite's checks (through :mod:`conformance.schemathesis_hooks`)
and by Schemathesis' own checks, which are mapped to catalogue requirements.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import schemathesis
from schemathesis.config import CacheConfig
from schemathesis.engine import events
from schemathesis.engine.core import Engine, ExecutionPlan
from schemathesis.engine.run import PhaseName

from conformance import contract, schemathesis_hooks
from conformance.profile import Profile

PHASES = ("examples", "coverage", "fuzzing", "stateful")
MODES = ("positive", "negative")
MAX_FAILURES_KEPT = 20


@dataclass
class ScenarioResult:
    phase: str
    operation: str | None  # None for the stateful phase (all operations)
    mode: str
    cases: int = 0
    calls: int = 0
    failures: list[dict] = field(default_factory=list)  # {requirement, check, title, message, curl}
    other_findings: list[dict] = field(default_factory=list)  # built-in failures no requirement speaks for
    errors: list[str] = field(default_factory=list)
    skipped: str | None = None
    requirements: list[str] = field(default_factory=list)  # the requirement ids this slice judged

    @property
    def name(self) -> str:
        return f"{self.phase}/{self.mode}/{self.operation or 'all-operations'}"

    def to_record(self) -> dict:
        return {
            "phase": self.phase,
            "operation": self.operation,
            "mode": self.mode,
            "cases": self.cases,
            "calls": self.calls,
            "failures": self.failures[:MAX_FAILURES_KEPT],
            "failure_count": len(self.failures),
            "other_findings": self.other_findings[:MAX_FAILURES_KEPT],
            "errors": self.errors,
            "skipped": self.skipped,
            "requirements": self.requirements,
        }


def scenarios(profile: Profile) -> list[tuple[str, str | None, str]]:
    """Every (phase, operation, mode) the run drives, in order."""
    wanted = [p for p in PHASES if p in profile.phases]
    items: list[tuple[str, str | None, str]] = []
    for phase in wanted:
        if phase == "stateful":
            items.append((phase, None, "positive"))
            continue
        for operation in contract.load().operations:
            modes = ("positive",) if phase == "examples" else MODES
            if phase == "coverage":
                modes = ("all",)
            items += [(phase, operation, mode) for mode in modes]
    return items


class _QuietEngine(Engine):
    """The engine without probing, schema analysis and auth bootstrap (not switchable by config in 4.32)."""

    def _create_execution_plan(self) -> ExecutionPlan:
        plan = Engine._create_execution_plan(self)
        skip = (PhaseName.PROBING, PhaseName.SCHEMA_ANALYSIS, PhaseName.AUTH_BOOTSTRAP)
        plan.phases = [phase for phase in plan.phases if phase.name not in skip]
        return plan


def build_config(profile: Profile, phase: str, mode: str) -> schemathesis.Config:
    """The engine configuration for one scenario, from the profile (same settings as ``st run`` flags)."""
    config = schemathesis.Config(seed=profile.seed, max_failures=None, cache=CacheConfig(enabled=False))
    project = config.projects.default
    settings: dict = {
        "base_url": profile.base_url,
        "headers": dict(profile.headers),
        "workers": 1,
        "request_timeout": profile.timeout,
        "tls_verify": profile.tls_verify_setting,
        "continue_on_failure": True,
    }
    if profile.effective_rate_limit:
        settings["rate_limit"] = f"{max(1, int(profile.effective_rate_limit))}/s"
    project.update(**settings)
    modes = [schemathesis.GenerationMode(m) for m in (MODES if mode == "all" else (mode,))]
    project.generation.update(modes=modes, max_examples=profile.max_examples, database="none")
    project.phases.update(phases=[phase])
    if phase == "stateful":
        project.phases.stateful.generation.update(max_examples=max(10, profile.max_examples // 2))
    project.checks.update(excluded_check_names=list(schemathesis_hooks.EXCLUDED_BUILTINS))
    return config


@functools.cache
def _spec_path() -> str:
    return str(contract.load().spec_path)


def run_scenario(
    profile: Profile, phase: str, operation: str | None, mode: str, run: schemathesis_hooks.GeneratedRun | None = None
) -> ScenarioResult:
    """Run one phase for one operation and mode; every response is judged and journaled (through ``run``)."""
    result = ScenarioResult(phase=phase, operation=operation, mode=mode)
    if not profile.money_allowed and (operation in contract.load().rules.money_operations or phase == "stateful"):
        result.skipped = "money movement is not allowed for this target (execute and cancel are not called)"
        return result
    schema = schemathesis.openapi.from_path(_spec_path(), config=build_config(profile, phase, mode))
    if operation is not None:
        schema = schema.include(operation_id=operation)
    journal = None
    if run is not None:
        run.phase = phase
        schemathesis_hooks.attach(schema, run)
        journal = run.journal
    for event in _QuietEngine(schema=schema).execute():
        if isinstance(event, events.ScenarioFinished):
            _collect(result, event, journal)
        elif isinstance(event, events.NonFatalError):
            result.errors.append(f"{event.label}: {event.info.title}: {event.info.message.splitlines()[0]}")
        elif isinstance(event, events.FatalError):
            result.errors.append(f"fatal: {event.exception!r}")
    return result


def _collect(result: ScenarioResult, event: events.ScenarioFinished, journal) -> None:
    recorder = event.recorder
    result.cases += len(recorder.cases)
    result.calls += len(recorder.interactions)
    for case_id, check_results in recorder.checks.items():
        node = recorder.cases.get(case_id)
        curl = node.value.as_curl_command() if node is not None else None
        for check in check_results:
            if check.status.value != "failure" or check.failure_info is None:
                continue
            failure = check.failure_info.failure
            if isinstance(failure, schemathesis_hooks.ConformanceFailure):
                requirement = failure.requirement
                result.failures.append(
                    {"requirement": requirement, "check": check.name, "title": failure.title,
                     "message": failure.message, "curl": curl}
                )
                continue
            # a stock check the suite does not map to a requirement (stateful resource checks, say):
            # reported as a finding, never a verdict
            result.other_findings.append({"requirement": None, "check": f"schemathesis.{check.name}",
                                          "title": failure.title, "message": failure.message, "curl": curl})
