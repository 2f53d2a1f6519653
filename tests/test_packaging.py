"""The installable package finds its contract wherever it is installed (not only in this checkout)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        pytest.fail(f"building the wheel failed: {done.stderr[-800:]}")
    return next(out.glob("multimarkets_webhook_conformance-*.whl"))


def test_wheel_ships_the_contract_and_the_entry_point(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in (
        "conformance/_spec/webhook.openapi.yaml",
        "conformance/_spec/requirements.yaml",
        "conformance/_spec/webhook-api.reference.md",
        "conformance/schemathesis_hooks.py",
        "conformance/reference/app.py",
        "conformance/suite/test_generated.py",
    ):
        assert path in names, path
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "conformance = conformance.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_wheel_ships_every_module_of_the_source_tree(wheel):
    """A subpackage missing from pyproject's list is invisible to editable installs and breaks a real one."""
    names = set(zipfile.ZipFile(wheel).namelist())
    source = {p.relative_to(ROOT).as_posix() for p in (ROOT / "conformance").rglob("*.py")}
    assert source - names == set()


def test_installed_package_loads_its_contract_from_another_directory(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = (
        "import conformance, conformance.contract as c; k = c.load(); "
        f"assert str(k.spec_dir).startswith({str(site)!r}), k.spec_dir; "
        "print(len(k.requirements), k.spec_sha256)"
    )
    # Only the unpacked wheel and the venv's dependencies on the path: not this checkout.
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(site)!r}); {code}"],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    count, digest = done.stdout.split()
    from conformance import contract

    assert int(count) == len(contract.load().requirements)
    assert digest == contract.load().spec_sha256
