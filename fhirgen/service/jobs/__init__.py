"""The live pipeline's steps, one per queue hop: read the stay (io), draft it (gpu), write it (io).

Each step loads its job, checks the job is where the step expects it (a redelivered message finds
the work done and moves on), does its work, records timings, and says which step comes next.
Errors follow the tree in ``fhirgen.errors``: a ``TransientError`` propagates so the task retries;
a ``PermanentError`` marks the job failed with its reason and gives up its claim on the stay.

``reading``, ``generating`` and ``writing`` hold the steps (the identifier checks around the
write in ``squatting``), ``steps`` what they share, ``dependencies`` the ``Services`` they run
with, and ``recovery`` what the scheduler recovers (missed stays, lost jobs, silent topics).
"""

from fhirgen.service.jobs.dependencies import Services
from fhirgen.service.jobs.generating import _drafts_view as _drafts_view
from fhirgen.service.jobs.generating import generate, generate_many
from fhirgen.service.jobs.reading import read
from fhirgen.service.jobs.recovery import (
    lost_jobs,
    reconcile,
    stale_subscriptions,
    stalled_jobs,
    status_events_since,
)
from fhirgen.service.jobs.squatting import IdentifierConflict
from fhirgen.service.jobs.squatting import _check_claims as _check_claims
from fhirgen.service.jobs.squatting import _check_written as _check_written
from fhirgen.service.jobs.steps import GENERATE, READ, WRITE, fail, next_step_for
from fhirgen.service.jobs.writing import _locations as _locations
from fhirgen.service.jobs.writing import write

__all__ = [
    "GENERATE",
    "READ",
    "WRITE",
    "IdentifierConflict",
    "Services",
    "fail",
    "generate",
    "generate_many",
    "lost_jobs",
    "next_step_for",
    "read",
    "reconcile",
    "stale_subscriptions",
    "stalled_jobs",
    "status_events_since",
    "write",
]
