"""Property-based runs, one test per Schemathesis phase, operation and mode.

Each test drives Schemathesis' engine for its slice of the spec. Every response
was judged by the suite's checks as it arrived (and recorded in the journal);
the test fails when any requirement was violated in its slice.
"""

from __future__ import annotations

import pytest

from conformance import generated
from conformance.suite.plugin import Judged


def test_generated(scenario, profile, state, journal):
    phase, operation, mode = scenario
    _label(phase, operation, mode)
    first_outcome = len(journal.outcomes)
    result = generated.run_scenario(profile, phase, operation, mode, state.generated)
    state.scenarios.append(result)
    _label_requirements(journal.outcomes[first_outcome:], result)
    if result.skipped:
        pytest.skip(result.skipped)
    if result.errors:
        raise AssertionError("Schemathesis could not run this scenario: " + "; ".join(result.errors[:3]))
    assert result.calls > 0, f"{result.name}: Schemathesis sent no request"
    if result.failures:  # each one was recorded as a typed outcome when it was judged
        lines = sorted({f"{f['requirement']}: {f['message']}"[:300] for f in result.failures})
        raise Judged(f"{len(result.failures)} violation(s) in {result.name}:\n" + "\n".join(lines[:15]))


def _label(phase, operation, mode):
    try:
        import allure
    except ImportError:
        return
    allure.dynamic.epic("MultiMarkets Webhook API")
    allure.dynamic.feature(operation or "all operations (stateful)")
    allure.dynamic.story(f"generated: {phase} phase, {mode} data")
    allure.dynamic.parameter("operation", operation or "all")
    allure.dynamic.parameter("phase", phase)
    allure.dynamic.parameter("mode", mode)
    allure.dynamic.tag("generated")
    allure.dynamic.label("requirement", "generated")


def _label_requirements(outcomes, result):
    """Every requirement this slice judged becomes a label and a tag; failing cases are attached with their curl."""
    try:
        import allure
    except ImportError:
        return
    judged = sorted({o.requirement for o in outcomes} | {f["requirement"] for f in result.failures if f["requirement"]})
    result.requirements = judged
    for rid in judged:
        allure.dynamic.label("requirement", rid)
        allure.dynamic.tag(rid)
    if result.failures:
        lines = []
        for failure in result.failures[:50]:
            lines += [
                f"{failure['requirement']} [{failure['check']}] {failure['message']}",
                failure.get("curl") or "",
                "",
            ]
        allure.attach("\n".join(lines), name="failing cases (curl)", attachment_type=allure.attachment_type.TEXT)
