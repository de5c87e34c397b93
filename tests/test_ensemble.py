"""Ensembles of finished runs: votes, rank fusion, ideal-answer choice, and a scored run like any other."""

from __future__ import annotations

import json
import re
from pathlib import Path
from shutil import copytree

import pytest
from hydra import compose, initialize_config_dir

from bioqa.data import SystemAnswer, load_questions, write_submission
from bioqa.errors import BioQAError, ConfigError
from bioqa.evaluation import evaluate_submission
from bioqa.pipeline.ensemble import EnsembleConfig, fuse_ranked, run_ensemble, vote_yesno
from bioqa.resources import demo_golden_path
from bioqa.rundir import IDENTITY, read_metrics
from bioqa.runs import register_resolvers

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        (["yes", "yes", "no"], "yes"),
        (["no", "yes", "no"], "no"),
        (["no", "yes"], "no"),  # tie: the first member's answer
        (["yes", "no", None, "no", "yes"], "yes"),  # tie 2–2: first member among the tied
        ([None, "no", "yes"], "no"),  # tie among those who answered: first that answered
        ([None, None], None),
    ],
)
def test_yesno_majority_vote_and_tie_rule(answers, expected):
    assert vote_yesno(answers)[0] == expected


def test_rank_fusion_merges_surface_forms_and_orders_by_reciprocal_rank():
    fused = fuse_ranked(
        [["BRCA1", "TP53"], ["tp53", "brca1 "], ["TP53."]], rrf_k=0, key=lambda s: s.casefold().strip(" .")
    )
    assert [f["item"] for f in fused] == ["TP53", "BRCA1"]  # 1/2 + 1 + 1 > 1 + 1/2
    assert [f["votes"] for f in fused] == [3, 2]
    assert fused[0]["score"] == pytest.approx(2.5)


def make_member(root: Path, name: str, golden: Path, answers: dict[str, dict], model: str) -> Path:
    """A finished run directory: a submission over every question of ``golden``, its config and metrics."""
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    questions = load_questions(golden)
    write_submission(
        run / "submission.json",
        [SystemAnswer(q.id, q.type, q.body, **answers.get(q.id, {})) for q in questions],
    )
    (run / ".hydra" / "config.yaml").write_text(f"data:\n  golden: {golden}\nmodel:\n  name: {model}\n")
    (run / "metrics.json").write_text(json.dumps({"run.model": model, "accounting.cost_usd": 0.25}))
    (run / IDENTITY).write_text(json.dumps({"identity": {"model": model}, "fingerprint": f"fp-{model}"}))
    return run


@pytest.fixture
def members(tmp_path):
    golden = demo_golden_path()
    questions = {q.type: q for q in reversed(load_questions(golden))}  # the first question of each type
    yesno, factoid, lst = questions["yesno"].id, questions["factoid"].id, questions["list"].id
    runs = [
        make_member(
            tmp_path,
            "a",
            golden,
            {
                yesno: {"exact_answer": "yes", "ideal_answer": "A says yes."},
                factoid: {"exact_answer": [["alpha"], ["beta"]]},
                lst: {"exact_answer": [["x"], ["y"]]},
            },
            "model-a",
        ),
        make_member(
            tmp_path,
            "b",
            golden,
            {yesno: {"exact_answer": "no"}, factoid: {"exact_answer": [["Beta"]]}, lst: {"exact_answer": [["y"]]}},
            "model-b",
        ),
        make_member(
            tmp_path,
            "c",
            golden,
            {
                yesno: {"exact_answer": "no", "ideal_answer": "C says no."},
                factoid: {"exact_answer": [["beta"], ["gamma"]]},
                lst: {"exact_answer": [["z"], ["y"], ["x"]]},
            },
            "model-c",
        ),
    ]
    return runs, {"yesno": yesno, "factoid": factoid, "list": lst}


def test_ensemble_combines_members_into_an_accepted_submission(members, tmp_path):
    runs, ids = members
    answers, facts = run_ensemble(EnsembleConfig(runs=tuple(map(str, runs)), ideal_member=1), tmp_path / "out")
    by_id = {a.id: a for a in answers}
    assert by_id[ids["yesno"]].exact_answer == "no"
    assert by_id[ids["factoid"]].exact_answer[0] == ["beta"]  # named by all three
    assert by_id[ids["list"]].exact_answer == [["y"], ["x"]]  # z has one vote of three: below half
    assert by_id[ids["yesno"]].ideal_answer == "A says yes."  # member 1 has none: the next member's, recorded
    assert facts["ensemble.ideal_fallbacks"] >= 1
    assert facts["run.model"] == "ensemble(model-a + model-b + model-c)"
    assert facts["accounting.cost_usd"] == pytest.approx(0.75)
    evaluate_submission(demo_golden_path(), tmp_path / "out" / "submission.json", bootstrap=0)  # never rejected
    traces = [json.loads(line) for line in (tmp_path / "out" / "ensemble_traces.jsonl").read_text().splitlines()]
    assert len(traces) == len(load_questions(demo_golden_path()))


def _broken_member(run: Path, root: Path, kind: str) -> Path:
    """A copy of the finished run ``run`` under ``root``, broken as ``kind`` says."""
    member = root / kind
    if kind == "missing":
        return member
    if kind == "a file":
        member.write_text("x")
        return member
    copytree(run, member)
    submission = member / "submission.json"
    data = json.loads(submission.read_text())
    broken = {
        "no submission": None,
        "truncated": submission.read_text()[:50],
        "empty": "",
        "a list": "[]",
        "one question fewer": json.dumps({"questions": data["questions"][:-1]}),
        "a question twice": json.dumps({"questions": data["questions"] + data["questions"][:1]}),
        "a yes/no answer of the wrong type": json.dumps(
            {"questions": [{**q, "exact_answer": 7} if q["type"] == "yesno" else q for q in data["questions"]]}
        ),
    }
    if kind == "non-UTF-8":
        submission.write_bytes(b'{"questions": [{"id": "\xff"}]}')
    elif kind == "submission a directory":
        submission.unlink()
        submission.mkdir()
    elif broken[kind] is None:
        submission.unlink()
    else:
        submission.write_text(broken[kind])
    return member


#: A member broken as the row says (the other member is a good run): the line names the member or its file.
BAD_MEMBERS = [
    ("missing", "ensemble member {member}: not a run directory"),
    ("a file", "ensemble member {member}: not a run directory"),
    ("no submission", "ensemble member {member}: no submission.json (an unfinished or failed run?)"),
    ("submission a directory", "ensemble member {member}: no submission.json"),
    ("truncated", "{member}/submission.json: not valid JSON"),
    ("empty", "{member}/submission.json: not valid JSON"),
    ("non-UTF-8", "{member}/submission.json: not UTF-8 text (invalid start byte at byte 23)"),
    ("a list", "{member}/submission.json, field 'questions': expected an object"),
    ("one question fewer", "ensemble member {member} answered other questions than {good} (1 missing, 0 extra)"),
    ("a question twice", "{member}/submission.json, question demo_yesno_01, field 'id': duplicate question id"),
    ("a yes/no answer of the wrong type", "field 'exact_answer': yes/no answer must be a string, got 7"),
]


@pytest.mark.parametrize(("kind", "message"), BAD_MEMBERS, ids=[row[0] for row in BAD_MEMBERS])
def test_bad_members_are_refused_with_the_run_named(members, tmp_path, kind, message):
    runs, _ = members
    member = _broken_member(runs[1], tmp_path, kind)
    with pytest.raises(BioQAError) as refused:  # a ConfigError, or the data layer's BioASQFormatError
        run_ensemble(EnsembleConfig(runs=(str(runs[0]), str(member))), tmp_path / "out")
    assert message.format(member=member, good=runs[0]) in str(refused.value)


def ensemble_of(root: Path, name: str, runs) -> Path:
    run_ensemble(EnsembleConfig(runs=tuple(map(str, runs))), root / name)
    return root / name


@pytest.mark.parametrize(
    ("members_of", "message"),
    [
        # a copied run directory: another path, the same run identity
        (lambda runs, root: [runs[0], copytree(runs[0], root / "copy"), runs[1]], r"copy has the same run identity as"),
        # a member that is also inside an ensemble member
        (
            lambda runs, root: [ensemble_of(root, "ab", runs[:2]), runs[0]],
            r"a has the same run identity as .*a \(inside",
        ),
        (
            lambda runs, root: [runs[2], ensemble_of(root, "ab", runs[:2]), ensemble_of(root, "bc", runs[1:])],
            r"b \(inside",
        ),
        (lambda runs, root: [runs[0], runs[1], runs[0]], r"a has the same run identity as \S+/a: it would vote twice"),
    ],
)
def test_a_run_never_votes_twice(members, tmp_path, members_of, message):
    runs, _ = members
    with pytest.raises(ConfigError, match=message):
        run_ensemble(EnsembleConfig(runs=tuple(map(str, members_of(runs, tmp_path)))), tmp_path / "out")


def test_a_nested_ensemble_with_other_runs_votes_through_each_of_them(members, tmp_path):
    runs, _ = members
    run_ensemble(EnsembleConfig(runs=(str(ensemble_of(tmp_path, "ab", runs[:2])), str(runs[2]))), tmp_path / "o")
    voters = json.loads((tmp_path / "o" / "ensemble.json").read_text())["voters"]
    assert [key for key, _ in voters] == ["identity:fp-model-a", "identity:fp-model-b", "identity:fp-model-c"]


def compose_ensemble(tmp_path: Path, *overrides: str):
    register_resolvers()
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return compose(
            "infer",
            overrides=[
                "task=ensemble",
                "logger=none",
                "evaluation.bootstrap=0",
                f"paths.root_dir={tmp_path}",
                f"paths.output_dir={tmp_path}/run",
                *overrides,
            ],
            return_hydra_config=False,
        )


@pytest.mark.parametrize(
    ("runs", "message"),
    [
        (None, "ensemble.runs is missing (???): pass ensemble.runs=..."),
        ("ensemble.runs=null", "ensemble.runs=null: Input should be a valid list"),
        ("ensemble.runs={a}", "ensemble.runs={a}: Input should be a valid list"),  # one path, not its characters
        ("ensemble.runs=[{a}]", "ensemble.runs=[{a}]: List should have at least 2 items after validation, not 1"),
        ("ensemble.runs=[]", "ensemble.runs=[]: List should have at least 2 items after validation, not 0"),
    ],
)
def test_ensemble_runs_that_are_not_a_list_of_runs_are_named_as_such(members, tmp_path, runs, message):
    from bioqa.pipeline.app import infer_from_config

    a = str(members[0][0])
    cfg = compose_ensemble(tmp_path, *([runs.format(a=a)] if runs else []))
    with pytest.raises(ConfigError, match=re.escape(message.format(a=a))) as refused:
        infer_from_config(cfg, tmp_path / "run")
    assert "listed twice" not in str(refused.value)


def test_task_ensemble_through_infer_config_writes_a_scored_run(members, tmp_path):
    from bioqa.pipeline.app import infer_from_config

    runs, _ = members
    cfg = compose_ensemble(tmp_path, f"ensemble.runs=[{','.join(map(str, runs))}]")
    result = infer_from_config(cfg, tmp_path / "run")
    metrics = read_metrics(tmp_path / "run").flat()
    assert metrics["run.model"].startswith("ensemble(") and "yesno.macro_f1" in metrics
    assert result.metrics == metrics
    provenance = json.loads((tmp_path / "run" / "provenance.json").read_text())
    assert any(str(runs[0]) in path for path in provenance["data"])
