"""The package layers and the absence of import cycles (import-linter contracts in pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT = "from importlinter.cli import lint_imports; raise SystemExit(lint_imports('pyproject.toml', no_cache=True))"


def lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", LINT], cwd=root, capture_output=True, text=True, timeout=120)


def test_the_package_keeps_its_contracts():
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout[-3000:]


@pytest.mark.parametrize(
    ("module", "added", "broken"),
    [
        ("prompts/builder.py", "from bioqa.pipeline import answering", "layers"),  # the cycle issue 8 found
        ("models/tiny.py", "from bioqa.models import hf", "no import cycles"),  # a cycle inside one layer
        ("evaluation/api.py", "from bioqa.models import base", "evaluation knows nothing of models"),
        ("models/base.py", "from bioqa.data import Question", "backends know nothing of BioASQ"),
        ("analysis/plots.py", "from bioqa.analysis.report import Report", "its renderers take plain data"),
        ("analysis/markdown.py", "from bioqa.analysis import plots", "its renderers take plain data"),
    ],
)
def test_a_broken_rule_is_reported(tmp_path, module, added, broken):
    shutil.copytree(ROOT / "bioqa", tmp_path / "bioqa", ignore=shutil.ignore_patterns("__pycache__", "resources"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    (tmp_path / "bioqa" / "resources").mkdir()
    shutil.copy(ROOT / "bioqa" / "resources" / "__init__.py", tmp_path / "bioqa" / "resources")
    path = tmp_path / "bioqa" / module
    path.write_text(path.read_text(encoding="utf-8") + f"\n{added}\n", encoding="utf-8")
    result = lint(tmp_path)
    assert result.returncode == 1
    assert broken in result.stdout.split("Broken contracts")[-1], result.stdout[-3000:]
