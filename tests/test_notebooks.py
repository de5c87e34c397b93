"""The analysis notebooks execute top to bottom: on the results committed in the repository, and (the sweep
notebooks) on a small report built here from fixture run directories scored by the real official measures."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from bioqa.analysis.report import build_report
from bioqa.analysis.synthetic import replicate_golden, synthetic_run
from bioqa.resources import demo_golden_path

pytestmark = pytest.mark.slow  # a Jupyter kernel per notebook

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def small_report(tmp_path_factory) -> Path:
    """2 models × {0, 1} shots × 2 batches of the embedded demo questions, reported with baselines."""
    root = tmp_path_factory.mktemp("sweep")
    goldens = [replicate_golden(demo_golden_path(), root / f"DEMO{i}_golden.json", i) for i in (1, 2)]
    for model, skill in (("synthetic-a", 0.3), ("synthetic-b", 0.6)):
        for shots in (0, 1):
            for golden in goldens:
                synthetic_run(
                    root / "runs" / f"{model}_{shots}_{golden.stem}", golden, model, shots, skill + 0.2 * shots,
                    parse_failure_rate=0.3 * (1 - shots), bootstrap=50,
                )  # fmt: skip
    return build_report(root / "runs", bootstrap=100).out_dir


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes(path, small_report, monkeypatch):
    monkeypatch.setenv("BIOQA_REPORT_DIR", str(small_report))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the kernel imports this checkout's bioqa
    notebook = nbformat.read(path, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), "outputs in git"
    NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert outputs and not [o for o in outputs if o.output_type == "error"]
