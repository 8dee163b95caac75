"""The overview page: job counts, throughput and latency charts, queue depths, live workers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import render_template
from flask_login import login_required

from fhirgen.errors import BrokerUnavailable
from fhirgen.store import JOB_STATES
from fhirgen.store import console as queries
from webhooks.console import charts
from webhooks.console.views.common import _state, blueprint
from workers.enqueue import broker_errors

if TYPE_CHECKING:
    from webhooks.app import WebhookState

QUEUES = ("io", "gpu")
WORKER_FRESH_SECONDS = 60.0  # four missed 15 s heartbeats


@blueprint.get("/")
@login_required
def overview() -> str:
    state = _state()
    numbers = queries.overview(state.store)
    labels = [point.hour.strftime("%H:00") for point in numbers.hours]
    throughput = charts.stacked_bars(
        "Jobs finished per hour, last 24 hours",
        labels,
        [
            charts.Series("bar-done", "done", [p.done for p in numbers.hours]),
            charts.Series("bar-failed", "failed", [p.failed for p in numbers.hours]),
        ],
    )
    latency = charts.lines(
        "Discharge to draft written, per hour (p50, p95)",
        labels,
        [
            charts.Series("line-p50", "p50", [p.p50 for p in numbers.hours]),
            charts.Series("line-p95", "p95", [p.p95 for p in numbers.hours]),
        ],
    )
    return render_template(
        "console/overview.html",
        o=numbers,
        states=JOB_STATES,
        throughput=throughput,
        latency=latency,
        queues=_queue_depths(state),
        workers=queries.workers_alive(state.store, within=WORKER_FRESH_SECONDS),
        duration=charts.duration,
    )


def _queue_depths(state: WebhookState) -> dict[str, int] | None:
    """Messages waiting per queue (Redis LLEN), or None when Redis does not answer."""
    try:
        with broker_errors():
            client = state.redis()
            pipe = client.pipeline()
            for queue in QUEUES:
                pipe.llen(queue)
            return dict(zip(QUEUES, (int(n) for n in pipe.execute()), strict=True))
    except BrokerUnavailable:
        return None
