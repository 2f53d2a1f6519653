"""Benchmark: the default `conformance run` (delivery phase included) and each phase's share; the generated
phases against a bare `st run` of the same spec, seed and examples, in the same script run.

    .venv/bin/python benchmarks/default_run.py [--max-examples 100] [--seed 20261125] [--repeat 1]

Everything runs here, on loopback, one after the other (never in parallel: the numbers are wall times):

1. `conformance run` with its defaults (every phase, the embedded reference wallet): the wall time, the
   summary's duration, and the share of each phase: generated slices (test_generated.py), handwritten tests,
   the delivery phase (test_delivery.py), and the rest (start-up, preflight, compensation, reports). The goal
   is under 60 s on the project's 2-core machine.
2. `conformance run --phases examples,coverage,fuzzing,stateful` (the generated phases alone) and a bare
   `st run` of spec/webhook.openapi.yaml against `conformance reference` with the same seed, the same
   `--max-examples` and the same phases (benchmarks/full_run.py's `bare_st_run`: no hooks, no custom checks).
   The ratio generated/bare is the issue's number (goal <= 1.2x).

Not a test: prints the numbers for the issue notes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from full_run import bare_st_run  # the same bare Schemathesis run as benchmarks/full_run.py

BIN = Path(sys.executable).parent
GOAL_DEFAULT_S = 60.0
GOAL_RATIO = 1.2


def conformance_run(report_dir: str, *extra: str) -> tuple[float, dict]:
    started = time.perf_counter()
    done = subprocess.run([str(BIN / "conformance"), "run", "--no-html", "--report-dir", report_dir, *extra],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1, 4):
        raise SystemExit(f"conformance run failed ({done.returncode}): {done.stderr.strip()[-400:]}")
    return seconds, json.loads((Path(report_dir) / "summary.json").read_text())


def phase_of(nodeid: str) -> str:
    if "test_generated.py" in nodeid:
        return "generated"
    if "test_delivery.py" in nodeid:
        return "delivery"
    return "handwritten"


def shares(summary: dict, wall: float) -> dict[str, float]:
    totals = {"generated": 0.0, "handwritten": 0.0, "delivery": 0.0}
    for result in summary["test_results"]:
        totals[phase_of(result["nodeid"])] += result["duration_s"]
    totals["other"] = max(0.0, wall - sum(totals.values()))
    return totals


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=100)
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    common = ["--max-examples", str(args.max_examples), "--seed", str(args.seed)]
    print(f"cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}, python {sys.version.split()[0]}, "
          f"max-examples {args.max_examples}, seed {args.seed}")
    for attempt in range(1, args.repeat + 1):
        with tempfile.TemporaryDirectory() as report_dir:
            wall, summary = conformance_run(report_dir, *common)
            delivery = json.loads((Path(report_dir) / "delivery.json").read_text()) if (
                Path(report_dir) / "delivery.json").is_file() else {"scenarios": []}
        parts = shares(summary, wall)
        print(f"\nattempt {attempt}")
        print(f"  default run      : {wall:6.1f} s wall (summary {summary['run']['duration_s']} s), verdict "
              f"{summary['verdict']}, {summary['exchanges']} exchanges, goal < {GOAL_DEFAULT_S:g} s: "
              f"{'met' if wall < GOAL_DEFAULT_S else 'NOT met'}")
        for name, seconds in parts.items():
            print(f"    {name:<12}: {seconds:6.1f} s  ({100 * seconds / wall:4.1f} %)")
        load = {r["scenario"]: r["execute_latency_ms"] for r in delivery["scenarios"] if r["requirement"] == "DLV-010"}
        for scenario, stats in load.items():
            print(f"    {scenario:<12}: executes {stats.get('count')}, p50 {stats.get('p50_ms')} ms, "
                  f"p95 {stats.get('p95_ms')} ms, p99 {stats.get('p99_ms')} ms, max {stats.get('max_ms')} ms")
        with tempfile.TemporaryDirectory() as report_dir:
            generated_wall, _ = conformance_run(report_dir, *common, "--phases", "examples,coverage,fuzzing,stateful")
        st_wall, _ = bare_st_run(args.max_examples, args.seed)
        ratio = generated_wall / st_wall
        print(f"  generated phases : {generated_wall:6.1f} s wall (conformance run --phases "
              f"examples,coverage,fuzzing,stateful)")
        print(f"  bare st run      : {st_wall:6.1f} s wall (same spec, seed, max-examples, phases)")
        verdict = "met" if ratio <= GOAL_RATIO else "NOT met"
        print(f"  ratio            : {ratio:.2f}x (goal <= {GOAL_RATIO}x: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
