"""Views of a run's verdicts: the table on screen, and the files auditors and CI read.

Every view renders the one per-requirement structure built by :mod:`conformance.verdicts`
(``summary.json["requirements"]``), never pytest's outcomes and never a failure message's text:

- :mod:`~conformance.reporting.junit`: ``junit.xml``, one testcase per requirement;
- :mod:`~conformance.reporting.allure`: one Allure result per requirement (labels in
  :mod:`~conformance.reporting.labels`, categories in :mod:`~conformance.reporting.categories`,
  history in :mod:`~conformance.reporting.history`, the command line and HTML in
  :mod:`~conformance.reporting.html`);
- :mod:`~conformance.reporting.charts`: latency and money moved, as offline SVG;
- :mod:`~conformance.reporting.evidence`: the evidence bundle and ``conformance verify``;
- :mod:`~conformance.reporting.traceability`: requirement → checks → tests → verdict → evidence;
- :mod:`~conformance.reporting.compare`: regressions and recoveries against a previous summary.json;
- :mod:`~conformance.reporting.table`: the table printed at the end of a run;
- :mod:`~conformance.reporting.progress`: live progress while the run works;
- :mod:`~conformance.reporting.redaction`: the one function every writer redacts secrets with.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from conformance.reporting import allure, charts, compare, evidence, html, junit, redaction, table

CHARTS_DIR = "charts"


def finish(result, profile, *, say: Callable[[str], None] = print, environ: Mapping[str, str] | None = None,
           color: bool | None = None) -> None:
    """Everything a run writes after its verdicts exist, then the table on screen.

    In order: secrets redacted from summary.json and the journal files, ``junit.xml`` (replacing
    pytest's), the Allure results (one per requirement) and charts, the comparison with a previous run,
    the HTML report, the evidence bundle, the table. A failing step is one line ("reporting error: ...")
    and a note in summary.json; it never changes the exit code the run decided, and the later steps
    still run. ``say`` may be a :class:`~conformance.reporting.progress.Progress` (its ``waiting`` is used).
    """
    environ = os.environ if environ is None else environ
    secrets = redaction.Secrets.of(profile)
    waiting = getattr(say, "waiting", None)
    if callable(getattr(say, "phase", None)):
        say.phase("reports")
    if color is None:
        color = bool(getattr(say, "tty", False))

    def tell(line: str) -> None:
        say(redaction.scrub(line, secrets))

    def wait(what: str | None) -> None:
        if waiting is not None:
            waiting(what)

    report_dir = Path(result.report_dir)
    errors: list[str] = []

    def step(name: str, action: Callable[[], object]) -> object:
        try:
            return action()
        except Exception as error:  # reporting never turns into a traceback or a different verdict
            message = redaction.scrub(f"{name}: {type(error).__name__}: {error}", secrets)
            tell(f"reporting error: {message}")
            errors.append(f"reporting error: {message}")
            return None

    summary = redaction.scrub(result.summary, secrets)
    if summary != result.summary:
        result.summary = summary
        step("summary", lambda: _write_summary(report_dir, summary))
    step("secret scan", lambda: redaction.scrub_tree(report_dir, secrets, skip=(allure.RESULTS_DIR,)))
    step("junit", lambda: junit.write(report_dir, summary))
    wait("writing the Allure results")
    step("allure results", lambda: allure.prepare_results(report_dir, summary, profile, environ, tell))
    step("charts", lambda: _write_charts(report_dir, summary))
    step("secret scan", lambda: redaction.scrub_tree(report_dir / allure.RESULTS_DIR, secrets))
    if getattr(profile, "compare", None):
        step("compare", lambda: compare.compare_with_previous(summary, profile.compare, report_dir, tell))
    if getattr(profile, "html", True):
        wait("rendering report.html (allure generate, Java)")
        step("HTML report", lambda: html.generate_html(report_dir, tell, environ))
    else:
        tell("HTML report skipped: turned off (--no-html)")
    if errors:
        _note(report_dir, summary, errors, secrets)
    wait("writing the evidence bundle")
    bundle = step("evidence bundle", lambda: evidence.write_bundle(
        report_dir, secrets=secrets, signing_key=getattr(profile, "signing_key", None)))
    wait(None)
    if bundle is not None:
        signed = f"signed by key {bundle.fingerprint}" if bundle.signed else "unsigned"
        tell(f"evidence: {bundle.path} ({bundle.files} files, {signed}; check with: conformance verify {bundle.path}"
             + (f" --fingerprint {bundle.fingerprint}" if bundle.signed else "") + ")")
        if bundle.redactions:
            tell(f"evidence: redacted secret values in {', '.join(sorted(bundle.redactions))}")
    elif errors:
        _note(report_dir, summary, errors, secrets)
    for line in step("table", lambda: table.render(summary, color=color)) or ():
        say(redaction.scrub(line, secrets))
    tell(f"reports: {report_dir}")


def _write_summary(report_dir: Path, summary: dict) -> None:
    (report_dir / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False, default=str) + "\n",
                                             encoding="utf-8")


def _write_charts(report_dir: Path, summary: dict) -> list[Path]:
    directory = report_dir / CHARTS_DIR
    directory.mkdir(exist_ok=True)
    written = []
    for name, svg in charts.render(report_dir, summary).items():
        (directory / name).write_text(svg, encoding="utf-8")
        written.append(directory / name)
    return written


def _note(report_dir: Path, summary: dict, errors: list[str], secrets: redaction.Secrets) -> None:
    """Record reporting errors in summary.json (suite_errors); the verdict and exit code stay as they were."""
    listed = summary.setdefault("suite_errors", [])
    for error in errors:
        if error not in listed:
            listed.append(error)
    with contextlib.suppress(OSError):
        _write_summary(report_dir, redaction.scrub(summary, secrets))
