"""Answer BioASQ questions with a model and score them: ``python infer.py [model=...] [prompt=...] [task=...]``.

Multirun sweeps (``-m prompt=0shot,1shot,10shot``) get one run directory per combination and a summary table.
"""

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from bioqa.errors import error_boundary
from bioqa.pipeline.app import infer_from_config
from bioqa.runs import register_resolvers

register_resolvers()


@hydra.main(config_path="conf", config_name="infer", version_base="1.3")
@error_boundary
def main(cfg: DictConfig) -> None:
    infer_from_config(cfg, HydraConfig.get().runtime.output_dir)


if __name__ == "__main__":
    main()
