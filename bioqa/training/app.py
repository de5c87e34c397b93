"""``train.py``'s glue: check the composed Hydra config and read the data, then build the 4-bit base model and
call :func:`bioqa.training.recipe.train`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, TypeVar

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from bioqa.errors import ConfigError
from bioqa.loggers import build_loggers, say_where_offline_runs_are
from bioqa.models.adapters import LoraSettings
from bioqa.rundir import MERGED_DIR
from bioqa.runs import write_provenance
from bioqa.training.config import validate_train_config
from bioqa.training.recipe import DataSettings, OptimSettings, TrainResult, train

log = logging.getLogger(__name__)
T = TypeVar("T")


def settings(cls: type[T], key: str, values: dict[str, Any]) -> T:
    """``cls(**values)``, a config node's plain settings; an unknown key is one line naming ``key``."""
    try:
        return cls(**values)
    except TypeError as error:
        raise ConfigError(f"{key}: {error}") from None


def train_from_config(cfg: DictConfig, output_dir: str | Path) -> TrainResult:
    """Everything ``python train.py ...`` does, given its composed config: every setting and data file is checked
    before the 4-bit base model is built; writes ``output_dir/adapter`` (and ``output_dir/merged`` with
    ``merge=true``)."""
    inputs = validate_train_config(cfg)
    recipe = cfg.model.train
    data = inputs.config.data.model_dump(exclude={"train_files", "val_files", "shot_pool"})
    data_settings = settings(
        DataSettings,
        "data",
        {**data, "train_files": inputs.train_files, "val_files": inputs.val_files, "max_length": recipe.max_length},
    )
    lora = settings(LoraSettings, "model.train.lora", OmegaConf.to_container(recipe.lora, resolve=True))
    optim = settings(OptimSettings, "model.train.optim", OmegaConf.to_container(recipe.optim, resolve=True))
    output_dir = Path(output_dir)
    write_provenance(output_dir, [*inputs.train_files, *inputs.val_files])
    loggers = build_loggers(cfg.get("logger"))
    log.info("%d training examples; building the 4-bit base model of %s", inputs.n_train, cfg.model.name)
    model = instantiate(recipe.base)
    tokenizer = instantiate(recipe.tokenizer)
    result = train(
        model,
        tokenizer,
        data=data_settings,
        lora=lora,
        optim=optim,
        output_dir=output_dir,
        prompt=inputs.prompt,
        trainer_kwargs=OmegaConf.to_container(cfg.trainer, resolve=True),
        loggers=loggers,
        gradient_checkpointing=recipe.gradient_checkpointing,
        memory_budget_gb=recipe.get("memory_budget_gb"),
        liger=recipe.get("liger", False),
        compile_layers=recipe.get("compile_layers", False),
        early_stopping_patience=cfg.early_stopping_patience,
        ckpt_path=cfg.ckpt_path,
        resume_root=cfg.resume_root,
        seed=cfg.seed,
        info={"model": cfg.model.name, "config": OmegaConf.to_container(cfg, resolve=True)},
    )
    log.info("adapter written to %s (infer.py: model.adapter=%s)", result.adapter_dir, result.adapter_dir)
    say_where_offline_runs_are(loggers)
    if cfg.merge:
        from bioqa.models.adapters import load_adapter, merge_and_save

        base = instantiate(cfg.model.backend, adapter=None).model  # the full-precision base
        merged = merge_and_save(load_adapter(base, result.adapter_dir), output_dir / MERGED_DIR, tokenizer)
        log.info("merged model written to %s", merged)
    return result
