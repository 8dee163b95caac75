"""The console's pages and actions under ``/console``, one module per page group.

Reads go through ``fhirgen.store.console`` (the settings page through
``fhirgen.service.console_settings``), changes through ``fhirgen.service.console_actions`` (which
audit them); these modules parse the request, check the role, hand jobs to the broker and
render. Every view of a job page is audited, since it shows patient data.

Every module registers on the one blueprint in ``common`` (endpoints stay ``console.<view>``):
``hooks`` (the guard around every request, error pages, template helpers), ``signin``,
``overview``, ``jobs``, ``subscriptions``, ``audit``, ``users`` and ``settings``.
"""

from webhooks.console.views import (  # noqa: F401  (imported for the routes they register)
    audit,
    hooks,
    jobs,
    overview,
    settings,
    signin,
    subscriptions,
    users,
)
from webhooks.console.views.common import blueprint

__all__ = ["blueprint"]
