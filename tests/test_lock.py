"""The lock file: it pins everything pyproject asks for, and every run records how its environment relates to it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bioqa.runs import LOCK_PATH, lock_state, locked_versions, write_provenance

ROOT = Path(__file__).resolve().parent.parent


def locked() -> dict[str, str]:
    return {canonicalize_name(name): version for name, version in locked_versions(LOCK_PATH).items()}


def test_the_lock_pins_every_dependency_with_hashes():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = [Requirement(r) for r in [*project["dependencies"], *extras["dev"], *extras["ann"], *extras["onnx"]]]
    wanted += [Requirement(line.split("#")[0]) for line in (ROOT / "requirements.in").read_text().splitlines()
               if line.split("#")[0].strip()]  # fmt: skip
    pins = locked()
    for requirement in wanted:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not in requirements.lock (run make lock)"
        assert requirement.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} vs {requirement}"
    entries = LOCK_PATH.read_text().split("\n    # via")
    assert all("--hash=sha256:" in entry for entry in entries[:-1])
    assert pins["torch"].endswith("+cpu") and "llama-cpp-python" not in pins and "llm" not in pins


def test_the_environment_matches_the_lock():
    state = lock_state()
    assert state is not None and state["differ"] == {}, "run make test (it rebuilds .venv from the lock)"


@pytest.mark.parametrize(
    ("lock", "expected"),
    [
        (None, None),
        ("pytest==0.0.1 \\\n    --hash=sha256:00\n", {"pytest": {"locked": "0.0.1"}}),
        ("no-such-package-bioqa==1.0 \\\n", {"no-such-package-bioqa": {"locked": "1.0", "installed": None}}),
        ("# only comments\n", {}),
        ("", {}),
        (b"\xff\xfe\x00 not utf-8 \x80", {}),  # a broken lock never stops a run: recorded, with its hash
        ("dir", None),  # a directory where the lock should be: no lock
    ],
)
def test_provenance_records_the_lock_and_what_differs_from_it(lock, expected, tmp_path, monkeypatch, caplog):
    path = tmp_path / "requirements.lock"
    if lock == "dir":
        path.mkdir()
    elif lock is not None:
        path.write_bytes(lock if isinstance(lock, bytes) else lock.encode())
    monkeypatch.setattr("bioqa.runs.LOCK_PATH", path)
    with caplog.at_level(logging.WARNING, logger="bioqa.runs"):
        info = write_provenance(tmp_path / "run")
    recorded = json.loads((tmp_path / "run/provenance.json").read_text())["lock"]
    assert recorded == info["lock"]
    if expected is None:
        assert recorded is None and not caplog.records
        return
    assert len(recorded["sha256"]) == 64
    assert {n: {k: v for k, v in d.items() if k in expected[n]} for n, d in recorded["differ"].items()} == expected
    assert bool(caplog.records) == bool(expected)
    if expected:
        [line] = [r.getMessage() for r in caplog.records]
        assert "differ from requirements.lock" in line and next(iter(expected)) in line
