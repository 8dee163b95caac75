"""One validated settings object for every entry point (env prefix ``FHIRGEN_``).

Values come from, in order of precedence: keyword arguments, ``FHIRGEN_*`` environment
variables, then the TOML file named by ``FHIRGEN_CONFIG``. Every setting has a safe default
that runs on one machine with nothing else installed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_INPATIENT_CLASSES = ("IMP", "ACUTE", "NONAC", "OBSENC")


class Settings(BaseSettings):
    """fhirgen settings; see docs/configuration.md for each one."""

    model_config = SettingsConfigDict(env_prefix="FHIRGEN_", extra="forbid", frozen=True)

    data_dir: Path = Field(
        default=Path(".fhirgen"), description="Where fhirgen keeps its state (store, caches)."
    )
    backend: str = Field(default="template", description="Generation backend: template.")
    inpatient_classes: Annotated[tuple[str, ...], NoDecode] = Field(
        default=DEFAULT_INPATIENT_CLASSES,
        description="Encounter.class codes that count as an inpatient stay (comma-separated).",
    )
    identifier_system: str = Field(
        default="urn:fhirgen:draft",
        description="Identifier system of the drafts we write; ifNoneExist searches on it.",
    )
    max_bundle_bytes: int = Field(
        default=512 * 1024 * 1024,
        gt=0,
        description="Largest single JSON file (one Bundle) read whole; NDJSON is streamed.",
    )
    max_line_bytes: int = Field(
        default=64 * 1024 * 1024, gt=0, description="Largest single NDJSON line."
    )

    @field_validator("inpatient_classes", mode="before")
    @classmethod
    def _split_classes(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",")]
        if isinstance(value, list | tuple):
            codes = tuple(str(part).strip().upper() for part in value if str(part).strip())
            if not codes:
                raise ValueError("at least one Encounter class code is required")
            return codes
        return value

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        from fhirgen.generation import backend_names

        if value not in backend_names():
            raise ValueError(f"unknown backend {value!r}; choose one of {backend_names()}")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("FHIRGEN_CONFIG")
        if config_file:
            path = Path(config_file)
            if not path.is_file():
                # pydantic-settings would silently ignore a missing file; a typo must be loud.
                raise FileNotFoundError(f"FHIRGEN_CONFIG names {path}, which is not a file")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


def load_settings(**overrides: Any) -> Settings:
    """Build Settings, turning validation failures into one readable ``ConfigError``."""
    from pydantic import ValidationError

    from fhirgen.errors import ConfigError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from None
    except (FileNotFoundError, ValueError) as exc:
        raise ConfigError(str(exc)) from None
