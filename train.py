"""QLoRA fine-tuning: ``python train.py [model=mixtral] [prompt=10shot] [trainer=gpu] [logger=wandb]``.

A thin Hydra shell around :func:`bioqa.training.app.train_from_config`; see ``conf/train.yaml`` for the settings.
"""

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from bioqa.errors import error_boundary
from bioqa.runs import register_resolvers

register_resolvers()


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
@error_boundary
def main(cfg: DictConfig) -> None:
    from bioqa.training.app import train_from_config  # here: torch & co. log their import warnings to the run's log

    train_from_config(cfg, HydraConfig.get().runtime.output_dir)


if __name__ == "__main__":
    main()
