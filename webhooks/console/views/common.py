"""What every console page shares: the blueprint they register on, the app's state, and the
parsing of the list pages' query arguments (days, row ids)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from flask import Blueprint, abort, current_app, flash

from fhirgen.store import console as queries

# root_path: the templates and static files sit in webhooks/console/, above this package.
blueprint = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
    root_path=str(Path(__file__).parent.parent),
)

if TYPE_CHECKING:
    from webhooks.app import WebhookState


def _state() -> WebhookState:
    state: WebhookState = current_app.extensions["fhirgen"]
    return state


def _day(value: str | None, field: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        flash(f"Ignored {field}: {value!r} is not a date (YYYY-MM-DD).", "error")
        return None


def _day_after(value: str | None, field: str) -> datetime | None:
    """The end (exclusive) of the day ``value`` names; 400 for a day with none after it."""
    day = _day(value, field)
    try:
        return day + timedelta(days=1) if day else None
    except OverflowError:
        abort(400, f"{field}: {value!r} is out of range.")


def _row_id(value: str | None, field: str) -> int | None:
    """A row id given in the query (a page cursor); 400 for a number no row id can be."""
    if not value or not (value.isascii() and value.isdigit()):  # not "²": int() refuses it
        return None
    number = int(value[:40])
    if len(value) > 19 or number > queries.MAX_ROW_ID:
        abort(400, f"{field}: {value[:40]!r} is out of range.")
    return number
