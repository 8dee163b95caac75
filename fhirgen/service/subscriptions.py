"""Our Subscription on the EHR: registering it, and checking that a notification comes from it.

Each subscription has its own webhook path (``/fhir/notify/<id>``) and its own secrets: a bearer
token the EHR sends as a channel header (stored as a SHA-256 hash) and, optionally, an HMAC key
(Medplum's ``subscription-secret``; stored encrypted, since verifying needs the key itself).
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets as random
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fhirgen.caches import RecentCache
from fhirgen.errors import PermanentError
from fhirgen.service.vault import Vault, new_secret, signature_matches, token_hash, token_matches
from fhirgen.store import Store

log = logging.getLogger(__name__)

CLASSIC_CRITERIA = "Encounter?status=finished"
BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"
TOPIC_CANONICAL_EXT = f"{BACKPORT}/capabilitystatement-subscriptiontopic-canonical"
MEDPLUM_SECRET_EXT = "https://medplum.com/fhir/StructureDefinition/subscription-secret"  # noqa: S105
TOPIC_WORDS = ("encounter-complete", "encounter-finished", "encounter-discharge")
# Our subscription ids are ``token_urlsafe`` (base64url: FHIR id characters and "_"), at most
# 64 characters like a FHIR id and the subscriptions.id column.
_SUBSCRIPTION_ID = re.compile(r"[A-Za-z0-9\-._]{1,64}")


def is_subscription_id(value: str) -> bool:
    """Whether ``value`` could be one of our subscription ids (checked before any look-up)."""
    return _SUBSCRIPTION_ID.fullmatch(value) is not None


@dataclass(frozen=True)
class Registration:
    """A subscription as registered: our id, the EHR's id and where notifications go."""

    id: str
    ehr_id: str
    endpoint: str
    kind: str
    criteria: str
    status: str
    token: str = field(repr=False)  # the channel's bearer secret, shown once (tests, tooling)
    hmac_key: str | None = field(default=None, repr=False)


def register(
    store: Store,
    client: Any,
    settings: Any,
    *,
    topic: str | None = None,
    content: str = "id-only",
    heartbeat: int | None = None,
    use_hmac: bool = False,
    criteria: str = CLASSIC_CRITERIA,
    payload: bool = True,
) -> Registration:
    """Create our Subscription on the EHR: classic rest-hook, or topic-based when ``topic``.

    The local record is written first, so a handshake arriving before the EHR answers is
    recognised.
    """
    subscription_id = random.token_urlsafe(12)
    token = new_secret()
    hmac_key = new_secret() if use_hmac else None
    endpoint = f"{settings.public_url.rstrip('/')}/fhir/notify/{subscription_id}"
    kind = "topic" if topic else "rest-hook"
    store.add_subscription(
        id=subscription_id,
        kind=kind,
        criteria=topic or criteria,
        content=content if topic else ("resource" if payload else "empty"),
        status="requested",
        token_hash=token_hash(token),
        hmac_secret=Vault(settings).encrypt(hmac_key) if hmac_key else None,
        heartbeat_period=heartbeat,
        events_since=0,
        notifications=0,
        gaps_detected=0,
        gaps_recovered=0,
    )
    resource = subscription_resource(
        endpoint,
        token,
        topic=topic,
        criteria=criteria,
        content=content,
        heartbeat=heartbeat,
        hmac_key=hmac_key,
        payload=payload,
    )
    try:
        created = client.create(resource)
    except Exception:
        store.update_subscription(subscription_id, status="error", error="registration failed")
        raise
    ehr_id = str(created.get("id"))
    status = str(created.get("status") or "requested")
    current = store.subscription(subscription_id)
    if current is not None and current.status == "active":
        status = "active"  # the handshake came back before the EHR answered the POST
    store.update_subscription(subscription_id, ehr_id=ehr_id, status=status)
    log.info("registered subscription %s (EHR Subscription/%s, %s)", subscription_id, ehr_id, kind)
    return Registration(
        subscription_id, ehr_id, endpoint, kind, topic or criteria, status, token, hmac_key
    )


def subscription_resource(
    endpoint: str,
    token: str,
    *,
    topic: str | None,
    criteria: str,
    content: str,
    heartbeat: int | None,
    hmac_key: str | None,
    payload: bool = True,
) -> dict[str, Any]:
    """The R4 Subscription resource (classic, or Backport IG topic-based).

    Without ``payload`` a classic rest-hook notification is an empty ping (no PHI on the wire);
    fhirgen then searches the EHR for what finished.
    """
    channel: dict[str, Any] = {
        "type": "rest-hook",
        "endpoint": endpoint,
        "header": [f"Authorization: Bearer {token}"],
    }
    if payload or topic:
        channel["payload"] = "application/fhir+json"
    resource: dict[str, Any] = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "fhirgen drafts discharge summaries for clinician review",
        "channel": channel,
    }
    if topic:
        resource["meta"] = {"profile": [f"{BACKPORT}/backport-subscription"]}
        resource["criteria"] = topic
        channel["_payload"] = {
            "extension": [{"url": f"{BACKPORT}/backport-payload-content", "valueCode": content}]
        }
        if heartbeat:
            channel["extension"] = [
                {"url": f"{BACKPORT}/backport-heartbeat-period", "valueUnsignedInt": heartbeat}
            ]
    else:
        resource["criteria"] = criteria
    if hmac_key:
        resource["extension"] = [{"url": MEDPLUM_SECRET_EXT, "valueString": hmac_key}]
    return resource


def discover_topics(client: Any) -> list[str]:
    """Topic canonicals the EHR offers: CapabilityStatement extension, else topic resources."""
    found: list[str] = []
    with contextlib.suppress(PermanentError):  # an EHR without a CapabilityStatement
        found.extend(_extension_values(client.get("metadata"), TOPIC_CANONICAL_EXT))
    if not found:
        for path, params in (("Basic", {"code": "SubscriptionTopic"}), ("SubscriptionTopic", {})):
            try:
                bundle = client.get(path, params)
            except PermanentError:
                continue
            for entry in bundle.get("entry") or []:
                resource = entry.get("resource") or {}
                url = resource.get("url") or next(
                    (
                        e.get("valueUri")
                        for e in resource.get("extension") or []
                        if str(e.get("url", "")).endswith("SubscriptionTopic.url")
                    ),
                    None,
                )
                if url:
                    found.append(str(url))
    return sorted(set(found))


def pick_discharge_topic(topics: list[str]) -> str | None:
    """The topic that fires when an Encounter finishes, by its canonical's name."""
    for word in TOPIC_WORDS:
        for topic in topics:
            if topic.lower().rstrip("/").endswith(word):
                return topic
    return None


def verify(subscription: Any, headers: Mapping[str, str], body: bytes, vault: Vault | None) -> str:
    """Why a request does not come from this subscription's channel, or '' when it does.

    Every configured check must pass: the bearer token and, when set, the HMAC signature of the
    raw body. Comparisons are constant-time; secrets never appear in the reason.
    """
    if subscription.token_hash:
        value = headers.get("Authorization", "")
        scheme, _, presented = value.partition(" ")
        if scheme.lower() != "bearer" or not presented:
            return "missing bearer token"
        if not token_matches(presented.strip(), subscription.token_hash):
            return "bad bearer token"
    if subscription.hmac_secret:
        signature = headers.get("X-Signature", "")
        if not signature:
            return "missing X-Signature"
        if vault is None or not signature_matches(
            body, signature, _hmac_key(vault, subscription.hmac_secret)
        ):
            return "bad signature"
    if not subscription.token_hash and not subscription.hmac_secret:
        return "subscription has no secret"
    return ""


_HMAC_KEYS: weakref.WeakKeyDictionary[Vault, RecentCache[str, str]] = weakref.WeakKeyDictionary()


def rewrap_secrets(store: Store, vault: Vault) -> int:
    """Re-encrypt stored HMAC keys that an older or retired key encrypted under the vault's
    current key (``Vault.rewrap``); returns how many changed."""
    changed = 0
    for subscription in store.subscriptions():
        if subscription.hmac_secret:
            rewrapped = vault.rewrap(subscription.hmac_secret)
            if rewrapped is not None:
                store.update_subscription(subscription.id, hmac_secret=rewrapped)
                changed += 1
    return changed


def _hmac_key(vault: Vault, encrypted: str) -> str:
    """A subscription's HMAC key, decrypted once per process and vault (Fernet costs about as
    much as the rest of the check), not on every notification; at most 1024 keys, each for
    ten minutes (a key changed or dropped is not kept in memory for ever)."""
    keys = _HMAC_KEYS.get(vault)
    if keys is None:
        keys = _HMAC_KEYS.setdefault(vault, RecentCache(1024, 600.0))
    key = keys.get(encrypted)
    if key is None:
        key = vault.decrypt(encrypted)
        keys.put(encrypted, key)
    return key


def _extension_values(node: Any, url: str) -> list[str]:
    values: list[str] = []
    if isinstance(node, Mapping):
        for extension in node.get("extension") or []:
            if isinstance(extension, Mapping) and extension.get("url") == url:
                value = extension.get("valueCanonical") or extension.get("valueUri")
                if value:
                    values.append(str(value))
        for child in node.values():
            if isinstance(child, Mapping | list):
                values.extend(_extension_values(child, url))
    elif isinstance(node, list):
        for child in node:
            values.extend(_extension_values(child, url))
    return values
