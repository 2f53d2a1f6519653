"""Trends across runs: the requirement-by-run matrix from three real runs, as text and as a self-contained page.

The three runs (``conformance run``, handwritten phase, a subprocess each) tell a story:

- ``wallet-a``: the conforming reference wallet;
- ``wallet-b``: behind the proxy of ``test_flaky`` breaking ENV-005 on every lower-case balance probe;
- ``wallet-c``: the same proxy over the wallet with fault ``close-debits`` (EXE-005), waived by a waiver file.

``test_fleet`` reads the same three runs as three targets. They are made once per session (a lock-free
cache in pytest's base temp dir).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_flaky import flaky_proxy
from test_flaky import run as run_suite

from conformance.reference import WalletConfig, serve
from conformance.reporting import trend

WAIVER = """[[waiver]]
requirement = "EXE-005"
reason = "close debits instead of crediting on staging"
owner = "wallet-c-team@example"
ticket = "PAY-77"
expires = 2099-12-31
"""


def real_runs(base: Path) -> Path:
    """Three report dirs under ``base/runs`` (made on first use), oldest first: wallet-a, wallet-b, wallet-c."""
    root = base / "runs"
    if (root / "wallet-c" / "summary.json").exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    with serve(WalletConfig()) as url:
        code, _, out = run_suite(url, root / "wallet-a")
        assert code in (0, 4), out[-1500:]
        with flaky_proxy(url, period=1) as (proxied, _):
            code, _, out = run_suite(proxied, root / "wallet-b", "--replays", "0")
            assert code == 1, out[-1500:]
    (base / "waivers.toml").write_text(WAIVER)
    with serve(WalletConfig(fault="close-debits")) as url, flaky_proxy(url, period=1) as (proxied, _):
        code, _, out = run_suite(proxied, root / "wallet-c", "--replays", "0", "--waivers", str(base / "waivers.toml"))
        assert code == 1, out[-1500:]
    return root


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory) -> Path:
    return real_runs(tmp_path_factory.getbasetemp())


def screenshot(page: Path, png: Path, width: int = 1400, height: int = 1100) -> bool:
    """A headless Chromium screenshot of the page, when Chromium is installed (the page must render offline)."""
    import shutil

    browser = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
    if browser is None:
        return False
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", f"--window-size={width},{height}",
                    f"--screenshot={png}", page.as_uri()], capture_output=True, timeout=120)
    return png.exists() and png.stat().st_size > 0


def test_trend_matrix_of_three_real_runs(runs_dir, tmp_path):
    paths = [runs_dir / name for name in ("wallet-c", "wallet-a", "wallet-b")]  # given out of order
    result = trend.build(paths)
    assert [Path(c.path).parent.name for c in result.columns] == ["wallet-a", "wallet-b", "wallet-c"]
    assert [c.status("ENV-005") for c in result.columns] == ["passed", "failed", "failed"]
    assert [c.status("EXE-005") for c in result.columns] == ["passed", "passed", "waived"]
    assert result.since["ENV-005"] == 1, "the current ENV-005 failure first appeared in the second run"
    assert "EXE-005" not in result.since, "a waived requirement is not a current failure"
    text = "\n".join(result.text())
    assert re.search(r"^ENV-005 +MUST +\.FF  failing since run \[2\]", text, re.M), text
    assert re.search(r"^EXE-005 +SHOULD +\.\.w$", text, re.M), text
    assert "compared with run" in text and "still failing" in text  # --compare of the last two runs


def test_trend_page_is_self_contained_and_renders(runs_dir, tmp_path):
    page = tmp_path / "trend.html"
    text = tmp_path / "trend.txt"
    done = subprocess.run([sys.executable, "-m", "conformance.cli", "trend", str(runs_dir), "--html", str(page),
                           "--text", str(text)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    content = page.read_text()
    assert "<script" not in content and "http://" not in content.replace("http://127.0.0.1", "")
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", content), "nothing fetched"
    assert "failing since run [2]" in content and "wallet-c-team@example" in content
    assert content.count("<tr>") == len(json.loads((runs_dir / "wallet-a" / "summary.json").read_text())
                                        ["requirements"]) + 1
    assert "ENV-005" in text.read_text()
    png = tmp_path.parent / "trend.png"
    if screenshot(page, png):
        print(f"screenshot: {png}")


def test_trend_of_a_history_dir_and_bad_input(runs_dir, tmp_path):
    assert len(trend.build([runs_dir]).columns) == 3
    junk = tmp_path / "junk.json"
    junk.write_text("[]")
    for args in ([str(junk)], [str(tmp_path / "missing")], [str(tmp_path)]):
        done = subprocess.run([sys.executable, "-m", "conformance.cli", "trend", *args, "--html",
                               str(tmp_path / "t.html")], capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr


def test_failing_since_counts_the_current_streak_only():
    def column(key, status):
        return trend.Column(key=key, detail="", verdict="", path=key, started_at=key,
                            target="", rows={"ENV-005": {"id": "ENV-005", "status": status, "level": "MUST"}})

    statuses = ["failed", "passed", "warning", "failed", "failed"]
    columns = [column(str(i), s) for i, s in enumerate(statuses)]
    assert trend.failing_since(columns) == {"ENV-005": 2}
    assert trend.failing_since(columns[:2]) == {}
    assert trend.failing_since([column("0", "waived")]) == {}
