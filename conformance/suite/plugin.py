"""The pytest plugin that runs the conformance suite against one target.

``conformance run`` starts pytest in-process on this package with an instance
of :class:`SuitePlugin`, which hands the tests their fixtures (the profile, the
recording client, the journal, the money ledger) and labels every test for
Allure from the requirement catalogue. Tests declare what they judge with
``@pytest.mark.requirement("ID", ...)`` and assert with :func:`expect`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest

from conformance import contract
from conformance.checks import Outcome
from conformance.exchange import Exchange
from conformance.journal import Journal
from conformance.ledger import Ledger
from conformance.profile import Profile
from conformance.transport import Client
from conformance.verdicts import SUITE_DEFECT

REFERENCE_URL = "spec/webhook-api.reference.md#section-{section}"
EPIC = "MultiMarkets Webhook API"


@dataclass
class RunState:
    """Everything one run shares between its tests."""

    profile: Profile
    journal: Journal
    ledger: Ledger
    run_id: str
    scenarios: list = field(default_factory=list)  # generated.ScenarioResult, in run order
    test_results: list = field(default_factory=list)  # one dict per handwritten/generated test

    def request_number(self, label: str) -> str:
        """A fresh requestUniqueNo (max 48 characters) in this run's namespace."""
        return f"cf-{self.run_id}-{label}-{uuid.uuid4().hex[:10]}"[:48]


class SuitePlugin:
    def __init__(self, state: RunState, progress: Callable[[str], None] | None = None):
        self._state = state
        self._progress = progress
        self._total = 0
        self._client: Client | None = None
        self._requirements: dict[str, list[str]] = {}

    # ---------------------------------------------------------------- fixtures
    @pytest.fixture(scope="session")
    def state(self) -> RunState:
        return self._state

    @pytest.fixture(scope="session")
    def profile(self) -> Profile:
        return self._state.profile

    @pytest.fixture(scope="session")
    def journal(self) -> Journal:
        return self._state.journal

    @pytest.fixture(scope="session")
    def ctx(self):
        return self._state.journal.ctx

    @pytest.fixture(scope="session")
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self._state.profile, self._state.journal)
        return self._client

    @pytest.fixture
    def origin(self, request) -> str:
        return f"handwritten/{request.node.nodeid}"

    @pytest.fixture
    def money(self, profile: Profile) -> None:
        """Tests that call execute or cancel depend on this fixture."""
        if not profile.money_allowed:
            pytest.skip("money movement is not allowed for this target (use --allow-money-movement)")

    # ------------------------------------------------------------------ hooks
    def pytest_configure(self, config) -> None:
        config.addinivalue_line("markers", "requirement(*ids): the catalogue requirements a test judges")

    def pytest_generate_tests(self, metafunc) -> None:
        if "scenario" in metafunc.fixturenames:
            from conformance import generated

            items = generated.scenarios(self._state.profile)
            ids = [f"{phase}-{mode}-{op or 'all-operations'}" for phase, op, mode in items]
            metafunc.parametrize("scenario", items, ids=ids)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item) -> None:
        label_for_allure(item)

    def pytest_runtest_logreport(self, report) -> None:
        """Keep each test's result with the requirements it judges (for skip reasons and test-level failures)."""
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            message = None
            if report.outcome == "skipped" and isinstance(report.longrepr, tuple):
                message = str(report.longrepr[2]).removeprefix("Skipped: ")
            elif report.outcome == "failed":
                message = str(
                    (getattr(report.longrepr, "reprcrash", None) and report.longrepr.reprcrash.message)
                    or report.longreprtext
                )[:2000]
            self._state.test_results.append(
                {
                    "nodeid": report.nodeid,
                    "outcome": report.outcome,
                    "requirements": list(self._requirements.get(report.nodeid, [])),
                    "message": message,
                    "duration_s": round(report.duration, 3),
                }
            )
            if self._progress is not None:
                done = len(self._state.test_results)
                self._progress(f"[{done:>4}/{self._total}] {report.outcome:<7} {report.nodeid}")

    def pytest_collection_modifyitems(self, config, items) -> None:
        phases = self._state.profile.phases
        kept = [item for item in items if item_phase(item) in phases or item_phase(item) == "generated"]
        if len(kept) < len(items):  # --phases without handwritten or delivery: those tests are deselected
            config.hook.pytest_deselected(items=[item for item in items if item not in kept])
            items[:] = kept
        self._requirements = {item.nodeid: requirement_ids(item) for item in items}
        self._total = len(items)

    def pytest_sessionfinish(self, session) -> None:
        if self._client is not None:
            self._client.close()


def item_phase(item) -> str:
    """generated (a Schemathesis slice: filtered by phase itself), delivery (the simulator) or handwritten."""
    if "scenario" in getattr(item, "fixturenames", ()):
        return "generated"
    return "delivery" if item.nodeid.split("::", 1)[0].endswith("test_delivery.py") else "handwritten"


def requirement_ids(item) -> list[str]:
    return [rid for marker in item.iter_markers("requirement") for rid in marker.args]


def label_for_allure(item) -> None:
    """Epic, feature, story, severity, tag and a link to the reference, from the catalogue."""
    try:
        import allure
    except ImportError:  # allure-pytest is a dependency; tolerate its absence in odd installs
        return
    catalogue = contract.load().requirements
    ids = requirement_ids(item)
    if not ids:
        return
    allure.dynamic.epic(EPIC)
    operation = getattr(getattr(item, "callspec", None), "params", {}).get("operation")
    operations = [operation] if operation else sorted({op for rid in ids for op in catalogue[rid].operations})
    for op in operations:
        allure.dynamic.feature(op)
    must = any(catalogue[rid].is_must for rid in ids)
    allure.dynamic.severity(allure.severity_level.CRITICAL if must else allure.severity_level.MINOR)
    for rid in ids:
        requirement = catalogue[rid]
        allure.dynamic.story(f"{rid} {requirement.statement}")
        allure.dynamic.tag(rid)
        allure.dynamic.label("requirement", rid)
        allure.dynamic.label("level", requirement.level)
        for section in requirement.source:
            allure.dynamic.link(REFERENCE_URL.format(section=section), name=f"reference §{section}")


def attach_exchanges(exchanges: Iterable[Exchange], secrets: frozenset[str]) -> None:
    """Attach the curl command and the request/response of each exchange to the Allure result."""
    try:
        import json

        import allure
    except ImportError:
        return
    for exchange in exchanges:
        allure.attach(
            exchange.as_curl(secrets), name=f"{exchange.id} curl", attachment_type=allure.attachment_type.TEXT
        )
        allure.attach(
            json.dumps(exchange.to_record(secrets), indent=2, ensure_ascii=False),
            name=f"{exchange.id} exchange",
            attachment_type=allure.attachment_type.JSON,
        )


def expect(journal: Journal, requirement: str, *subjects: Exchange | Outcome | None) -> None:
    """Assert that ``requirement`` was judged on the subjects and held.

    A subject is an exchange (its recorded outcomes for ``requirement`` count) or
    an outcome of a conversation check. If nothing judged the requirement, the
    test itself is wrong (its probe did not reach the rule): that fails loudly
    rather than passing quietly.
    """
    outcomes: list[Outcome] = []
    exchanges: list[Exchange] = []
    for subject in subjects:
        if subject is None:
            continue
        if isinstance(subject, Outcome):
            if subject.requirement == requirement:
                outcomes.append(subject)
            exchanges += [e for e in (journal.exchange(i) for i in subject.exchanges) if e is not None]
        else:
            exchanges.append(subject)
            outcomes += [o for o in journal.outcomes_for(requirement) if subject.id in o.exchanges]
    failed = [o for o in outcomes if not o.passed]
    if failed or not outcomes:
        attach_exchanges(dict.fromkeys(exchanges), journal.secret_headers)
    unanswered = [e.error for e in exchanges if e.response is None]
    if failed:
        detail = "; ".join(f"[{o.check}] {o.message}" for o in failed)
        raise AssertionError(f"{requirement} violated: {detail}")
    if unanswered:  # one unanswered call among answered ones is enough: the rule was not kept on it
        raise AssertionError(f"{requirement}: could not be judged, the target did not answer: {unanswered[0]}")
    if not outcomes:
        raise AssertionError(f"{requirement}: the probe did not reach the rule (no check applied); {SUITE_DEFECT}")


def judged(journal: Journal, outcome: Outcome | None) -> Outcome | None:
    """Record a conversation check's outcome in the journal and return it."""
    return journal.add(outcome)


def require_answer(*exchanges: Exchange | None) -> None:
    """Stop a conversation early when a step got no answer (its own checks report why)."""
    for exchange in exchanges:
        if exchange is not None and exchange.response is None:
            raise AssertionError(f"the target did not answer {exchange.operation}: {exchange.error}")


def any_of(values: Iterable[Any]) -> Any:
    return next(iter(values))
