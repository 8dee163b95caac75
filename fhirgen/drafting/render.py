"""Drafts as the FHIR resources the EHR receives: one ``transaction`` Bundle per stay.

The Bundle holds the generating Device, the discharge-summary DocumentReference (US Core clinical
note, ``docStatus=preliminary``, plain text and HTML), the CarePlan (US Core, ``status=draft``),
the patient-instructions DocumentReference (LOINC 8653-8, same shape as the summary) and the
Provenance that ties the three to the model and to the chart resources they cite. Everything
we generate is labelled AI-asserted (``meta.security`` AIAST). Creates are conditional on a
deterministic identifier, and the Provenance (R4 gives it no identifier) is PUT to a
deterministic id, so replaying the Bundle leaves exactly one of each.

A conditional create matches whatever carries the identifier, ours or not: ``claims`` names what
each create claims and ``claim_conflict`` says when a resource found under one of our identifiers
is not the draft we would have written (another patient's, another stay's, or not ours at all),
so the write step can refuse to write rather than tie our Provenance to it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fhirgen import __version__
from fhirgen.clinical.facts import Fact, FactKind, FactSet
from fhirgen.clinical.stay import StayContext, encounter_version
from fhirgen.drafting.documents import care_plan, discharge_summary, patient_instructions
from fhirgen.drafting.documents.base import Draft, Sentence, paragraphs
from fhirgen.fhir.record import Resource, reference_key
from fhirgen.fhir.values import LOINC, format_date, parse_time

AIAST = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "AIAST",
    "display": "Artificial Intelligence asserted",
}
US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition"
DEVICE_SYSTEM = "urn:fhirgen:device"
XHTML = "http://www.w3.org/1999/xhtml"
SOURCE_TEXT_CHARS = 160  # a fact's text in the plain-text source list, cut on a word boundary
SOURCE_IDS_PER_TYPE = 3  # resource ids shown per type there; the rest are counted


@dataclass(frozen=True)
class Author:
    """What wrote the drafts: the backend and its model, named on the Device."""

    backend: str
    model: str
    version: str

    @property
    def identifier(self) -> str:
        return f"{self.backend}/{self.model}/{self.version}"


@dataclass(frozen=True)
class DraftIds:
    """Deterministic identifiers of one stay's drafts."""

    document: str
    care_plan: str
    provenance_id: str
    instructions: str


def stay_identifier(
    system: str, encounter_id: str, version: str, regeneration: int = 0, key: bytes | None = None
) -> str:
    """The part of a stay's draft identifiers before ``.<kind>`` (see ``draft_ids``)."""
    if key is not None:
        stay = f"{system}|Encounter/{encounter_id}|{version}|{regeneration}"
        return hmac.new(key, stay.encode(), hashlib.sha256).hexdigest()[:32]
    base = f"{encounter_id}.v{version}"
    return f"{base}.r{regeneration}" if regeneration else base


def draft_ids(
    context: StayContext, system: str, regeneration: int = 0, key: bytes | None = None
) -> DraftIds:
    """Identifiers for a stay's drafts: encounter, its version, regeneration and document kind.

    Without ``key`` they read ``<encounter>.v<version>[.r<k>].<kind>``: anyone who can read the
    Encounter can predict them. With ``key`` (the deployment's, ``secrets.identifier_key``) the
    stay part is a keyed hash, ``<HMAC-SHA256(key, system|Encounter/id|version|regeneration),
    32 hex>.<kind>``: nobody without the key can write a resource under the identifier before
    we do. The kind stays a readable suffix (the three drafts of one version share the hash and
    are written in one transaction, so one seen gives away none still to be written). The
    Provenance id derives from the summary's identifier, so it is as unguessable.
    """
    version = encounter_version(context.encounter)
    base = stay_identifier(system, context.encounter_id, version, regeneration, key)
    document = f"{base}.{discharge_summary.KIND.key}"
    digest = hashlib.sha256(f"{system}|{document}".encode()).hexdigest()
    return DraftIds(
        document,
        f"{base}.{care_plan.KIND.key}",
        f"fhirgen-{digest[:40]}",
        f"{base}.{patient_instructions.KIND.key}",
    )


def render_bundle(
    context: StayContext,
    facts: FactSet,
    summary: Draft,
    plan: Draft,
    instructions: Draft,
    *,
    author: Author,
    generated_at: str,
    identifier_system: str,
    replaces: str | None = None,
    regeneration: int = 0,
    identifier_key: bytes | None = None,
) -> dict[str, Any]:
    """The transaction Bundle for one stay, exactly as it is POSTed to the EHR.

    Entries: the Device, the discharge summary, the CarePlan, the patient instructions, the
    Provenance. ``replaces`` (the summary an earlier draft wrote) goes on the summary only: the
    store keeps no earlier instructions' id, so a regenerated instructions document stands new.
    ``identifier_key`` makes the identifiers keyed hashes (``draft_ids``).
    """
    ids = draft_ids(context, identifier_system, regeneration, identifier_key)
    urls = {
        "document": _urn(identifier_system, ids.document),
        "care_plan": _urn(identifier_system, ids.care_plan),
        "instructions": _urn(identifier_system, ids.instructions),
    }
    device_url = _urn(DEVICE_SYSTEM, author.identifier)
    device = _device(author)
    document = _document_reference(
        context,
        facts,
        summary,
        ids.document,
        identifier_system,
        device_url,
        generated_at,
        loinc=(discharge_summary.LOINC_CODE, discharge_summary.LOINC_DISPLAY),
        type_text="Discharge summary (AI-generated draft)",
        description=(
            "AI-generated draft discharge summary; preliminary until a clinician reviews and "
            "signs it."
        ),
    )
    if replaces:
        document["relatesTo"] = [{"code": "replaces", "target": {"reference": replaces}}]
    plan_resource = _care_plan(
        context, facts, plan, instructions, ids.care_plan, identifier_system, device_url,
        generated_at,
    )  # fmt: skip
    leaflet = _document_reference(
        context,
        facts,
        instructions,
        ids.instructions,
        identifier_system,
        device_url,
        generated_at,
        loinc=(patient_instructions.LOINC_CODE, patient_instructions.LOINC_DISPLAY),
        type_text="Hospital discharge instructions (AI-generated draft)",
        description=(
            "AI-generated draft patient instructions in plain language; preliminary until a "
            "clinician reviews and signs them."
        ),
    )
    cited = _cited_sources(facts, (summary, plan, instructions))
    provenance = _provenance(
        ids.provenance_id,
        [urls["document"], urls["care_plan"], urls["instructions"]],
        device_url,
        cited,
        generated_at,
    )
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            _conditional_post(device_url, device, DEVICE_SYSTEM, author.identifier),
            _conditional_post(urls["document"], document, identifier_system, ids.document),
            _conditional_post(urls["care_plan"], plan_resource, identifier_system, ids.care_plan),
            _conditional_post(urls["instructions"], leaflet, identifier_system, ids.instructions),
            {
                "fullUrl": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, ids.provenance_id)}",
                "resource": provenance,
                "request": {"method": "PUT", "url": f"Provenance/{ids.provenance_id}"},
            },
        ],
    }


@dataclass(frozen=True)
class Claim:
    """An identifier one conditional create of the Bundle claims, and what a resource already
    holding it must agree with to be the draft we would write (a replay of our own Bundle)."""

    resource_type: str
    system: str
    value: str
    subject: str | None  # Patient/<id>
    encounter: str | None  # Encounter/<id>

    @property
    def token(self) -> str:
        """``system|value``, as the ``identifier`` search parameter takes it."""
        return f"{self.system}|{self.value}"

    @property
    def search(self) -> str:
        """The search (a relative url) that finds what already holds the identifier."""
        return f"{self.resource_type}?{urlencode({'identifier': self.token})}"


def claims(bundle: Mapping[str, Any]) -> list[Claim]:
    """The patient resources the Bundle creates conditionally on one of our identifiers, in
    entry order (the Device, shared by every stay, is not one of them)."""
    found: list[Claim] = []
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") or {}
        request = entry.get("request") or {}
        subject = reference_key(resource.get("subject"))
        if request.get("method") != "POST" or not request.get("ifNoneExist") or not subject:
            continue
        for identifier in resource.get("identifier") or []:
            found.append(
                Claim(
                    str(resource["resourceType"]),
                    str(identifier.get("system")),
                    str(identifier.get("value")),
                    subject,
                    _encounter_of(resource),
                )
            )
            break
    return found


def provenance_key(bundle: Mapping[str, Any]) -> str | None:
    """``Provenance/<id>``: where the Bundle PUTs its Provenance (a deterministic id)."""
    for entry in bundle.get("entry") or []:
        request = entry.get("request") or {}
        if (entry.get("resource") or {}).get("resourceType") == "Provenance":
            url = str(request.get("url") or "")
            return url if request.get("method") == "PUT" and "/" in url else None
    return None


@dataclass(frozen=True)
class Conflict:
    """A resource holding one of our identifiers that is not our draft."""

    claim: Claim
    holder: str  # Type/id (or "N resources")
    why: str  # "for another subject", "which is not labelled AI-generated", …

    def __str__(self) -> str:
        held = f"already used by {self.holder} {self.why}"
        return f"identifier {self.claim.token} {held}; not written"


def claim_conflict(
    claim: Claim,
    matches: Sequence[Resource],
    *,
    provenance: Resource | None = None,
    author: str | None = None,
) -> Conflict | None:
    """Why the resources holding ``claim``'s identifier are not our draft; None when nothing
    holds it or what holds it is ours (a replay: the conditional create will find it).

    Ours means: the same subject and encounter, labelled AI-asserted, and either named as a
    target by ``provenance`` (our Provenance, read before writing) or authored by ``author``
    (our Device, once the transaction has resolved it). A conflict names resources by
    ``Type/id`` only, never a patient.
    """
    if not matches:
        return None
    if len(matches) > 1:
        keys = ", ".join(sorted(_key(m) for m in matches))
        return Conflict(claim, f"{len(matches)} resources ({keys})", "at once")
    (match,) = matches
    key = _key(match)
    if match.get("resourceType") != claim.resource_type:
        return Conflict(claim, key, f"where a {claim.resource_type} was expected")
    if reference_key(match.get("subject")) != claim.subject:
        return Conflict(claim, key, "for another subject")
    if _encounter_of(match) != claim.encounter:
        return Conflict(claim, key, "for another encounter")
    security = (match.get("meta") or {}).get("security") or []
    if not any(
        s.get("system") == AIAST["system"] and s.get("code") == AIAST["code"] for s in security
    ):
        return Conflict(claim, key, "which is not labelled AI-generated")
    targets = {reference_key(t) for t in (provenance or {}).get("target") or []}
    authors = {reference_key(a) for a in _authors(match)}
    if key in targets or (author is not None and author in authors):
        return None
    return Conflict(claim, key, "which no Provenance of fhirgen's names")


def _encounter_of(resource: Resource) -> str | None:
    """``Encounter/<id>`` of a DocumentReference (``context.encounter``) or a CarePlan."""
    if resource.get("resourceType") == "DocumentReference":
        encounters = (resource.get("context") or {}).get("encounter") or []
        keys = sorted({k for k in (reference_key(e) for e in encounters) if k})
        return keys[0] if len(keys) == 1 else None
    return reference_key(resource.get("encounter"))


def _authors(resource: Resource) -> list[Any]:
    author = resource.get("author")
    if isinstance(author, list):
        return author
    return [author] if author else []


def _key(resource: Resource) -> str:
    return f"{resource.get('resourceType')}/{resource.get('id')}"


def document_text(facts: FactSet, draft: Draft, context: StayContext) -> str:
    """The draft as plain text: sections, sentences with [n] citations, then the sources.

    Sentences with a topic run together as one paragraph per topic ("Topic: one. [1] two. [2]"),
    a blank line between paragraphs; the others stand one per line. The source list is compact
    (``source_line``); the HTML attachment and the Provenance keep every cited resource.
    """
    numbers = _citation_numbers(draft)
    lines = [
        f"{draft.title.upper()} - AI-GENERATED DRAFT",
        "Preliminary: written by software from the chart; a clinician must review and sign it.",
        f"Stay: {format_date(context.admitted)} to {format_date(context.discharged)}",
        "",
    ]
    for section in draft.sections:
        lines.append(section.title.upper())
        previous: str | None = None
        for topic, group in paragraphs(section.sentences):
            if previous is not None and (topic or previous):
                lines.append("")  # a paragraph stands apart from what is next to it
            previous = topic
            cited = [_marked(s, numbers) for s in group]
            lines.append(f"{topic}: {' '.join(cited)}" if topic else cited[0])
        lines.append("")
    lines.append("SOURCES")
    for fact_id, number in numbers.items():
        fact = facts.get(fact_id)
        if fact is not None:
            lines.append(source_line(number, fact))
    return "\n".join(lines) + "\n"


def source_line(number: int, fact: Fact) -> str:
    """``[n] fact text (Type/a, b, c +K more; Other/d)``: the text cut at
    ``SOURCE_TEXT_CHARS`` on a word boundary, at most ``SOURCE_IDS_PER_TYPE`` ids per type."""
    return f"[{number}] {_shortened(fact.text, SOURCE_TEXT_CHARS)} ({_grouped(fact.sources)})"


def _marked(sentence: Sentence, numbers: Mapping[str, int]) -> str:
    marks = "".join(f"[{numbers[c]}]" for c in sentence.cites)
    return f"{sentence.text} {marks}".rstrip()


def _shortened(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if not text[limit - 1].isspace() and " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:-(") + "…"


def _grouped(sources: Sequence[str]) -> str:
    by_type: dict[str, list[str]] = {}
    for source in sources:
        rtype, _, rid = source.partition("/")
        by_type.setdefault(rtype, []).append(rid)
    groups = []
    for rtype, ids in by_type.items():
        shown = ", ".join(ids[:SOURCE_IDS_PER_TYPE])
        more = len(ids) - SOURCE_IDS_PER_TYPE
        groups.append(f"{rtype}/{shown}" + (f" +{more} more" if more > 0 else ""))
    return "; ".join(groups)


def document_html(facts: FactSet, draft: Draft, context: StayContext) -> str:
    """The draft as an HTML document with citation marks linked to its source list."""
    numbers = _citation_numbers(draft)
    out = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_esc(draft.title)} (AI-generated draft)</title></head><body>",
        _draft_body(facts, draft, context, numbers, heading="h1"),
        "</body></html>\n",
    ]
    return "".join(out)


def _draft_body(
    facts: FactSet,
    draft: Draft,
    context: StayContext,
    numbers: Mapping[str, int],
    *,
    heading: str,
    banner: bool = True,
    sources: bool = True,
) -> str:
    """A draft as XHTML: title, AI banner, sections (a paragraph per topic), source list."""
    sub = "h2" if heading == "h1" else "h4"
    out = [f"<{heading}>{_esc(draft.title)}</{heading}>"]
    if banner:
        out += [
            "<p><b>AI-generated draft, preliminary.</b> Written by software from the chart; "
            "a clinician must review and sign it.</p>",
            f"<p>Stay: {_esc(format_date(context.admitted))} to "
            f"{_esc(format_date(context.discharged))}</p>",
        ]
    for section in draft.sections:
        out.append(f"<{sub}>{_esc(section.title)}</{sub}>")
        for topic, group in paragraphs(section.sentences):
            lead = f"<b>{_esc(topic)}:</b> " if topic else ""
            out.append(f"<p>{lead}{' '.join(_html_sentence(s, numbers) for s in group)}</p>")
    if sources:
        out.append(_source_list(facts, numbers, sub))
    return "".join(out)


def _html_sentence(sentence: Sentence, numbers: Mapping[str, int]) -> str:
    marks = "".join(
        f'<sup><a href="#src-{numbers[c]}">[{numbers[c]}]</a></sup>' for c in sentence.cites
    )
    return f"{_esc(sentence.text)}{marks}"


def _source_list(facts: FactSet, numbers: Mapping[str, int], heading: str) -> str:
    """Every cited fact with every resource it rests on: the clickable citation trail."""
    out = [f"<{heading}>Sources</{heading}><ol>"]
    for fact_id, number in numbers.items():
        fact = facts.get(fact_id)
        if fact is not None:
            refs = ", ".join(fact.sources)
            out.append(f'<li id="src-{number}">{_esc(fact.text)} ({_esc(refs)})</li>')
    out.append("</ol>")
    return "".join(out)


def _citation_numbers(*drafts: Draft) -> dict[str, int]:
    """[n] per cited fact, in first-cited order across the drafts (one list for all of them)."""
    cited = dict.fromkeys(c for draft in drafts for c in draft.cited())
    return {fact_id: n for n, fact_id in enumerate(cited, start=1)}


def _device(author: Author) -> dict[str, Any]:
    return {
        "resourceType": "Device",
        "identifier": [{"system": DEVICE_SYSTEM, "value": author.identifier}],
        "status": "active",
        "deviceName": [
            {"name": f"fhirgen {author.backend} backend", "type": "user-friendly-name"},
            {"name": author.model, "type": "model-name"},
        ],
        "type": {"text": "AI text-generation software"},
        "version": [{"value": f"fhirgen {__version__}; {author.model} {author.version}"}],
    }


def _document_reference(
    context: StayContext,
    facts: FactSet,
    draft: Draft,
    identifier: str,
    system: str,
    device_url: str,
    generated_at: str,
    *,
    loinc: tuple[str, str],
    type_text: str,
    description: str,
) -> dict[str, Any]:
    plain = document_text(facts, draft, context).encode()
    rich = document_html(facts, draft, context).encode()
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "meta": {
            "profile": [f"{US_CORE}/us-core-documentreference"],
            "security": [AIAST],
        },
        "identifier": [{"system": system, "value": identifier}],
        "status": "current",
        "docStatus": "preliminary",
        "type": {
            "coding": [{"system": LOINC, "code": loinc[0], "display": loinc[1]}],
            "text": type_text,
        },
        "category": [
            {
                "coding": [
                    {
                        "system": "http://hl7.org/fhir/us/core/CodeSystem/"
                        "us-core-documentreference-category",
                        "code": "clinical-note",
                        "display": "Clinical Note",
                    }
                ]
            }
        ],
        "subject": {"reference": f"Patient/{context.patient_id}"},
        "date": generated_at,
        "author": [{"reference": device_url}],
        "description": description,
        "content": [
            _content(plain, "text/plain; charset=utf-8", draft.title, generated_at),
            _content(rich, "text/html; charset=utf-8", draft.title, generated_at),
        ],
        "context": {
            "encounter": [{"reference": f"Encounter/{context.encounter_id}"}],
            "period": _period(context),
        },
    }
    custodian = _custodian(context)
    if custodian:
        resource["custodian"] = custodian
    return resource


def _content(data: bytes, content_type: str, title: str, created: str) -> dict[str, Any]:
    return {
        "attachment": {
            "contentType": content_type,
            "language": "en",
            "data": base64.b64encode(data).decode("ascii"),
            "size": len(data),
            "hash": base64.b64encode(hashlib.sha1(data, usedforsecurity=False).digest()).decode(),
            "title": title,
            "creation": created,
        },
        "format": {
            "system": "http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode",
            "code": "urn:ihe:iti:xds:2017:mimeTypeSufficient",
            "display": "mimeType Sufficient",
        },
    }


def _care_plan(
    context: StayContext,
    facts: FactSet,
    draft: Draft,
    instructions: Draft,
    identifier: str,
    system: str,
    device_url: str,
    generated_at: str,
) -> dict[str, Any]:
    """The CarePlan; its narrative is the care-plan draft, then the patient instructions under
    their own heading, then one source list numbered across both."""
    numbers = _citation_numbers(draft, instructions)
    div = "".join(
        (
            _draft_body(facts, draft, context, numbers, heading="h3", sources=False),
            _draft_body(
                facts, instructions, context, numbers, heading="h3", banner=False, sources=False
            ),
            _source_list(facts, numbers, "h4"),
        )
    )
    resource: dict[str, Any] = {
        "resourceType": "CarePlan",
        "meta": {"profile": [f"{US_CORE}/us-core-careplan"], "security": [AIAST]},
        "identifier": [{"system": system, "value": identifier}],
        "text": {"status": "additional", "div": f'<div xmlns="{XHTML}">{div}</div>'},
        "status": "draft",
        "intent": "plan",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://hl7.org/fhir/us/core/CodeSystem/careplan-category",
                        "code": "assess-plan",
                    }
                ]
            }
        ],
        "title": "Care plan after discharge (AI-generated draft)",
        "description": "AI-generated draft care plan; a clinician must review it before use.",
        "subject": {"reference": f"Patient/{context.patient_id}"},
        "encounter": {"reference": f"Encounter/{context.encounter_id}"},
        "period": {"start": as_instant(context.discharged) or generated_at},
        "created": generated_at,
        "author": {"reference": device_url},
    }
    addresses = [
        {"reference": source}
        for fact in care_plan.addressed_problems(facts)
        for source in fact.sources
        if source.startswith("Condition/")
    ]
    if addresses:
        resource["addresses"] = addresses
    goals = [
        {"reference": source}
        for fact in facts.of_kind(FactKind.GOAL)
        for source in fact.sources
        if source.startswith("Goal/")
    ]
    if goals:
        resource["goal"] = goals
    activities = [_activity(fact) for fact in care_plan.activity_facts(facts)]
    if activities:
        resource["activity"] = activities
    return resource


_ACTIVITY_TARGETS = ("Appointment/", "ServiceRequest/", "MedicationRequest/")


def _activity(fact: Fact) -> dict[str, Any]:
    """A plan activity pointing at the order or appointment it comes from, where one exists."""
    change = fact.attr("change")
    if change != "stopped":
        targets = [s for s in fact.sources if s.startswith(_ACTIVITY_TARGETS)]
        if targets:
            return {"reference": {"reference": targets[-1], "display": fact.text[:200]}}
    detail: dict[str, Any] = {"status": "not-started", "description": fact.text}
    if fact.kind is FactKind.MEDICATION:
        detail.update(
            kind="MedicationRequest", status="stopped" if change == "stopped" else "not-started"
        )
    elif fact.kind is FactKind.PLAN_ACTIVITY:
        detail["status"] = "in-progress"
    reasons = [
        {"reference": s}
        for s in fact.sources
        if s.startswith(("Observation/", "DiagnosticReport/", "Condition/", "DocumentReference/"))
    ]
    if reasons:
        detail["reasonReference"] = reasons
    return {"detail": detail}


def _provenance(
    provenance_id: str,
    targets: Sequence[str],
    device_url: str,
    cited: Sequence[str],
    generated_at: str,
) -> dict[str, Any]:
    return {
        "resourceType": "Provenance",
        "id": provenance_id,
        "meta": {"security": [AIAST]},
        "target": [{"reference": t} for t in targets],
        "recorded": generated_at,
        "reason": [{"coding": [AIAST]}],
        "activity": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                    "code": "CREATE",
                    "display": "create",
                }
            ]
        },
        "agent": [
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/"
                            "provenance-participant-type",
                            "code": "author",
                            "display": "Author",
                        }
                    ]
                },
                "who": {"reference": device_url},
            }
        ],
        "entity": [{"role": "source", "what": {"reference": source}} for source in cited],
    }


def _cited_sources(facts: FactSet, drafts: Sequence[Draft]) -> list[str]:
    """Every chart resource a sentence of the drafts rests on, sorted, each once."""
    sources: set[str] = set()
    for draft in drafts:
        for fact_id in draft.cited():
            fact = facts.get(fact_id)
            if fact is not None:
                sources.update(fact.sources)
    return sorted(sources)


def _conditional_post(url: str, resource: dict[str, Any], system: str, value: str) -> dict:
    rtype = resource["resourceType"]
    return {
        "fullUrl": url,
        "resource": resource,
        "request": {
            "method": "POST",
            "url": rtype,
            "ifNoneExist": urlencode({"identifier": f"{system}|{value}"}),
        },
    }


def _urn(system: str, value: str) -> str:
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{system}|{value}')}"


def _period(context: StayContext) -> dict[str, str]:
    period = {}
    start, end = as_instant(context.admitted), as_instant(context.discharged)
    if start:
        period["start"] = start
    if end:
        period["end"] = end
    return period


def as_instant(value: str | None) -> str | None:
    """A dateTime as written when it has a time and zone; a bare date as midnight UTC."""
    if not value:
        return None
    if "T" in value and (value.endswith("Z") or value[-6] in "+-"):
        return value
    moment = parse_time(value)
    return moment.isoformat() if moment else None


def _custodian(context: StayContext) -> dict[str, str] | None:
    provider = context.encounter.get("serviceProvider")
    key = reference_key(provider)
    resolved = context.referenced.get(key or "") or context.referenced.get(
        str((provider or {}).get("reference"))
    )
    if resolved is not None:
        return {"reference": f"Organization/{resolved['id']}"}
    if key and key.startswith("Organization/"):
        return {"reference": key}
    return None


def _esc(text: str) -> str:
    return html.escape(text, quote=True)
