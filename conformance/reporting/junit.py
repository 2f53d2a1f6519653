"""``junit.xml`` rendered from the run's verdicts: one testcase per requirement, so CI shows the failing id.

Testcase status from the requirement's verdict status (never from pytest's outcomes):

- ``failed`` (MUST) and ``flaky`` counted as failing by the profile: ``<failure>`` whose message names the id;
- ``warning`` (SHOULD) and ``flaky``: passed for CI (they do not fail the run) with ``<system-out>`` saying so;
- ``skipped`` and ``waived``: ``<skipped>`` with the reason;
- every testcase carries ``<properties>``: requirement, level, status, and the tests/slices that judged it.

Suite errors (an unsound run) are one ``<error>`` testcase of their own, ``suite/run is sound``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

JUNIT_FILE = "junit.xml"
SUITE_NAME = "multimarkets-webhook-conformance requirements"


def _message(row: dict) -> str:
    examples = row.get("failing_examples") or []
    detail = ""
    if examples:
        first = examples[0]
        detail = f": [{first.get('check')}] {first.get('message') or first.get('status')}"
    return f"{row['id']} {row['status']} ({row['level']}){detail}"


def _details(row: dict) -> str:
    lines = [f"{row['id']} ({row['level']}): {row['statement']}", f"status: {row['status']}"]
    if row.get("reason"):
        lines.append(f"reason: {row['reason']}")
    for example in row.get("failing_examples") or []:
        lines.append(f"- [{example.get('check')}] {example.get('message') or example.get('status')} "
                     f"(origin {example.get('origin')}, exchanges {', '.join(example.get('exchanges', []))})")
        if example.get("curl"):
            lines.append(f"  {example['curl']}")
    if row.get("tests"):
        lines.append("judged by: " + ", ".join(row["tests"]))
    return "\n".join(lines)


def render(summary: dict[str, Any]) -> bytes:
    rows = summary.get("requirements", [])
    failing = {"failed"} | ({"flaky"} if summary.get("flaky_fails") else set())
    suite_errors = summary.get("suite_errors") or []
    failures = sum(r["status"] in failing for r in rows)
    skipped = sum(r["status"] in ("skipped", "waived") for r in rows)
    root = ET.Element("testsuites", name="multimarkets-webhook-conformance", tests=str(len(rows) + bool(suite_errors)),
                      failures=str(failures), errors=str(int(bool(suite_errors))), skipped=str(skipped))
    duration = str((summary.get("run") or {}).get("duration_s", 0))
    suite = ET.SubElement(root, "testsuite", name=SUITE_NAME, tests=root.get("tests"), failures=str(failures),
                          errors=root.get("errors"), skipped=str(skipped), time=duration,
                          timestamp=str((summary.get("run") or {}).get("started_at", "")))
    properties = ET.SubElement(suite, "properties")
    for name, value in (("verdict", summary.get("verdict")), ("exit_code", summary.get("exit_code")),
                        ("run_id", (summary.get("run") or {}).get("id"))):
        ET.SubElement(properties, "property", name=name, value=str(value))
    for row in rows:
        case = ET.SubElement(suite, "testcase", classname=f"requirements.{row['level']}",
                             name=f"{row['id']} {row['statement']}", time="0")
        props = ET.SubElement(case, "properties")
        for name, value in (("requirement", row["id"]), ("level", row["level"]), ("status", row["status"])):
            ET.SubElement(props, "property", name=name, value=value)
        for origin in row.get("tests", []):
            ET.SubElement(props, "property", name="judged_by", value=origin)
        status = row["status"]
        if status in failing:
            failure = ET.SubElement(case, "failure", message=_message(row), type=f"{row['level']} {status}")
            failure.text = _details(row)
        elif status in ("skipped", "waived"):
            reason = row.get("reason") or ""
            if status == "waived" and row.get("waiver"):
                waiver = row["waiver"]
                reason = (f"waived: {waiver.get('reason')} (ticket {waiver.get('ticket')}, "
                          f"expires {waiver.get('expires')})")
            ET.SubElement(case, "skipped", message=f"{row['id']} {status}: {reason}"[:1000])
        elif status in ("warning", "flaky"):
            out = ET.SubElement(case, "system-out")
            out.text = f"{status.upper()}: {_details(row)}"
    if suite_errors:
        case = ET.SubElement(suite, "testcase", classname="suite", name="run is sound", time="0")
        error = ET.SubElement(case, "error", message=f"{len(suite_errors)} suite error(s): {suite_errors[0]}"[:1000],
                              type="suite error")
        error.text = "\n".join(suite_errors)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def write(report_dir: Path, summary: dict[str, Any]) -> Path:
    path = Path(report_dir) / JUNIT_FILE
    path.write_bytes(render(summary))
    return path


def statuses(data: bytes) -> dict[str, str]:
    """{requirement id: status} read back from a junit.xml written here (for self-tests and tooling)."""
    found = {}
    for case in ET.fromstring(data).iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        if "requirement" in props:
            found[props["requirement"]] = props["status"]
    return found
