"""How a run is scored: one ``EvaluationOptions`` for ``infer.py`` (its ``evaluation:`` group) and ``evaluate.py``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from bioqa.errors import ConfigError
from bioqa.evaluation.official import DEFAULT_VERSION, VERSIONS


@dataclass(frozen=True)
class EvaluationOptions:
    """Scoring options, validated on construction (a wrong value is one :class:`ConfigError` line, before any work)."""

    enabled: bool = True  # infer: score when the questions carry golden answers
    version: int = DEFAULT_VERSION  # the official evaluator's -e
    bootstrap: int = 1000  # resamples for the CIs (0 = none)
    seed: int = 0
    rouge: bool = True  # ROUGE-2 / ROUGE-SU4 of ideal answers

    def __post_init__(self) -> None:
        for name, kind in (("enabled", bool), ("rouge", bool), ("version", int), ("bootstrap", int), ("seed", int)):
            value = getattr(self, name)
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise ConfigError(f"evaluation.{name}={value!r}: expected a {kind.__name__}")
        if self.version not in VERSIONS:
            raise ConfigError(
                f"evaluation.version={self.version}: expected a version of the official evaluator {VERSIONS}"
            )
        if self.bootstrap < 0:
            raise ConfigError(
                f"evaluation.bootstrap={self.bootstrap}: expected the number of resamples, >= 0 (0 = no CIs)"
            )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> EvaluationOptions:
        """From a config mapping (e.g. infer's resolved ``evaluation:`` group); unknown keys are refused."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"evaluation.{unknown[0]}: unknown option; known: {', '.join(sorted(known))}")
        return cls(**values)
