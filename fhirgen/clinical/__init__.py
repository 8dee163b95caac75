"""The clinical layer: the stay, and what a hospitalist knows that the FHIR record does not
spell out.

Pure functions and tables, no I/O: which resources belong to one inpatient stay (``stay``),
medication reconciliation (``medications``), the stay as citable facts (``facts``), readable
names and units (``wording``), which change in a measurement matters (``trends``), which
results, drugs and procedures belong to which problem (``lexicon``, ``course``), and how easy a
text is to read (``readability``). May import ``fhirgen.fhir`` and the shared modules.
"""
