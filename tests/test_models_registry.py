"""conf/model/*.yaml: every file builds its backend by ``_target_`` through ``build_backend``."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra._internal.utils import _locate
from hydra.errors import InstantiationException
from omegaconf import OmegaConf

from bioqa.models import CachedBackend, ChatRequest, GenerationParams, build_backend
from bioqa.models.hf import HFBackend, save_random_model
from bioqa.models.litellm_backend import LiteLLMBackend
from bioqa.runs import register_resolvers

CONF = Path(__file__).resolve().parent.parent / "conf" / "model"
LITELLM_CONFIGS = sorted(p for p in CONF.glob("*.yaml") if "LiteLLMBackend" in p.read_text())
LITELLM_KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "FIREWORKS_AI_API_KEY")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def model_yaml(name: str):
    """A model option as Hydra composes it: the options in its defaults list first, then its own keys."""
    own = OmegaConf.load(CONF / f"{name}.yaml")
    parents = [model_yaml(p) for p in own.pop("defaults", []) if p != "_self_"]
    return OmegaConf.merge(*parents, own)


def model_cfg(name: str, *overrides: str):
    register_resolvers()
    root = OmegaConf.create({"model": model_yaml(name)})
    return OmegaConf.merge(root, OmegaConf.from_dotlist(list(overrides))).model


@pytest.mark.parametrize("path", sorted(CONF.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_model_config_names_a_backend_class(path):
    cfg = model_cfg(path.stem)
    assert cfg.name and "/" not in cfg.name
    _locate(cfg.backend._target_)  # raises ImportError for a target that does not exist


@pytest.mark.parametrize("path", LITELLM_CONFIGS, ids=lambda p: p.stem)
def test_litellm_configs_build_offline(path, monkeypatch):
    cfg = model_cfg(path.stem)
    for key in LITELLM_KEYS:
        monkeypatch.setenv(key, "sk-test")
    backend = build_backend(cfg)
    assert isinstance(backend, LiteLLMBackend) and backend.context_window >= 8192


def test_missing_key_is_a_clear_error_at_build_time(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(InstantiationException, match="ANTHROPIC_API_KEY"):
        build_backend(model_cfg("claude-3-opus"))


def test_tiny_llama_through_the_cache(tmp_path):
    cfg = model_cfg("tiny-llama", "model.backend.hidden_size=32")
    backend = build_backend(cfg, cache_path=tmp_path / "c.sqlite")
    assert isinstance(backend, CachedBackend) and backend.kind == "hf"
    request = ChatRequest(({"role": "user", "content": "yes?"},), GenerationParams(max_new_tokens=3))
    first, second = backend.generate([request]), backend.generate([request])
    assert first[0].ok and not first[0].cached and second[0].cached and second[0].text == first[0].text


def test_smollm2_config_points_at_the_embedded_gguf():
    cfg = model_cfg("smollm2")
    assert Path(cfg.backend.model_path, cfg.backend.gguf_file).is_file()
    assert cfg.backend.adapter is None
    assert model_cfg("smollm2", "model.adapter=/runs/x/adapter").backend.adapter == "/runs/x/adapter"


def test_mixtral_config_takes_a_local_path(tmp_path, tokenizer_dir):
    tiny = save_random_model(tmp_path / "mixtral", tokenizer_dir, architecture="mixtral", num_local_experts=4)
    cfg = model_cfg("mixtral", f"model.backend.model_path={tiny}", "model.backend.load_in_4bit=false")
    cfg.backend.dtype = "float32"
    backend = build_backend(cfg)
    assert isinstance(backend, HFBackend) and backend.model.config.model_type == "mixtral"
    request = ChatRequest(({"role": "user", "content": "yes?"},), GenerationParams(max_new_tokens=3))
    assert backend.generate([request])[0].completion_tokens > 0
    assert model_cfg("mixtral").backend.load_in_4bit is True


def test_load_in_4bit_quantises_with_the_training_loader(tmp_path, tokenizer_dir):
    import bitsandbytes as bnb

    tiny = save_random_model(tmp_path / "m", tokenizer_dir)
    backend = HFBackend(tiny, load_in_4bit=True, dtype="float32", device="cpu")
    assert backend.model_id.endswith(":4bit")
    assert isinstance(backend.model.model.layers[0].self_attn.q_proj, bnb.nn.Linear4bit)
    request = ChatRequest(({"role": "user", "content": "yes?"},), GenerationParams(max_new_tokens=3))
    assert backend.generate([request])[0].completion_tokens == 3
