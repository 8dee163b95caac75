"""The subscriptions page: every subscription with the events and jobs it brought."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, func, select

from fhirgen.store import Store, as_utc
from fhirgen.store.console._common import EVENTS, JOBS, AnyRow
from fhirgen.store.models import Subscription

__all__ = ["SubscriptionSummary", "subscription_ids", "subscriptions"]

_SUBS = cast(Table, Subscription.__table__)


@dataclass(frozen=True)
class SubscriptionSummary:
    """A subscription with what it delivered: events stored and jobs made."""

    subscription: AnyRow
    events: int
    jobs: int
    last_event_at: datetime | None


def subscriptions(store: Store) -> list[SubscriptionSummary]:
    """Every subscription with its counts (two grouped queries, however many there are)."""
    with store.engine.connect() as connection:
        rows = connection.execute(select(_SUBS).order_by(_SUBS.c.created_at)).all()
        events = {
            sid: (count, last)
            for sid, count, last in connection.execute(
                select(
                    EVENTS.c.subscription_id, func.count(), func.max(EVENTS.c.received_at)
                ).group_by(EVENTS.c.subscription_id)
            ).all()
        }
        jobs: dict[str, int] = dict(
            connection.execute(
                select(JOBS.c.subscription_id, func.count())
                .where(JOBS.c.subscription_id.is_not(None))
                .group_by(JOBS.c.subscription_id)
            ).all()
        )
    return [
        SubscriptionSummary(
            row,
            int(events.get(row.id, (0, None))[0]),
            int(jobs.get(row.id, 0)),
            as_utc(events.get(row.id, (0, None))[1]),
        )
        for row in rows
    ]


def subscription_ids(store: Store) -> list[str]:
    """Every subscription id, sorted (the jobs list's filter choices)."""
    with store.engine.connect() as connection:
        return [r.id for r in connection.execute(select(_SUBS.c.id).order_by(_SUBS.c.id)).all()]
