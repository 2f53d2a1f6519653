"""The Allure side of a run's reports.

allure-pytest writes one result per test into ``allure-results/`` while the
suite runs (handwritten tests are labelled by :mod:`conformance.suite.plugin`,
generated ones by ``conformance/suite/test_generated.py``). After the run this
module completes that folder for auditors:

- ``environment.properties`` and ``executor.json``: the target, suite version,
  spec hash, seed and verdict, shown on the report's overview;
- ``categories.json``: contract violations (MUST / SHOULD) apart from a target
  that did not answer and from defects of the suite itself;
- the requirement labels, failing cases' curl commands and recorded exchanges of
  the generated (Schemathesis) tests, from the run's journal, when the tests did
  not attach them themselves;
- ``history/`` carried over from a previous report, so nightly reports show trends.

Then :func:`generate_html` renders the single-file HTML report with the Allure 2
command line (``allure-commandline`` from npm, needs Java) when it is available.
Nothing here ever fails a run: a missing command line is one line of output.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from conformance import contract

RESULTS_DIR = "allure-results"
REPORT_DIR = "allure-report"
HTML_FILE = "report.html"
EPIC = "MultiMarkets Webhook API"
REFERENCE_URL = "spec/webhook-api.reference.md#section-{section}"
GENERATE_TIMEOUT_S = 180
INSTALL_HINT = "npm install --no-save allure-commandline@2 in the repository root; needs Java"
GENERATED_PREFIX = "test_generated"

#: Failure texts of the suite (conformance/suite/plugin.py, test_generated.py, transport.py).
UNREACHABLE_TEXTS = (
    "did not answer", "timed out", "connection refused", "cannot reach", "connection failed",
    "does not resolve", "TLS handshake failed", "could not be judged",
)
SUITE_DEFECT_TEXTS = (
    "suite defect", "internal error", "INTERNALERROR", "Schemathesis could not run", "sent no request",
)


# ----------------------------------------------------------------- categories
def _alternation(texts: Iterable[str]) -> str:
    return "|".join(re.escape(t) for t in texts)


def violation_regex(requirement_ids: Iterable[str]) -> str:
    """A message (Java ``String.matches``: whole message) reporting a violation of one of the ids.

    Handwritten tests fail with ``"ENV-002 violated: [check] ..."``; generated tests list
    ``"ENV-002: message"`` lines; "could not be judged" and "did not reach the rule" are not violations.
    """
    ids = "|".join(sorted(requirement_ids)) or "(?!)"
    return (
        rf"(?s).*\b(?:{ids})(?: violated\b|: (?!could not be judged|the probe did not reach)"
        rf"|\b.*yet it was not rejected).*"
    )


def categories() -> list[dict[str, Any]]:
    """Allure categories: contract violations by level, then the target and the suite at fault.

    Allure puts a result in every category whose regex matches its whole message (and status);
    results in none fall into Allure's defaults (product defects / test defects).
    """
    catalogue = contract.load().requirements
    must = [r.id for r in catalogue.values() if r.is_must]
    should = [r.id for r in catalogue.values() if not r.is_must]
    unreachable = _alternation(UNREACHABLE_TEXTS)
    suite = _alternation(SUITE_DEFECT_TEXTS)
    return [
        {"name": "Contract violation (MUST)", "matchedStatuses": ["failed"], "messageRegex": violation_regex(must)},
        {"name": "Contract violation (SHOULD)", "matchedStatuses": ["failed"],
         "messageRegex": violation_regex(should)},
        {"name": "Target did not answer", "matchedStatuses": ["failed", "broken"],
         "messageRegex": rf"(?s).*(?i:{unreachable}).*"},
        {"name": "Suite defect", "matchedStatuses": ["failed", "broken"], "messageRegex": rf"(?s).*(?:{suite}).*"},
        {"name": "Suite error (unexpected exception)", "matchedStatuses": ["broken"],
         "messageRegex": rf"(?s)(?!.*(?i:{unreachable})).*"},
        {"name": "Not judged (skipped)", "matchedStatuses": ["skipped"]},
    ]


def category_of(message: str, status: str, table: list[dict[str, Any]] | None = None) -> list[str]:
    """The categories Allure puts a result in (same whole-message matching, for self-tests and tooling)."""
    names = []
    for category in table or categories():
        if status not in category.get("matchedStatuses", []):
            continue
        regex = category.get("messageRegex")
        if regex is None or re.fullmatch(regex, message or ""):
            names.append(category["name"])
    return names


# ---------------------------------------------------------------- environment
def public_url(url: str | None) -> str:
    """The URL without user:password@ and without its query (either may carry credentials)."""
    if not url:
        return ""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def environment(summary: dict[str, Any]) -> dict[str, str]:
    spec = summary.get("spec", {})
    run = summary.get("run", {})
    target = summary.get("target", {})
    return {
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


def write_executor(results: Path, summary: dict[str, Any], environ: Mapping[str, str]) -> Path:
    """executor.json: who ran the build; GitHub Actions runs link back to the workflow run."""
    run = summary.get("run", {})
    executor: dict[str, Any] = {
        "name": "conformance",
        "type": "conformance",
        "buildName": f"run {run.get('id', '')}",
        "buildOrder": _next_build_order(results),
        "reportName": f"{EPIC} conformance: {str(summary.get('verdict', '')).upper()}",
    }
    if environ.get("GITHUB_ACTIONS") == "true" and environ.get("GITHUB_RUN_ID"):
        server = environ.get("GITHUB_SERVER_URL", "https://github.com")
        executor.update(
            name="GitHub Actions", type="github",
            buildUrl=f"{server}/{environ.get('GITHUB_REPOSITORY', '')}/actions/runs/{environ['GITHUB_RUN_ID']}",
            buildName=f"{environ.get('GITHUB_WORKFLOW', 'conformance')} #{environ.get('GITHUB_RUN_NUMBER', '')} "
                      f"(run {run.get('id', '')})",
        )
    path = results / "executor.json"
    path.write_text(json.dumps(executor, indent=2) + "\n", encoding="utf-8")
    return path


def _next_build_order(results: Path) -> int:
    """One more than the newest build in the carried-over history trend (1 without history)."""
    try:
        trend = json.loads((results / "history" / "history-trend.json").read_text(encoding="utf-8"))
        orders = [int(item.get("buildOrder", 0)) for item in trend if isinstance(item, dict)]
        return max(orders, default=len(trend)) + 1 if trend else 1
    except (OSError, ValueError, TypeError, AttributeError):
        return 1


def write_categories(results: Path) -> Path:
    path = results / "categories.json"
    path.write_text(json.dumps(categories(), indent=2) + "\n", encoding="utf-8")
    return path


# -------------------------------------------------------------------- history
def history_source(previous: str | Path) -> Path | None:
    """The Allure history folder of a previous report dir (or of a report, or the folder itself)."""
    base = Path(previous)
    for candidate in (base / REPORT_DIR / "history", base / RESULTS_DIR / "history", base / "history", base):
        if candidate.is_dir() and any(candidate.glob("*.json")) and candidate.name == "history":
            return candidate
    return None


def carry_history(results: Path, previous: str | Path) -> Path | None:
    """Copy a previous run's Allure history into this run's results, so the report shows trends."""
    source = history_source(previous)
    if source is None:
        return None
    target = results / "history"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    return target


# ---------------------------------------------------------- generated results
@dataclass
class _Journal:
    """What the enrichment needs from exchanges.jsonl and outcomes.jsonl."""

    exchanges: dict[str, dict]  # id -> record
    by_trace: dict[str, str]  # trace header value -> exchange id
    requirements_by_exchange: dict[str, set[str]]


def _read_jsonl(path: Path) -> Iterable[dict]:
    if not path.exists():
        return
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if line:
                try:
                    yield json.loads(line)
                except ValueError:
                    continue


def _load_journal(report_dir: Path) -> _Journal:
    exchanges, by_trace = {}, {}
    for record in _read_jsonl(report_dir / "exchanges.jsonl"):
        if not str(record.get("origin", "")).startswith("generated/"):
            continue
        exchanges[record["id"]] = record
        for name, value in record.get("request", {}).get("headers", []):
            if name.lower() == "trace":
                by_trace[value] = record["id"]
    requirements: dict[str, set[str]] = defaultdict(set)
    for outcome in _read_jsonl(report_dir / "outcomes.jsonl"):
        for exchange_id in outcome.get("exchanges", []):
            if exchange_id in exchanges:
                requirements[exchange_id].add(outcome["requirement"])
    return _Journal(exchanges, by_trace, requirements)


def scenario_test_name(phase: str, operation: str | None, mode: str) -> str:
    """The pytest id of the generated test for one scenario (as conformance.suite.plugin parametrises it)."""
    return f"{GENERATED_PREFIX}[{phase}-{mode}-{operation or 'all-operations'}]"


def scenario_of_origin(origin: str, operation: str | None, scenarios: Iterable[dict]) -> dict | None:
    """The generated scenario (summary.json "generated" record) an exchange's origin belongs to."""
    parts = origin.split("/")
    if len(parts) < 3 or parts[0] != "generated":
        return None
    phase, mode = parts[1], parts[2]
    for scenario in scenarios:
        if scenario.get("phase") != phase:
            continue
        if scenario.get("mode") not in (mode, "all"):
            continue
        if scenario.get("operation") in (None, operation):
            return scenario
    return None


def _parameter(result: dict, name: str) -> str | None:
    for parameter in result.get("parameters", []):
        if parameter.get("name") == name:
            value = str(parameter.get("value", ""))
            return value[1:-1] if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"" else value
    return None


def _trace_of(curl: str | None) -> str | None:
    match = re.search(r"-H '?trace: ([^'\s]+)", curl or "")
    return match.group(1) if match else None


def _scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<redacted>")
    return text


def _attach(results: Path, result: dict, name: str, content: str, kind: str) -> None:
    extension = "json" if kind == "application/json" else "txt"
    source = f"{uuid.uuid4()}-attachment.{extension}"
    (results / source).write_text(content, encoding="utf-8")
    result.setdefault("attachments", []).append({"name": name, "source": source, "type": kind})


def enrich_generated(report_dir: Path, summary: dict[str, Any], secrets: Iterable[str] = ()) -> int:
    """Give every generated test's Allure result its requirement labels and its failing cases.

    Requirements: every requirement a check judged on the scenario's exchanges, plus every
    requirement its failures name (story = id and statement, label ``requirement``, severity
    critical when any is MUST, links to the reference). Failures: each failing case's recorded
    request/response (found by its ``trace`` header) with its curl command, and the curl command
    alone unless the test attached the curls itself. Nothing is added twice (results that went
    through :func:`attach_failures` already hold it).
    Returns the number of results changed.
    """
    results = report_dir / RESULTS_DIR
    catalogue = contract.load().requirements
    scenarios = summary.get("generated", [])
    journal = _load_journal(report_dir)
    judged: dict[str, set[str]] = defaultdict(set)  # test name -> requirement ids
    for exchange_id, record in journal.exchanges.items():
        scenario = scenario_of_origin(record.get("origin", ""), record.get("operation"), scenarios)
        if scenario is not None:
            name = scenario_test_name(scenario["phase"], scenario["operation"], scenario["mode"])
            judged[name] |= journal.requirements_by_exchange.get(exchange_id, set())
    by_name = {scenario_test_name(s["phase"], s["operation"], s["mode"]): s for s in scenarios}
    changed = 0
    for path in sorted(results.glob("*-result.json")):
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not str(result.get("fullName", "")).startswith(f"{GENERATED_PREFIX}#"):
            continue
        phase, mode = _parameter(result, "phase"), _parameter(result, "mode")
        operation = _parameter(result, "operation")
        name = scenario_test_name(phase or "", None if operation in (None, "all") else operation, mode or "")
        scenario = by_name.get(name, {})
        failures = scenario.get("failures", [])
        ids = set(judged.get(name, set())) | {f["requirement"] for f in failures if f.get("requirement")}
        ids = sorted(rid for rid in ids if rid in catalogue)
        _label_requirements(result, [catalogue[rid] for rid in ids])
        attached = [a.get("name", "") for a in result.get("attachments", [])]
        if failures and not any(name.startswith("case ") and name.endswith(" exchange") for name in attached):
            with_curl = not any("curl" in name for name in attached)  # the test may have attached the curls
            for index, failure in enumerate(failures, start=1):
                title = f"case {index}: {failure.get('requirement') or 'finding'} [{failure.get('check')}]"
                if with_curl:
                    _attach(results, result, f"{title} curl",
                            _scrub(failure.get("curl") or "(no curl)", secrets), "text/plain")
                exchange_id = journal.by_trace.get(_trace_of(failure.get("curl")) or "")
                record = dict(failure)
                if exchange_id is not None:
                    record["exchange"] = journal.exchanges[exchange_id]
                _attach(results, result, f"{title} exchange",
                        _scrub(json.dumps(record, indent=2, ensure_ascii=False), secrets), "application/json")
            kept, total = len(failures), scenario.get("failure_count", len(failures))
            if total > kept:
                _attach(results, result, "more failing cases",
                        f"{total} failing cases, the first {kept} attached; all are in summary.json", "text/plain")
        path.write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
        changed += 1
    return changed


def _label_requirements(result: dict, requirements: list) -> None:
    labels = [lb for lb in result.get("labels", []) if not (lb.get("name") == "requirement"
                                                            and lb.get("value") == "generated")]
    present = {(lb.get("name"), lb.get("value")) for lb in labels}

    def add(name: str, value: str) -> None:
        if (name, value) not in present:
            labels.append({"name": name, "value": value})
            present.add((name, value))

    add("epic", EPIC)
    if requirements:
        must = any(r.is_must for r in requirements)
        labels = [lb for lb in labels if lb.get("name") != "severity"]
        labels.append({"name": "severity", "value": "critical" if must else "minor"})
    else:
        labels.append({"name": "requirement", "value": "generated"})
    links = result.setdefault("links", [])
    urls = {link.get("url") for link in links}
    for requirement in requirements:
        add("story", f"{requirement.id} {requirement.statement}")
        add("requirement", requirement.id)
        add("level", requirement.level)
        for section in requirement.source:
            url = REFERENCE_URL.format(section=section)
            if url not in urls:
                links.append({"type": "link", "url": url, "name": f"reference §{section}"})
                urls.add(url)
    result["labels"] = labels


def attach_failures(failures: Iterable[dict], journal: Any = None) -> None:
    """Attach each failing generated case to the running test's Allure result (call from the test).

    ``failures`` are ScenarioResult.failures dicts (requirement, check, title, message, curl);
    with the run's journal, the recorded request/response of each case is attached too (found
    by the case's ``trace`` header). Secret header values are redacted by the journal's rules.
    """
    try:
        import allure
    except ImportError:
        return
    secrets = getattr(journal, "secret_headers", frozenset())
    values = getattr(journal, "secret_values", ())
    by_trace = {}
    if journal is not None:
        for exchange in list(journal.exchanges.values()):
            trace = exchange.request.header("trace") if hasattr(exchange.request, "header") else None
            if trace and exchange.origin.startswith("generated/"):
                by_trace[trace] = exchange
    for index, failure in enumerate(failures, start=1):
        title = f"case {index}: {failure.get('requirement') or 'finding'} [{failure.get('check')}]"
        allure.attach(_scrub(failure.get("curl") or "(no curl)", values), name=f"{title} curl",
                      attachment_type=allure.attachment_type.TEXT)
        record = dict(failure)
        exchange = by_trace.get(_trace_of(failure.get("curl")) or "")
        if exchange is not None:
            record["exchange"] = exchange.to_record(secrets)
        allure.attach(_scrub(json.dumps(record, indent=2, ensure_ascii=False), values), name=f"{title} exchange",
                      attachment_type=allure.attachment_type.JSON)


def identity(result: dict) -> tuple:
    """What Allure tells tests apart by: the full name and the parameter values."""
    return (result.get("fullName"),
            tuple(sorted((p.get("name"), p.get("value")) for p in result.get("parameters", []))))


def distinguish_collisions(results: Path) -> int:
    """Give results Allure would merge into one test (as retries) a parameter that tells them apart.

    Pytest ids can differ where the parameters Allure sees do not (bytes parameters are all shown
    as ``<class 'bytes'>``); every pytest test must stay its own test in the report. Returns the
    number of results changed.
    """
    loaded: list[tuple[Path, dict]] = []
    for path in sorted(results.glob("*-result.json")):
        try:
            loaded.append((path, json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError):
            continue
    groups: dict[tuple, list[tuple[Path, dict]]] = defaultdict(list)
    for path, result in loaded:
        groups[identity(result)].append((path, result))
    changed = 0
    for members in groups.values():
        if len({result.get("name") for _, result in members}) < 2:
            continue
        for path, result in members:
            name = str(result.get("name", ""))
            case = name[name.find("[") + 1:-1] if name.endswith("]") and "[" in name else name
            result.setdefault("parameters", []).append({"name": "case", "value": case})
            path.write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
            changed += 1
    return changed


# ----------------------------------------------------------------------- HTML
@dataclass(frozen=True)
class CommandLine:
    command: Path | None
    java: str | None
    reason: str | None  # why the HTML report cannot be generated; None when it can

    @property
    def available(self) -> bool:
        return self.reason is None


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def find_command_line(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> CommandLine:
    """The Allure 2 command line: $ALLURE_CMD, ``allure`` on PATH, or node_modules/.bin/allure (repo root, cwd)."""
    environ = os.environ if environ is None else environ
    path = environ.get("PATH", "")
    command: Path | None = None
    explicit = environ.get("ALLURE_CMD")
    if explicit:
        candidate = Path(explicit)
        if not (candidate.is_file() and os.access(candidate, os.X_OK)):
            found = shutil.which(explicit, path=path)
            if found is None:
                return CommandLine(None, None, f"ALLURE_CMD={explicit} is not an executable file")
            candidate = Path(found)
        command = candidate
    else:
        found = shutil.which("allure", path=path)
        if found:
            command = Path(found)
        else:
            for base in (_repo_root(), cwd or Path.cwd()):
                candidate = base / "node_modules" / ".bin" / "allure"
                if candidate.is_file() and os.access(candidate, os.X_OK):
                    command = candidate
                    break
    if command is None:
        return CommandLine(None, None, f"Allure command line not found ({INSTALL_HINT})")
    java = shutil.which("java", path=path)
    if java is None and environ.get("JAVA_HOME"):
        candidate = Path(environ["JAVA_HOME"]) / "bin" / "java"
        java = str(candidate) if candidate.is_file() else None
    if java is None:
        return CommandLine(command, None, "the Allure command line needs a Java runtime (e.g. openjdk-17-jre-headless)")
    return CommandLine(command, java, None)


def _generate(cli: CommandLine, results: Path, output: Path, environ: Mapping[str, str], single: bool,
              timeout: float) -> str | None:
    """Run ``allure generate``; None on success, else why not (one line)."""
    env = dict(environ)
    env["ALLURE_NO_ANALYTICS"] = "true"
    java_dir = str(Path(cli.java).parent) if cli.java else ""
    if java_dir and java_dir not in env.get("PATH", "").split(os.pathsep):
        env["PATH"] = os.pathsep.join(p for p in (java_dir, env.get("PATH", "")) if p)
    command = [str(cli.command), "generate", *(["--single-file"] if single else []), "--clean",
               "-o", str(output), str(results)]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        return f"allure generate did not finish within {timeout:g} s"
    except OSError as error:
        return f"cannot start {cli.command}: {error.strerror or error}"
    if done.returncode != 0 or not (output / "index.html").is_file():
        lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        return f"allure generate failed (exit {done.returncode}): {lines[-1][:200] if lines else 'no output'}"
    return None


def generate_html(report_dir: Path, say: Callable[[str], None], environ: Mapping[str, str] | None = None,
                  timeout: float = GENERATE_TIMEOUT_S) -> Path | None:
    """``report.html`` (single file) and ``allure-report/`` (with history/ for the next run), or one line why not.

    Allure's single-file mode writes no history folder, so the report is generated twice: once as a
    single file (copied to report.html), once as a folder (kept in allure-report/, whose history/
    the next nightly run carries over with ``--history``).
    """
    environ = os.environ if environ is None else environ
    cli = find_command_line(environ, cwd=Path.cwd())
    if not cli.available:
        say(f"HTML report skipped: {cli.reason}")
        return None
    results = report_dir / RESULTS_DIR
    with tempfile.TemporaryDirectory(prefix="allure-single-", dir=report_dir) as scratch:
        single = Path(scratch) / "report"
        # the two renders read the same results and write apart: run them side by side (one JVM per core)
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            folder = pool.submit(_generate, cli, results, report_dir / REPORT_DIR, environ, False, timeout)
            problem = _generate(cli, results, single, environ, single=True, timeout=timeout)
            folder_problem = folder.result()
        if problem:
            say(f"HTML report skipped: {problem}")
            return None
        html = report_dir / HTML_FILE
        shutil.copyfile(single / "index.html", html)
    if folder_problem:
        say(f"Allure history for the next run not written: {folder_problem}")
    say(f"HTML report: {html}")
    return html


def prepare_results(report_dir: Path, summary: dict[str, Any], profile: Any,
                    environ: Mapping[str, str] | None = None, say: Callable[[str], None] = print) -> None:
    """Everything allure-results/ needs before the HTML report is generated."""
    environ = os.environ if environ is None else environ
    results = report_dir / RESULTS_DIR
    results.mkdir(parents=True, exist_ok=True)
    if getattr(profile, "history", None):
        source = history_source(profile.history)
        if source is None:
            say(f"Allure history: none found in {profile.history} (expected {REPORT_DIR}/history/); trends start now")
        else:
            carry_history(results, profile.history)
            say(f"Allure history: carried over from {source}")
    enrich_generated(report_dir, summary, getattr(profile, "secret_values", ()))
    distinguish_collisions(results)
    write_environment(results, summary)
    write_executor(results, summary, environ)
    write_categories(results)
