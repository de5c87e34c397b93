"""HFBackend on tiny random models with bioqa's tiny tokenizer (and once on the real embedded SmolLM2)."""

from __future__ import annotations

import json

import jsonschema
import pytest
import torch
import xgrammar as xgr
from helpers import ask

from bioqa.models.constrained import SchemaCompiler
from bioqa.models.embedded import SMOLLM2_GGUF, smollm2_dir, smollm2_gguf
from bioqa.models.hf import HFBackend, load_tokenizer
from bioqa.models.tiny import build_tiny_tokenizer

YES_NO = {"type": "object", "properties": {"answer": {"enum": ["yes", "no"]}}, "required": ["answer"]}
ENTITIES = {
    "type": "object",
    "properties": {"entities": {"type": "array", "items": {"type": "string", "maxLength": 24}, "maxItems": 3}},
    "required": ["entities"],
    "additionalProperties": False,
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


QUESTIONS = [f"Is BRCA{i} associated with {'breast ' * (i % 4)}cancer?" for i in range(7)]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return HFBackend(tiny_model_dir, batch_size=4)


def test_completions_keep_request_order_and_count_tokens(tiny):
    requests = [ask(q, max_new_tokens=5) for q in QUESTIONS]
    completions = tiny.generate(requests)
    assert len(completions) == len(requests)
    for request, completion in zip(requests, completions, strict=True):
        assert completion.ok, completion.error
        assert completion.prompt_tokens == tiny.count_tokens(request.messages)
        assert 1 <= completion.completion_tokens <= 5
        assert completion.latency_s > 0 and completion.cost_usd == 0.0
    # questions of different lengths got different prompt counts: the order was not mixed up by length sorting
    assert len({c.prompt_tokens for c in completions}) > 1


def test_batched_greedy_equals_one_by_one(tiny_model_dir):
    requests = [ask(q, max_new_tokens=8) for q in QUESTIONS]
    batched = HFBackend(tiny_model_dir, batch_size=4).generate(requests)
    single = HFBackend(tiny_model_dir, batch_size=1).generate(requests)
    assert [c.text for c in batched] == [c.text for c in single]


def test_stop_strings_cut_the_text(tiny):
    free = tiny.generate([ask(QUESTIONS[0], max_new_tokens=12)])[0].text
    assert len(free) > 1
    stop = free[len(free) // 2 :][:1]
    stopped = tiny.generate([ask(QUESTIONS[0], max_new_tokens=12, stop=(stop,))])[0]
    assert stopped.ok and stop not in stopped.text
    assert free.startswith(stopped.text) and len(stopped.text) < len(free)


def test_too_long_prompt_is_an_error_completion_not_an_exception(tiny_model_dir):
    backend = HFBackend(tiny_model_dir, context_window=64)
    long, short = ask("gene " * 200), ask("Is it?", max_new_tokens=4)
    completions = backend.generate([long, short])
    assert completions[0].error and "context window of 64" in completions[0].error and completions[0].text == ""
    assert completions[1].ok


@pytest.mark.parametrize("schema", [YES_NO, ENTITIES], ids=["yes-no", "entities"])
def test_schema_constrained_output_always_validates(tiny, schema):
    unconstrained = tiny.generate([ask(q, max_new_tokens=16) for q in QUESTIONS[:4]])
    with pytest.raises((json.JSONDecodeError, jsonschema.ValidationError)):
        for completion in unconstrained:
            jsonschema.validate(json.loads(completion.text), schema)
    torch.manual_seed(0)
    greedy = [ask(q, max_new_tokens=64, json_schema=schema) for q in QUESTIONS[:4]]
    sampled = [ask(q, max_new_tokens=64, json_schema=schema, temperature=1.5) for q in QUESTIONS]
    texts = [c.text for c in tiny.generate(greedy + sampled)]
    for text in texts:
        jsonschema.validate(json.loads(text), schema)
    assert len(set(texts)) > 1  # sampling explores the grammar; still always valid


def test_mixed_batch_constrains_only_the_rows_with_a_schema(tiny):
    requests = [ask(q, max_new_tokens=40, json_schema=YES_NO if i % 2 else None) for i, q in enumerate(QUESTIONS)]
    completions = tiny.generate(requests)
    for i, completion in enumerate(completions):
        if i % 2:
            assert json.loads(completion.text)["answer"] in ("yes", "no")
        else:
            assert completion.text == tiny.generate([requests[i]])[0].text


def test_adapter_changes_the_model_and_its_id(tiny_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(base, lora).save_pretrained(tmp_path / "adapter")
    plain, adapted = HFBackend(tiny_model_dir), HFBackend(tiny_model_dir, adapter=tmp_path / "adapter")
    assert adapted.model_id.startswith(plain.model_id + "+adapter:")
    requests = [ask(q, max_new_tokens=8) for q in QUESTIONS[:3]]
    assert [c.text for c in plain.generate(requests)] != [c.text for c in adapted.generate(requests)]


def test_expert_lora_adapter_loads_on_a_4bit_mixtral(tmp_path, tokenizer_dir):
    from bioqa.models.adapters import LoraSettings, add_lora, save_adapter
    from bioqa.models.quantization import random_model_4bit

    sizes = {"architecture": "mixtral", "seed": 0, "num_local_experts": 4, "num_experts_per_tok": 2}
    trained = add_lora(random_model_4bit(tokenizer_dir, **sizes), LoraSettings(r=4, experts=True))
    with torch.no_grad():  # stand-in for training: LoRA B matrices start at zero, which would change nothing
        for name, parameter in trained.named_parameters():
            if "lora_B" in name or name.endswith("_B"):
                parameter.normal_(0, 0.5)
    adapter = save_adapter(trained, tmp_path / "adapter")
    assert (adapter / "expert_lora.safetensors").is_file()
    base = HFBackend.from_random_config(tokenizer_dir, load_in_4bit=True, **sizes)
    adapted = HFBackend.from_random_config(tokenizer_dir, load_in_4bit=True, adapter=adapter, **sizes)
    assert any(hasattr(module, "gate_up_A") for module in adapted.model.modules())
    requests = [ask(q, max_new_tokens=6) for q in QUESTIONS[:3]]
    assert [c.text for c in base.generate(requests)] != [c.text for c in adapted.generate(requests)]


def test_clear_errors_for_missing_files(tmp_path, tiny_model_dir):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        HFBackend(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="not found"):
        HFBackend(tiny_model_dir, gguf_file="missing.gguf")
    with pytest.raises(FileNotFoundError, match=r"adapter_config\.json"):
        HFBackend(tiny_model_dir, adapter=tmp_path)


def test_random_config_is_reproducible_and_sized(tokenizer_dir):
    a = HFBackend.from_random_config(tokenizer_dir, seed=3, hidden_size=32, num_hidden_layers=1)
    b = HFBackend.from_random_config(tokenizer_dir, seed=3, hidden_size=32, num_hidden_layers=1)
    assert a.model.config.hidden_size == 32 and a.model.config.num_hidden_layers == 1
    assert a.model_id == b.model_id and "seed=3" in a.model_id
    request = [ask(QUESTIONS[1], max_new_tokens=6)]
    assert a.generate(request)[0].text == b.generate(request)[0].text


@pytest.mark.slow
def test_embedded_smollm2_answers_in_schema():
    assert smollm2_gguf().is_file()
    backend = HFBackend(smollm2_dir(), gguf_file=SMOLLM2_GGUF, batch_size=2)
    assert backend.context_window >= 2048
    requests = [
        ask("Is the BRCA1 gene associated with breast cancer? Answer yes or no in JSON.", 16, json_schema=YES_NO),
        ask("What is the capital of France? Answer in one word.", 8),
    ]
    constrained, free = backend.generate(requests)
    assert json.loads(constrained.text)["answer"] in ("yes", "no")
    assert "paris" in free.text.lower()


def test_weights_load_only_when_a_completion_is_computed(tmp_path, tiny_model_dir):
    from bioqa.models.cache import CachedBackend, CompletionCache

    request = [ask(QUESTIONS[0], max_new_tokens=4)]
    first = HFBackend(tiny_model_dir)
    assert first._model is None and first.count_tokens(request[0].messages) > 0  # tokenizer only
    expected = CachedBackend(first, CompletionCache(tmp_path / "c.sqlite")).generate(request)[0].text
    assert first._model is not None
    again = HFBackend(tiny_model_dir)
    answer = CachedBackend(again, CompletionCache(tmp_path / "c.sqlite")).generate(request)[0]
    assert answer.cached and answer.text == expected and again._model is None  # a cached rerun loads no weights


def test_max_batch_tokens_puts_long_prompts_in_smaller_batches(monkeypatch, tokenizer_dir):
    backend = HFBackend.from_random_config(
        tokenizer_dir, hidden_size=32, num_hidden_layers=1, batch_size=8, max_batch_tokens=1000
    )
    sizes: list[int] = []
    run_batch = backend._run_batch

    def recording(params, batch, *args):
        sizes.append(len(batch))
        return run_batch(params, batch, *args)

    monkeypatch.setattr(backend, "_run_batch", recording)
    long_text = "protein kinase signalling " * 40  # ~300 tokens: 1000 // (300 + 2) = 3 per batch
    requests = [ask(long_text, max_new_tokens=2)] * 6 + [ask("Is it?", max_new_tokens=2)] * 8
    completions = backend.generate(requests)
    assert all(c.ok for c in completions) and completions[0].prompt_tokens > 250
    assert sizes == [3, 3, 8]


def test_bounded_strings_refuse_raw_control_characters(tokenizer):
    # xgrammar lets raw U+0000-U+001F into maxLength strings; JSON (json.loads) refuses them
    compiled = SchemaCompiler(tokenizer, len(tokenizer), [tokenizer.eos_token_id]).compile(ENTITIES)
    prefix = '{"entities": ["a'
    for text, accepted in [(prefix + "\x1b", False), (prefix + "\t", False), (prefix + " b", True)]:
        assert xgr.GrammarMatcher(compiled).accept_string(text) is accepted, repr(text)


def test_the_shipped_tiny_tokenizer_is_what_its_builder_writes(tmp_path, tokenizer):
    rebuilt = load_tokenizer(build_tiny_tokenizer(tmp_path))
    text = 'Is insulin secreted by β cells?\t{"entities": ["pancreas"]}'
    chat = [{"role": "user", "content": text}, {"role": "assistant", "content": "yes"}]
    assert len(rebuilt) == len(tokenizer) == 2048 and rebuilt(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert rebuilt.apply_chat_template(chat) == tokenizer.apply_chat_template(chat)
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text  # byte-level: every string round-trips
