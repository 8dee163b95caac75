"""The audit log: the filtered page and its CSV export (itself audited)."""

from __future__ import annotations

from flask import Response, render_template, request
from flask_login import login_required

from fhirgen.store import console as queries
from fhirgen.store import utcnow
from fhirgen.store.console import AuditFilter
from webhooks.console.auth import actor
from webhooks.console.views.common import _day, _day_after, _row_id, _state, blueprint


def _audit_filter() -> AuditFilter:
    args = request.args
    return AuditFilter(
        actor=(args.get("actor") or "").strip() or None,
        action=(args.get("action") or "").strip() or None,
        job_id=(args.get("job") or "").strip() or None,
        since=_day(args.get("since"), "since"),
        until=_day_after(args.get("until"), "until"),
    )


@blueprint.get("/audit")
@login_required
def audit() -> str:
    page = queries.audit_page(
        _state().store, _audit_filter(), before=_row_id(request.args.get("before"), "before")
    )
    kept = {k: v for k, v in request.args.items() if k != "before" and v}
    return render_template(
        "console/audit.html", page=page, args=request.args, kept=kept, actions=KNOWN_ACTIONS
    )


KNOWN_ACTIONS = (
    "view-job",
    "retry",
    "regenerate",
    "regenerated-from",
    "cancel",
    "pause-subscription",
    "resume-subscription",
    "register-subscription",
    "reconcile-now",
    "sign-in",
    "sign-in-refused",
    "sign-out",
    "user-unlock",
    "user-end-sessions",
    "export-audit",
)


@blueprint.get("/audit.csv")
@login_required
def audit_csv() -> Response:
    store = _state().store
    filters = _audit_filter()
    store.audit(actor(), "export-audit", detail=request.query_string.decode()[:500] or None)
    stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
    return Response(
        queries.audit_csv(store, filters),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="fhirgen-audit-{stamp}.csv"'},
    )
