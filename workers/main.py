"""The module ``celery -A workers.main`` loads: the app, configured from the environment."""

from workers.app import celery_app

app = celery_app()
