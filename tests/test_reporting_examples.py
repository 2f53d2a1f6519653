"""The shipped examples: the TOML profile loads as documented; the nightly workflow does what it says."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from conformance import profile as profiles

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_the_example_profile_loads():
    profile = profiles.build({"config": str(EXAMPLES / "profile.toml")}, environ={})
    assert profile.base_url == "https://wallet.example.com/api/cats-gateway"
    assert profile.company_id == 439
    assert [str(a) for a in profile.accounts] == ["W-1001:86000001:USD", "W-1002:86000002:HKD"]
    assert profile.keys == "either" and profile.currency_allowlist == ("USDT",)
    assert profile.allow_money_movement is False
    assert [name for name, _ in profile.headers] == ["X-Gateway-Key"]
    assert profile.to_record()["headers"] == {"X-Gateway-Key": "<redacted>"}
    assert (profile.timeout, profile.rate_limit, profile.verify_tls) == (10.0, 20.0, True)
    assert (profile.seed, profile.max_examples, profile.report_dir) == (20261125, 100, "reports/wallet")
    assert set(profile.phases) <= set(profiles.PHASES)


def test_flags_override_the_example_profile():
    profile = profiles.build({"config": str(EXAMPLES / "profile.toml"), "max_examples": 5, "seed": 1}, environ={})
    assert (profile.max_examples, profile.seed) == (5, 1)


def _workflow() -> dict:
    return yaml.safe_load((EXAMPLES / "nightly.yml").read_text())


def test_the_nightly_workflow_is_scheduled_and_archives_the_evidence():
    workflow = _workflow()
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads the key `on` as true
    assert re.fullmatch(r"[\d*/,-]+ [\d*/,-]+ \* \* \*", triggers["schedule"][0]["cron"])
    assert "workflow_dispatch" in triggers
    steps = workflow["jobs"]["conformance"]["steps"]
    uses = [step.get("uses", "") for step in steps]
    assert uses[0].startswith("actions/checkout@")
    python = next(step for step in steps if step.get("uses", "").startswith("actions/setup-python@"))
    assert python["with"]["python-version"] == "3.11"
    runs = "\n".join(step.get("run", "") for step in steps)
    assert "pip install ." in runs
    assert "npm install --no-save allure-commandline@2" in runs
    run_step = next(step for step in steps if step.get("id") == "run")
    assert run_step["env"]["WALLET_BASE_URL"] == "${{ secrets.WALLET_BASE_URL }}"
    assert run_step["env"]["WALLET_GATEWAY_KEY"] == "${{ secrets.WALLET_GATEWAY_KEY }}"
    script = run_step["run"]
    for flag in ('--base-url "$WALLET_BASE_URL"', '--header "X-Gateway-Key: $WALLET_GATEWAY_KEY"',
                 '--report-dir "$REPORT_DIR"', '--history "$PREVIOUS_DIR"', '--compare "$PREVIOUS_DIR/summary.json"'):
        assert flag in script
    assert "${{" not in script  # secrets reach the shell as environment variables, never pasted into the script
    assert workflow["jobs"]["conformance"]["env"]["REPORT_DIR"] == "reports/nightly"
    upload = next(step for step in steps if step.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["if"] == "always()"
    assert "reports/nightly/evidence-*.zip" in upload["with"]["path"]
    assert "reports/nightly/report.html" in upload["with"]["path"]
    restore = next(step for step in steps if step.get("uses", "").startswith("actions/cache/restore@"))
    save = next(step for step in steps if step.get("uses", "").startswith("actions/cache/save@"))
    assert restore["with"]["path"] == save["with"]["path"] == "previous-report"
    assert "conformance verify" in runs


def test_the_nightly_workflow_keeps_the_exit_code_semantics():
    steps = _workflow()["jobs"]["conformance"]["steps"]
    verdict = steps[-1]
    assert verdict["if"] == "always()" and verdict["env"]["CODE"] == "${{ steps.run.outputs.exit_code }}"
    for code in ("0)", "1)", "4)", "3)"):
        assert code in verdict["run"]
    assert verdict["run"].rstrip().endswith('exit "$CODE"')


def test_the_nightly_workflow_verifies_against_a_pinned_key():
    workflow = yaml.safe_load((EXAMPLES / "nightly.yml").read_text())
    steps = {step.get("name"): step for step in workflow["jobs"]["conformance"]["steps"]}
    verify = steps["Verify the evidence bundle against the pinned key"]
    assert 'conformance verify "${bundles[0]}" --fingerprint "$EVIDENCE_KEY_FINGERPRINT"' in verify["run"]
    assert verify["env"]["EVIDENCE_KEY_FINGERPRINT"] == "${{ vars.EVIDENCE_KEY_FINGERPRINT }}"
