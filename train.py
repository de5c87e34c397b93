"""QLoRA fine-tuning: ``python train.py [model=mixtral] [prompt=10shot] [trainer=gpu] [logger=wandb]``.

A thin Hydra shell around :func:`bioqa.training.recipe.train`; see ``conf/train.yaml`` for the settings.
"""

from __future__ import annotations

import glob
import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from bioqa.errors import error_boundary
from bioqa.runs import register_resolvers, write_provenance

register_resolvers()
log = logging.getLogger("train")


def expand_files(patterns: list[str] | None) -> list[str]:
    """Files named by paths or glob patterns (sorted per pattern); a pattern matching nothing is an error."""
    files = []
    for pattern in patterns or []:
        matches = sorted(glob.glob(str(pattern))) if glob.has_magic(str(pattern)) else [str(pattern)]
        if not matches:
            raise FileNotFoundError(f"data file pattern matches nothing: {pattern}")
        files += matches
    return files


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@error_boundary
def main(cfg: DictConfig) -> None:
    from bioqa.models.adapters import LoraSettings
    from bioqa.training.recipe import DataSettings, OptimSettings, train

    if "train" not in cfg.model:
        raise ValueError(f"model config {cfg.model.name!r} has no `train:` block (how to build its 4-bit base)")
    recipe = cfg.model.train
    data = OmegaConf.to_container(cfg.data, resolve=True)
    train_files = expand_files(data.pop("train_files"))
    if not train_files:
        from bioqa.resources import demo_golden_path

        train_files = [str(demo_golden_path())]
    val_files = expand_files(data.pop("val_files"))
    shot_pool = data.pop("shot_pool")

    prompt = None
    if data["format"] == "golden":
        from bioqa.prompts import PromptConfig

        settings = OmegaConf.to_container(cfg.prompt, resolve=True)
        if shot_pool is not None:
            settings["pool"] = shot_pool
        prompt = PromptConfig.from_dict(settings)

    output_dir = Path(cfg.paths.output_dir)
    write_provenance(output_dir, [*train_files, *val_files])
    log.info("building the 4-bit base model of %s", cfg.model.name)
    model = hydra.utils.instantiate(recipe.base)
    tokenizer = hydra.utils.instantiate(recipe.tokenizer)
    loggers = [hydra.utils.instantiate(spec) for spec in (cfg.get("logger") or {}).values() if spec]
    result = train(
        model,
        tokenizer,
        data=DataSettings(train_files=train_files, val_files=val_files, max_length=recipe.max_length, **data),
        lora=LoraSettings(**OmegaConf.to_container(recipe.lora, resolve=True)),
        optim=OptimSettings(**OmegaConf.to_container(recipe.optim, resolve=True)),
        output_dir=output_dir,
        prompt=prompt,
        trainer_kwargs=OmegaConf.to_container(cfg.trainer, resolve=True),
        loggers=loggers,
        gradient_checkpointing=recipe.gradient_checkpointing,
        early_stopping_patience=cfg.early_stopping_patience,
        ckpt_path=cfg.ckpt_path,
        resume_root=cfg.resume_root,
        seed=cfg.seed,
        info={"model": cfg.model.name, "config": OmegaConf.to_container(cfg, resolve=True)},
    )
    log.info("adapter written to %s (infer.py: model.adapter=%s)", result.adapter_dir, result.adapter_dir)
    if cfg.merge:
        from bioqa.models.adapters import load_adapter, merge_and_save

        base = hydra.utils.instantiate(cfg.model.backend, adapter=None).model  # the full-precision base
        merged = merge_and_save(load_adapter(base, result.adapter_dir), output_dir / "merged", tokenizer)
        log.info("merged model written to %s", merged)


if __name__ == "__main__":
    main()
