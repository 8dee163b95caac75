"""Subscriptions and the notification events received for them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, insert, select, update

from fhirgen.store.common import utcnow
from fhirgen.store.engine import Database
from fhirgen.store.models import NotificationEvent, Subscription


class SubscriptionsMixin(Database):
    """The ``Store``'s subscriptions and notification events."""

    def add_subscription(self, **values: Any) -> None:
        now = utcnow()
        with self.engine.begin() as connection:
            connection.execute(
                insert(Subscription).values(created_at=now, updated_at=now, **values)
            )

    def subscription(self, subscription_id: str) -> Row | None:
        with self._single.connect() as connection:
            return connection.execute(
                select(Subscription).where(Subscription.id == subscription_id)
            ).first()

    def subscriptions(self) -> Sequence[Row]:
        with self.engine.connect() as connection:
            return connection.execute(select(Subscription).order_by(Subscription.created_at)).all()

    def update_subscription(self, subscription_id: str, **values: Any) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(Subscription)
                .where(Subscription.id == subscription_id)
                .values(updated_at=utcnow(), **values)
            )

    def count_recovery(self, subscription_id: str) -> None:
        """A reconciliation ran for a gap this subscription had."""
        with self.engine.begin() as connection:
            connection.execute(
                update(Subscription)
                .where(Subscription.id == subscription_id)
                .values(gaps_recovered=Subscription.gaps_recovered + 1)
            )

    def events(self, subscription_id: str | None = None, limit: int = 100) -> Sequence[Row]:
        query = select(NotificationEvent).order_by(NotificationEvent.id.desc()).limit(limit)
        if subscription_id:
            query = query.where(NotificationEvent.subscription_id == subscription_id)
        with self.engine.connect() as connection:
            return connection.execute(query).all()
