"""summary.json: the run's verdicts (built once by :mod:`conformance.verdicts`) with the run's facts."""

from __future__ import annotations

import datetime as dt
import sys
import time

from conformance import __version__, contract, verdicts, waivers
from conformance.profile import Profile
from conformance.simulator.report import summary_section


def build_summary(profile: Profile, state, started: float, *, leftover: list, pytest_exit: int) -> dict:
    spec = contract.load()
    journal = state.journal
    skip_reasons: dict[str, list[str]] = {}
    for result in state.test_results:
        if result["outcome"] == "skipped" and result.get("message"):
            for rid in result["requirements"]:
                skip_reasons.setdefault(rid, []).append(result["message"])
    rows = verdicts.aggregate(
        journal.outcomes, exchanges=journal.exchanges, secrets=journal.secret_headers,
        money_allowed=profile.money_allowed, skip_reasons=skip_reasons, secret_values=journal.secret_values,
    )
    suite_errors = verdicts.suite_errors_from(journal.outcomes)
    if pytest_exit not in (0, 1):  # 2 interrupted, 3 internal error, 4 usage, 5 no tests
        suite_errors.append(f"the test session ended abnormally (pytest exit {pytest_exit})")
    suite_errors += [f"a suite module could not be collected: {e}" for e in getattr(state, "collection_errors", [])]
    broken = [s.name for s in state.scenarios if s.errors or (not s.skipped and s.calls == 0)]
    if broken:  # a generated slice that could not run judged nothing: the run is not complete
        suite_errors.append(f"{len(broken)} generated scenario(s) did not run: {', '.join(broken[:5])}")
    if leftover:
        suite_errors.append(f"{len(leftover)} adjustment(s) could not be compensated: see ledger.json")
    run_verdict = verdicts.RunVerdict(tuple(rows), tuple(suite_errors), profile.flaky_fails)
    # --- nightly: waivers (conformance.waivers.apply is pure; the date is the run's UTC day) ---
    run_verdict, waiver_report = waivers.apply(
        run_verdict, profile.waivers, dt.datetime.fromtimestamp(started, dt.UTC).date(), profile.strict_waivers,
        scopes=waivers.failure_scopes(journal.outcomes, journal.exchanges),
    )
    verdict, exit_code = waiver_report.outcome(run_verdict)
    # --- end nightly ---
    outcomes_by_test = {}
    for result in state.test_results:
        outcomes_by_test[result["outcome"]] = outcomes_by_test.get(result["outcome"], 0) + 1
    finished = time.time()
    return {
        "suite": {"name": "multimarkets-webhook-conformance", "version": __version__},
        "spec": {
            "file": spec.spec_path.name, "sha256": spec.spec_sha256,
            "catalogue": spec.catalogue_path.name, "catalogue_sha256": spec.catalogue_sha256,
            "openapi_version": spec.spec["info"]["version"],
        },
        "target": {"base_url": profile.base_url, "embedded": profile.embedded},
        "run": {
            "id": state.run_id,
            "started_at": dt.datetime.fromtimestamp(started, dt.UTC).isoformat(),
            "finished_at": dt.datetime.fromtimestamp(finished, dt.UTC).isoformat(),
            "duration_s": round(finished - started, 2),
            "seed": profile.seed,
            "max_examples": profile.max_examples,
            "phases": list(profile.phases),
            "money_allowed": profile.money_allowed,
            "python": sys.version.split()[0],
        },
        "verdict": verdict,
        "exit_code": exit_code,
        "counts": run_verdict.counts(),
        "requirements": run_verdict.rows(),
        "tests": {"total": len(state.test_results), **outcomes_by_test},
        "test_results": state.test_results,
        "generated": [s.to_record() for s in state.scenarios],
        "latency": verdicts.latency(journal.exchanges),
        "delivery": summary_section(journal.directory),  # the platform simulator: latency under load, scenarios
        "money": {k: v for k, v in state.ledger.summary().items() if k != "entries"},
        "exchanges": len(journal.exchanges),
        "suite_errors": suite_errors,
        "waivers": waiver_report.to_record(),
        "replays": {"k": profile.replays, "flaky_fails": profile.flaky_fails, "log": list(state.replays)},
    }
