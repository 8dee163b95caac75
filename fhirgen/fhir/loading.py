"""Reading FHIR input files: Bundles, NDJSON and Bulk Data exports, into a ``ResourcePool``.

Input may be any mix of Bundle JSON files (collection, searchset, transaction, batch-response,
document; nested Bundles too), NDJSON files and folders (a Bulk ``$export`` with or without its
manifest, or many Bundle files). Resources are spilled into a temporary SQLite file keyed by
patient, so a Bulk export far larger than memory is read one line at a time and processed one
patient at a time. Every problem is reported with its file (and line or entry) and reading goes
on: one bad file or line never stops the others.
"""

from __future__ import annotations

import gzip
import re
import sqlite3
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from fhirgen.fhir.problems import Problem
from fhirgen.fhir.record import PatientRecord, patient_of
from fhirgen.fhir.resource_types import RESOURCE_TYPES

Report = Callable[[Problem], None]

JSON_SUFFIXES = (".json", ".json.gz")
NDJSON_SUFFIXES = (".ndjson", ".jsonl", ".ndjson.gz", ".jsonl.gz")
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


@dataclass
class LoadStats:
    """What reading the inputs found."""

    files: int = 0
    resources: int = 0
    failed_files: list[str] = field(default_factory=list)


class ResourcePool:
    """Resources spilled to a temporary SQLite file, grouped by the patient they belong to.

    Resources outside any patient compartment (Medication, Practitioner, Organization…) are kept
    too and served by ``get`` when a patient's record refers to them.
    """

    def __init__(self, directory: Path | None = None) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="fhirgen-pool-", dir=directory)
        self._db = sqlite3.connect(Path(self._tmp.name) / "pool.sqlite")
        self._db.executescript(
            """
            PRAGMA journal_mode = OFF;
            PRAGMA synchronous = OFF;
            PRAGMA cache_size = -8192;
            PRAGMA temp_store = FILE;
            CREATE TABLE res (
                key TEXT PRIMARY KEY,
                rtype TEXT NOT NULL,
                patient TEXT,
                full_url TEXT,
                origin TEXT NOT NULL,
                body BLOB NOT NULL
            ) WITHOUT ROWID;
            """
        )
        self._indexed = False

    def add(
        self,
        resource: Mapping[str, Any],
        *,
        patient: str | None,
        origin: str,
        full_url: str | None = None,
        body: bytes | None = None,
    ) -> Problem | None:
        """Store one resource; returns a Problem when its ``Type/id`` was already seen."""
        key = f"{resource['resourceType']}/{resource['id']}"
        data = body if body is not None else orjson.dumps(resource)
        alias = full_url if full_url and full_url.startswith("urn:") else None
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO res VALUES (?, ?, ?, ?, ?, ?)",
            (key, resource["resourceType"], patient, alias, origin, data),
        )
        if cursor.rowcount:
            self._indexed = False
            return None
        first_origin, first_body = self._db.execute(
            "SELECT origin, body FROM res WHERE key = ?", (key,)
        ).fetchone()
        if first_body == data or orjson.loads(first_body) == resource:
            return None  # the same resource twice (e.g. a shared Organization in two Bundles)
        return Problem(
            origin,
            f"duplicate id {key} with different content (first at "
            f"{first_origin}); the first is kept",
        )

    def _ensure_indexes(self) -> None:
        if not self._indexed:
            self._db.executescript(
                """
                CREATE INDEX IF NOT EXISTS res_patient ON res (patient, rtype);
                CREATE INDEX IF NOT EXISTS res_full_url ON res (full_url)
                    WHERE full_url IS NOT NULL;
                """
            )
            self._db.commit()
            self._indexed = True

    def patient_ids(self) -> list[str]:
        """Every patient any resource belongs to, sorted."""
        self._ensure_indexes()
        rows = self._db.execute(
            "SELECT DISTINCT patient FROM res WHERE patient IS NOT NULL ORDER BY patient"
        )
        return [row[0] for row in rows]

    def encounter_patients(self, encounter_ids: Iterable[str]) -> dict[str, str | None]:
        """For each requested encounter id found, the patient it belongs to."""
        self._ensure_indexes()
        found: dict[str, str | None] = {}
        for encounter_id in encounter_ids:
            row = self._db.execute(
                "SELECT patient FROM res WHERE key = ?", (f"Encounter/{encounter_id}",)
            ).fetchone()
            if row is not None:
                found[encounter_id] = row[0]
        return found

    def encounters(self) -> Iterator[tuple[str | None, dict[str, Any]]]:
        """Every Encounter with the patient it belongs to (for counting stays up front)."""
        # A cursor of its own, read row by row: a large export has many Encounters.
        rows = self._db.cursor().execute("SELECT patient, body FROM res WHERE rtype = 'Encounter'")
        for patient, body in rows:
            yield patient, orjson.loads(body)

    def get(self, key: str) -> dict[str, Any] | None:
        """One resource by ``Type/id``."""
        row = self._db.execute("SELECT body FROM res WHERE key = ?", (key,)).fetchone()
        return orjson.loads(row[0]) if row else None

    def record(self, patient_id: str, types: Iterable[str] | None = None) -> PatientRecord:
        """The patient's resources as a PatientRecord that resolves references into the pool.

        ``types`` limits the record to the resource types a caller reads (others stay on disk).
        """
        self._ensure_indexes()
        resources: list[dict[str, Any]] = []
        aliases: dict[str, str] = {}
        origins: dict[str, str] = {}
        rows = self._db.execute(
            "SELECT key, full_url, origin, body, rtype FROM res WHERE patient = ?", (patient_id,)
        )
        wanted = frozenset(types) if types is not None else None
        for key, full_url, origin, body, rtype in rows:
            if wanted is not None and rtype not in wanted:
                continue
            resources.append(orjson.loads(body))
            origins[key] = origin
            if full_url:
                aliases[full_url] = key
        resources.sort(key=lambda r: (r["resourceType"], r["id"]))
        return PatientRecord(
            patient_id,
            resources,
            aliases=_PoolAliases(self._db, aliases),
            lookup=self.get,
            origins=origins,
        )

    def close(self) -> None:
        """Delete the spill file."""
        self._db.close()
        self._tmp.cleanup()

    def __enter__(self) -> ResourcePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _PoolAliases(Mapping[str, str]):
    """fullUrl aliases of one patient, falling back to the whole pool (shared resources)."""

    def __init__(self, db: sqlite3.Connection, local: dict[str, str]) -> None:
        self._db = db
        self._local = local
        self._missing: set[str] = set()

    def __getitem__(self, url: str) -> str:
        if url in self._local:
            return self._local[url]
        if not url.startswith("urn:") or url in self._missing:
            raise KeyError(url)  # only urn: fullUrls are stored as aliases
        row = self._db.execute("SELECT key FROM res WHERE full_url = ?", (url,)).fetchone()
        if row is None:
            self._missing.add(url)
            raise KeyError(url)
        self._local[url] = row[0]
        return row[0]

    def __contains__(self, url: object) -> bool:
        try:
            self[str(url)]
        except KeyError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self._local)

    def __len__(self) -> int:
        return len(self._local)


class Loader:
    """Reads input paths into a pool, reporting each problem and carrying on."""

    def __init__(
        self,
        pool: ResourcePool,
        report: Report,
        *,
        max_bundle_bytes: int,
        max_line_bytes: int,
    ) -> None:
        self.pool = pool
        self.report = report
        self.max_bundle_bytes = max_bundle_bytes
        self.max_line_bytes = max_line_bytes
        self.stats = LoadStats()

    def load(self, paths: Sequence[Path]) -> LoadStats:
        """Read every input path; returns what was read."""
        for path in paths:
            for file in self._expand(path):
                self._load_file(file, named=file == path)
        return self.stats

    # -- finding files ---------------------------------------------------------------------

    def _expand(self, path: Path) -> Iterator[Path]:
        if path.is_dir():
            manifest = path / "manifest.json"
            if manifest.is_file() and _is_bulk_manifest(manifest):
                yield from self._manifest_files(manifest)
                return
            files = sorted(
                p for p in path.rglob("*") if p.is_file() and _suffix_kind(p) is not None
            )
            if not files:
                self._fail(str(path), "folder holds no .json or .ndjson files")
            yield from files
        elif path.is_file():
            yield path
        else:
            self._fail(str(path), "no such file or folder")

    def _manifest_files(self, manifest: Path) -> Iterator[Path]:
        try:
            data = orjson.loads(manifest.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            self._fail(str(manifest), f"unreadable Bulk Data manifest ({_reason(exc)})")
            return
        outputs = data.get("output") if isinstance(data, dict) else None
        if not isinstance(outputs, list):
            self._fail(str(manifest), "not a Bulk Data manifest (no 'output' list)")
            return
        for item in outputs:
            url = item.get("url") if isinstance(item, dict) else None
            if not isinstance(url, str) or not url:
                self._fail(str(manifest), "manifest output entry without a url")
                continue
            # Exports are often copied from a server: the file sits beside the manifest.
            candidate = manifest.parent / url.rstrip("/").rsplit("/", 1)[-1]
            if candidate.is_file():
                yield candidate
            else:
                self._fail(str(manifest), f"manifest lists {url}, but {candidate} is missing")

    # -- reading files ---------------------------------------------------------------------

    def _load_file(self, path: Path, *, named: bool = True) -> None:
        kind = _suffix_kind(path) or "json"
        self.stats.files += 1
        try:
            if kind == "ndjson":
                self._load_ndjson(path)
            else:
                self._load_json(path, named=named)
        except (OSError, EOFError, zlib.error) as exc:
            # EOFError and zlib.error: a truncated or corrupt .gz file.
            self._fail(str(path), f"cannot read file ({_reason(exc)})")

    def _load_json(self, path: Path, *, named: bool) -> None:
        size = path.stat().st_size
        if size > self.max_bundle_bytes:
            self._fail(
                str(path),
                f"file is {_mib(size)}, over the {_mib(self.max_bundle_bytes)} limit for one "
                "JSON document; export it as NDJSON (streamed) or raise FHIRGEN_MAX_BUNDLE_BYTES",
            )
            return
        with _open(path) as handle:
            raw = handle.read(self.max_bundle_bytes + 1)
        if len(raw) > self.max_bundle_bytes:
            self._fail(str(path), f"decompressed content is over {_mib(self.max_bundle_bytes)}")
            return
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            self._fail(str(path), f"invalid JSON ({_reason(exc)})")
            return
        if isinstance(data, dict) and "resourceType" not in data:
            if isinstance(data.get("output"), list):
                for file in self._manifest_files(path):
                    self._load_file(file)
                return
            if not named:
                # Folders often hold other JSON (metadata, manifests of other tools).
                self.report(Problem(str(path), "skipped: JSON that is not FHIR", "warning"))
                return
        before = self.stats.resources
        self._take(data, str(path), full_url=None, aliases={})
        if self.stats.resources == before and str(path) not in self.stats.failed_files:
            self.report(Problem(str(path), "holds no FHIR resources", "warning"))

    def _load_ndjson(self, path: Path) -> None:
        with _open(path) as handle:
            for number, line in enumerate(_lines(handle, self.max_line_bytes), start=1):
                where = f"{path}:{number}"
                if line is None:
                    self._fail(where, f"line is over the {_mib(self.max_line_bytes)} limit")
                    continue
                if not line.strip():
                    continue
                try:
                    data = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    self._fail(where, f"invalid JSON ({_reason(exc)})")
                    continue
                body = line.rstrip(b"\r\n") if isinstance(data, dict) else None
                if isinstance(data, dict) and data.get("resourceType") == "Bundle":
                    body = None
                self._take(data, where, full_url=None, aliases={}, body=body)

    # -- resources -------------------------------------------------------------------------

    def _take(
        self,
        data: Any,
        where: str,
        *,
        full_url: str | None,
        aliases: dict[str, str],
        body: bytes | None = None,
    ) -> None:
        if not isinstance(data, dict):
            self._fail(where, f"not a FHIR resource (a JSON {type(data).__name__})")
            return
        rtype = data.get("resourceType")
        if not isinstance(rtype, str):
            self._fail(where, "not a FHIR resource (no resourceType)")
            return
        if rtype not in RESOURCE_TYPES:
            self._fail(where, f"not a FHIR R4 resource (unknown resourceType {rtype!r})")
            return
        if rtype == "Bundle":
            self._take_bundle(data, where)
            return
        rid = data.get("id")
        if rid is None and full_url and full_url.startswith("urn:uuid:"):
            rid = full_url.removeprefix("urn:uuid:")
            data = {**data, "id": rid}
            body = None
        if not isinstance(rid, str) or not _ID.match(rid):
            self._fail(where, f"{rtype} has no valid id ({rid!r})")
            return
        patient = patient_of(data, aliases)
        problem = self.pool.add(data, patient=patient, origin=where, full_url=full_url, body=body)
        if problem:
            self._fail(problem.where, problem.message)
        else:
            self.stats.resources += 1

    def _take_bundle(self, bundle: dict[str, Any], where: str) -> None:
        entries = bundle.get("entry") or []
        if not isinstance(entries, list):
            self._fail(where, "Bundle.entry is not a list")
            return
        # urn:uuid references inside a transaction point at other entries' fullUrls.
        aliases: dict[str, str] = {}
        for entry in entries:
            if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
                res, url = entry["resource"], entry.get("fullUrl")
                rid = res.get("id") or (
                    url.removeprefix("urn:uuid:") if isinstance(url, str) else None
                )
                if isinstance(url, str) and url.startswith("urn:") and rid:
                    aliases[url] = f"{res.get('resourceType')}/{rid}"
        for index, entry in enumerate(entries):
            at = f"{where} entry {index}"
            if not isinstance(entry, dict):
                self._fail(at, "Bundle entry is not a JSON object")
                continue
            resource = entry.get("resource")
            if resource is None:
                continue  # a DELETE in a transaction, or a response without a body
            if _is_outcome(resource):
                continue
            url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
            if isinstance(resource, dict) and resource.get("resourceType") == "Bundle":
                self._take_bundle(resource, at)
            else:
                self._take(resource, at, full_url=url, aliases=aliases)

    def _fail(self, where: str, message: str) -> None:
        file = where.split(":", 1)[0].split(" entry ", 1)[0]
        if file not in self.stats.failed_files:
            self.stats.failed_files.append(file)
        self.report(Problem(where, message))


def _is_bulk_manifest(path: Path) -> bool:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return False
    return isinstance(data, dict) and isinstance(data.get("output"), list)


def _is_outcome(resource: Any) -> bool:
    """Search outcomes and batch-response OperationOutcomes carry no clinical data."""
    return isinstance(resource, dict) and resource.get("resourceType") == "OperationOutcome"


def _suffix_kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(NDJSON_SUFFIXES):
        return "ndjson"
    if name.endswith(JSON_SUFFIXES):
        return "json"
    return None


def _open(path: Path) -> IO[bytes]:
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]  # a GzipFile reads bytes
    return path.open("rb")


def _lines(handle: IO[bytes], limit: int) -> Iterator[bytes | None]:
    """Lines of a stream; None stands for a line over ``limit`` bytes (skipped unread)."""
    while True:
        line = handle.readline(limit + 1)
        if not line:
            return
        if len(line) > limit and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):
                line = handle.readline(1024 * 1024)
            yield None
            continue
        yield line


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc).split("\n", 1)[0] or type(exc).__name__


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB" if size < 1024**3 else f"{size / 1024**3:.1f} GiB"
