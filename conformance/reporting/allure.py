"""The Allure view of a run: one result per requirement, rendered from ``summary.json``'s verdicts.

allure-pytest writes one result per test into ``allure-results/`` while the suite runs. After the run,
:func:`prepare_results` turns that folder into a report an auditor reads by requirement:

- every requirement of the catalogue becomes one result (under the "Requirements" parent suite; labels
  from :mod:`~conformance.reporting.labels`), whose Allure status is its verdict status
  (:mod:`~conformance.reporting.categories`), whose description is the statement, the documentation's
  clause and the verdict's reason, and whose attachments are its failing evidence (request/response
  exchanges, curl, and for money rules the ledger entries);
- the tests and generated slices that judged it are steps beneath it, each with the status of *its
  outcomes for this requirement* (from ``outcomes.jsonl``, typed data) and the attachments its test made;
- the tests' own results move to ``allure-results/tests/`` (kept in the evidence, not read by Allure),
  so the overview ring counts requirements, never tests;
- one container (set-up step "run overview") carries the run's charts (:mod:`~conformance.reporting.charts`)
  to every requirement result without adding to the counts;
- ``environment.properties``, ``executor.json`` (:mod:`~conformance.reporting.history`),
  ``categories.json`` and the carried-over ``history/``.

The HTML side (``allure generate``, the shipped reference page) is :mod:`~conformance.reporting.html`.
"""

from __future__ import annotations

import json
import shutil
import sys
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from conformance.reporting import categories, charts, history, labels
from conformance.reporting.html import HTML_FILE, REPORT_DIR, RESULTS_DIR, generate_html  # noqa: F401
from conformance.reporting.redaction import public_url

TESTS_DIR = "tests"  # allure-results/tests/: the tests' own results, out of Allure's sight
EPIC = labels.EPIC
#: Allure status of a step, from the worst outcome status a test recorded for the requirement.
STEP_STATUS = (("violated", "failed"), ("unanswered", "failed"), ("suite_defect", "broken"),
               ("passed", "passed"), ("blocked", "skipped"), ("not_applicable", "skipped"))


# ---------------------------------------------------------------- environment
def environment(summary: dict[str, Any]) -> dict[str, str]:
    spec = summary.get("spec", {})
    run = summary.get("run", {})
    target = summary.get("target", {})
    counts = summary.get("counts", {})
    values = {
        "target.url": public_url(target.get("base_url")),
        "target.kind": "embedded reference wallet" if target.get("embedded") else "external",
        "suite.version": str(summary.get("suite", {}).get("version", "")),
        "spec.file": str(spec.get("file", "")),
        "spec.sha256": str(spec.get("sha256", "")),
        "spec.openapi_version": str(spec.get("openapi_version", "")),
        "catalogue.file": str(spec.get("catalogue", "")),
        "catalogue.sha256": str(spec.get("catalogue_sha256", "")),
        "run.id": str(run.get("id", "")),
        "run.seed": str(run.get("seed", "")),
        "run.max_examples": str(run.get("max_examples", "")),
        "run.phases": ",".join(run.get("phases", [])),
        "run.money_allowed": str(run.get("money_allowed", "")).lower(),
        "run.started_at": str(run.get("started_at", "")),
        "verdict": f"{summary.get('verdict', '')} (exit {summary.get('exit_code', '')})",
        "python": str(run.get("python") or sys.version.split()[0]),
        **_waiver_properties(summary),  # nightly: every waiver that applied, expired or is no longer needed
    }
    for level in ("MUST", "SHOULD"):
        c = counts.get(level, {})
        values[f"requirements.{level}"] = ", ".join(f"{c[s]} {s}" for s in c if c[s]) or "none"
    for index, error in enumerate(summary.get("suite_errors", []), start=1):
        values[f"suite_error.{index}"] = str(error)
    return values


def _waiver_properties(summary: dict[str, Any]) -> dict[str, str]:
    report = summary.get("waivers") or {}
    return {f"waiver.{w['requirement']}": f"{w.get('state')}: owner {w.get('owner')}, {w.get('ticket')}, "
            f"expires {w.get('expires')}" for group in ("applied", "expired", "not_needed")
            for w in report.get(group, [])}


def _property_escape(text: str, key: bool = False) -> str:
    text = text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    if key:
        text = text.replace("=", "\\=").replace(":", "\\:").replace(" ", "\\ ")
    return "".join(c if ord(c) < 127 else f"\\u{ord(c):04x}" for c in text)


def write_environment(results: Path, summary: dict[str, Any]) -> Path:
    path = results / "environment.properties"
    lines = [f"{_property_escape(k, key=True)}={_property_escape(v)}" for k, v in environment(summary).items()]
    path.write_text("\n".join(lines) + "\n", encoding="latin-1")
    return path


def read_properties(path: Path) -> dict[str, str]:
    """Read back a properties file written by :func:`write_environment` (for tests and tooling)."""
    values = {}
    for line in path.read_text(encoding="latin-1").splitlines():
        if not line or line.startswith(("#", "!")):
            continue
        key, _, value = line.partition("=")
        values[key.replace("\\", "")] = value.encode("latin-1").decode("unicode_escape")
    return values


# -------------------------------------------------------------- the run's data
def _read_jsonl(path: Path) -> Iterable[dict]:
    if not path.exists():
        return
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                try:
                    yield json.loads(line)
                except ValueError:
                    continue


class _Run:
    """What the requirement results need besides summary.json: exchanges, outcomes, ledger, test results."""

    def __init__(self, report_dir: Path):
        self.exchanges = {r["id"]: r for r in _read_jsonl(report_dir / "exchanges.jsonl") if "id" in r}
        self.outcomes: dict[tuple[str, str], list[dict]] = defaultdict(list)  # (requirement, origin) -> outcomes
        for outcome in _read_jsonl(report_dir / "outcomes.jsonl"):
            self.outcomes[(outcome.get("requirement", ""), outcome.get("origin", ""))].append(outcome)
        try:
            self.ledger = json.loads((report_dir / "ledger.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.ledger = {}
        self.tests: dict[str, dict] = {}  # test node id (and generated slice origin) -> allure-pytest result


def _nodeid(result: dict) -> str:
    module, _, _function = str(result.get("fullName", "")).partition("#")
    return f"{module.replace('.', '/')}.py::{result.get('name', '')}"


def _parameter(result: dict, name: str) -> str | None:
    for parameter in result.get("parameters", []):
        if parameter.get("name") == name:
            value = str(parameter.get("value", ""))
            return value[1:-1] if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"" else value
    return None


def set_aside_test_results(results: Path) -> dict[str, dict]:
    """Move allure-pytest's per-test results (and their containers) to ``tests/``; {node id or origin: result}."""
    aside = results / TESTS_DIR
    aside.mkdir(exist_ok=True)
    found: dict[str, dict] = {}
    for path in sorted(results.glob("*-result.json")) + sorted(results.glob("*-container.json")):
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            result = None
        shutil.move(str(path), aside / path.name)
        if result is None or not path.name.endswith("-result.json") or "fullName" not in result:
            continue
        found[_nodeid(result)] = result
        phase, mode = _parameter(result, "phase"), _parameter(result, "mode")
        if phase and mode:  # a generated slice: its outcomes' origin is generated/<phase>/<mode>
            found.setdefault(f"generated/{phase}/{mode}", result)
    return found


# ---------------------------------------------------------- requirement results
def _attach(results: Path, owner: dict, name: str, content: str | bytes, kind: str, extension: str) -> None:
    source = f"{uuid.uuid4()}-attachment.{extension}"
    data = content.encode("utf-8") if isinstance(content, str) else content
    (results / source).write_bytes(data)
    owner.setdefault("attachments", []).append({"name": name, "source": source, "type": kind})


def _step_status(outcomes: list[dict]) -> tuple[str, str | None]:
    statuses = {o.get("status") for o in outcomes}
    for status, allure_status in STEP_STATUS:
        if status in statuses:
            message = next((o.get("message") for o in outcomes if o.get("status") == status and o.get("message")),
                           None)
            return allure_status, message
    return "unknown", None


def _steps(row: dict, run: _Run, start: int, stop: int) -> list[dict]:
    steps = []
    for origin in row.get("tests", []):
        outcomes = run.outcomes.get((row["id"], origin), [])
        status, message = _step_status(outcomes)
        counts = defaultdict(int)
        for outcome in outcomes:
            counts[outcome.get("status")] += 1
        step: dict[str, Any] = {
            "name": f"{origin}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())),
            "status": status, "stage": "finished", "start": start, "stop": stop,
        }
        if message:
            step["statusDetails"] = {"message": message}
        test = run.tests.get(origin)
        if test is not None:
            step["attachments"] = list(test.get("attachments", []))
            step["parameters"] = list(test.get("parameters", []))
        steps.append(step)
    return steps


def _description(row: dict) -> str:
    lines = [f"**{row['id']}** ({row['level']}, {row.get('basis', '')}): {row['statement']}", ""]
    if row.get("clause"):
        lines += [f"> {row['clause']}", ""]
    sections = ", ".join(f"[§{s}]({labels.reference_url(s)})" for s in row.get("source", []))
    lines.append(f"Reference: {sections or 'none'}. Operations: {', '.join(row.get('operations', [])) or 'all'}.")
    lines.append("")
    lines.append(f"Verdict: **{row['status']}**" + (f": {row['reason']}" if row.get("reason") else ""))
    if row.get("blocked_by"):
        lines.append(f"Blocked by: {', '.join(row['blocked_by'])}")
    if row.get("waiver"):
        waiver = row["waiver"]
        lines.append(f"Waiver: {waiver.get('reason')} (owner {waiver.get('owner')}, ticket {waiver.get('ticket')}, "
                     f"expires {waiver.get('expires')})")
    outcomes = ", ".join(f"{n} {s}" for s, n in sorted((row.get("outcomes") or {}).items()))
    lines += ["", f"Outcomes: {outcomes or 'none'}. Checks: {', '.join(row.get('checks', [])) or 'none'}."]
    return "\n".join(lines)


def _message(row: dict) -> str:
    head = categories.headline(row["status"], row["level"])
    detail = row.get("reason")
    if not detail and row.get("failing_examples"):
        example = row["failing_examples"][0]
        detail = f"[{example.get('check')}] {example.get('message') or example.get('status')}"
    return f"{head}: {row['id']}" + (f": {detail}" if detail else "")


def _evidence(results: Path, result: dict, row: dict, run: _Run) -> None:
    for index, example in enumerate(row.get("failing_examples", []), start=1):
        title = f"example {index}: {example.get('check')}"
        if example.get("curl"):
            _attach(results, result, f"{title} curl", example["curl"], "text/plain", "txt")
        record = dict(example)
        record["exchange_records"] = [run.exchanges[i] for i in example.get("exchanges", []) if i in run.exchanges]
        _attach(results, result, f"{title} request/response", json.dumps(record, indent=2, ensure_ascii=False),
                "application/json", "json")
    if row.get("money"):
        mentioned = {i for e in row.get("failing_examples", []) for i in e.get("exchanges", [])}
        entries = [e for e in run.ledger.get("entries", [])
                   if mentioned & set(e.get("execute_exchanges", []) + e.get("cancel_exchanges", []))]
        if entries:
            _attach(results, result, "ledger entries", json.dumps(entries, indent=2, ensure_ascii=False),
                    "application/json", "json")


def requirement_result(results: Path, row: dict, run: _Run, start: int, stop: int) -> dict:
    """The Allure result of one requirement (``row``: its summary.json record); attachments written to ``results``."""
    status = categories.allure_status(row["status"], row["level"])
    result: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "historyId": history.history_id(row["id"]),
        "testCaseId": history.history_id(row["id"]),
        "fullName": f"requirements#{row['id']}",
        "name": f"{row['id']} {row['statement']}",
        "status": status,
        "statusDetails": {"message": _message(row), "flaky": row["status"] == "flaky"},
        "stage": "finished",
        "description": _description(row),
        "labels": labels.requirement_labels(row),
        "links": labels.reference_links(row.get("source", [])),
        "parameters": [],
        "start": start,
        "stop": stop,
        "steps": _steps(row, run, start, stop),
    }
    _evidence(results, result, row, run)
    return result


def _millis(iso: str | None, default: int) -> int:
    import datetime as dt

    try:
        return int(dt.datetime.fromisoformat(str(iso)).timestamp() * 1000)
    except (TypeError, ValueError):
        return default


def write_requirement_results(report_dir: Path, summary: dict[str, Any]) -> list[dict]:
    """One result per requirement of summary.json (and the run-overview container); returns the results."""
    results = report_dir / RESULTS_DIR
    results.mkdir(parents=True, exist_ok=True)
    run = _Run(report_dir)
    run.tests = set_aside_test_results(results)
    import time

    now = int(time.time() * 1000)
    start = _millis(summary.get("run", {}).get("started_at"), now)
    stop = _millis(summary.get("run", {}).get("finished_at"), now)
    written = []
    for row in summary.get("requirements", []):
        result = requirement_result(results, row, run, start, stop)
        (results / f"{result['uuid']}-result.json").write_text(json.dumps(result, ensure_ascii=False),
                                                                 encoding="utf-8")
        written.append(result)
    overview: dict[str, Any] = {"name": "run overview: latency and money moved", "status": "passed",
                                "stage": "finished", "start": start, "stop": start}
    for name, svg in charts.render(report_dir, summary).items():
        _attach(results, overview, name.removesuffix(".svg"), svg, "image/svg+xml", "svg")
    container = {"uuid": str(uuid.uuid4()), "name": "conformance run", "children": [r["uuid"] for r in written],
                 "befores": [overview], "afters": [], "start": start, "stop": stop}
    (results / f"{container['uuid']}-container.json").write_text(json.dumps(container), encoding="utf-8")
    return written


def prepare_results(report_dir: Path, summary: dict[str, Any], profile: Any,
                    environ: Mapping[str, str] | None = None, say: Callable[[str], None] = print) -> list[dict]:
    """Everything allure-results/ needs before the HTML report is generated."""
    import os

    environ = os.environ if environ is None else environ
    results = report_dir / RESULTS_DIR
    results.mkdir(parents=True, exist_ok=True)
    if getattr(profile, "history", None):
        source = history.history_source(profile.history)
        if source is None:
            say(f"Allure history: none found in {profile.history} (expected {REPORT_DIR}/history/); trends start now")
        else:
            history.carry_history(results, profile.history)
            say(f"Allure history: carried over from {source}")
    written = write_requirement_results(report_dir, summary)
    write_environment(results, summary)
    history.write_executor(results, summary, environ)
    categories.write_categories(results)
    return written


def read_requirement_results(results: Path) -> list[dict]:
    """The requirement results Allure will read (top-level ``*-result.json``), for self-tests and tooling."""
    found = []
    for path in sorted(Path(results).glob("*-result.json")):
        result = json.loads(path.read_text(encoding="utf-8"))
        if str(result.get("fullName", "")).startswith("requirements#"):
            found.append(result)
    return found
