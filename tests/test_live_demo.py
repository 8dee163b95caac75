"""``fhirgen demo`` as a new user runs it: everything starts, every sample stay gets its draft."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.live


def test_demo_drafts_every_sample_stay_and_stops_cleanly(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIRGEN_")}
    done = subprocess.run(
        [sys.executable, "-m", "fhirgen", "demo", "--once"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = re.findall(r"Encounter/(\S+)\s+DocumentReference/(\S+)\s+([\d.]+) s", done.stdout)
    assert len(rows) == 5, done.stdout
    assert all(float(seconds) < 60 for _, _, seconds in rows)
    assert "EHR (sekmet-fhir): http://127.0.0.1:" in done.stdout
    assert re.search(
        r"fhirgen console:\s+http://127\.0\.0\.1:\d+/console\s+user: demo", done.stdout
    )
    leftover = subprocess.run(
        ["pgrep", "-f", str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert leftover.stdout.strip() == "", "the demo stops everything it started"
