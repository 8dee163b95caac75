"""The Flask app: the notification endpoint, health and metrics (and, later, the console).

Thin on purpose: each view checks the request, calls ``fhirgen`` and answers. Build it with
``create_app()``; ``fhirgen serve`` runs it under gunicorn's asyncio worker
(``webhooks.asgi``).
"""

from __future__ import annotations

from webhooks.app import create_app

__all__ = ["create_app"]
