"""Secrets never leave a run: plant them in every form, grep every artifact, stdout and stderr for them.

Planted: 40 extra headers whose values are 1..40 characters long (``--header``), credentials in the base
URL (``http://user:password@...``, which requests also sends as ``Authorization: Basic``), a header from
the environment (``CONFORMANCE_HEADERS``) and one from a TOML profile. Searched for in every file of the
report directory, every member of the evidence bundle, stdout and stderr:

- every value of 4 characters or more, raw, JSON-escaped, URL-encoded and base64, and ``user:password``
  as base64 (shorter values cannot be told apart from ordinary text by a substring search);
- every secret header, whatever its value's length, written anywhere with a value that is not
  ``<redacted>`` (``Name: value``, ``"Name": "value"``, ``["Name", "value"]``, ``Name=value``).
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import string
import subprocess
import sys
import zipfile
from pathlib import Path
from urllib.parse import quote

import pytest

from conformance.reference import DEFAULT_ACCOUNTS, WalletConfig, serve

ACCOUNTS = [arg for a in DEFAULT_ACCOUNTS for arg in ("--account", f"{a.third_server_code}:{a.user_name}:{a.currency}")]
RUN = ["--rate-limit", "0", "--allow-money-movement", "--no-html", "--phases", "handwritten,examples",
       "--max-examples", "3", *ACCOUNTS]
ALPHABET = string.ascii_letters + string.digits
USER, PASSWORD = "aud1tUser", "pa55:w@rd/Secret"


def planted_values(seed: int = 11) -> dict[str, str]:
    rng = random.Random(seed)
    values = {f"X-Secret-{n:02d}": "".join(rng.choice(ALPHABET) for _ in range(n)) for n in range(1, 41)}
    values["X-Secret-01"] = "1"  # the value whose substring redaction once turned "elapsed_ms": 1.0 into junk
    return values


def forms(value: str) -> set[str]:
    return {value, json.dumps(value)[1:-1], quote(value, safe=""), base64.b64encode(value.encode()).decode()}


def artifacts(report_dir: Path, stdout: str, stderr: str) -> dict[str, str]:
    found = {"<stdout>": stdout, "<stderr>": stderr}
    for path in sorted(report_dir.rglob("*")):
        if not path.is_file():
            continue
        name = path.relative_to(report_dir).as_posix()
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                for member in archive.namelist():
                    found[f"{name}!{member}"] = archive.read(member).decode("utf-8", "replace")
        else:
            found[name] = path.read_bytes().decode("utf-8", "replace")
    return found


def leaks(texts: dict[str, str], values: dict[str, str], extra: tuple[str, ...] = ()) -> list[str]:
    problems = []
    searched = {form for value in [*values.values(), *extra] if len(value) >= 4 for form in forms(value)}
    names = "|".join(re.escape(n) for n in [*values, "authorization"])
    header = re.compile(rf"(?i)(?<![\w-])({names})[\"']?\s*[:=,]\s*[\"']?(?!<redacted>)[^\s\"'\]]")
    for where, text in texts.items():
        for form in searched:
            if form in text:
                problems.append(f"{where}: contains {form!r}")
        for match in header.finditer(text):
            problems.append(f"{where}: header value in clear: {text[match.start():match.end() + 12]!r}")
    return problems


def run_cli(args: list[str], report_dir: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "conformance.cli", "run", "--report-dir", str(report_dir), *args],
                          capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})})


def with_credentials(base_url: str) -> str:
    return base_url.replace("http://", f"http://{quote(USER, safe='')}:{quote(PASSWORD, safe='')}@", 1)


@pytest.fixture(scope="module")
def flag_run(tmp_path_factory):
    values = planted_values()
    report_dir = tmp_path_factory.mktemp("secrets-flags")
    headers = [arg for name, value in values.items() for arg in ("--header", f"{name}: {value}")]
    with serve(WalletConfig()) as base_url:
        done = run_cli(["--base-url", with_credentials(base_url), *headers, *RUN], report_dir)
    assert (report_dir / "summary.json").exists(), done.stderr[-500:]
    return values, report_dir, done


@pytest.mark.slow
def test_no_planted_secret_leaves_a_run_from_flags_and_url_credentials(flag_run):
    values, report_dir, done = flag_run
    texts = artifacts(report_dir, done.stdout, done.stderr)
    assert any(name.endswith(".zip!manifest.json") for name in texts), "the evidence bundle was searched"
    credentials = (USER, PASSWORD, quote(PASSWORD, safe=""), f"{USER}:{PASSWORD}")
    problems = leaks(texts, values, credentials)
    assert not problems, f"{len(problems)} leak(s):\n" + "\n".join(problems[:25])
    summary = json.loads((report_dir / "summary.json").read_text())
    assert summary["target"]["base_url"].startswith("http://<redacted>@127.0.0.1:")


@pytest.mark.slow
def test_redacting_a_one_character_secret_keeps_every_json_artifact_valid(flag_run):
    _, report_dir, _ = flag_run
    broken = []
    for path in sorted(report_dir.rglob("*.json*")):
        lines = path.read_text(encoding="utf-8").splitlines() if path.suffix == ".jsonl" else [path.read_text()]
        for number, line in enumerate(lines, start=1):
            try:
                json.loads(line)
            except ValueError:
                broken.append(f"{path.relative_to(report_dir)}:{number}")
    assert not broken, f"{len(broken)} invalid JSON record(s): {broken[:5]}"


@pytest.mark.slow
@pytest.mark.parametrize("source", ["env", "toml"])
def test_no_secret_from_the_environment_or_a_toml_profile_leaves(source, tmp_path):
    values = {"X-Planted-Key": f"{source}-Zq9-planted-secret"}
    name, value = next(iter(values.items()))
    env: dict[str, str] = {}
    with serve(WalletConfig()) as base_url:
        args = [*RUN]
        if source == "env":
            env = {"CONFORMANCE_HEADERS": f"{name}: {value}", "CONFORMANCE_BASE_URL": with_credentials(base_url)}
        else:
            profile = tmp_path / "profile.toml"
            profile.write_text(f'[target]\nbase_url = "{with_credentials(base_url)}"\n'
                               f'[http]\nheaders = {{ "{name}" = "{value}" }}\n', encoding="utf-8")
            args = ["--config", str(profile), *args]
        done = run_cli(args, tmp_path / "report", env)
    assert (tmp_path / "report" / "summary.json").exists(), done.stderr[-500:]
    problems = leaks(artifacts(tmp_path / "report", done.stdout, done.stderr), values, (USER, PASSWORD))
    assert not problems, f"{len(problems)} leak(s):\n" + "\n".join(problems[:25])


@pytest.mark.parametrize("argument", ["X-Api-Key=Zq9planted77", "X-Api-Key Zq9planted77", "X-K=ab"])
def test_a_malformed_header_argument_never_prints_its_value(argument):
    done = subprocess.run([sys.executable, "-m", "conformance.cli", "run", "--header", argument],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    value = re.split(r"[= ]", argument, maxsplit=1)[1]
    assert value not in done.stdout + done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
