"""Build the synthetic sample records under ``fhirgen/samples`` (stdlib only, deterministic).

``python -m tools.samples`` (from the repository root) rewrites ``fhirgen/samples/stays/*.json``
(one ``Patient/$everything`` searchset Bundle per stay) and ``fhirgen/samples/bulk/`` (a Bulk
Data ``$export``: one NDJSON file per resource type plus ``manifest.json``) byte for byte the same
on every run: no randomness, no wall clock; ``--out DIR`` writes them elsewhere. Ids are derived
from a hash of a readable key, in the style of the EHR each sample imitates (Epic ``e…3`` ids,
Oracle Health numeric ids, HAPI numeric ids, UUIDs in the Bulk export).

Every person is invented. Codes are real LOINC, SNOMED CT, RxNorm, ICD-10-CM, CPT and HL7
terminology codes as best known.

The helpers, by concern: ``systems`` (code system URLs), ``datatypes`` (codings, quantities,
references), ``codes`` (shared concepts, laboratory codes and units), ``ids`` and ``times``,
``sample`` (``Sample``, one record under construction), and the resource builders
``administrative``, ``encounters``, ``conditions``, ``medications``, ``observations``, ``notes``
and ``follow_up``. ``stays`` holds one module per stay; ``build`` writes them. To add a stay:
write ``stays/<name>.py`` with a ``build_<name>() -> Sample`` function using the helpers and add
it to ``STAYS`` in ``stays/__init__.py``.
"""
