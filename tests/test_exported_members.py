"""The public surface of ``fhirgen`` is small and deliberate."""

import inspect

import fhirgen


def test_exported_members():
    public = {
        name
        for name, value in vars(fhirgen).items()
        if not name.startswith("_") and not inspect.ismodule(value) and name != "annotations"
    }
    assert public == set(fhirgen.__all__) - {"__version__"}
    assert fhirgen.__version__
