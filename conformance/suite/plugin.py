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
from conformance.checks import Outcome, Status
from conformance.exchange import Exchange
from conformance.journal import Journal
from conformance.ledger import Ledger
from conformance.money_journal import ExposureRefused
from conformance.profile import Profile
from conformance.transport import Client

REFERENCE_URL = "spec/webhook-api.reference.md#section-{section}"
EPIC = "MultiMarkets Webhook API"


@dataclass
class RunState:
    """Everything one run shares between its tests."""

    profile: Profile
    journal: Journal
    ledger: Ledger
    run_id: str
    generated: Any = None  # schemathesis_hooks.GeneratedRun: what the generated slices' hooks are handed
    scenarios: list = field(default_factory=list)  # generated.ScenarioResult, in run order
    collection_errors: list = field(default_factory=list)  # suite modules that could not be collected
    test_results: list = field(default_factory=list)  # one dict per handwritten/generated test
    replays: list = field(default_factory=list)  # nightly: one dict per replay attempt (suite.replay)

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

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item):
        """Run the test inside the journal's judging context, and type how it ended.

        A test that ends in :class:`Judged` has recorded its outcomes already. One that ends in
        :class:`Unanswered` or :class:`Blocked` records that for each of its requirements it did not judge.
        Any other exception is the suite's own defect, recorded as such: never the target's failure.
        """
        journal = self._state.journal
        attempt = getattr(item, "conformance_attempt", 0)
        with journal.context(item.nodeid, attempt):
            try:
                return (yield)
            except Judged:
                raise
            except ExposureRefused as error:  # the suite's own money bound: not judged, and says why
                raise pytest.skip.Exception(f"not judged: {error}") from None
            except Exception as error:  # pytest's skip/fail/exit are BaseExceptions and pass through
                self._type_unjudged(item, error)
                raise

    def _type_unjudged(self, item, error: BaseException) -> None:
        journal = self._state.journal
        done = {o.requirement for o in journal.outcomes_of(item.nodeid, getattr(item, "conformance_attempt", 0))
                if o.status is not Status.NOT_APPLICABLE}
        for requirement in requirement_ids(item):
            if requirement in done:
                continue
            if isinstance(error, Unanswered):
                _record(journal, requirement, Status.UNANSWERED, str(error), [e.id for e in error.exchanges])
            elif isinstance(error, Blocked):
                _record(journal, requirement, Status.BLOCKED, str(error), blocked_by=error.blocked_by)
            else:
                _record(journal, requirement, Status.SUITE_DEFECT,
                        f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"[:300])

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
                done_hook = getattr(self._progress, "test_done", None)
                if done_hook is not None:  # a reporting.progress.Progress: compact, live, or a line per test
                    done_hook(report.nodeid, report.outcome)
                else:
                    done = len(self._state.test_results)
                    self._progress(f"[{done:>4}/{self._total}] {report.outcome:<7} {report.nodeid}")

    def pytest_collectreport(self, report) -> None:
        if report.failed:  # a suite module that cannot be imported: say which and why, not only "exit 2"
            text = str(getattr(report, "longreprtext", "") or report.longrepr or "")
            last = next((line.strip() for line in reversed(text.splitlines()) if line.strip()), "")
            self._state.collection_errors.append(f"{report.nodeid or 'collection'}: {last[:200]}")

    def pytest_collection_modifyitems(self, config, items) -> None:
        phases = self._state.profile.phases
        kept = [item for item in items if item_phase(item) in phases or item_phase(item) == "generated"]
        if len(kept) < len(items):  # --phases without handwritten or delivery: those tests are deselected
            config.hook.pytest_deselected(items=[item for item in items if item not in kept])
            items[:] = kept
        self._requirements = {item.nodeid: requirement_ids(item) for item in items}
        self._total = len(items)
        start = getattr(self._progress, "start", None)
        if start is not None:
            start(self._total, "handwritten, generated and delivery tests")

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


class Judged(AssertionError):
    """Raised after a test's outcomes were recorded as data: a violation or an unanswered probe."""


class Blocked(Exception):
    """The test cannot judge its requirements: another requirement's violation stopped it."""

    def __init__(self, blocked_by: str, message: str):
        super().__init__(message)
        self.blocked_by = blocked_by


def _record(journal: Journal, requirement: str, status: Status, message: str, exchanges=(), **extra) -> Outcome:
    return journal.add(Outcome(requirement, "suite.expect", status, message, tuple(exchanges), **extra))


def expect(journal: Journal, requirement: str, *subjects: Exchange | Outcome | None) -> None:
    """Record how ``requirement`` fared on the subjects, as typed outcomes, and raise :class:`Judged` if it failed.

    A subject is an exchange (its recorded outcomes for ``requirement`` count) or an outcome of a
    conversation check. An unanswered exchange is an UNANSWERED outcome (never a pass). If nothing judged
    the requirement, the probe did not reach the rule: a SUITE_DEFECT outcome (the run is not sound).
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
    unanswered = [e for e in dict.fromkeys(exchanges) if e.response is None]
    for exchange in unanswered:
        _record(journal, requirement, Status.UNANSWERED, f"the target did not answer: {exchange.error}", (exchange.id,))
    failed = [o for o in outcomes if o.status.against_target]
    judged = [o for o in outcomes if o.status.judged]
    if failed or unanswered or not judged:
        attach_exchanges(dict.fromkeys(exchanges), journal.secret_headers)
    if failed:
        detail = "; ".join(f"[{o.check}] {o.message}" for o in failed)
        raise Judged(f"{requirement} violated: {detail}")
    if unanswered:  # one unanswered call among answered ones is enough: the rule was not kept on it
        raise Judged(f"{requirement}: the target did not answer: {unanswered[0].error}")
    if not judged:
        inapplicable = [o for o in outcomes if o.status in (Status.NOT_APPLICABLE, Status.VACUOUS)]
        if inapplicable:
            return  # the target's own (legal) answer made the rule inapplicable: recorded as such, not a defect
        failing = [e for e in exchanges if e.response is not None and e.response.status >= 500]
        if failing:  # a server error leaves the probe's rule nothing to judge: ROB-001 judges the answer itself
            _record(journal, requirement, Status.NOT_APPLICABLE,
                    f"the target answered HTTP {failing[0].response.status}: ROB-001 judges it",
                    [e.id for e in failing])
            return
        _record(journal, requirement, Status.SUITE_DEFECT, "the probe did not reach the rule (no check applied)",
                [e.id for e in exchanges])
        raise Judged(f"{requirement}: the probe did not reach the rule (no check applied): a suite defect")


def expect_all(journal: Journal, checks: dict[str, Any], *, gate: str | tuple[str, ...] | None = None) -> None:
    """Judge several requirements of one conversation; collect every failure before raising one :class:`Judged`.

    ``checks`` maps a requirement id to its subject: an outcome, an exchange, a tuple of them, or a callable
    that judges it (called only when no gate failed: a blocked rule then records no outcome of its own).
    ``gate`` names the requirement(s) whose violation makes the others meaningless: gates are judged first,
    and when one fails, the others are recorded BLOCKED by it instead of being judged.
    """
    gates = (gate,) if isinstance(gate, str) else tuple(gate or ())
    failures = []
    blocker: str | None = None
    items = sorted(checks.items(), key=lambda item: item[0] not in gates)
    for requirement, subject in items:
        if blocker is not None and requirement not in gates:
            _record(journal, requirement, Status.BLOCKED, f"not judged: blocked by the {blocker} violation",
                    blocked_by=blocker)
            continue
        if callable(subject):  # judged only now, once its gates held: a blocked rule records no verdict of its own
            subject = subject()
        subjects = subject if isinstance(subject, tuple) else (subject,)
        try:
            expect(journal, requirement, *subjects)
        except Judged as error:
            failures.append(str(error))
            if requirement in gates and blocker is None:
                blocker = requirement
    if failures:
        raise Judged("\n".join(failures))


def judged(journal: Journal, outcome: Outcome | None) -> Outcome | None:
    """Record a conversation check's outcome in the journal and return it."""
    return journal.add(outcome)


class Unanswered(Exception):
    """A step of a conversation got no answer: the test's requirements are UNANSWERED (never passed)."""

    def __init__(self, exchanges: list[Exchange]):
        first = exchanges[0]
        super().__init__(f"the target did not answer {first.operation}: {first.error}")
        self.exchanges = exchanges


def require_answer(*exchanges: Exchange | None) -> None:
    """Stop a conversation early when a step got no answer (the plugin records it for the test's requirements)."""
    missing = [e for e in exchanges if e is not None and e.response is None]
    if missing:
        raise Unanswered(missing)
