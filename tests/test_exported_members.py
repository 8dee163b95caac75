"""The public surface of ``fhirgen`` is small and deliberate, and importing a part is cheap."""

import inspect
import subprocess
import sys

import fhirgen


def test_exported_members():
    helpers = {"annotations", "version", "PackageNotFoundError", "TYPE_CHECKING", "Any"}
    public = {
        name
        for name in dir(fhirgen)
        if not name.startswith("_")
        and name not in helpers
        and not inspect.ismodule(getattr(fhirgen, name))
    }
    assert public == set(fhirgen.__all__) - {"__version__"}
    for name in fhirgen.__all__:
        assert getattr(fhirgen, name) is not None
    assert fhirgen.__version__


def test_importing_the_error_tree_loads_no_pipeline():
    """``import fhirgen.errors`` (the webhook's need) does not load the pipeline or FHIR models."""
    code = (
        "import sys, fhirgen.errors; "
        "heavy = [m for m in ('fhirgen.drafting.pipeline', 'fhirgen.drafting.render', 'fhir.resources', 'torch') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
