"""The W&B dashboard of a sweep, built with ``wandb-workspaces``: score against shots per model, one panel per
headline measure, and score against cost. Building it needs no network; only ``--save`` talks to W&B.

    python -m bioqa.analysis.dashboard --entity ME --project bioqa --group infer-<sweep dir name> [--save]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import wandb_workspaces.reports.v2 as wr
import wandb_workspaces.workspaces as ws
from wandb_workspaces import expr

from bioqa.analysis.sweep import headline_measures
from bioqa.loggers import tracker_key


def sweep_workspace(
    entity: str, project: str, group: str | None = None, measures: Sequence[str] | None = None
) -> ws.Workspace:
    """A workspace whose runs are the sweep ``group`` (all runs of the project when ``None``), grouped by model;
    ``measures`` are shown as shot curves (default: the headline measures; accounting gets its own section)."""
    measures = headline_measures() if measures is None else measures
    shots = wr.Config("prompt.n_shots")
    curves = [
        wr.ScatterPlot(title=f"{measure} vs shots", x=shots, y=wr.SummaryMetric(tracker_key(measure)))
        for measure in measures
    ]
    cost = [
        wr.ScatterPlot(
            title=f"{measure} vs cost (USD)",
            x=wr.SummaryMetric(tracker_key("accounting.cost_usd")),
            y=wr.SummaryMetric(tracker_key(measure)),
        )
        for measure in measures[:4]
    ]
    health = [
        wr.ScatterPlot(title=f"{m} vs shots", x=shots, y=wr.SummaryMetric(tracker_key(m)))
        for m in ("accounting.parse_failure_rate", "accounting.errors", "accounting.questions_per_minute")
    ]
    filters = [expr.Metric("Group") == group] if group else []
    return ws.Workspace(
        entity=entity,
        project=project,
        name=f"bioqa sweep {group}" if group else "bioqa sweeps",
        sections=[
            ws.Section(name="Score vs shots", panels=curves, is_open=True),
            ws.Section(name="Score vs cost", panels=cost, is_open=True),
            ws.Section(name="Parse failures, errors, throughput", panels=health),
        ],
        runset_settings=ws.RunsetSettings(groupby=[expr.Config("model.name")], filters=filters),
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entity", required=True)
    parser.add_argument("--project", default="bioqa")
    parser.add_argument("--group", help="the sweep's W&B group (infer-<sweep dir name>); all runs when omitted")
    parser.add_argument("--save", action="store_true", help="create the workspace in W&B (needs WANDB_API_KEY)")
    args = parser.parse_args(argv)
    workspace = sweep_workspace(args.entity, args.project, args.group)
    if args.save:
        workspace.save()
        print(workspace.url)
    else:
        sections = ", ".join(f"{s.name} ({len(s.panels)} panels)" for s in workspace.sections)
        print(f"built (not saved): {workspace.name}: {sections}")


if __name__ == "__main__":
    main()
