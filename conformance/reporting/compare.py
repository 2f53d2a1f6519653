"""This run against a previous one: which requirements regressed, which recovered.

``conformance run --compare PREVIOUS_SUMMARY`` writes ``comparison.json`` into the
report directory and prints a short block. Both sides are ``summary.json`` files
(:mod:`conformance.verdicts`); requirements are matched by id.

- regressed: was passed and is now failed or warning, or was warning and is now failed
  (a requirement raised from SHOULD to MUST);
- recovered: was failed or warning and is now passed;
- still failing: failed or warning both times;
- no longer judged / newly judged: skipped on one side only;
- new / removed: the id exists on one side only (the catalogue changed).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

COMPARISON_FILE = "comparison.json"
BAD = ("failed", "warning")
STATUSES = ("passed", "failed", "warning", "skipped", "flaky", "waived")


class NotASummary(ValueError):
    """The previous file is not a conformance summary.json."""


def load_previous(path: str | Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotASummary(f"{path} does not exist") from None
    except OSError as error:
        raise NotASummary(f"{path} cannot be read: {error.strerror or error}") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise NotASummary(f"{path} is not JSON ({error})") from None
    check_summary(data, path)
    return data


def check_summary(data: Any, path: str | Path = "summary") -> None:
    if not isinstance(data, dict) or not isinstance(data.get("requirements"), list):
        raise NotASummary(f"{path} is not a conformance summary.json (no requirements list)")
    for row in data["requirements"]:
        if not isinstance(row, dict) or not isinstance(row.get("id"), str) or row.get("status") not in STATUSES:
            raise NotASummary(f"{path} is not a conformance summary.json (a requirement row without id/status)")


def _side(summary: dict[str, Any], path: str | None = None) -> dict[str, Any]:
    run = summary.get("run", {}) if isinstance(summary.get("run"), dict) else {}
    spec = summary.get("spec", {}) if isinstance(summary.get("spec"), dict) else {}
    suite = summary.get("suite", {}) if isinstance(summary.get("suite"), dict) else {}
    side = {
        "run_id": run.get("id"),
        "started_at": run.get("started_at"),
        "verdict": summary.get("verdict"),
        "exit_code": summary.get("exit_code"),
        "suite_version": suite.get("version"),
        "spec_sha256": spec.get("sha256"),
        "target": (summary.get("target") or {}).get("base_url") if isinstance(summary.get("target"), dict) else None,
    }
    if path is not None:
        side["path"] = str(path)
    return side


def compare(current: dict[str, Any], previous: dict[str, Any], previous_path: str | None = None) -> dict[str, Any]:
    """The comparison record written to comparison.json."""
    check_summary(current, "this run's summary")
    check_summary(previous, previous_path or "the previous summary")
    before = {row["id"]: row for row in previous["requirements"]}
    after = {row["id"]: row for row in current["requirements"]}
    groups: dict[str, list[dict[str, Any]]] = {
        "regressed": [], "recovered": [], "still_failing": [], "no_longer_judged": [], "newly_judged": [],
        "new": [], "removed": [],
    }
    transitions = {}
    for rid in sorted(set(before) | set(after)):
        old, new = before.get(rid), after.get(rid)
        row = new or old
        entry = {
            "id": rid,
            "level": row.get("level"),
            "statement": row.get("statement"),
            "before": old["status"] if old else None,
            "after": new["status"] if new else None,
        }
        if old and old.get("level") != row.get("level"):
            entry["level_before"] = old.get("level")
        if old is None:
            groups["new"].append(entry)
        elif new is None:
            groups["removed"].append(entry)
        else:
            a, b = old["status"], new["status"]
            if (a == "passed" and b in BAD) or (a == "warning" and b == "failed"):
                groups["regressed"].append(entry)
            elif a in BAD and b == "passed":
                groups["recovered"].append(entry)
            elif a in BAD and b in BAD:
                groups["still_failing"].append(entry)
            elif a != "skipped" and b == "skipped":
                groups["no_longer_judged"].append(entry)
            elif a == "skipped" and b != "skipped":
                groups["newly_judged"].append(entry)
        if entry["before"] != entry["after"]:
            transitions[rid] = [entry["before"], entry["after"]]
    this, that = _side(current), _side(previous, previous_path)
    return {
        "previous": that,
        "current": this,
        "verdict": {"before": that["verdict"], "after": this["verdict"], "changed": that["verdict"] != this["verdict"]},
        "spec_changed": bool(that["spec_sha256"] and this["spec_sha256"]
                             and that["spec_sha256"] != this["spec_sha256"]),
        "suite_changed": that["suite_version"] != this["suite_version"],
        **groups,
        "transitions": transitions,
    }


def lines(comparison: dict[str, Any], limit: int = 12) -> list[str]:
    """The short block printed at the end of a run."""
    previous = comparison["previous"]
    out = [
        f"compared with run {previous.get('run_id') or '?'} ({previous.get('verdict') or '?'}): "
        f"{len(comparison['regressed'])} regressed, {len(comparison['recovered'])} recovered, "
        f"{len(comparison['still_failing'])} still failing"
    ]
    verdict = comparison["verdict"]
    if verdict["changed"]:
        out.append(f"  verdict: {verdict['before']} → {verdict['after']}")
    for group, word in (("regressed", "regressed"), ("recovered", "recovered"),
                        ("no_longer_judged", "no longer judged"), ("newly_judged", "newly judged"),
                        ("new", "new requirement"), ("removed", "removed requirement")):
        entries = comparison[group]
        for entry in entries[:limit]:
            out.append(f"  {word}: {entry['id']} ({entry.get('level')}) "
                       f"{entry['before'] or '-'} → {entry['after'] or '-'}")
        if len(entries) > limit:
            out.append(f"  … and {len(entries) - limit} more {word} (see {COMPARISON_FILE})")
    if comparison["spec_changed"]:
        out.append("  note: the spec changed between the two runs (different SHA-256)")
    return out


def compare_with_previous(summary: dict[str, Any], previous_path: str | Path, report_dir: Path,
                          say: Callable[[str], None] = print) -> dict[str, Any] | None:
    """Write comparison.json and print the block; a bad previous file is one warning line, never an error."""
    try:
        previous = load_previous(previous_path)
    except NotASummary as problem:
        say(f"compare skipped: {problem}")
        return None
    comparison = compare(summary, previous, str(previous_path))
    (report_dir / COMPARISON_FILE).write_text(
        json.dumps(comparison, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    for line in lines(comparison):
        say(line)
    return comparison
