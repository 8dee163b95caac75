"""Benchmark: template-backend pipeline throughput for stays of about 500 resources.

    python bench/pipeline.py [--stays 200] [--size 500]

Reports stays per second (a) for the pipeline alone on in-memory records (context, facts,
drafts, verification, rendering and FHIR validation of the output) and (b) end to end:
``fhirgen generate`` on an NDJSON export, pinned to one CPU core, including reading, grouping,
drafting and writing every Bundle.
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
from fhirgen.drafting.generation import get_generator
from fhirgen.drafting.pipeline import draft_stay
from fhirgen.fhir.record import PatientRecord


def in_memory(stays: int, size: int) -> dict:
    records = [PatientRecord(f"bp{i}", stay_record(i, size)) for i in range(stays)]
    resources = sum(len(r) for r in records) / stays
    generator = get_generator("template")
    draft_stay(records[0], records[0].get("Encounter/be0"), generator, identifier_system="urn:b")
    began = time.perf_counter()
    for i, record in enumerate(records):
        draft_stay(record, record.get(f"Encounter/be{i}"), generator, identifier_system="urn:b")
    elapsed = time.perf_counter() - began
    return {
        "stays": stays,
        "resources_per_stay": round(resources),
        "stays_per_second": round(stays / elapsed, 1),
        "ms_per_stay": round(1000 * elapsed / stays, 2),
    }


def end_to_end(stays: int, size: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="fhirgen-bench-"))
    try:
        export = work / "export.ndjson"
        with export.open("w") as handle:
            for i in range(stays):
                for resource in stay_record(i, size):
                    handle.write(json.dumps(resource) + "\n")
        command = [
            sys.executable,
            "-m",
            "fhirgen",
            "generate",
            str(export),
            "--out",
            str(work / "out"),
            "--no-progress",
        ]
        if shutil.which("taskset"):
            command = ["taskset", "-c", "0", *command]
        began = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - began
        if done.returncode != 0:
            raise SystemExit(done.stderr[-2000:])
        written = len(list((work / "out").glob("*.json")))
        return {
            "stays": written,
            "export_mib": round(export.stat().st_size / 2**20, 1),
            "seconds": round(elapsed, 2),
            "stays_per_second": round(written / elapsed, 1),
            "one_core": bool(shutil.which("taskset")),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stays", type=int, default=200)
    parser.add_argument("--size", type=int, default=500, help="resources per stay")
    args = parser.parse_args()
    result = {
        "cpu": os.cpu_count(),
        "python": sys.version.split()[0],
        "in_memory": in_memory(args.stays, args.size),
        "end_to_end": end_to_end(args.stays, args.size),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
