"""The sample stays, one module each, and ``STAYS``: the stays written as ``$everything``
searchset Bundles (the Bulk export, ``bulk_diabetes``, is written apart)."""

from __future__ import annotations

from collections.abc import Callable

from tools.samples.sample import Sample
from tools.samples.stays.chest_pain_observation import build_chest_pain_observation
from tools.samples.stays.heart_failure import build_heart_failure
from tools.samples.stays.hip_fracture import build_hip_fracture
from tools.samples.stays.pneumonia import build_pneumonia

STAYS: dict[str, Callable[[], Sample]] = {
    "heart-failure": build_heart_failure,
    "pneumonia": build_pneumonia,
    "hip-fracture": build_hip_fracture,
    "chest-pain-observation": build_chest_pain_observation,
}
