"""QLoRA fine-tuning: ``python train.py [model=mixtral] [prompt=10shot] [trainer=gpu] [logger=wandb]``.

A thin Hydra shell around :func:`bioqa.training.app.train_from_config`; see ``conf/train.yaml`` for the settings.
"""

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from bioqa.cli import hydra_entry
from bioqa.runs import register_resolvers

register_resolvers()


@hydra_entry("train")
def main(cfg: DictConfig) -> None:
    from bioqa.training.app import train_from_config  # here: torch & co. log their import warnings to the run's log

    train_from_config(cfg, HydraConfig.get().runtime.output_dir)


if __name__ == "__main__":
    main()
