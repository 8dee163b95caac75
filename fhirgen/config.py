"""One validated settings object for every entry point (env prefix ``FHIRGEN_``).

Values come from, in order of precedence: keyword arguments, ``FHIRGEN_*`` environment
variables, then the TOML file named by ``FHIRGEN_CONFIG``. Every setting has a safe default
that runs on one machine with nothing else installed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_INPATIENT_CLASSES = ("IMP", "ACUTE", "NONAC", "OBSENC")


# The generation backends by name (fhirgen.drafting.generation builds them): named here so that
# settings can be checked without importing any backend.
BACKEND_NAMES = ("template", "transformers", "openai")


class Settings(BaseSettings):
    """fhirgen settings; see docs/configuration.md for each one."""

    # An empty FHIRGEN_X= in an env file means "unset", not "" (or Path(".")).
    model_config = SettingsConfigDict(
        env_prefix="FHIRGEN_", extra="forbid", frozen=True, env_ignore_empty=True
    )

    data_dir: Path = Field(
        default=Path(".fhirgen"), description="Where fhirgen keeps its state (store, caches)."
    )
    backend: str = Field(
        default="template", description="Generation backend: template, transformers or openai."
    )
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

    # -- model backends ----------------------------------------------------------------------
    model_path: Path | None = Field(
        default=None,
        description="A local model directory, or one GGUF file (transformers backend).",
    )
    model_device: str = Field(
        default="auto", description="auto (CUDA when present), cpu, cuda or cuda:N."
    )
    max_new_tokens: int = Field(default=384, gt=0, description="Longest answer per section.")
    temperature: float = Field(default=0.0, ge=0, description="0 is greedy decoding.")
    seed: int = Field(default=0, description="Sampling seed (when temperature > 0).")
    gpu_batch_size: int = Field(
        default=8, gt=0, description="Jobs a gpu worker drafts together at most."
    )
    model_batch_size: int = Field(
        default=16, gt=0, description="Prompts in one generate call at most (6 per stay)."
    )
    model_batch_tokens: int = Field(
        default=32768, gt=0, description="Padded prompt tokens in one generate call at most."
    )
    model_constrained: bool = Field(
        default=True,
        description="Constrain transformers decoding to the answer's JSON shape and fact ids.",
    )
    gpu_batch_wait_ms: int = Field(
        default=200, ge=0, description="How long a gpu worker waits to fill a batch."
    )
    openai_base_url: str | None = Field(
        default=None, description="OpenAI-compatible server, e.g. http://vllm:8000/v1."
    )
    openai_model: str | None = Field(default=None, description="Model name on that server.")
    openai_api_key: SecretStr | None = Field(default=None, description="Its API key, if any.")
    openai_concurrency: int = Field(default=4, gt=0, description="Requests in flight at most.")
    openai_timeout: float = Field(default=120.0, gt=0, description="Seconds per request.")
    openai_json_schema: bool = Field(
        default=True, description="Ask for JSON-schema constrained output (vLLM, llama.cpp)."
    )
    openai_stream: bool = Field(default=False, description="Stream answers (Server-Sent Events).")
    openai_max_retries: int = Field(
        default=4, ge=0, description="Retries of a request after 429, 5xx or a timeout."
    )

    # -- the live system ---------------------------------------------------------------------
    ehr_base_url: str | None = Field(
        default=None, description="FHIR base URL of the EHR (e.g. https://ehr.example.org/fhir)."
    )
    ehr_auth: Literal["none", "bearer", "smart-backend"] = Field(
        default="none", description="How fhirgen authenticates to the EHR."
    )
    ehr_token: SecretStr | None = Field(default=None, description="Static bearer token (bearer).")
    ehr_client_id: str | None = Field(default=None, description="SMART client id.")
    ehr_private_key_path: Path | None = Field(
        default=None, description="PEM private key for SMART Backend Services."
    )
    ehr_jwt_alg: Literal["RS384", "ES384"] = Field(
        default="RS384", description="Signing algorithm of the SMART client assertion."
    )
    ehr_key_id: str | None = Field(default=None, description="kid of the SMART signing key.")
    ehr_scopes: str = Field(
        default=(
            "system/Patient.rs system/Encounter.rs system/Condition.rs system/Procedure.rs "
            "system/MedicationRequest.rs system/MedicationStatement.rs "
            "system/MedicationAdministration.rs system/Medication.rs system/Observation.rs "
            "system/DiagnosticReport.rs system/AllergyIntolerance.rs system/DocumentReference.rs "
            "system/Composition.rs system/ServiceRequest.rs system/Appointment.rs system/Goal.rs "
            "system/CarePlan.rs system/Practitioner.rs system/Organization.rs system/Location.rs "
            "system/DocumentReference.c system/CarePlan.c system/Provenance.cu system/Device.c "
            "system/Subscription.crud"
        ),
        description="SMART scopes requested (v2 syntax).",
    )
    ehr_timeout: float = Field(default=30.0, gt=0, description="Seconds per EHR request.")
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="How the EHR reaches this webhook (the Subscription's endpoint base).",
    )
    redis_url: str | None = Field(
        default=None, description="Celery broker; unset: an embedded Redis in the data folder."
    )
    database_url: str | None = Field(
        default=None, description="Job store; unset: SQLite in the data folder."
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Encrypts stored subscription secrets; unset: a key kept in the data folder.",
    )
    secret_key_previous: SecretStr | None = Field(
        default=None,
        description="Retired FHIRGEN_SECRET_KEY values, comma-separated: what they encrypted "
        "still decrypts and is re-encrypted under the current key when the live system starts.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Log level of the webhook and workers."
    )
    max_notification_bytes: int = Field(
        default=8 * 1024 * 1024, gt=0, description="Largest notification body accepted (413)."
    )
    trusted_proxies: int = Field(
        default=0,
        ge=0,
        le=5,
        description="Proxies in front of the webhook whose X-Forwarded-For is believed (the "
        "shipped nginx is 1; add any TLS terminator before it). 0: the peer's address.",
    )
    max_notification_events: int = Field(
        default=100,
        gt=0,
        description="Most events one topic-based notification may carry (413 above; each "
        "Encounter event can make a job).",
    )
    reconcile_interval: float = Field(
        default=300.0, gt=0, description="Seconds between reconciliation searches (beat)."
    )
    reconcile_lookback_days: float = Field(
        default=2.0, gt=0, description="How far back the first reconciliation looks."
    )
    heartbeat_grace: float = Field(
        default=3.0, gt=1, description="Missed heartbeat periods before asking $status."
    )
    visibility_timeout: int = Field(
        default=7200, gt=0, description="Seconds before Redis redelivers an unacknowledged task."
    )
    task_max_retries: int = Field(
        default=8, ge=0, description="Retries of a job step after transient EHR errors."
    )
    retry_backoff_max: int = Field(
        default=600,
        gt=0,
        description="Longest wait between retries, seconds (a Retry-After is honoured up to it).",
    )
    reading_timeout: float = Field(
        default=1800.0,
        gt=0,
        description="Seconds a job may sit in reading without progress before the sweeper "
        "resumes it (above the longest read plus FHIRGEN_RETRY_BACKOFF_MAX).",
    )
    generating_timeout: float = Field(
        default=3600.0,
        gt=0,
        description="Seconds a job may sit in generating before the sweeper resumes it (above "
        "the longest batch plus FHIRGEN_RETRY_BACKOFF_MAX).",
    )
    writing_timeout: float = Field(
        default=1800.0,
        gt=0,
        description="Seconds a job may sit in writing before the sweeper resumes it (above "
        "the longest write plus FHIRGEN_RETRY_BACKOFF_MAX).",
    )
    requeue_after: float = Field(
        default=600.0,
        gt=0,
        description="Seconds a job may wait unstarted before its lost message is sent again.",
    )
    console_idle_minutes: float = Field(
        default=30.0, gt=0, description="Console sessions end after this long without a request."
    )
    console_cookie_secure: bool | None = Field(
        default=None,
        description="Console cookies only over HTTPS; unset: when FHIRGEN_PUBLIC_URL is https.",
    )
    console_oidc_issuer: str | None = Field(
        default=None,
        description="OpenID Connect issuer for console single sign-on; unset: SSO is off.",
    )
    console_oidc_client_id: str | None = Field(
        default=None, description="fhirgen's client id at the OpenID Connect provider."
    )
    console_oidc_client_secret: SecretStr | None = Field(
        default=None, description="fhirgen's client secret at the OpenID Connect provider."
    )
    console_oidc_scopes: str = Field(
        default="openid profile email", description="Scopes asked for at single sign-on."
    )
    console_oidc_username_claim: str = Field(
        default="preferred_username", description="ID-token claim that names the console user."
    )
    console_oidc_groups_claim: str = Field(
        default="groups", description="ID-token claim listing the user's groups or roles."
    )
    console_oidc_admin_group: str = Field(
        default="fhirgen-admins", description="Members sign in as console admins."
    )
    console_oidc_viewer_group: str = Field(
        default="fhirgen-viewers",
        description="Members sign in as viewers; users in neither group are refused.",
    )
    console_oidc_label: str = Field(
        default="single sign-on", description="How the sign-in page names the provider."
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

    @property
    def resolved_database_url(self) -> str:
        """The store's URL: the setting, else SQLite in the data folder."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'fhirgen.db').resolve()}"

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if value not in BACKEND_NAMES:
            raise ValueError(f"unknown backend {value!r}; choose one of {BACKEND_NAMES}")
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
