"""What import-linter cannot check about the layout.

The import boundaries themselves (fhirgen knows no web or task framework and nothing of workers/ or
webhooks/; workers/ does not import webhooks/; the layers inside fhirgen/) are import-linter
contracts in pyproject.toml, run by `make lint`. What stays here: heavy libraries are imported only
inside the function that needs them (grimp does not tell a module-level import from a deferred one),
a process that imports the CLI loads none of them, and the fixed top-level folders exist.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = {"torch", "transformers", "accelerate"}


def _top_level_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize(
    "path", sorted((ROOT / "fhirgen").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT))
)
def test_heavy_libraries_are_never_imported_at_module_level(path):
    assert not _top_level_imports(path) & HEAVY


def test_cli_starts_without_heavy_imports():
    code = (
        "import sys, fhirgen.cli.main, fhirgen.drafting.pipeline, fhirgen.cli.offline;"
        "print(sorted(m for m in ('torch', 'transformers', 'flask', 'celery') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_fixed_top_level_layout():
    for folder in ("fhirgen", "workers", "webhooks", "tests", "deploy", "bench", "docs"):
        assert (ROOT / folder).is_dir(), folder
    for file in ("pyproject.toml", "README.md", "Makefile", ".ci/run"):
        assert (ROOT / file).is_file(), file
