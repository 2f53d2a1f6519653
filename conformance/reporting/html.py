"""The HTML report: the Allure 2 command line, and the reference text shipped beside ``report.html``.

``report.html`` is Allure's single-file report; ``allure-report/`` the same report as a folder (its
``history/`` is what the next nightly run carries over). Requirement results link to
``reference/webhook-api.html#section-N``: :func:`ship_reference` writes that page next to both, so the
links work wherever the report directory is copied. Nothing here ever fails a run: a missing command
line is one line of output.
"""

from __future__ import annotations

import concurrent.futures
import html
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from conformance import contract
from conformance.reporting.labels import REFERENCE_PAGE

RESULTS_DIR = "allure-results"
REPORT_DIR = "allure-report"
HTML_FILE = "report.html"
GENERATE_TIMEOUT_S = 180
INSTALL_HINT = "npm install --no-save allure-commandline@2 in the repository root; needs Java"
_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
_SECTION = re.compile(r"^(\d+(?:\.\d+)*)\.?\s")


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
        page = report_dir / HTML_FILE
        shutil.copyfile(single / "index.html", page)
    if folder_problem:
        say(f"Allure history for the next run not written: {folder_problem}")
    else:
        ship_reference(report_dir / REPORT_DIR)
    ship_reference(report_dir)
    say(f"HTML report: {page}")
    return page


def reference_html(markdown: str, title: str = "MultiMarkets Webhook API: reference") -> str:
    """The reference text as one HTML page whose numbered headings carry ``id="section-N"`` anchors."""
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
           "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.45}"
           "pre{white-space:pre-wrap;background:#f6f6f6;padding:.5em}:target{background:#fff3b0}</style>",
           "</head><body>"]
    block: list[str] = []

    def flush() -> None:
        if block:
            out.append("<pre>" + html.escape("\n".join(block)) + "</pre>")
            block.clear()

    for line in markdown.splitlines():
        match = _HEADING.match(line)
        if not match:
            block.append(line)
            continue
        flush()
        level, text = len(match.group(1)), match.group(2).strip()
        number = _SECTION.match(text)
        anchor = f" id=\"section-{number.group(1)}\"" if number else ""
        out.append(f"<h{level}{anchor}>{html.escape(text)}</h{level}>")
    flush()
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def ship_reference(directory: Path) -> Path:
    """Write the reference page at ``directory/reference/webhook-api.html`` (where the report links point)."""
    target = directory / REFERENCE_PAGE
    target.parent.mkdir(parents=True, exist_ok=True)
    text = contract.load().reference_bytes.decode("utf-8", "replace")
    target.write_text(reference_html(text), encoding="utf-8")
    return target
