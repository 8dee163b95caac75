"""Where a notification's CPU goes: the webhook app in-process, under cProfile.

    python bench/ingest_profile.py [--store sqlite|postgresql] [--requests 2000]

Builds ``webhooks.create_app()`` in this process (a SQLite store in a temporary folder, or a
fresh PostgreSQL database beside ``--postgresql-url``'s, dropped afterwards; Redis: a server
of its own, as ``bench/ingest.py`` starts) and POSTs rest-hook notifications one after another
through Flask's test client: no gunicorn, no HTTP parsing, no socket. It prints the CPU time
per notification without the profiler, then, with it, the share of time spent in each package
(self time, by the file a function is in) and the application functions with the most
cumulative time: CPU time of this process (``--timer cpu``, the default) or wall time
(``--timer wall``: waits on PostgreSQL, its fsyncs and Redis included). The profiler's
overhead inflates small functions; read the shares.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import (  # noqa: E402
    OwnRedis,
    add_subscription,
    create_database,
    drop_database,
    encounter_body,
)
from fhirgen.config import load_settings  # noqa: E402
from fhirgen.store import Store  # noqa: E402

APP_PACKAGES = ("fhirgen", "webhooks", "workers")


def package_of(filename: str) -> str:
    path = Path(filename)
    parts = path.parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].split(".")[0].removesuffix(".py")
    try:
        relative = path.resolve().relative_to(ROOT)
        return relative.parts[0]
    except ValueError:
        pass
    if filename.startswith("<") or filename == "~":
        return "builtins"
    return "stdlib"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="postgresql")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument(
        "--timer", choices=["cpu", "wall"], default="cpu", help="what the profiler counts"
    )
    parser.add_argument(
        "--postgresql-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="fhirgen-ingest-profile-"))
    own_redis = OwnRedis(folder / "redis")
    database = None
    try:
        own_redis.start()
        values = {
            "data_dir": str(folder / "data"),
            "redis_url": own_redis.url,
            "secret_key": "bench-only-secret",
            "log_level": "WARNING",
        }
        if args.store == "postgresql":
            database = create_database(args.postgresql_url)
            values["database_url"] = database
        settings = load_settings(**values)
        from webhooks import create_app

        app = create_app(settings)
        store = Store.from_settings(settings)
        subscription_id = f"bench-profile-{secrets.token_hex(2)}"
        token = add_subscription(store, subscription_id)
        client = app.test_client()
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
        path = f"/fhir/notify/{subscription_id}"

        def post(n: int, label: str) -> None:
            answer = client.post(path, data=encounter_body(f"{label}-{n}"), headers=headers)
            if answer.status_code != 200:
                raise RuntimeError(f"answered {answer.status_code}: {answer.data[:200]!r}")

        for n in range(200):
            post(n, "warm")
        cpu, wall = time.process_time(), time.perf_counter()
        for n in range(args.requests):
            post(n, "plain")
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        print(
            f"{args.store}: {args.requests} notifications in-process: "
            f"{1000 * cpu / args.requests:.2f} ms CPU, {1000 * wall / args.requests:.2f} ms wall "
            "each (no profiler)"
        )
        timer = time.process_time if args.timer == "cpu" else time.perf_counter
        profiler = cProfile.Profile(timer)
        profiler.enable()
        for n in range(args.requests):
            post(n, "profiled")
        profiler.disable()
        stats = pstats.Stats(profiler)
        by_package: Counter[str] = Counter()
        total = 0.0
        for (filename, _line, _name), (_cc, _nc, tt, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
            by_package[package_of(filename)] += tt
            total += tt
        print(f"\nself {args.timer} time by package (share of the profiled total):")
        for package, seconds in by_package.most_common(14):
            print(f"  {package:22} {100 * seconds / total:5.1f} %")
        print(f"\napplication functions, cumulative {args.timer} ms per notification (profiled):")
        rows = []
        for (filename, line, name), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
            if package_of(filename) in APP_PACKAGES:
                rows.append((ct, f"{Path(filename).relative_to(ROOT)}:{line} {name}"))
        for ct, where in sorted(rows, reverse=True)[:16]:
            print(f"  {1000 * ct / args.requests:7.2f}  {where}")
        print(f"  (profiled total {1000 * total / args.requests:.2f} ms per notification)")
        store.dispose()
        app.extensions["fhirgen"].store.dispose()
        return 0
    finally:
        own_redis.stop()
        if database:
            drop_database(args.postgresql_url, database)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
