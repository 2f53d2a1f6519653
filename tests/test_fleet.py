"""Many targets: the three real runs of ``test_trend`` read as three targets, one table, text and HTML.

Also checks ``examples/fleet.yml``: the fan-out is the CI engine's own matrix (GitHub Actions
``strategy.matrix``), one job per target, with evidence and secrets per target.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_trend import real_runs, screenshot

from conformance import fleet

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "fleet.yml"


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory) -> Path:
    return real_runs(tmp_path_factory.getbasetemp())


def test_fleet_table_of_three_real_targets(runs_dir, tmp_path):
    table = fleet.build([runs_dir])
    assert [c.key for c in table.columns] == ["wallet-a", "wallet-b", "wallet-c"]
    assert [c.status("ENV-005") for c in table.columns] == ["passed", "failed", "failed"]
    assert [c.status("EXE-005") for c in table.columns] == ["passed", "passed", "waived"]
    assert table.failing("ENV-005") == ["wallet-b", "wallet-c"]
    text = "\n".join(table.text())
    assert re.search(r"^ENV-005 +MUST +\.FF  failing on 2/3$", text, re.M), text
    assert re.search(r"^EXE-005 +SHOULD +\.\.w  waived on 1$", text, re.M), text
    assert re.search(r"^wallet-b: FAILED \(", text, re.M)
    assert all(c.target.startswith("http://127.0.0.1:") for c in table.columns)


def test_fleet_page_renders_and_a_duplicate_target_keeps_its_latest_run(runs_dir, tmp_path):
    page = tmp_path / "fleet.html"
    done = subprocess.run([sys.executable, "-m", "conformance.cli", "fleet", str(runs_dir / "wallet-a"),
                           str(runs_dir / "wallet-b" / "summary.json"), str(runs_dir / "wallet-c"),
                           "--html", str(page)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    content = page.read_text()
    assert "<script" not in content and "wallet-c-team@example" in content and "failing on 2/3" in content
    png = tmp_path.parent / "fleet.png"
    if screenshot(page, png):
        print(f"screenshot: {png}")
    again = tmp_path / "again" / "wallet-a"
    again.mkdir(parents=True)
    older = (runs_dir / "wallet-b" / "summary.json").read_text()
    (again / "summary.json").write_text(older.replace('"started_at": "2', '"started_at": "1', 1))  # an older run
    table = fleet.build([runs_dir, tmp_path / "again"])
    assert [c.key for c in table.columns] == ["wallet-a", "wallet-b", "wallet-c"]
    assert table.columns[0].status("ENV-005") == "passed", "the latest wallet-a run counts"


def test_fleet_bad_input_is_one_line_exit_2(tmp_path):
    done = subprocess.run([sys.executable, "-m", "conformance.cli", "fleet", str(tmp_path / "nope")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "does not exist" in done.stderr


def test_example_workflow_fans_out_with_the_ci_matrix():
    workflow = yaml.safe_load(EXAMPLE.read_text())
    jobs = workflow["jobs"]
    conformance = next(job for job in jobs.values() if "strategy" in job)
    matrix = conformance["strategy"]["matrix"]
    targets = matrix.get("target") or matrix.get("include")
    assert isinstance(targets, list) and len(targets) >= 2
    assert conformance["strategy"].get("fail-fast") is False, "one target's failure must not cancel the others"
    steps = "\n".join(str(step.get("run", "")) + str(step.get("with", "")) + str(step.get("env", ""))
                      for step in conformance["steps"])
    assert "conformance run" in steps and "matrix.target" in steps
    assert "secrets[" in steps or "secrets." in steps, "secrets per target from the CI's secret store"
    assert "upload-artifact" in EXAMPLE.read_text() and "evidence" in steps
    roll_up = next(job for job in jobs.values() if "needs" in job)
    assert "conformance fleet" in "\n".join(str(s.get("run", "")) for s in roll_up["steps"])
