"""Score a BioASQ Task B submission: python evaluate.py golden=PATH system=PATH [phase=A|B] [compare=PATH2];
or report on a sweep: python evaluate.py report=SWEEP_DIR [report_reference=CONFIG]."""

from __future__ import annotations

from omegaconf import DictConfig

from bioqa.cli import hydra_entry
from bioqa.config.evaluate import validate_evaluate_config, validate_report_config
from bioqa.evaluation.cli import evaluate_from_config
from bioqa.runs import register_resolvers

register_resolvers()


@hydra_entry("evaluate")
def main(cfg: DictConfig) -> None:
    if cfg.report is not None:
        from bioqa.analysis.report import report_from_config

        report_from_config(validate_report_config(cfg), cfg.paths.output_dir, cfg.paths.shared_dir)
        return
    evaluate_from_config(validate_evaluate_config(cfg), cfg.paths.output_dir)


if __name__ == "__main__":
    main()
