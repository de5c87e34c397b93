"""Answer BioASQ questions with a model and score them: ``python infer.py [model=...] [prompt=...] [task=...]``.

Multirun sweeps (``-m prompt=0shot,1shot,10shot``) get one run directory per combination and a summary table.
"""

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from bioqa.cli import hydra_entry
from bioqa.pipeline.app import infer_from_config
from bioqa.runs import register_resolvers

register_resolvers()


@hydra_entry("infer")
def main(cfg: DictConfig) -> None:
    infer_from_config(cfg, HydraConfig.get().runtime.output_dir)


if __name__ == "__main__":
    main()
