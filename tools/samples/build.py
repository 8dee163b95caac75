"""Write the samples: each stay as its ``Patient/$everything`` searchset Bundle, the Bulk export
as one NDJSON file per resource type plus ``manifest.json``.

``python -m tools.samples [--out DIR]`` (from the repository root) writes them into ``DIR``,
by default ``fhirgen/samples`` itself, and lists the files written.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tools.samples.datatypes import Resource
from tools.samples.ids import BASE_URL
from tools.samples.sample import Sample
from tools.samples.stays import STAYS
from tools.samples.stays.bulk_diabetes import build_bulk_diabetes

BULK_TRANSACTION_TIME = "2026-02-20T09:00:00Z"


def searchset(sample: Sample) -> dict[str, Any]:
    """The sample as ``GET Patient/<id>/$everything`` returns it: Patient first."""
    patients = sample.of_type("Patient")
    assert len(patients) == 1, sample.slug
    person = patients[0]
    ordered = [person, *(r for r in sample.resources if r is not person)]
    latest = max(str((r.get("meta") or {}).get("lastUpdated", "")) for r in ordered)
    return {
        "resourceType": "Bundle",
        "id": sample.new_id(f"{sample.slug}/Bundle/everything"),
        "meta": {"lastUpdated": latest},
        "type": "searchset",
        "timestamp": latest,
        "total": len(ordered),
        "link": [{"relation": "self", "url": f"{BASE_URL}/Patient/{person['id']}/$everything"}],
        "entry": [
            {
                "fullUrl": f"{BASE_URL}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in ordered
        ],
    }


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
    return path


def _clear(folder: Path, suffixes: tuple[str, ...]) -> None:
    """Remove generated files a previous build left that this build will not write."""
    if folder.is_dir():
        for stale in folder.iterdir():
            if stale.is_file() and stale.name.endswith(suffixes):
                stale.unlink()


def build_all(root: Path) -> list[Path]:
    """Write ``root/stays/*.json`` and ``root/bulk/`` and return the files written, sorted."""
    written: list[Path] = []
    stays = root / "stays"
    _clear(stays, (".json",))
    for slug, build in STAYS.items():
        bundle = searchset(build())
        text = json.dumps(bundle, indent=2, ensure_ascii=False) + "\n"
        written.append(_write(stays / f"{slug}.json", text))

    bulk = root / "bulk"
    _clear(bulk, (".ndjson", ".json"))
    sample = build_bulk_diabetes()
    by_type: dict[str, list[Resource]] = {}
    for resource in sample.resources:
        by_type.setdefault(resource["resourceType"], []).append(resource)
    output = []
    for rtype in sorted(by_type):
        lines = [json.dumps(r, separators=(",", ":"), ensure_ascii=False) for r in by_type[rtype]]
        written.append(_write(bulk / f"{rtype}.ndjson", "\n".join(lines) + "\n"))
        output.append({"type": rtype, "url": f"{rtype}.ndjson", "count": len(lines)})
    manifest = {
        "transactionTime": BULK_TRANSACTION_TIME,
        "request": f"{BASE_URL}/Group/{sample.new_id('bulk/Group/diabetes-cohort')}/$export"
        "?_type=" + ",".join(sorted(by_type)),
        "requiresAccessToken": False,
        "output": output,
        "error": [],
    }
    written.append(
        _write(bulk / "manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    )
    return sorted(written)


REPOSITORY = Path(__file__).resolve().parents[2]
SAMPLES = REPOSITORY / "fhirgen" / "samples"


def main(argv: Sequence[str] | None = None) -> None:
    """Write the samples into ``--out`` (default: ``fhirgen/samples``) and list the files."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.samples",
        description="Write fhirgen's synthetic sample records (stdlib only, deterministic).",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=SAMPLES,
        metavar="DIR",
        help="folder to write stays/ and bulk/ into (default: %(default)s)",
    )
    root = parser.parse_args(argv).out
    for path in build_all(root):
        print(path.relative_to(REPOSITORY) if path.is_relative_to(REPOSITORY) else path)
