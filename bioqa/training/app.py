"""``train.py``'s glue: check the composed Hydra config and read the data, then build the 4-bit base model and
call :func:`bioqa.training.recipe.train`."""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from bioqa.loggers import build_loggers, say_where_offline_runs_are
from bioqa.models.adapters import LoraSettings
from bioqa.rundir import MERGED_DIR
from bioqa.runs import write_provenance
from bioqa.training.config import validate_train_config
from bioqa.training.recipe import DataSettings, OptimSettings, TrainResult, train

log = logging.getLogger(__name__)


def train_from_config(cfg: DictConfig, output_dir: str | Path) -> TrainResult:
    """Everything ``python train.py ...`` does, given its composed config: parsed whole and every data file read
    before the 4-bit base model is built (:func:`~bioqa.training.config.validate_train_config`); the typed settings
    drive the run, the raw config only builds its ``_target_`` objects (base model, tokenizer, loggers); writes
    ``output_dir/adapter`` (and ``output_dir/merged`` with ``merge=true``)."""
    inputs = validate_train_config(cfg)
    config = inputs.config
    recipe = config.model.train
    data = config.data.model_dump(exclude={"train_files", "val_files", "shot_pool"})
    data_settings = DataSettings(
        **data, train_files=inputs.train_files, val_files=inputs.val_files, max_length=recipe.max_length
    )
    lora = LoraSettings(**recipe.lora.model_dump())
    optim = OptimSettings(**{k: v for k, v in recipe.optim.model_dump().items() if v is not None})
    output_dir = Path(output_dir)
    write_provenance(output_dir, [*inputs.train_files, *inputs.val_files])
    loggers = build_loggers(cfg.get("logger"))
    log.info("%d training examples; building the 4-bit base model of %s", inputs.n_train, config.model.name)
    model = instantiate(cfg.model.train.base)
    tokenizer = instantiate(cfg.model.train.tokenizer)
    result = train(
        model,
        tokenizer,
        data=data_settings,
        lora=lora,
        optim=optim,
        output_dir=output_dir,
        prompt=inputs.prompt,
        trainer_kwargs=dict(config.trainer),
        loggers=loggers,
        gradient_checkpointing=recipe.gradient_checkpointing,
        memory_budget_gb=recipe.memory_budget_gb,
        liger=recipe.liger,
        compile_layers=recipe.compile_layers,
        early_stopping_patience=config.early_stopping_patience,
        ckpt_path=config.ckpt_path,
        resume_root=config.resume_root,
        seed=config.seed,
        info={"model": config.model.name, "config": OmegaConf.to_container(cfg, resolve=True)},
    )
    log.info("adapter written to %s (infer.py: model.adapter=%s)", result.adapter_dir, result.adapter_dir)
    say_where_offline_runs_are(loggers)
    if config.merge:
        from bioqa.models.adapters import load_adapter, merge_and_save

        base = instantiate(cfg.model.backend, adapter=None).model  # the full-precision base
        merged = merge_and_save(load_adapter(base, result.adapter_dir), output_dir / MERGED_DIR, tokenizer)
        log.info("merged model written to %s", merged)
    return result
