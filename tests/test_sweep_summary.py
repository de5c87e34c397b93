"""A multirun's run directories aggregate into one summary table whose rows say how each run differed."""

import json

import yaml

from bioqa.analysis.sweep import collect_runs, write_summary


def make_run(root, num, *, overrides, choices, config, metrics, identity=None):
    """A run directory as ``infer.py -m`` leaves it: Hydra's three files, metrics.json, run_identity.json."""
    run = root / str(num)
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    hydra = {"hydra": {"runtime": {"choices": {**choices, "hydra/job_logging": "default"}}}}
    (run / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(hydra))
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "metrics.json").write_text(json.dumps({**metrics, "ci": {"x": [0, 1]}}))
    if identity is not None:
        (run / "run_identity.json").write_text(json.dumps({"identity": identity}))
    return run


def prompt_node(n_shots, selection="first_n", pool="fewshot"):
    return {"n_shots": n_shots, "selection": selection, "pool": pool, "templates": {"exact": {"yesno": "..."}}}


def test_group_sweep_rows_name_the_chosen_options(tmp_path):
    for num, (shots, n, f1) in enumerate([("0shot", 0, 0.25), ("10shot", 10, 0.75)]):
        make_run(
            tmp_path,
            num,
            overrides=[f"prompt={shots}", "model=smollm2", "hydra.run.dir=x"],
            choices={"prompt": shots, "model": "smollm2", "prompt/templates": "paper"},
            config={"prompt": prompt_node(n), "model": {"name": "smollm2"}},
            metrics={"yesno.macro_f1": f1, "accounting.parse_failure_rate": 0.0},
        )
    (tmp_path / "multirun.yaml").write_text("")
    rows = write_summary(tmp_path)
    assert [r["prompt"] for r in rows] == ["0shot", "10shot"]
    csv_lines = (tmp_path / "summary.csv").read_text().splitlines()
    # prompt.n_shots differs too, but the prompt column already names it
    assert csv_lines[0] == "run,prompt,model,yesno.macro_f1,accounting.parse_failure_rate"
    assert csv_lines[2].startswith("1,10shot,smollm2,0.75")
    assert "| 1 | 10shot | smollm2 | 0.7500 | 0.0000 |" in (tmp_path / "summary.md").read_text()


def test_dotted_overrides_are_columns_read_from_the_recorded_config(tmp_path):
    for num, selection in enumerate(["first_n", "knn"]):
        make_run(
            tmp_path,
            num,
            overrides=[f"prompt.selection={selection}", "answering.max_new_tokens.exact=64"],
            choices={"prompt": "3shot", "model": "smollm2"},
            # what the run recorded, not the override string: the summary shows the resolved value
            config={"prompt": prompt_node(3, selection), "answering": {"max_new_tokens": {"exact": 64}}},
            metrics={"yesno.macro_f1": 0.5},
        )
    rows = write_summary(tmp_path)
    assert [(r["prompt.selection"], r["answering.max_new_tokens.exact"]) for r in rows] == [
        ("first_n", 64),
        ("knn", 64),
    ]
    header = (tmp_path / "summary.csv").read_text().splitlines()[0]
    assert header == "run,prompt.selection,answering.max_new_tokens.exact,yesno.macro_f1"


def test_what_actually_ran_wins_over_the_config_and_any_difference_becomes_a_column(tmp_path):
    # Same command line, but one run fell back to the demo pool (recorded in its identity): the rows must differ.
    for num, pool in enumerate(["fewshot", "demo"]):
        make_run(
            tmp_path,
            num,
            overrides=[],
            choices={"prompt": "3shot"},
            config={"prompt": prompt_node(3)},
            metrics={"yesno.macro_f1": 0.5},
            identity={"prompt": {"pool": pool}, "backend": {"kind": "hf", "model_id": "m"}},
        )
    rows = collect_runs(tmp_path)
    assert [r["prompt.pool"] for r in rows] == ["fewshot", "demo"]
    assert "backend.model_id" not in rows[0]  # equal in every run: no column


def test_no_runs_no_summary(tmp_path):
    assert write_summary(tmp_path) == [] and not (tmp_path / "summary.csv").exists()
