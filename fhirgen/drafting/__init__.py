"""Drafting: document kinds, generation backends and their prompts, the verifier, rendering as
FHIR, and the pipeline that runs them over one stay.

Pure apart from the model backends' own I/O. May import ``fhirgen.clinical``, ``fhirgen.fhir``
and the shared modules (config, errors, logs); never the store, the service layer or an entry
point.
"""
