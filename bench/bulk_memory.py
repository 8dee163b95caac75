"""Benchmark: a Bulk Data export read without loading it whole.

    python bench/bulk_memory.py [--base 20] [--scales 1,10,100] [--size 500]

Writes Bulk exports (one NDJSON file per resource type, with a manifest) of ``base`` × scale
patients, each with one inpatient stay of about ``size`` resources, runs ``fhirgen generate`` on
each in a fresh process, and reports stays per second and the process's peak RSS. The goal:
peak memory for an export 10× larger grows by less than 2×.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stays import stay_record


def write_export(folder: Path, patients: int, size: int) -> int:
    folder.mkdir(parents=True)
    handles: dict[str, object] = {}
    counts: dict[str, int] = {}
    try:
        for index in range(patients):
            for resource in stay_record(index, size):
                rtype = resource["resourceType"]
                if rtype not in handles:
                    handles[rtype] = (folder / f"{rtype}.ndjson").open("w")
                handles[rtype].write(json.dumps(resource) + "\n")  # type: ignore[attr-defined]
                counts[rtype] = counts.get(rtype, 0) + 1
    finally:
        for handle in handles.values():
            handle.close()  # type: ignore[attr-defined]
    manifest = {
        "transactionTime": "2026-03-07T00:00:00Z",
        "request": "https://ehr.example.org/fhir/Patient/$export",
        "requiresAccessToken": False,
        "output": [
            {"type": t, "url": f"{t}.ndjson", "count": n} for t, n in sorted(counts.items())
        ],
        "error": [],
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return sum(p.stat().st_size for p in folder.iterdir())


def run(folder: Path, out: Path) -> tuple[float, int, int]:
    """Seconds, peak RSS in KiB, stays written."""
    command = [
        sys.executable,
        "-m",
        "fhirgen",
        "generate",
        str(folder),
        "--out",
        str(out),
        "--no-progress",
    ]
    began = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - began
    stderr = process.stderr.read().decode() if process.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(stderr[-2000:])
    return elapsed, usage.ru_maxrss, len(list(out.glob("*.json")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", type=int, default=20, help="patients at scale 1")
    parser.add_argument("--scales", default="1,10,100")
    parser.add_argument("--size", type=int, default=500)
    args = parser.parse_args()
    rows = []
    work = Path(tempfile.mkdtemp(prefix="fhirgen-bulk-"))
    try:
        for scale in [int(s) for s in args.scales.split(",")]:
            export = work / f"export-{scale}x"
            size = write_export(export, args.base * scale, args.size)
            seconds, rss_kib, stays = run(export, work / f"out-{scale}x")
            rows.append(
                {
                    "scale": scale,
                    "patients": args.base * scale,
                    "export_mib": round(size / 2**20, 1),
                    "stays": stays,
                    "seconds": round(seconds, 1),
                    "stays_per_second": round(stays / seconds, 1),
                    "peak_rss_mib": round(rss_kib / 1024, 1),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
            shutil.rmtree(export)
            shutil.rmtree(work / f"out-{scale}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n| scale | patients | export | stays | seconds | stays/s | peak RSS |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['scale']}× | {r['patients']} | {r['export_mib']} MiB | {r['stays']} | "
            f"{r['seconds']} | {r['stays_per_second']} | {r['peak_rss_mib']} MiB |"
        )


if __name__ == "__main__":
    main()
