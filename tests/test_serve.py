"""Serving helpers: the ``transformers serve`` command and merging a PEFT adapter for it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from bioqa.models.base import ChatRequest, GenerationParams
from bioqa.models.embedded import SMOLLM2_GGUF, smollm2_dir
from bioqa.models.hf import HFBackend, save_random_model
from bioqa.models.serve import main, model_spec, servable_model, serve_command

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_command_pins_the_model(tmp_path):
    spec = model_spec(tmp_path, "weights.gguf")
    assert spec == f"{tmp_path.resolve()}:weights.gguf"
    command = serve_command(spec, port=8123, quantization="bnb-4bit")
    assert command[0] == sys.executable and command[3:5] == ["serve", spec]  # no reliance on PATH
    assert command[command.index("--port") + 1] == "8123" and "bnb-4bit" in command


def test_merged_adapter_generates_like_base_plus_adapter(tmp_path, tokenizer_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base_dir = save_random_model(tmp_path / "base", tokenizer_dir, seed=0)
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(AutoModelForCausalLM.from_pretrained(base_dir), lora).save_pretrained(tmp_path / "adapter")
    assert servable_model(base_dir) == str(base_dir.resolve())  # a plain directory is served as it is
    merged_dir = Path(servable_model(base_dir, adapter=tmp_path / "adapter", work_dir=tmp_path / "merged"))
    assert not (merged_dir / "adapter_config.json").exists()
    with_adapter, merged, base = (
        HFBackend(base_dir, adapter=tmp_path / "adapter"),
        HFBackend(merged_dir),
        HFBackend(base_dir),
    )
    inputs = merged.tokenizer(["Is BRCA1 associated with breast cancer?"], return_tensors="pt")
    with torch.no_grad():
        logits = [backend.model(**inputs).logits for backend in (with_adapter, merged, base)]
    # merged weights compute what base + adapter computes (up to float rounding), which is not what base computes
    assert torch.allclose(logits[0], logits[1], atol=1e-4)
    assert not torch.allclose(logits[1], logits[2], atol=1e-2)


def test_cli_prints_the_command(tmp_path, capsys):
    main(["--model-path", str(tmp_path), "--port", "9001", "--print"])
    out = capsys.readouterr()
    assert f"serve {tmp_path.resolve()} --host 127.0.0.1 --port 9001" in out.out
    assert f"openai/{tmp_path.resolve()}" in out.err


@pytest.mark.slow
def test_embedded_gguf_is_exported_to_a_servable_directory(tmp_path):
    spec = servable_model(smollm2_dir(), SMOLLM2_GGUF, work_dir=tmp_path / "smollm2")
    config = json.loads((Path(spec) / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and "quantization_config" not in config
    request = [ChatRequest(({"role": "user", "content": "What is the capital of France?"},), GenerationParams(8))]
    exported = HFBackend(spec).generate(request)[0]
    original = HFBackend(smollm2_dir(), gguf_file=SMOLLM2_GGUF).generate(request)[0]
    assert exported.text == original.text and exported.prompt_tokens == original.prompt_tokens
