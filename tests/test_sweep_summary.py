"""A multirun's run directories aggregate into one summary table."""

import json

import yaml

from bioqa.analysis.sweep import write_summary


def test_summary_has_one_row_per_run_with_overrides(tmp_path):
    for num, (shots, f1) in enumerate([("0shot", 0.25), ("10shot", 0.75)]):
        run = tmp_path / str(num)
        (run / ".hydra").mkdir(parents=True)
        (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"prompt={shots}", "model=smollm2"]))
        (run / "metrics.json").write_text(
            json.dumps({"yesno.macro_f1": f1, "accounting.parse_failure_rate": 0.0, "ci": {"x": [0, 1]}})
        )
    (tmp_path / "multirun.yaml").write_text("")
    rows = write_summary(tmp_path)
    assert [r["prompt"] for r in rows] == ["0shot", "10shot"]
    csv_lines = (tmp_path / "summary.csv").read_text().splitlines()
    assert csv_lines[0] == "run,prompt,model,yesno.macro_f1,accounting.parse_failure_rate"
    assert csv_lines[2].startswith("1,10shot,smollm2,0.75")
    assert "| 1 | 10shot | smollm2 | 0.7500 | 0.0000 |" in (tmp_path / "summary.md").read_text()
