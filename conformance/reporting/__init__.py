"""Views of a run's verdicts: the table on screen, and the files auditors and CI read.

Every view is derived from the one ``summary.json`` structure built by
:mod:`conformance.verdicts` and the journal's recorded exchanges:

- :mod:`~conformance.reporting.allure`: environment, executor, categories, history and the HTML report;
- :mod:`~conformance.reporting.compare`: regressions and recoveries against a previous summary.json;
- :mod:`~conformance.reporting.evidence`: the evidence bundle and ``conformance verify``;
- :mod:`~conformance.reporting.traceability`: requirement → checks → tests → verdict → evidence;
- :mod:`~conformance.reporting.table`: the table printed at the end of a run.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from conformance.reporting import allure, compare, evidence, redaction, table


def finish(result, profile, *, say: Callable[[str], None] = print, environ: Mapping[str, str] | None = None) -> None:
    """Everything a run writes after its verdicts exist, then the table on screen.

    In order: Allure environment/executor/categories/history (and the generated tests'
    labels), a last scrub of secrets from every report file, the comparison with a
    previous run, the HTML report, the evidence bundle, the table. A failing step is one
    line ("reporting error: ...") and a note in summary.json; it never changes the exit
    code the run decided, and the later steps still run.
    """
    environ = os.environ if environ is None else environ
    secrets = tuple(getattr(profile, "secret_values", ()))

    def tell(line: str) -> None:
        for secret in redaction.usable(secrets):
            line = line.replace(secret, "<redacted>")
        say(line)

    report_dir = Path(result.report_dir)
    errors: list[str] = []

    def step(name: str, action: Callable[[], object]) -> object:
        try:
            return action()
        except Exception as error:  # reporting never turns into a traceback or a different verdict
            message = f"{name}: {type(error).__name__}: {error}"
            tell(f"reporting error: {message}")
            errors.append(f"reporting error: {message}")
            return None

    step("allure results", lambda: allure.prepare_results(report_dir, result.summary, profile, environ, tell))
    scrubbed = step("secret scan", lambda: redaction.scrub_tree(report_dir, secrets))
    if scrubbed:
        tell(f"secrets: redacted {sum(scrubbed.values())} leaked secret value(s) in {', '.join(sorted(scrubbed))}")
    if getattr(profile, "compare", None):
        step("compare", lambda: compare.compare_with_previous(result.summary, profile.compare, report_dir, tell))
    if getattr(profile, "html", True):
        step("HTML report", lambda: allure.generate_html(report_dir, tell, environ))
    else:
        tell("HTML report skipped: turned off (--no-html)")
    if errors:
        _note(report_dir, result.summary, errors, secrets)
    bundle = step("evidence bundle", lambda: evidence.write_bundle(
        report_dir, secrets=secrets, signing_key=getattr(profile, "signing_key", None)))
    if bundle is not None:
        signed = "signed" if bundle.signed else "unsigned"
        tell(f"evidence: {bundle.path} ({bundle.files} files, {signed}; check with: conformance verify {bundle.path})")
        if bundle.redactions:
            tell(f"evidence: redacted secret values in {', '.join(sorted(bundle.redactions))}")
    elif errors:
        _note(report_dir, result.summary, errors, secrets)
    for line in step("table", lambda: table.render(result.summary)) or ():
        tell(line)
    tell(f"reports: {report_dir}")


def _note(report_dir: Path, summary: dict, errors: list[str], secrets: tuple[str, ...]) -> None:
    """Record reporting errors in summary.json (suite_errors); the verdict and exit code stay as they were."""
    listed = summary.setdefault("suite_errors", [])
    for error in errors:
        if error not in listed:
            listed.append(error)
    text = json.dumps(summary, indent=2, ensure_ascii=False, default=str) + "\n"
    data, _ = redaction.redact(text.encode("utf-8"), secrets)
    with contextlib.suppress(OSError):
        (report_dir / "summary.json").write_bytes(data)
