"""The delivery phase: the platform's delivery rules played against the wallet (DLV-001..010).

Each test plays one scenario of :mod:`conformance.simulator.scenarios` (cut-off executes, lost
answers, replays spread over time, duplicates, races, concurrency, load) through the platform
simulator, judges every story with its check in :mod:`conformance.checks.delivery`, records the
typed outcome in the journal, and the scenario's facts (requests, concurrency, latency, money
before/after) in ``delivery.json``. Every adjustment goes through the recording client, so the money
ledger settles whatever a scenario leaves behind.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from conformance.checks import Status
from conformance.checks.delivery import judge
from conformance.simulator import LONG_RETRY_WINDOWS, Platform, Simulation
from conformance.simulator.report import ScenarioLog
from conformance.simulator.scenarios import REQUIREMENTS, SCENARIOS, load_levels
from conformance.suite.plugin import Judged
from conformance.transport import Client

pytestmark = pytest.mark.usefixtures("money")


@pytest.fixture(scope="module")
def simulation(profile, journal, state, accounts):
    rate = profile.effective_delivery_rate_limit
    client = Client(replace(profile, rate_limit=rate or 0), journal)
    platform = Platform(client, concurrency=profile.concurrency)
    yield Simulation(
        platform=platform,
        accounts=tuple(accounts),
        number=state.request_number,
        retry_window=profile.retry_window,
        long_windows=LONG_RETRY_WINDOWS if profile.long_retry_windows else (),
        max_execute_amount=profile.effective_max_execute_amount,
    )
    platform.close()  # waits (bounded) for executes cut off at the deadline: the ledger must see them
    client.close()


@pytest.fixture(scope="module")
def scenario_log(profile, journal, simulation):
    return ScenarioLog(journal.directory, {
        "concurrency": profile.concurrency,
        "load_levels": load_levels(profile.concurrency),
        "rate_limit_per_s": profile.effective_delivery_rate_limit,
        "execute_deadline_s": simulation.platform.deadline_s,
        "cancel_policy": vars(simulation.platform.policy),
        "retry_window_s": profile.retry_window,
        "long_retry_windows_s": list(simulation.long_windows),
    })


@pytest.mark.parametrize(
    "play", [pytest.param(name, marks=pytest.mark.requirement(*REQUIREMENTS[name]), id=name) for name in SCENARIOS]
)
def test_delivery(play, simulation, scenario_log, journal, ctx):
    failures, unjudged, judged = [], [], 0
    for story in SCENARIOS[play](simulation):
        outcome = judge(story.check, ctx, **story.parts)
        if outcome.status is Status.NOT_APPLICABLE:
            outcome = replace(outcome, message=f"{story.scenario}: {story.note or 'the rule did not apply'}")
            unjudged.append(outcome.message)
        else:
            judged += 1
        outcome = journal.add(outcome)
        scenario_log.add(story.record() | {"outcome": outcome.status.value, "message": outcome.message})
        if outcome.status is Status.VIOLATED:
            failures.append(f"{outcome.requirement} violated: [{outcome.check}] {story.scenario}: {outcome.message}")
        elif outcome.status is Status.UNANSWERED:
            failures.append(f"{outcome.requirement}: {story.scenario}: {outcome.message}")
    if failures:
        raise Judged("\n".join(failures))
    if not judged:
        pytest.skip("not judged: " + "; ".join(unjudged))
