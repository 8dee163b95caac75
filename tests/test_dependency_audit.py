"""What the images install (requirements.lock) has no known vulnerability.

pip-audit reads the vulnerability data PyPI publishes with each release (its JSON API). Where
the registry a machine reaches does not serve it (a mirror or proxy of the package files only),
nothing can be audited and the test skips with the reason pip-audit gave.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def audit(lock: Path) -> dict:
    pip_audit = shutil.which("pip-audit", path=str(Path(sys.executable).parent))
    if pip_audit is None:
        pytest.skip("pip-audit is not installed (make .venv/.dev installs it)")
    done = subprocess.run(
        [pip_audit, "--requirement", str(lock), "--disable-pip", "--no-deps",
         "--format", "json", "--progress-spinner", "off", "--timeout", "10"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if not done.stdout.strip():
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"no vulnerability data reachable: {reason[:200]}")
    return json.loads(done.stdout)


def test_the_runtime_lock_has_no_known_vulnerability() -> None:
    report = audit(ROOT / "requirements.lock")
    dependencies = report["dependencies"]
    audited = [d for d in dependencies if "skip_reason" not in d]
    if not audited:
        reasons = sorted({d["skip_reason"].split(":")[0] for d in dependencies})
        pytest.skip(
            f"none of {len(dependencies)} pinned packages could be audited here "
            f"({'; '.join(reasons)}): the registry serves no vulnerability data"
        )
    vulnerable = {
        f"{d['name']} {d['version']}": [v["id"] for v in d["vulns"]] for d in audited if d["vulns"]
    }
    assert vulnerable == {}, f"upgrade these pins (make lock UPGRADE=1): {vulnerable}"
