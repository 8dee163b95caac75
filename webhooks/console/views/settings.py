"""The settings page: the effective settings, secrets masked."""

from __future__ import annotations

from flask import render_template
from flask_login import login_required

from fhirgen.service import console_settings
from webhooks.console.views.common import _state, blueprint


@blueprint.get("/settings")
@login_required
def settings() -> str:
    return render_template(
        "console/settings.html", rows=console_settings.effective_settings(_state().settings)
    )
