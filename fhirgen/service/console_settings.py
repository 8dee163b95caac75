"""The console's settings page: every effective setting, secrets masked (no SQL)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["MASK", "SettingRow", "effective_settings"]


@dataclass(frozen=True)
class SettingRow:
    """One effective setting as the console shows it (secrets masked)."""

    name: str
    env: str
    value: str
    description: str
    masked: bool = False


MASK = "••••••••"


def effective_settings(settings: Any) -> list[SettingRow]:
    """Every setting with its value; secrets and passwords inside URLs are masked."""
    from pydantic import SecretStr

    rows = []
    for name, info in type(settings).model_fields.items():
        value = getattr(settings, name)
        masked = False
        if isinstance(value, SecretStr):
            shown, masked = (MASK, True) if value.get_secret_value() else ("(unset)", False)
        elif value is None:
            shown = "(unset)"
        elif isinstance(value, tuple | list):
            shown = ", ".join(str(v) for v in value)
        else:
            shown = str(value)
            if "://" in shown:
                shown, masked = _mask_url(shown)
        rows.append(
            SettingRow(name, f"FHIRGEN_{name.upper()}", shown, info.description or "", masked)
        )
    return rows


def _mask_url(url: str) -> tuple[str, bool]:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url, False
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}")), True
