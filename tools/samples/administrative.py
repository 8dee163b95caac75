"""Administrative resources: Organization, Location, Practitioner, Patient and addresses."""

from __future__ import annotations

from typing import Any

from tools.samples.datatypes import Resource, coding, concept, ref
from tools.samples.sample import Sample
from tools.samples.systems import (
    CDC_RACE,
    LANGUAGE,
    LOCATION_TYPE,
    MARITAL,
    NPI,
    ORGANIZATION_TYPE,
    ROLE_CODE,
    US_CORE_ETHNICITY,
    US_CORE_RACE,
    V2_0203,
)


def organization(
    s: Sample, key: str, name: str, *, npi: str, address: dict[str, Any], phone: str
) -> Resource:
    return s.add(
        "Organization",
        key,
        {
            "identifier": [{"use": "official", "system": NPI, "value": npi}],
            "active": True,
            "type": [concept("Healthcare Provider", coding(ORGANIZATION_TYPE, "prov"))],
            "name": name,
            "telecom": [{"system": "phone", "value": phone, "use": "work"}],
            "address": [address],
        },
    )


def location(
    s: Sample,
    key: str,
    name: str,
    *,
    org: Resource,
    role: tuple[str, str],
    physical: tuple[str, str] = ("wa", "Ward"),
) -> Resource:
    return s.add(
        "Location",
        key,
        {
            "status": "active",
            "name": name,
            "mode": "instance",
            "type": [concept(role[1], coding(ROLE_CODE, *role))],
            "physicalType": concept(physical[1], coding(LOCATION_TYPE, *physical)),
            "managingOrganization": ref(org),
        },
    )


def practitioner(
    s: Sample, key: str, given: str, family: str, *, suffix: str, npi: str, gender: str
) -> Resource:
    return s.add(
        "Practitioner",
        key,
        {
            "identifier": [{"use": "official", "system": NPI, "value": npi}],
            "active": True,
            "name": [
                {
                    "use": "official",
                    "text": f"{given} {family}, {suffix}",
                    "family": family,
                    "given": [given],
                    "suffix": [suffix],
                }
            ],
            "gender": gender,
        },
    )


def address(line: str, city: str, state: str, postal: str, use: str = "work") -> dict[str, Any]:
    return {
        "use": use,
        "line": [line],
        "city": city,
        "state": state,
        "postalCode": postal,
        "country": "US",
    }


def patient(
    s: Sample,
    key: str,
    *,
    mrn: tuple[str, str],
    given: list[str],
    family: str,
    gender: str,
    birth_date: str,
    home: dict[str, Any],
    phone: str,
    race: tuple[str, str],
    ethnicity: tuple[str, str],
    marital: tuple[str, str],
    gp: Resource,
    org: Resource,
    updated: str,
) -> Resource:
    """A Patient with an MRN, US Core race and ethnicity, and a primary care physician."""
    return s.add(
        "Patient",
        key,
        {
            "meta": {"versionId": "3", "lastUpdated": updated},
            "extension": [
                {
                    "url": US_CORE_RACE,
                    "extension": [
                        {"url": "ombCategory", "valueCoding": coding(CDC_RACE, *race)},
                        {"url": "text", "valueString": race[1]},
                    ],
                },
                {
                    "url": US_CORE_ETHNICITY,
                    "extension": [
                        {"url": "ombCategory", "valueCoding": coding(CDC_RACE, *ethnicity)},
                        {"url": "text", "valueString": ethnicity[1]},
                    ],
                },
            ],
            "identifier": [
                {
                    "use": "usual",
                    "type": concept("MRN", coding(V2_0203, "MR", "Medical record number")),
                    "system": mrn[0],
                    "value": mrn[1],
                }
            ],
            "active": True,
            "name": [
                {
                    "use": "official",
                    "text": " ".join([*given, family]),
                    "family": family,
                    "given": given,
                }
            ],
            "telecom": [{"system": "phone", "value": phone, "use": "home"}],
            "gender": gender,
            "birthDate": birth_date,
            "address": [home],
            "maritalStatus": concept(marital[1], coding(MARITAL, *marital)),
            "communication": [
                {
                    "language": concept("English", coding(LANGUAGE, "en", "English")),
                    "preferred": True,
                }
            ],
            "generalPractitioner": [ref(gp)],
            "managingOrganization": ref(org),
        },
    )
