"""Entry points: the ``fhirgen`` commands (``main``), console users (``users``), the demo,
launching the live system's processes, offline generation and evaluation.

The top layer: may import everything in ``fhirgen``; nothing in ``fhirgen`` imports it.
"""
