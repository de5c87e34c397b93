"""Query shots chosen by retrieval F1: a finished retrieval/phase_a=paper run becomes a query shot pool (official
per-question document measures, best F1 first, the run recorded); a later run takes its top n as query shots and
records the pool's sha256 in its identity; bad runs and golden files are one line, exit 2."""

from __future__ import annotations

import json
import shutil

import pytest
from test_run_identity import Backends, run

from bioqa.errors import EXIT_USAGE, RunConflictError, error_boundary
from bioqa.evaluation.official import evaluate_phase_a
from bioqa.models import Completion
from bioqa.pipeline import app
from bioqa.pipeline.query_pool import main
from bioqa.resources import demo_golden_path
from bioqa.rundir import IDENTITY
from bioqa.runs import file_sha256

PAPER = ["task=phase_a", "retrieval=tantivy", "retrieval/phase_a=paper", "data.types=null", "data.limit=4"]
PAPER += ["retrieval.phase_a.extract_documents=2", "retrieval.phase_a.show_progress=false"]


def reply(request) -> Completion:
    user = request.messages[-1]["content"]
    if "wrap the final query in ## tags" in user:  # a query of the question's last two words: F1 varies
        words = user.rsplit("'", 2)[1].rstrip("?").split()
        return Completion(text=f"Reasoning.\n##{' OR '.join(words[-2:])}##")
    if "broader query" in user:
        return Completion(text="##nothing##")
    return Completion(text='{"snippets": []}')


@pytest.fixture
def backends(monkeypatch) -> Backends:
    made = Backends()
    made.reply = reply
    monkeypatch.setattr(app, "build_backend", made)
    return made


def test_a_paper_run_becomes_a_pool_whose_top_shots_a_later_run_uses(tmp_path, backends, capsys):
    run(tmp_path, *PAPER)
    run_dir = tmp_path / "run"
    capsys.readouterr()
    pool_path = main([str(run_dir), "--golden", str(demo_golden_path()), "--out", str(tmp_path / "pool.json")])
    assert capsys.readouterr().out.startswith(f"{pool_path}: 4 query shots, best documents F1 ")
    pool = json.loads(pool_path.read_text())
    assert pool["kind"] == "bioqa.query_shot_pool"
    assert pool["source"]["run_dir"] == str(run_dir.resolve())
    assert pool["source"]["run_identity_sha256"] == file_sha256(run_dir / IDENTITY)
    rows = {r["id"]: r for r in evaluate_phase_a(demo_golden_path(), run_dir / "submission.json").per_question}
    traces = {t["id"]: t for t in json.loads((run_dir / "phase_a_traces.json").read_text())}
    f1s = [s["f1"] for s in pool["shots"]]
    assert f1s == sorted(f1s, reverse=True) and len(set(f1s)) > 1
    for shot in pool["shots"]:
        row = rows[shot["id"]]
        assert (shot["precision"], shot["recall"], shot["f1"]) == (
            row["documents.precision"],
            row["documents.recall"],
            row["documents.f1"],
        )
        assert shot["completion"] == traces[shot["id"]]["queries"][0]["completion"]
        assert shot["completion"].startswith("Reasoning.\n##")

    later = tmp_path / "later"
    later.mkdir()
    overrides = [*PAPER, "retrieval.phase_a.shots.query=2", f"retrieval.phase_a.shot_files.query={pool_path}"]
    run(later, *overrides)
    identity = json.loads((later / "run" / IDENTITY).read_text())["identity"]["retrieval"]
    assert identity["phase_a_shot_files_sha256"] == {"query": file_sha256(pool_path)}
    first = backends.built[-1].calls[0][0].messages
    assert [m["content"] for m in first if m["role"] == "assistant"] == [s["completion"] for s in pool["shots"][:2]]

    pool["shots"].reverse()  # the same path with other shots is another run
    pool_path.write_text(json.dumps(pool))
    with pytest.raises(RunConflictError, match=r"retrieval\.phase_a_shot_files_sha256\.query"):
        run(later, *overrides)


def test_bad_runs_and_golden_files_are_one_line(tmp_path, backends, capsys):
    run(tmp_path, "task=phase_a", "retrieval=bm25", "data.limit=2")  # no model queries: nothing to pool
    other = tmp_path / "other.json"
    shutil.copy(demo_golden_path(), other)
    other.write_text(other.read_text() + "\n")
    cases = [
        ([str(tmp_path / "run"), "--golden", str(demo_golden_path())], "hold no query completions"),
        ([str(tmp_path / "run"), "--golden", str(other)], "not the question file of the run"),
        ([str(tmp_path / "missing"), "--golden", str(demo_golden_path())], "run_identity.json: no such file"),
    ]
    capsys.readouterr()
    for argv, expected in cases:
        with pytest.raises(SystemExit) as exit_info:
            error_boundary(main)(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == EXIT_USAGE and expected in err and len(err.strip().splitlines()) == 1, err
