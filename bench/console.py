"""Benchmark: console page render times with 1,000 and 100,000 jobs in the store.

    python bench/console.py [--jobs 1000 100000] [--repeat 20] [--database-url URL]

For each size, fills a fresh store (SQLite in a temporary folder, or the PostgreSQL database
named by ``--database-url``, whose fhirgen tables are dropped first) with jobs spread over 30
days in every state, a subscription, finished jobs in the last 24 hours and an audit log, then
signs in to the console in-process (Flask's test client: no network in the figure) and times
each page ``--repeat`` times: the overview, the job list (first page, a state filter, an older
page, a search by encounter id), a job page and the audit log. Prints median and p95 in ms and
the number of SQL statements each page ran (a query per row would show here).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa

from fhirgen.config import load_settings
from fhirgen.service.users import add_user
from fhirgen.store import JOB_STATES, Store
from fhirgen.store.models import AuditEntry, Base, Job, Subscription

PASSWORD = "benchmark password"
NOW = datetime.now(UTC).replace(microsecond=0)
BACKENDS = ("template", "transformers", "openai")
REASONS = (
    "GET Encounter answered 404",
    "POST [base] answered 422",
    "read timed out after 8 retries",
    "the stay has no Patient",
)


def fill(store: Store, jobs: int, seed: int = 7) -> str:
    """``jobs`` jobs over 30 days (the last 2 % within 24 hours); returns one job's id."""
    rng = random.Random(seed)
    with store.engine.begin() as connection:
        connection.execute(
            sa.insert(Subscription.__table__),
            [
                {
                    "id": "bench-sub",
                    "kind": "topic",
                    "criteria": "http://example.org/encounter-complete",
                    "content": "id-only",
                    "status": "active",
                    "events_since": jobs,
                    "notifications": jobs,
                    "gaps_detected": 3,
                    "gaps_recovered": 3,
                    "created_at": NOW - timedelta(days=31),
                    "updated_at": NOW,
                }
            ],
        )
        batch: list[dict[str, Any]] = []
        for i in range(jobs):
            recent = i >= jobs * 0.98
            age = timedelta(seconds=rng.uniform(0, 86_000 if recent else 30 * 86_400))
            created = NOW - age
            state = rng.choices(JOB_STATES, weights=[2, 1, 1, 1, 80, 8, 6, 1])[0]
            finished = state in ("done", "skipped", "failed", "cancelled")
            batch.append(
                {
                    "id": f"{i:032x}",
                    "encounter_id": f"enc-{i:07d}",
                    "kind": "discharge",
                    "regeneration": 0,
                    "state": state,
                    "reason": rng.choice(REASONS) if state == "failed" else None,
                    "source": "notification",
                    "subscription_id": "bench-sub",
                    "attempts": 1,
                    "timings": {"read": 120.0, "generate": 900.0, "write": 80.0},
                    "backend": rng.choice(BACKENDS) if finished else None,
                    "discharged_at": created - timedelta(seconds=rng.uniform(5, 600)),
                    "created_at": created,
                    "updated_at": created,
                    "finished_at": created + timedelta(seconds=rng.uniform(2, 90))
                    if finished
                    else None,
                }
            )
            if len(batch) == 5_000:
                connection.execute(sa.insert(Job.__table__), batch)
                batch = []
        if batch:
            connection.execute(sa.insert(Job.__table__), batch)
        connection.execute(
            sa.insert(AuditEntry.__table__),
            [
                {
                    "at": NOW - timedelta(minutes=i),
                    "actor": "ada",
                    "action": "view-job",
                    "job_id": f"{i:032x}",
                    "detail": None,
                }
                for i in range(min(jobs, 5_000))
            ],
        )
    return f"{jobs // 2:032x}"


def measure(settings: Any, job_id: str, repeat: int) -> dict[str, dict[str, float]]:
    from webhooks import create_app

    app = create_app(settings)
    store = app.extensions["fhirgen"].store
    add_user(store, "ada", "admin", PASSWORD)
    client = app.test_client()
    page = client.get("/console/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    signed = client.post(
        "/console/login", data={"username": "ada", "password": PASSWORD, "csrf_token": token}
    )
    assert signed.status_code == 302, signed.status_code
    first = client.get("/console/jobs").get_data(as_text=True)
    older = re.search(r'href="(/console/jobs\?before=[^"]+)"', first)
    pages = {
        "overview": "/console/",
        "jobs": "/console/jobs",
        "jobs ?state=failed": "/console/jobs?state=failed",
        "jobs, older page": older.group(1).replace("&amp;", "&") if older else "/console/jobs",
        "jobs ?q=<encounter>": f"/console/jobs?q=enc-{int(job_id, 16):07d}",
        "job page": f"/console/jobs/{job_id}",
        "audit log": "/console/audit",
    }
    statements = {"n": 0}

    def count(*_args: Any) -> None:
        statements["n"] += 1

    sa.event.listen(store.engine, "before_cursor_execute", count)
    results: dict[str, dict[str, float]] = {}
    for name, path in pages.items():
        client.get(path)  # warm: templates compiled, caches filled
        times = []
        statements["n"] = 0
        for _ in range(repeat):
            began = time.perf_counter()
            response = client.get(path)
            times.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200, (path, response.status_code)
        times.sort()
        results[name] = {
            "median_ms": round(statistics.median(times), 1),
            "p95_ms": round(times[max(0, int(len(times) * 0.95) - 1)], 1),
            "statements": round(statements["n"] / repeat, 1),
        }
    store.dispose()
    return results


def run(jobs: int, repeat: int, database_url: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="fhirgen-console-bench-") as folder:
        overrides: dict[str, Any] = {"data_dir": Path(folder) / "data"}
        if database_url:
            overrides |= {"database_url": database_url, "secret_key": "bench-only"}
            engine = sa.create_engine(database_url)
            with engine.begin() as connection:
                Base.metadata.drop_all(connection)
                connection.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
            engine.dispose()
        settings = load_settings(**overrides)
        store = Store.from_settings(settings)
        store.migrate()
        began = time.perf_counter()
        job_id = fill(store, jobs)
        filled = time.perf_counter() - began
        with store.engine.begin() as connection:
            connection.execute(sa.text("ANALYZE"))  # planner statistics, as a live store has
        store.dispose()
        return {
            "jobs": jobs,
            "store": settings.resolved_database_url.split(":", 1)[0],
            "fill_s": round(filled, 1),
            "pages": measure(settings, job_id, repeat),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[1_000, 100_000])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--json", action="store_true", help="Print the results as JSON.")
    args = parser.parse_args()
    for name in [n for n in os.environ if n.startswith("FHIRGEN_") and n != "FHIRGEN_REDIS_URL"]:
        del os.environ[name]  # this benchmark's settings, never the caller's
    results = [run(n, args.repeat, args.database_url) for n in args.jobs]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for result in results:
        print(f"\n{result['jobs']:,} jobs ({result['store']}, filled in {result['fill_s']} s)")
        print(f"  {'page':<22}{'median ms':>10}{'p95 ms':>9}{'SQL/page':>10}")
        for page, figures in result["pages"].items():
            print(
                f"  {page:<22}{figures['median_ms']:>10}{figures['p95_ms']:>9}"
                f"{figures['statements']:>10}"
            )


if __name__ == "__main__":
    main()
