"""The boundaries of the layout: fhirgen/ is the domain and knows no web or task framework."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN_IN_CORE = {"flask", "celery", "workers", "webhooks", "kombu", "gunicorn"}
HEAVY = {"torch", "transformers", "accelerate"}


def _imports(path: Path, *, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize(
    "path", sorted((ROOT / "fhirgen").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT))
)
def test_core_imports_no_web_or_task_framework(path):
    assert not _imports(path, top_level_only=False) & FORBIDDEN_IN_CORE


@pytest.mark.parametrize(
    "path", sorted((ROOT / "fhirgen").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT))
)
def test_heavy_libraries_are_never_imported_at_module_level(path):
    assert not _imports(path, top_level_only=True) & HEAVY


def test_cli_starts_without_heavy_imports():
    code = (
        "import sys, fhirgen.cli, fhirgen.pipeline, fhirgen.offline;"
        "print(sorted(m for m in ('torch', 'transformers', 'flask', 'celery') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_fixed_top_level_layout():
    for folder in ("fhirgen", "workers", "webhooks", "tests", "deploy", "bench", "docs"):
        assert (ROOT / folder).is_dir(), folder
    for file in ("pyproject.toml", "README.md", "Makefile", ".ci/run"):
        assert (ROOT / file).is_file(), file
