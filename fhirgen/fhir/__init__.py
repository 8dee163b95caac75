"""FHIR on the wire: resource types and values, the client and SMART auth, notification
parsing, loading records from files, time shifting.

The bottom layer: imports nothing of ours but ``fhirgen.errors``.
"""
