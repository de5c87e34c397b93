"""What the sweep report's renderers read: the column names of its tables and the names of special rows (a leaf
module: :mod:`bioqa.analysis.report` builds the tables, :mod:`~bioqa.analysis.plots` and
:mod:`~bioqa.analysis.markdown` render them; both renderers import only this module and take plain data)."""

from __future__ import annotations

from dataclasses import dataclass, field

POOLED = "pooled"  # the ``batch`` of a configuration's rows pooled over its batches
BASELINE_MODEL = "baseline"  # the ``model`` of the no-model baselines
#: Paired tests on at most this many questions are exact (every one of the 2**n swaps of the pairs enumerated; 2**11
#: statistics per test keep a sweep of hundreds of small configurations within seconds).
EXACT_MAX_QUESTIONS = 12
ALPHA = 0.05
COLUMNS = (
    "config", "model", "adapter", "shots", "selection", "wiki", "task", "batch", "question_type", "measure",
    "headline", "ranking", "value", "ci_low", "ci_high", "n", "parse_failure_rate", "prompt_tokens",
    "completion_tokens", "cost_usd", "usd_per_100q", "wall_time_s", "s_per_question", "questions_per_minute",
    "questions", "run_dir", "git_hash", "series", "fingerprint", "comparison",
)  # fmt: skip
PAIRED_COLUMNS = (
    "config", "reference", "measure", "delta", "ci_low", "ci_high", "p_bootstrap", "test", "p", "p_holm", "n",
    "comparison",
)  # fmt: skip


@dataclass
class Comparison:
    """Configurations compared with each other (tables, rankings, figures, paired tests) on ``questions``
    (``batch#golden index``): ``restricted`` when some of them answered more (those are left out of the comparison);
    ``reference``: the configuration the others are paired with."""

    name: str
    configs: list[str]
    questions: frozenset[str]
    restricted: bool = False
    reference: str | None = None
    batches: list[str] = field(default_factory=list)

    @property
    def description(self) -> str:
        batches = ", ".join(self.batches)
        return f"{len(self.questions)} questions ({batches}), {len(self.configs)} configurations"
