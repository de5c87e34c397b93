"""The schema of ``evaluate.py``'s composed config (``conf/evaluate.yaml``), checked before anything is scored."""

from __future__ import annotations

from typing import Literal

from omegaconf import DictConfig
from pydantic import Field, field_validator

from bioqa.config.common import (
    ExistingFile,
    Flag,
    NonNegative,
    OpenSection,
    Paths,
    Root,
    Seed,
    check_keys,
    collect,
    read_bioasq_json,
    unread,
    validated,
)
from bioqa.evaluation.official import VERSIONS


class EvaluateConfig(Root):
    golden: ExistingFile = Field(description="a BioASQ golden file", examples=["PATH"])
    system: ExistingFile = Field(description="a submission in the official format", examples=["PATH"])
    compare: ExistingFile | None = Field(description="a second submission, or null")
    phase: Literal["A", "B", "AB"] = Field(description="A, B or AB")
    version: Literal[VERSIONS] = Field(description=f"the official evaluator's -e: {', '.join(map(str, VERSIONS))}")
    bootstrap: NonNegative = Field(description="0 or more resamples for the 95% CIs; 0: no CIs")
    seed: Seed
    rouge: Flag
    paths: Paths | None = unread("directories (resolved in the run)")
    report: str | list[str] | None = unread("a sweep directory or a list of them (report mode: ReportConfig)")
    report_dir: str | None = unread("where the report is written (report mode: ReportConfig)")
    report_reference: str | None = unread("the configuration the forest plot compares against (report mode)")
    report_baselines: bool = unread("score the model-free baselines (report mode)")


def validate_evaluate_config(cfg: DictConfig) -> EvaluateConfig:
    """Check ``evaluate.py``'s config and read its golden file and submissions as JSON (named one-line errors for
    missing, directory, empty, non-UTF-8, truncated, too deeply nested or non-BioASQ files)."""
    checked = validated(EvaluateConfig, cfg)
    for key in ("golden", "system", "compare"):
        if getattr(checked, key) is not None:
            read_bioasq_json(key, getattr(checked, key))
    return checked


class ReportConfig(OpenSection):
    """``evaluate.py report=...``: the values the sweep report reads (every key's name is checked against
    :class:`EvaluateConfig` first, by :func:`validate_report_config`)."""

    report: list[str] = Field(description="a sweep directory or a list of them (bioqa.analysis.report reads each)")
    report_dir: str | None = Field(description="where the report is written, or null")
    report_reference: str | None = Field(description="a configuration's label (or a unique part), or null")
    report_baselines: Flag
    bootstrap: NonNegative = Field(description="0 or more resamples for the 95% CIs and paired tests")
    seed: Seed

    @field_validator("report", mode="before")
    @classmethod
    def _sources(cls, value: object) -> object:
        """One directory or several; a directory named 5 arrives as a number."""
        listed = value if isinstance(value, list | tuple) else [value]
        return [str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v for v in listed]


def validate_report_config(cfg: DictConfig) -> ReportConfig:
    """Check ``evaluate.py report=...``'s config before any run directory is read: every key's name against the
    whole of ``evaluate.py``'s config (a typo, a ``+key=...``), then the report's values (types and ranges)."""
    return collect(lambda: check_keys(EvaluateConfig, cfg), lambda: validated(ReportConfig, cfg))[1]
