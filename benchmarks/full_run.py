"""Benchmark: a full default `conformance run` against the embedded wallet, and a bare `st run` of the same spec.

    .venv/bin/python benchmarks/full_run.py [--max-examples 100] [--seed 20261125] [--repeat 1]

Both run here, in this one script run, on loopback only:

1. `conformance run` (all phases: examples, coverage, fuzzing, stateful, handwritten; positive and negative;
   --max-examples N per operation and mode) against its embedded reference wallet, as a subprocess;
2. `st run` of spec/webhook.openapi.yaml against the same wallet (started with `conformance reference`), with
   the same seed, the phases examples, coverage, fuzzing and stateful, both modes (`--mode all`), and no hooks
   or custom checks: bare Schemathesis. It runs twice: with the same `--max-examples N` (the issue's "same
   examples"), and with 2*N, since the suite runs each mode separately with N examples while `st run --mode
   all` draws both modes from one budget; the second is the closer match in traffic.

Prints wall times, test-case counts and both ratios. Not a test: numbers go in the issue notes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def timed(command: list[str], **kwargs) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    return time.perf_counter() - started, done


def full_run(max_examples: int, seed: int, report_dir: str) -> tuple[float, dict]:
    seconds, done = timed(
        [
            str(BIN / "conformance"),
            "run",
            "--report-dir",
            report_dir,
            "--max-examples",
            str(max_examples),
            "--seed",
            str(seed),
        ]
    )
    if done.returncode not in (0, 1, 4):
        raise SystemExit(f"conformance run failed ({done.returncode}): {done.stderr.strip()[-400:]}")
    summary = json.loads((Path(report_dir) / "summary.json").read_text())
    return seconds, summary


def bare_st_run(max_examples: int, seed: int) -> tuple[float, str]:
    wallet = subprocess.Popen([str(BIN / "conformance"), "reference", "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        line = wallet.stdout.readline()
        url = re.search(r"(http://\S+)", line).group(1)
        workdir = tempfile.mkdtemp(prefix="st-bare-")  # no schemathesis.toml here: bare Schemathesis
        seconds, done = timed(
            [
                str(BIN / "st"),
                "run",
                str(ROOT / "spec" / "webhook.openapi.yaml"),
                "--url",
                url,
                "--seed",
                str(seed),
                "--max-examples",
                str(max_examples),
                "--mode",
                "all",
                "--phases",
                "examples,coverage,fuzzing,stateful",
                "--exclude-checks",
                "negative_data_rejection,positive_data_acceptance,missing_required_header",
                "--no-color",
            ],
            cwd=workdir,
            env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
        )
        tail = "\n".join(done.stdout.strip().splitlines()[-12:])
        return seconds, tail
    finally:
        wallet.terminate()
        wallet.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=100)
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    print(
        f"cores: {os.cpu_count()}, python {sys.version.split()[0]}, max-examples {args.max_examples}, seed {args.seed}"
    )
    for attempt in range(1, args.repeat + 1):
        with tempfile.TemporaryDirectory() as report_dir:
            full_seconds, summary = full_run(args.max_examples, args.seed, report_dir)
        generated_calls = sum(s["calls"] for s in summary["generated"])
        st_seconds, st_tail = bare_st_run(args.max_examples, args.seed)
        st2_seconds, st2_tail = bare_st_run(2 * args.max_examples, args.seed)
        print(f"\nattempt {attempt}")
        print(
            f"  conformance run : {full_seconds:6.1f} s wall  verdict={summary['verdict']}  "
            f"exchanges={summary['exchanges']}  generated calls={generated_calls}  tests={summary['tests']['total']}"
        )
        for label, seconds, tail in (("N", st_seconds, st_tail), ("2N", st2_seconds, st2_tail)):
            cases = re.search(r"(\d+) generated", tail)
            print(
                f"  bare st run ({label:>2}): {seconds:6.1f} s wall  test cases={cases.group(1) if cases else '?'}  "
                f"ratio conformance/st = {full_seconds / seconds:.2f}x"
            )
            issues = [line.strip() for line in tail.splitlines() if "issues" in line.lower() or "passed" in line]
            print(f"    {' | '.join(issues)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
