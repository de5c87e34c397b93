"""What reaches the user's stderr: bioqa's lines only; other libraries' warnings once, in one line; no hub probe."""

from __future__ import annotations

import logging
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from bioqa.console import LibraryLines, OneLineFormatter, RouteWarnings

ROOT = Path(__file__).resolve().parent.parent
FORMAT = "[%(name)s][%(levelname)s] - %(message)s"


def record(name: str, level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, None, None)


@pytest.mark.parametrize(
    ("name", "level", "message", "shown"),
    [
        ("bioqa.pipeline.app", logging.INFO, "2 questions from demo.json", "[bioqa.pipeline.app][INFO] - 2 questions"),
        ("__main__", logging.INFO, "line one\nline two", "[__main__][INFO] - line one\nline two"),
        ("httpx", logging.INFO, "HTTP Request: POST http://127.0.0.1/v1 200 OK", None),
        ("transformers.modeling_utils", logging.DEBUG, "loading weights", None),
        ("bitsandbytes.cextension", logging.WARNING, "first\n  second\n", "[bitsandbytes.cextension][WARNING] - first"),
        ("litellm", logging.ERROR, "Traceback (most recent call last):\n  File x", "[litellm][ERROR] - Traceback"),
        ("py.warnings", logging.WARNING, "/x/y.py:12: FutureWarning: renamed\n  warn(...)\n", "FutureWarning: renamed"),
        ("torch", logging.WARNING, "", "[torch][WARNING] - "),
    ],
)
def test_bioqa_lines_pass_and_library_lines_are_warnings_in_one_line(name, level, message, shown):
    lines, formatter = LibraryLines(), OneLineFormatter(FORMAT)
    rec = record(name, level, message)
    if shown is None:
        assert not lines.filter(rec)
        return
    assert lines.filter(rec)
    text = formatter.format(rec)
    assert text.startswith(shown) if not name.startswith("py.") else text.endswith(shown)
    assert "\n" not in text or name.startswith(("bioqa", "__main__"))


def test_a_library_warning_is_shown_once_a_bioqa_line_every_time():
    lines = LibraryLines()
    repeated = [lines.filter(record("peft", logging.WARNING, "same\nmore")) for _ in range(3)]
    assert repeated == [True, False, False]
    assert lines.filter(record("peft", logging.WARNING, "another"))
    assert [lines.filter(record("bioqa.x", logging.WARNING, "same")) for _ in range(2)] == [True, True]


def test_python_warnings_are_routed_through_logging_while_a_job_runs():
    logging.captureWarnings(False)  # whatever a job that ended in an error before this test left behind
    before = warnings.showwarning
    route = RouteWarnings()
    try:
        route.on_job_start(config=None)
        assert warnings.showwarning is logging._showwarning  # type: ignore[attr-defined]  # records of py.warnings
    finally:
        route.on_job_end(config=None, job_return=None)
    assert warnings.showwarning is before


@pytest.mark.slow  # a fresh interpreter importing torch, transformers, Lightning, LiteLLM
def test_importing_the_entry_points_prints_nothing_on_stderr():
    """The scripts with everything they import (torch, transformers, peft, bitsandbytes, Lightning, LiteLLM)."""
    code = "import infer, train, evaluate"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


@pytest.mark.slow  # a fresh interpreter importing bitsandbytes, peft, transformers
def test_the_hub_kernel_probe_is_switched_off():
    """bitsandbytes loads without asking ``kernels`` for a Hub kernel, and says nothing about it."""
    code = (
        "import bioqa, sys, bitsandbytes.backends.cpu.ops; probed = 'kernels' in sys.modules; "
        "import peft, transformers; print(probed)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.stdout.strip() == "False" and proc.stderr == ""
