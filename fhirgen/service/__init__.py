"""The service layer: the use cases the webhook and the workers call.

Jobs and their steps, intake planning, our Subscription and its checks, the console's actions
and settings page, console users, the secrets vault and where the broker is. SQL stays in the
store (``fhirgen.store``: no statement runs here). May
import the store, drafting, clinical and FHIR layers and the shared modules; never an entry
point (``fhirgen.cli``), Flask or Celery: ``webhooks/`` and ``workers/`` are thin shells over it.
"""
