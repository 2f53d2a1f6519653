"""Live progress: plain lines without a terminal (compact, or one per test with -v), a heartbeat so a log is never
silent for long, rich's live display on a terminal, secrets redacted from every line; the final table fits."""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path

import pytest

from conformance.reporting import table
from conformance.reporting.progress import Progress
from conformance.reporting.redaction import Secrets


def test_without_a_terminal_compact_prints_failures_and_tenths_not_every_test():
    out = io.StringIO()
    with Progress(stream=out, tty=False, heartbeat_s=60) as progress:
        progress.start(20, phase="tests")
        for n in range(20):
            progress.test_done(f"test_x.py::test_{n}", "failed" if n == 3 else "passed")
    lines = out.getvalue().splitlines()
    assert lines[0] == "phase: tests (20 tests)"
    assert "[   4/20] failed  test_x.py::test_3" in lines
    assert not any("passed  test_x.py" in line for line in lines), "passing tests are not listed one by one"
    assert sum("failed so far" in line for line in lines) == 9  # every second test, but the 4th printed its failure


def test_verbose_prints_one_line_per_test():
    out = io.StringIO()
    with Progress(stream=out, tty=False, verbose=True, heartbeat_s=60) as progress:
        progress.start(3)
        for n in range(3):
            progress.test_done(f"t::{n}", "passed")
    assert [line for line in out.getvalue().splitlines() if "passed  t::" in line] == [
        "[   1/3] passed  t::0", "[   2/3] passed  t::1", "[   3/3] passed  t::2"]


def test_a_quiet_wait_is_never_silent_for_long():
    out = io.StringIO()
    with Progress(stream=out, tty=False, heartbeat_s=0.3) as progress:
        progress.start(5, phase="stateful")
        progress.waiting("the stateful phase (Schemathesis)")
        time.sleep(1.5)
    beats = [line for line in out.getvalue().splitlines() if line.startswith("… stateful 0/5")]
    assert len(beats) >= 2 and beats[0].endswith("waiting for the stateful phase (Schemathesis)")


def test_on_a_terminal_rich_draws_the_live_display_and_lines_above_it():
    out = io.StringIO()
    with Progress(stream=out, tty=True) as progress:
        progress.start(2)
        progress.test_done("t::a", "failed")
        progress.say("target: somewhere")
    text = out.getvalue()
    assert "t::a" in text and "target: somewhere" in text
    assert "\x1b[" in text, "a terminal gets rich's live display (escape codes)"


def test_every_line_is_redacted():
    out = io.StringIO()
    secrets = Secrets.build(headers=[("X-Api-Key", "k")], urls=["http://bob:hunter22@h/"])
    with Progress(stream=out, tty=False, secrets=secrets, heartbeat_s=60) as progress:
        progress.say("target: http://bob:hunter22@h/api, -H 'X-Api-Key: k'")
    assert out.getvalue().strip() == "target: http://<redacted>@h/api, -H 'X-Api-Key: <redacted>'"


@pytest.fixture
def summary(tmp_path) -> dict:
    from conformance import contract

    rows = []
    for i, requirement in enumerate(contract.load().requirements.values()):
        status = ("passed", "failed", "warning", "skipped")[i % 4]
        rows.append({"id": requirement.id, "level": requirement.level, "statement": requirement.statement,
                     "status": status, "evaluations": i, "reason": "not exercised" if status == "skipped" else None,
                     "failing_examples": [{"check": "c", "message": "the wallet said no"}] if status in
                     ("failed", "warning") else []})
    counts = {lv: dict.fromkeys(("passed", "failed", "warning", "flaky", "waived", "skipped"), 0)
              for lv in ("MUST", "SHOULD")}
    return {"requirements": rows, "counts": counts, "verdict": "failed", "exit_code": 1, "run": {"duration_s": 1}}


@pytest.mark.parametrize("width", [60, 80, 120])
def test_the_table_fits_the_terminal_and_never_cuts_a_word(summary, width):
    lines = table.render(summary, width=width)
    assert max(len(line) for line in lines) <= width
    text = " ".join(lines)
    for row in summary["requirements"]:
        for word in row["statement"].split():
            if len(word) < width - 30:
                assert word in text, f"{row['id']}: {word!r} was cut"
    assert not any("\x1b[" in line for line in lines), "no colour without a terminal"
    assert any("\x1b[" in line for line in table.render(summary, width=width, color=True))


def test_every_requirement_row_is_in_the_table(summary):
    found = {m.group(1) for line in table.render(summary, width=100)
             if (m := re.match(r"^([A-Z]{3}-\d{3})\s", line))}
    assert found == {row["id"] for row in summary["requirements"]}


def test_charts_are_offline_svg(tmp_path: Path):
    from conformance.reporting import charts

    latency = {"getUserAmount": {"count": 3, "p50_ms": 1.0, "p95_ms": 2.0, "p99_ms": 3.0, "max_ms": 4.0}}
    (tmp_path / "ledger.json").write_text(json.dumps({"entries": [
        {"account": "A:B:USD", "amount": "2.50", "outcome": "applied", "settlement": "reversed",
         "execute_exchanges": ["x1"], "cancel_exchanges": ["x2"]}]}))
    (tmp_path / "exchanges.jsonl").write_text('{"id": "x1", "started_at": 10.0}\n{"id": "x2", "started_at": 12.5}\n')
    rendered = charts.render(tmp_path, {"latency": latency, "delivery": {"latency": latency}})
    assert set(rendered) == {"latency.svg", "latency-under-load.svg", "money.svg"}
    for svg in rendered.values():
        assert svg.startswith("<svg xmlns=") and "http" not in svg.replace("http://www.w3.org/2000/svg", "")
        assert "<script" not in svg
    assert charts.money_series(json.loads((tmp_path / "ledger.json").read_text()),
                               charts.exchange_times(tmp_path)) == {"USD": [(0.0, 2.5, 2.5), (2.5, 2.5, 0.0)]}
