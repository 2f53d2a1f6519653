"""The fault matrix's twin: every conforming variant of the reference wallet passes the default suite.

A variant is another legal reading of the docs (``conformance/reference/variants.py``, each naming the spec
decision it exercises). The real command line (``conformance run``, a subprocess) tests each one with every
phase; the run must exit 0 with no MUST requirement failed, and warn on no SHOULD requirement other than those
the variant declares (``Variant.warns``: a legal reading the suite grades as a SHOULD). A failure here means a
check picked one side of an open choice: the check is wrong, never the variant.

Each variant alone runs the handwritten probes, the delivery simulator and the spec's examples (seeds 1-3
rotating); three more runs combine every combinable reading at once (as an independent wallet does) with
every phase, generated ones included, one seed each: every variant is in at least one of them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conformance import contract
from conformance.reference import DEFAULT_ACCOUNTS, WalletConfig, serve
from conformance.reference.variants import EXCLUSIVE, VARIANTS

CATALOGUE = contract.load().requirements
ACCOUNT_ARGS = [
    arg for a in DEFAULT_ACCOUNTS for arg in ("--account", f"{a.third_server_code}:{a.user_name}:{a.currency}")
]
#: The variants hold test money: the amount bound for external targets is lifted (as in test_faults.py).
RUN = ["--rate-limit", "0", "--allow-money-movement", "--max-execute-amount", "0", "--no-html", *ACCOUNT_ARGS]
SEEDS = (1, 2, 3)


def run_suite(base_url: str, report_dir: Path, *extra: str) -> tuple[int, dict, str]:
    done = subprocess.run(
        [sys.executable, "-m", "conformance.cli", "run", "--base-url", base_url, "--report-dir", str(report_dir),
         *RUN, *extra],
        capture_output=True, text=True, timeout=600,
    )
    path = report_dir / "summary.json"
    return done.returncode, (json.loads(path.read_text()) if path.exists() else {}), done.stderr + done.stdout[-3000:]


def assert_clean(variants: frozenset[str], code: int, summary: dict, output: str) -> None:
    assert summary, f"no summary.json (exit {code}): {output[-1500:]}"
    rows = {row["id"]: row for row in summary["requirements"]}
    failed = {rid: row.get("failing_examples", [])[:1] for rid, row in rows.items() if row["status"] == "failed"}
    assert not failed, f"variants {sorted(variants)}: false MUST failures {json.dumps(failed, indent=1)[:3000]}"
    allowed = {rid for name in variants for rid in VARIANTS[name].warns}
    warned = {rid for rid, row in rows.items() if row["status"] == "warning"}
    assert warned <= allowed, f"variants {sorted(variants)}: undeclared SHOULD warnings {sorted(warned - allowed)}"
    assert not summary["suite_errors"], summary["suite_errors"]
    assert code == 0, f"exit {code}: {output[-1500:]}"
    assert not summary["money"]["outstanding"], "every adjustment was compensated"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variant_passes_the_default_suite(name, tmp_path):
    seed = SEEDS[sorted(VARIANTS).index(name) % len(SEEDS)]
    variants = frozenset({name})
    with serve(WalletConfig(variants=variants)) as base_url:
        # the handwritten probes, the delivery simulator and the spec's examples; the generated phases run in
        # full against every reading at once below
        code, summary, output = run_suite(base_url, tmp_path / "report", "--seed", str(seed),
                                          "--phases", "handwritten,delivery,examples", "--max-examples", "5")
    assert_clean(variants, code, summary, output)


def combinations() -> list[frozenset[str]]:
    """Three wallets, each making every combinable choice, the exclusive ones rotated."""
    result = []
    for index in range(len(SEEDS)):
        chosen = set(VARIANTS)
        for group in EXCLUSIVE:
            members = sorted(group)
            chosen -= set(members)
            chosen.add(members[index % len(members)])
        result.append(frozenset(chosen))
    return result


@pytest.mark.slow
@pytest.mark.parametrize(("seed", "variants"), list(zip(SEEDS, combinations(), strict=True)),
                         ids=[f"seed{s}" for s in SEEDS])
def test_every_reading_at_once_passes_the_default_suite(seed, variants, tmp_path):
    with serve(WalletConfig(variants=variants)) as base_url:
        code, summary, output = run_suite(base_url, tmp_path / "report", "--seed", str(seed), "--max-examples", "20")
    assert_clean(variants, code, summary, output)


def test_every_open_decision_has_a_variant():
    """Each decision that leaves a wallet a choice is exercised by at least one variant."""
    decisions = {d["id"] for d in contract.load().spec["info"]["x-decisions"]}
    exercised = {v.decision for v in VARIANTS.values()}
    choices = {"D2-balance-keys", "D5-error-status", "D12-null-optional", "D13-invalid-execute-received",
               "D14-abnormal-overtrading", "D15-cancel-mismatch", "D16-second-cancel", "D17-freshness",
               "D18-unknown-currency-for-known-user", "D19-extra-fields-and-formats", "D20-error-answers"}
    assert choices <= decisions
    assert choices <= exercised, sorted(choices - exercised)
    assert all(rid in CATALOGUE and CATALOGUE[rid].level == "SHOULD" for v in VARIANTS.values() for rid in v.warns)
