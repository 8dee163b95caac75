"""Read-only queries behind the admin console's pages, one module per page, fast with 100,000+ jobs.

``overview`` (jobs per state, throughput, latency, failures, live workers), ``jobs`` (the job
list), ``job_detail`` (a job's page and timeline), ``subscriptions`` and ``audit`` (the audit log
and its CSV). Every list is paged by keyset, every count and histogram is an SQL aggregate served
by an index (see ``fhirgen.store.console_models``), and no page runs a query per row.
"""

from __future__ import annotations

from fhirgen.store.console._common import AnyRow
from fhirgen.store.console.audit import (
    CSV_HEADER,
    MAX_ROW_ID,
    AuditFilter,
    AuditPage,
    audit_csv,
    audit_page,
)
from fhirgen.store.console.job_detail import VIEW_ACTION, JobDetail, TimelineEntry, job_detail
from fhirgen.store.console.jobs import JobFilter, JobPage, list_jobs
from fhirgen.store.console.overview import (
    LATENCY_SAMPLE,
    HourPoint,
    Overview,
    overview,
    percentile,
    workers_alive,
)
from fhirgen.store.console.subscriptions import (
    SubscriptionSummary,
    subscription_ids,
    subscriptions,
)

__all__ = [
    "CSV_HEADER",
    "LATENCY_SAMPLE",
    "MAX_ROW_ID",
    "VIEW_ACTION",
    "AnyRow",
    "AuditFilter",
    "AuditPage",
    "HourPoint",
    "JobDetail",
    "JobFilter",
    "JobPage",
    "Overview",
    "SubscriptionSummary",
    "TimelineEntry",
    "audit_csv",
    "audit_page",
    "job_detail",
    "list_jobs",
    "overview",
    "percentile",
    "subscription_ids",
    "subscriptions",
    "workers_alive",
]
