"""Moving a record in time (the live demo's sample stays end now)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fhirgen.fhir.timeshift import ending_at, shift
from fhirgen.fhir.values import parse_time


def test_each_form_keeps_its_precision_and_offset():
    delta = timedelta(days=10, hours=3)
    assert shift("2026-03-02", delta) == "2026-03-12"
    assert shift("2026-03-02T08:00:00Z", delta) == "2026-03-12T11:00:00Z"
    assert shift("2026-03-02T08:00:00+01:00", delta) == "2026-03-12T11:00:00+01:00"
    assert shift("2026-03-02T08:00:00.250Z", delta) == "2026-03-12T11:00:00.250Z"
    assert shift("2026-03-02T08:00Z", delta) == "2026-03-12T11:00Z"
    for unchanged in ("2026", "2026-03", "12345", "lab-2026-03-02x", "Patient/p1"):
        assert shift(unchanged, delta) == unchanged


def test_a_patients_record_moves_so_the_stay_ends_now_and_intervals_hold():
    stay = {
        "resourceType": "Encounter",
        "id": "e1",
        "subject": {"reference": "Patient/p1"},
        "period": {"start": "2026-03-02T08:00:00Z", "end": "2026-03-06T14:30:00Z"},
    }
    patient = {"resourceType": "Patient", "id": "p1", "birthDate": "1950-05-01"}
    lab = {
        "resourceType": "Observation",
        "id": "o1",
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2026-03-03T06:00:00Z",
        "code": {"coding": [{"code": "2160-0"}]},
    }
    other = {"resourceType": "Practitioner", "id": "dr", "meta": {"lastUpdated": "2026-01-01"}}
    now = datetime(2026, 11, 28, 17, 42, 31, tzinfo=UTC)
    moved = ending_at([stay, patient, lab, other], {"p1": stay["period"]["end"]}, now)
    end = parse_time(moved[0]["period"]["end"])
    assert timedelta(0) <= now - end < timedelta(seconds=1)
    start = parse_time(moved[0]["period"]["start"])
    assert end - start == timedelta(days=4, hours=6, minutes=30)
    assert end - parse_time(moved[2]["effectiveDateTime"]) == timedelta(days=3, hours=8, minutes=30)
    assert moved[1]["birthDate"] == "1951-01-23"  # 267 whole days later, as the stay
    assert moved[2]["code"] == lab["code"] and moved[3] == other
    assert stay["period"]["end"] == "2026-03-06T14:30:00Z", "the input is not changed"
