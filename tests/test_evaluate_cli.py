"""``evaluate.py`` end to end: once in a subprocess (run directory contents), then through its ``main`` in this
process (``run_script``: rejection message, comparison); and the composed config through ``evaluate_from_config``
(bad options and files: exit 2 and one line; another run's files are never overwritten)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import compose_config, run_script

from bioqa.config.evaluate import validate_evaluate_config
from bioqa.errors import error_boundary
from bioqa.evaluation.cli import evaluate_from_config
from bioqa.rundir import PER_QUESTION, read_metrics

ROOT = Path(__file__).resolve().parents[1]
URL = "http://www.ncbi.nlm.nih.gov/pubmed/"


def _run(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "evaluate.py"), *overrides, f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _run_here(tmp_path: Path, capsys, *overrides: str) -> subprocess.CompletedProcess:
    """``_run`` through evaluate.py's ``main`` in this process; its output is what ``capsys`` captured."""
    capsys.readouterr()
    code = run_script("evaluate", *overrides, f"hydra.run.dir={tmp_path / 'run'}")
    out = capsys.readouterr()
    return subprocess.CompletedProcess(["evaluate.py", *overrides], code, out.out, out.err)


def _write(path: Path, questions: list[dict]) -> Path:
    path.write_text(json.dumps({"questions": questions}), encoding="utf-8")
    return path


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    golden = [
        {"id": "q1", "type": "yesno", "body": "Is water wet?", "documents": [URL + "1", URL + "2"],
         "snippets": [], "exact_answer": "yes", "ideal_answer": ["Yes, water is wet."]},
        {"id": "q2", "type": "factoid", "body": "Which gas do plants release?", "documents": [URL + "3"],
         "snippets": [], "exact_answer": [["oxygen", "O2"]], "ideal_answer": ["Plants release oxygen."]},
    ]  # fmt: skip
    system = [
        {"id": "q1", "type": "yesno", "body": "Is water wet?", "documents": [URL + "2", URL + "9"],
         "exact_answer": "yes", "ideal_answer": "Water is wet."},
        {"id": "q2", "type": "factoid", "body": "Which gas do plants release?", "documents": [URL + "3"],
         "exact_answer": [["co2"], ["o2"]], "ideal_answer": "Plants release oxygen."},
    ]  # fmt: skip
    return _write(tmp_path / "golden.json", golden), _write(tmp_path / "system.json", system)


def test_evaluate_writes_run_directory(tmp_path: Path, pair):
    golden, system = pair
    proc = _run(tmp_path, f"golden={golden}", f"system={system}", "bootstrap=200")
    assert proc.returncode == 0, proc.stderr
    run = tmp_path / "run"
    metrics = read_metrics(run)
    m = metrics.measures
    assert metrics.evaluation["phases"] == ["A", "B", "ideal"] and metrics.evaluation["version"] == 9
    # q1: docs [2 (hit), 9]: P 1/2, R 1/2, AP (1/1)/2 ; q2: P = R = AP = 1
    assert m["documents.MPrec"] == pytest.approx(0.75) and m["documents.MAP"] == pytest.approx(0.75)
    assert m["yesno.acc"] == 1.0 and m["factoid.strict_acc"] == 0.0 and m["factoid.mrr"] == 0.5
    # q1: "water is wet" vs "yes water is wet": 2 of 3 reference bigrams; q2 identical: 1
    assert m["ideal.rouge2_recall"] == pytest.approx((2 / 3 + 1.0) / 2)
    assert set(metrics.ci) >= {"documents.MAP", "yesno.macro_f1", "ideal.rouge_su4_f1"}
    rows = [json.loads(line) for line in (run / "per_question.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["q1", "q2"] and rows[1]["factoid.rr"] == 0.5
    provenance = json.loads((run / "provenance.json").read_text())
    assert set(provenance["data"]) == {str(golden), str(system)}
    assert "documents.MAP" in proc.stdout and "95% CI" in proc.stdout


def test_rejected_submission_exits_nonzero_with_one_line(tmp_path: Path, pair, capsys):
    golden, _ = pair
    bad = _write(tmp_path / "bad.json", [{"id": "q2", "type": "factoid", "body": "?", "exact_answer": ["oxygen"]}])
    proc = _run_here(tmp_path, capsys, f"golden={golden}", f"system={bad}", "phase=B")
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert str(bad) in lines[0] and "q2" in lines[0] and "exact_answer" in lines[0]


def test_compare_on_a_shared_batch(tmp_path: Path, shared_dir: Path, capsys):
    systems = shared_dir / "oracle/systems/11B3"
    proc = _run_here(
        tmp_path,
        capsys,
        f"golden={shared_dir / 'golden/11B3_golden.json'}",
        f"system={systems / '11B3__B_perfect.json'}",
        f"compare={systems / '11B3__B_noisy.json'}",
        "phase=B",
        "rouge=false",
        "bootstrap=300",
    )
    assert proc.returncode == 0, proc.stderr
    metrics = read_metrics(tmp_path / "run")
    cases = {c["id"]: c for c in json.loads((shared_dir / "oracle/cases.json").read_text())}
    expected = cases["11B3__B_perfect__phaseB__e9"]["expected"]
    assert metrics.measures == pytest.approx(expected, abs=1e-12)
    comparison = metrics.evaluation["comparison"]["measures"]
    noisy = cases["11B3__B_noisy__phaseB__e9"]["expected"]
    assert comparison["list.f1"]["delta"] == pytest.approx(expected["list.f1"] - noisy["list.f1"])
    assert comparison["list.f1"]["p_permutation"] < 0.05 and comparison["list.f1"]["ci"][0] > 0


def test_compare_shows_both_systems_on_the_same_questions(tmp_path: Path, shared_dir: Path, capsys):
    """B answers only the first 20 questions: A is shown on those 20 too, and A − B is their difference."""
    golden = shared_dir / "golden/11B3_golden.json"
    systems = shared_dir / "oracle/systems/11B3"
    partial = json.loads((systems / "11B3__B_noisy.json").read_text())
    partial["questions"] = partial["questions"][:20]
    b = _write(tmp_path / "partial.json", partial["questions"])
    proc = _run_here(tmp_path, capsys, f"golden={golden}", f"system={systems / '11B3__B_perfect.json'}", f"compare={b}",
                "phase=B", "rouge=false", "bootstrap=100")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    metrics = read_metrics(tmp_path / "run").evaluation
    for name, m in metrics["comparison"]["measures"].items():
        assert m["a"] - m["b"] == pytest.approx(m["delta"]), name
    yesno = metrics["comparison"]["measures"]["yesno.acc"]
    assert yesno["a"] == 1.0 and yesno["n_questions"] < metrics["counts"]["yesno"]
    assert "answers only 20 of the 90" in proc.stderr and any("only 20" in w for w in metrics["warnings"])
    assert "both on the n questions counted for both" in " ".join(proc.stdout.split())


def evaluate(cfg):
    """What ``evaluate.py`` does with its composed config: parse it, then score into ``paths.output_dir``."""
    return evaluate_from_config(validate_evaluate_config(cfg), cfg.paths.output_dir)


def test_evaluate_never_overwrites_another_runs_files(tmp_path: Path, pair):
    golden, system = pair
    infer_run = tmp_path / "infer_run"
    infer_run.mkdir()
    (infer_run / "metrics.json").write_text('{"accounting.errors": 0}')
    (infer_run / PER_QUESTION).write_text("{}\n")
    cfg = compose_config(
        "evaluate", [f"golden={golden}", f"system={system}", "bootstrap=0", f"paths.output_dir={infer_run}"]
    )
    evaluate(cfg)
    assert (infer_run / "metrics.json").read_text() == '{"accounting.errors": 0}'
    assert (infer_run / PER_QUESTION).read_text() == "{}\n"
    (own,) = (infer_run / "evaluations").iterdir()
    metrics = read_metrics(own)
    assert metrics.measures["yesno.acc"] == 1.0 and (own / PER_QUESTION).is_file()
    assert any("already holds metrics.json" in w for w in metrics.evaluation["warnings"])


def test_hydra_run_dir_of_an_infer_run_keeps_its_config_and_scores(tmp_path: Path, pair):
    golden, system = pair
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    records = {".hydra/config.yaml": "model: infer's\n", "metrics.json": '{"yesno.acc": 0.25}', "provenance.json": "{}"}
    for name, text in records.items():
        (run / name).write_text(text)
    proc = _run(tmp_path, f"golden={golden}", f"system={system}", "bootstrap=0")
    assert proc.returncode == 0, proc.stderr
    assert {name: (run / name).read_text() for name in records} == records
    assert (run / ".hydra/evaluate/config.yaml").is_file()
    (own,) = (run / "evaluations").iterdir()
    assert read_metrics(own).measures["yesno.acc"] == 1.0
    assert "already holds metrics.json, provenance.json" in proc.stderr


BAD_OPTIONS = [
    ("no-system", ["system=???"], "system is missing: pass system=PATH"),
    ("version-7", ["version=7"], "version=7: Input should be 2, 3, 5, 8 or 9"),
    ("version-text", ["version=abc"], "version=abc: Input should be 2, 3, 5, 8 or 9"),
    ("phase-C", ["phase=C"], "phase=C: Input should be 'A', 'B' or 'AB'"),
    ("bootstrap-negative", ["bootstrap=-5"], "bootstrap=-5: Input should be greater than or equal to 0"),
    ("bootstrap-text", ["bootstrap=many"], "bootstrap=many: Input should be a valid integer"),
    ("rouge-text", ["rouge=maybe"], "rouge=maybe: Input should be a valid boolean"),
    ("system-directory", ["system={tmp}"], "is a directory"),
    ("system-missing", ["system={tmp}/nope.json"], "no such file"),
    ("system-is-a-list", ["system={tmp}/list.json"], "expected a BioASQ JSON object"),
    ("compare-another-batch", ["compare={tmp}/other.json"], "no question id in common"),
    ("compare-no-shared-question", ["system={tmp}/q1.json", "compare={tmp}/q2.json"], "no scored question in common"),
    # nothing scored is no result: an empty table is refused
    ("system-without-answers", ["system={tmp}/bare.json"], "bare.json: nothing to score in phase AB: no question"),
    ("compare-without-answers", ["compare={tmp}/bare.json"], "bare.json have no scored question in common (2 and 0"),
    # scored questions in common, but no measure: Phase B answers against Phase A documents
    ("compare-no-shared-measure", ["system={tmp}/answers.json", "compare={tmp}/docs.json"],
     "docs.json have no measure in common (B, ideal vs A scored): nothing to compare"),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "message"), [c[1:] for c in BAD_OPTIONS], ids=[c[0] for c in BAD_OPTIONS])
def test_bad_options_and_files_end_in_one_line(tmp_path: Path, pair, capsys, overrides: list[str], message: str):
    golden, system = pair
    (tmp_path / "list.json").write_text("[]")
    _write(tmp_path / "other.json", [{"id": "x9", "type": "yesno", "exact_answer": "yes"}])
    answers = json.loads(system.read_text())["questions"]
    _write(tmp_path / "q1.json", answers[:1])  # each a valid submission of the golden file's questions,
    _write(tmp_path / "q2.json", answers[1:])  # but not of the same ones
    _write(tmp_path / "bare.json", [{"id": "q1", "type": "yesno", "body": "Is water wet?"}])
    _write(tmp_path / "answers.json", [{k: v for k, v in q.items() if k != "documents"} for q in answers])
    _write(tmp_path / "docs.json", [{k: q[k] for k in ("id", "body", "documents")} for q in answers])
    cfg = compose_config(
        "evaluate",
        [
            f"golden={golden}",
            f"system={system}",
            f"paths.output_dir={tmp_path / 'out'}",
            *(o.format(tmp=tmp_path) for o in overrides),
        ],
    )
    with pytest.raises(SystemExit) as exit_info:
        error_boundary(evaluate)(cfg)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in lines[0]
    assert not (tmp_path / "out" / "metrics.json").exists()
