"""The service layer: the use cases the webhook and the workers call.

Jobs and their steps, intake planning, our Subscription and its checks, worker heartbeats, the
console's actions and queries, console users, the secrets vault and where the broker is. May
import the store, drafting, clinical and FHIR layers and the shared modules; never an entry
point (``fhirgen.cli``), Flask or Celery: ``webhooks/`` and ``workers/`` are thin shells over it.
"""
