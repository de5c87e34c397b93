"""Every option of every config group composes into its entry point's config, resolves, and builds its objects;
model backends are built without calling an API (fake keys) and without loading weights (hf loads lazily)."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from helpers import CONF, compose_config, in_tmp
from hydra.utils import instantiate
from omegaconf import OmegaConf

from bioqa.loggers import build_loggers
from bioqa.models import Backend, build_backend
from bioqa.models.hf import HFBackend
from bioqa.prompts import PromptBuilder, PromptConfig

#: The entry point whose config holds a group (every other group is in infer's).
ROOT_CONFIG = {"trainer": "train"}
SMALL = {"infer": ["model=tiny-llama", "logger=none"], "train": ["model=tiny-mixtral", "logger=none"]}
API_KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "FIREWORKS_AI_API_KEY")
OPTIONS = sorted(
    (group.name, path.stem)
    for group in CONF.iterdir()
    if group.is_dir()
    for path in group.glob("*.yaml")
    if not path.stem.startswith("_")
)


def composed(group: str, option: str, tmp_path: Path):
    root = ROOT_CONFIG.get(group, "infer")
    overrides = [o for o in SMALL[root] if not o.startswith(f"{group}=")]
    cfg = compose_config(root, [*overrides, f"{group}={option}"], return_hydra_config=True)
    return in_tmp(cfg, tmp_path)


def test_the_groups_are_all_there():
    groups = {group for group, _ in OPTIONS}
    assert groups == {
        "debug",
        "experiment",
        "hydra",
        "logger",
        "model",
        "paths",
        "prompt",
        "retrieval",
        "task",
        "trainer",
    }


#: Experiments are sweeps over the other groups (``@package _global_``): tests/test_sweeps.py plans every job of each.
#: ``debug=smoke`` (``@package _global_`` too) is what the cfg_infer fixtures and tests/test_infer.py run.
COMPOSED = [(g, o) for g, o in OPTIONS if g not in ("experiment", "debug")]


@pytest.mark.parametrize(("group", "option"), COMPOSED, ids=[f"{g}={o}" for g, o in COMPOSED])
def test_every_option_composes_and_resolves(group, option, tmp_path):
    cfg = composed(group, option, tmp_path)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert resolved[group] is not None and resolved["paths"]["output_dir"] == str(tmp_path / "run")


@pytest.fixture
def no_weight_loading(monkeypatch):
    """Fails any attempt to load real weights; fakes the API keys (no request is made by building a backend)."""

    def refuse(*args, **kwargs):
        raise AssertionError("weights were loaded while building the backend")

    monkeypatch.setattr("transformers.AutoModelForCausalLM.from_pretrained", refuse)
    monkeypatch.setattr("bioqa.models.quantization.load_model_4bit", refuse)
    for key in API_KEYS:
        monkeypatch.setenv(key, "sk-fake")


@pytest.fixture
def adapter_dir(tmp_path, monkeypatch) -> Path:
    """A directory that passes for a train.py adapter (model=mixtral-qlora reads it from the environment)."""
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    monkeypatch.setenv("BIOQA_MIXTRAL_ADAPTER", str(adapter))
    return adapter


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, tokenizer_dir) -> Path:
    """A saved tiny random model (config + tokenizer + weights), standing in for the hub ids of the big models."""
    from bioqa.models.hf import save_random_model

    return save_random_model(tmp_path_factory.mktemp("tiny") / "llama", tokenizer_dir, hidden_size=32)


#: The embedded SmolLM2 itself: its backend parses the GGUF file when built (the tiny models get the tokenizer
#: from ``tokenizer_dir`` instead).
MODELS = [
    pytest.param(o, marks=pytest.mark.slow)
    if "model_path: ${smollm2_dir:}" in (CONF / "model" / f"{o}.yaml").read_text()
    else o
    for g, o in OPTIONS
    if g == "model"
]


@pytest.mark.parametrize("option", MODELS)
def test_every_model_builds_without_loading_weights_or_calling_an_api(
    option, tmp_path, no_weight_loading, tiny_model_dir, tokenizer_dir, adapter_dir
):
    cfg = composed("model", option, tmp_path)
    if "tokenizer_path" in cfg.model.backend:
        cfg.model.backend.tokenizer_path, cfg.model.backend.tokenizer_gguf_file = str(tokenizer_dir), None
    model_path = cfg.model.backend.get("model_path")
    if model_path is not None and not Path(model_path).exists():  # a hub id: no weights on this machine
        cfg.model.backend.model_path = str(tiny_model_dir)
    backend = build_backend(cfg.model)
    assert isinstance(backend, Backend) and backend.context_window > 0
    if isinstance(backend, HFBackend) and cfg.model.backend._target_.endswith("HFBackend"):
        assert backend._model is None  # loaded on the first generate, not when built


@pytest.mark.parametrize("option", [o for g, o in OPTIONS if g == "prompt"])
def test_every_prompt_builds(option, tmp_path):
    cfg = composed("prompt", option, tmp_path)
    config = PromptConfig.from_dict(OmegaConf.to_container(cfg.prompt, resolve=True))
    builder = PromptBuilder(config)
    assert builder.config.n_shots == cfg.prompt.n_shots


@pytest.mark.parametrize("option", [o for g, o in OPTIONS if g == "retrieval"])
def test_every_retrieval_option_builds(option, tmp_path):
    cfg = composed("retrieval", option, tmp_path)
    built = {key: instantiate(node) for key, node in cfg.retrieval.items() if node is not None}
    assert set(built) == {key for key, node in cfg.retrieval.items() if node is not None}
    if cfg.retrieval.get("index") is not None:
        assert built["index"] is not None and built["phase_a"].strategy in ("llm", "bm25")
    if option == "wikipedia":
        assert built["wikipedia"].max_articles > 0 and "index" not in built


@pytest.mark.parametrize("option", [o for g, o in OPTIONS if g == "logger"])
def test_every_logger_builds(option, tmp_path):
    cfg = composed("logger", option, tmp_path)
    loggers = build_loggers(cfg.get("logger"))
    assert all(isinstance(logger, pl.loggers.Logger) for logger in loggers)
    assert (option == "none") == (not loggers)


@pytest.mark.parametrize("option", [o for g, o in OPTIONS if g == "trainer"])
def test_every_trainer_builds(option, tmp_path):
    cfg = composed("trainer", option, tmp_path)
    if cfg.trainer.accelerator == "gpu" and not torch.cuda.is_available():
        pytest.skip(f"trainer={option} needs a GPU")
    trainer = pl.Trainer(**OmegaConf.to_container(cfg.trainer, resolve=True), logger=False, enable_checkpointing=False)
    assert trainer.max_epochs == cfg.trainer.max_epochs
