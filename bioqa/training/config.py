"""The schema of ``train.py``'s composed config (``conf/train.yaml`` and the model's ``train:`` block), checked and
its data files read before the 4-bit base model is built (minutes for Mixtral)."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Annotated, Literal

from omegaconf import DictConfig
from pydantic import Field, JsonValue, field_validator, model_validator

from bioqa.config.common import (
    Count,
    Flag,
    Loggers,
    NonNegative,
    OpenSection,
    Paths,
    PromptSection,
    Root,
    Section,
    Seed,
    check_file,
    check_prompt,
    check_weights,
    collect,
    expand_files,
    read_questions,
    read_text,
    unknown_arguments,
    unread,
    validated,
)
from bioqa.errors import ConfigError
from bioqa.models.nf4_experts import EXPERT_FORWARDS
from bioqa.parsing import joined, show
from bioqa.prompts import EXACT_TYPES, PromptConfig
from bioqa.prompts.config import ANSWER_KINDS, POOLS
from bioqa.resources import demo_golden_path
from bioqa.training.data import DATA_FORMATS, read_chat_jsonl
from bioqa.training.module import SCHEDULES
from bioqa.training.recipe import find_last_checkpoint

Positive = Annotated[float, Field(gt=0)]


class TrainData(Section):
    format: Literal[DATA_FORMATS] = Field(description=" or ".join(DATA_FORMATS))
    train_files: list[str] = Field(
        description="a path or glob pattern, or a list of them; [] for the embedded demo golden file"
    )
    val_files: list[str] = Field(description="a path or glob pattern, or a list of them; [] for none")
    val_fraction: Annotated[float, Field(strict=True, ge=0, lt=1)] = Field(description="0 <= val_fraction < 1")
    kinds: Annotated[list[Literal[ANSWER_KINDS]], Field(min_length=1)] = Field(
        description=f"a non-empty list from {', '.join(ANSWER_KINDS)}"
    )
    shot_pool: Literal[POOLS] | None = Field(description=f"one of {', '.join(POOLS)}, or null for prompt.pool")
    answer_tokens: Count = Field(description="at least 1")
    batch_size: Count = Field(description="examples per batch, at least 1")
    bucket_by_length: Flag
    packing: Flag = False
    pack_length: Count | None = Field(None, description="tokens per packed row, at least 1; null: max_length")
    num_workers: NonNegative = Field(description="0 or more")

    @field_validator("train_files", "val_files", mode="before")
    @classmethod
    def _one_or_more(cls, value: object) -> object:
        """A single string is one path or pattern (never a sequence of one-character paths); null is none."""
        if value is None:
            return []
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _files_for_chat(self) -> TrainData:
        if self.format == "chat_jsonl" and not self.train_files:
            raise ValueError("format=chat_jsonl needs data.train_files (chat JSONL files or patterns)")
        return self


class Lora(Section):
    r: Count = Field(description="at least 1")
    alpha: Positive = Field(description="above 0")
    dropout: Annotated[float, Field(ge=0, lt=1)] = Field(description="0 <= dropout < 1")
    target_modules: Annotated[list[str], Field(min_length=1)] = Field(description="a non-empty list of layer names")
    experts: Flag
    expert_r: Count | None = None
    expert_alpha: Positive | None = None


class Optim(Section):
    lr: Positive = Field(description="above 0")
    weight_decay: Annotated[float, Field(ge=0)] = Field(description="0 or more")
    warmup_ratio: Annotated[float, Field(ge=0, le=1)] = Field(description="0 <= warmup_ratio <= 1")
    schedule: Literal[SCHEDULES] = Field(description=", ".join(SCHEDULES))
    betas: Annotated[list[Positive], Field(min_length=2, max_length=2)] | None = Field(
        None, description="Adam's two betas, e.g. [0.9,0.999]"
    )


class Base(OpenSection):
    """``model.train.base``: a ``_target_`` (the 4-bit loader); its keys are checked against its signature."""

    experts_forward: Literal[EXPERT_FORWARDS] = Field("routed", description=", ".join(EXPERT_FORWARDS))


class Recipe(Section):
    base: Base
    tokenizer: OpenSection  # a _target_ (the tokenizer loader) and its keyword arguments
    max_length: Count = Field(description="tokens per example, at least 1")
    gradient_checkpointing: Flag | Literal["auto"] = Field(description="true, false or auto")
    memory_budget_gb: Positive | None = Field(None, description="GPU memory for the auto plan, above 0, or null")
    liger: Flag = False
    compile_layers: Flag = False
    lora: Lora
    optim: Optim

    @model_validator(mode="after")
    def _runnable(self) -> Recipe:
        """Rules that otherwise fire only after the base model is built (minutes for Mixtral)."""
        found = []
        if self.gradient_checkpointing == "auto" and self.memory_budget_gb is None:
            found.append(
                "gradient_checkpointing=auto needs model.train.memory_budget_gb (the GPU memory to plan for, in GB)"
            )
        if self.liger and importlib.util.find_spec("liger_kernel") is None:
            found.append(
                "liger=true needs the liger-kernel package: pip install liger-kernel, or set model.train.liger=false"
            )
        if found:
            raise ValueError(joined(found))
        return self


class TrainModel(Section):
    name: str
    adapter: str | None = unread("infer.py's adapter to answer with (train.py does not read it)")
    backend: OpenSection | None = unread("infer.py's backend (_target_ and its keyword arguments)")
    train: Recipe


class TrainConfig(Root):
    data: TrainData
    model: TrainModel
    early_stopping_patience: NonNegative | None = Field(description="evaluations without improvement, or null")
    merge: Flag
    ckpt_path: str | None = Field(description='a .ckpt file, "last", or null')
    resume_root: str
    seed: Seed
    trainer: dict[str, JsonValue]  # the Lightning Trainer's keyword arguments (names checked, values the Trainer's)
    prompt: PromptSection | None = unread("checked whole by check_prompt (data.format=golden)")

    @model_validator(mode="after")
    def _rows_fit(self) -> TrainConfig:
        """A packed row holds at least one example of the longest length (otherwise refused after loading)."""
        pack, longest = self.data.pack_length, self.model.train.max_length
        if pack is not None and pack < longest:
            raise ValueError(f"data.pack_length={pack} is shorter than model.train.max_length={longest}")
        return self

    paths: Paths | None = unread("directories (resolved in the run)")
    logger: Loggers | None = unread("experiment loggers")


@dataclass(frozen=True)
class TrainInputs:
    """A checked train config and what it names, read: the data files (patterns expanded, the demo file when none
    are given), the number of examples they hold, and the prompt settings (golden-file data only)."""

    config: TrainConfig
    train_files: list[str]
    val_files: list[str]
    n_train: int
    prompt: PromptConfig | None


def check_trainer_arguments(trainer: list[str]) -> None:
    """Refuse a ``trainer.*`` key the Lightning Trainer does not take (a typo), before any model is built."""
    import pytorch_lightning as pl

    found = unknown_arguments(trainer, [pl.Trainer], "an argument of the Lightning Trainer", "trainer.", False)
    if found:
        raise ConfigError(joined(found))


def validate_train_config(cfg: DictConfig) -> TrainInputs:
    """Check ``train.py``'s config and read every data file before any model is built; raises
    :class:`~bioqa.errors.ConfigError` / :class:`~bioqa.errors.DataFileError` (or the data's own one-line error)."""
    if cfg.model.get("train") is None:
        raise ConfigError(
            f"model={cfg.model.name} has no `train:` block (how to build its 4-bit base, LoRA and optimiser): "
            "choose a model config that has one, e.g. model=smollm2 or model=mixtral"
        )
    golden = cfg.data.get("format") == "golden"
    pool = cfg.data.get("shot_pool")
    config, _, prompt, _ = collect(
        lambda: validated(TrainConfig, cfg),
        lambda: check_trainer_arguments(list(cfg.trainer)),
        lambda: check_prompt(cfg.prompt, pool if pool in POOLS else None) if golden else None,
        lambda: check_weights("model.train.base.model_path", cfg),
    )
    data = config.data
    train_files = expand_files("data.train_files", data.train_files) or [str(demo_golden_path())]
    val_files = expand_files("data.val_files", data.val_files)
    n_train = count_examples("data.train_files", train_files, data.format, data.kinds)
    if not val_files and data.val_fraction > 0 and n_train < 2:
        raise ConfigError(
            f"data.val_fraction={data.val_fraction} would hold out the only training example: "
            "set data.val_fraction=0 or add training data"
        )
    if val_files:
        count_examples("data.val_files", val_files, data.format, data.kinds)
    if config.ckpt_path == "last":
        try:
            find_last_checkpoint(config.resume_root)
        except FileNotFoundError as error:
            raise ConfigError(str(error)) from None
    elif config.ckpt_path is not None:
        check_file("ckpt_path", config.ckpt_path)
    return TrainInputs(config, train_files, val_files, n_train, prompt)


def count_examples(key: str, files: list[str], data_format: str, kinds: list[str]) -> int:
    """Examples in ``files`` (config ``key``), every file read and checked; none at all is an error."""
    count = 0
    for path in files:
        if data_format == "chat_jsonl":
            read_text(key, path)
            count += len(read_chat_jsonl(path))
        else:
            questions = read_questions(key, path)
            count += sum(1 for q in questions for kind in kinds if kind == "ideal" or q.type in EXACT_TYPES)
    if not count:
        names = ", ".join(os.path.basename(f) for f in files)
        settings = f"data.format={data_format}, data.kinds={show(kinds)}"
        raise ConfigError(f"{key}: no training examples in {names} ({settings})")
    return count
