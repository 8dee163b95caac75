"""The clinical layer: what a hospitalist knows that the FHIR record does not spell out.

Pure functions and tables, no I/O: readable names and units (``wording``), which change in a
measurement matters (``trends``), which results, drugs and procedures belong to which problem
(``lexicon``, ``course``), and how easy a text is to read (``readability``). It imports only
``fhirgen.fhir`` value helpers.
"""
