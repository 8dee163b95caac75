"""The users page (admins only): console accounts with their refused sign-ins, unlocking an
account and ending its sessions."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask_login import login_required
from werkzeug.wrappers import Response as BaseResponse

from fhirgen.service import console_actions
from fhirgen.service.users import list_users, throttled
from webhooks.console.auth import actor, admin_required
from webhooks.console.views.common import _state, blueprint


@blueprint.get("/users")
@login_required
@admin_required
def users() -> str:
    store = _state().store
    refused = throttled(store)  # one query, not one per user
    rows = [(user, refused.get(user.username, 0)) for user in list_users(store)]
    return render_template("console/users.html", rows=rows)


@blueprint.post("/users/<name>/<any(unlock, 'end-sessions'):change>")
@login_required
@admin_required
def user_change(name: str, change: str) -> BaseResponse:
    store, name = _state().store, name[:120]
    try:
        if change == "unlock":
            cleared = console_actions.unlock_user(store, name, actor())
            flash(f"Unlocked {name}: {cleared} client(s) may try again.", "info")
        else:
            console_actions.end_user_sessions(store, name, actor())
            flash(f"Ended every session of {name}.", "info")
    except console_actions.ActionRefused as exc:
        flash(str(exc), "error")
    return redirect(url_for("console.users"))
