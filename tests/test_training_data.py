"""Training data: completion-only labels on real chat templates, the paper's JSONL, golden files via prompts."""

from __future__ import annotations

import json

import pytest
from helpers import compose_config
from hydra.core.hydra_config import HydraConfig

from bioqa.data import load_questions
from bioqa.models.hf import load_tokenizer
from bioqa.prompts import PromptBuilder, PromptConfig
from bioqa.resources import demo_golden_path
from bioqa.training.data import (
    IGNORE_INDEX,
    ChatDataModule,
    ExampleError,
    LengthGroupedSampler,
    collate,
    golden_examples,
    read_chat_jsonl,
    split_examples,
    tokenize_example,
)

# Mixtral-8x7B-Instruct-v0.1's chat template as published with a system-message branch (system text joins the
# first user turn); written here so the test needs no download.
MISTRAL_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content'] %}"
    "{%- set loop_messages = messages[1:] %}{%- else %}{%- set loop_messages = messages %}{%- endif %}"
    "{{- bos_token }}{%- for message in loop_messages %}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{- raise_exception('After the optional system message, conversation roles must alternate user/assistant') }}"
    "{%- endif %}{%- if message['role'] == 'user' %}"
    "{%- if loop.first and system_message is defined %}"
    "{{- ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}"
    "{%- else %}{{- ' [INST] ' + message['content'] + ' [/INST]' }}{%- endif %}"
    "{%- elif message['role'] == 'assistant' %}{{- ' ' + message['content'] + eos_token }}"
    "{%- endif %}{%- endfor %}"
)

CHAT = [
    {"role": "system", "content": "You are a biomedical expert."},
    {"role": "user", "content": "Is insulin a hormone?"},
    {"role": "assistant", "content": "yes"},  # a shot: must stay masked
    {"role": "user", "content": "Which organ secretes insulin?"},
    {"role": "assistant", "content": '{"entities": ["pancreas"]}'},
]


@pytest.fixture(scope="module")
def mistral_tokenizer(tokenizer_dir):
    tokenizer = load_tokenizer(tokenizer_dir)
    tokenizer.chat_template = MISTRAL_TEMPLATE
    return tokenizer


def learnt_text(tokenizer, item) -> str:
    return tokenizer.decode([t for t, label in zip(item["input_ids"], item["labels"], strict=True) if label != -100])


def test_mask_keeps_only_the_final_answer_on_chatml(tokenizer):
    item = tokenize_example(tokenizer, CHAT)
    assert learnt_text(tokenizer, item) == '{"entities": ["pancreas"]}<|im_end|>'
    first = item["labels"].index(next(label for label in item["labels"] if label != IGNORE_INDEX))
    assert all(label == IGNORE_INDEX for label in item["labels"][:first])
    assert all(label != IGNORE_INDEX for label in item["labels"][first : first + 5])
    assert item["labels"][-1] == IGNORE_INDEX  # the newline after <|im_end|> is not learnt
    assert tokenizer.decode(item["input_ids"][:first]).endswith("<|im_start|>assistant\n")


def test_mask_keeps_only_the_final_answer_on_a_mistral_template(mistral_tokenizer):
    item = tokenize_example(mistral_tokenizer, CHAT)
    text = mistral_tokenizer.decode(item["input_ids"])
    assert text.startswith(mistral_tokenizer.bos_token + " [INST] You are a biomedical expert.\n\nIs insulin")
    assert " [/INST] yes" + mistral_tokenizer.eos_token in text  # the shot's answer is in the input ...
    learnt = learnt_text(mistral_tokenizer, item)
    assert learnt.strip() == '{"entities": ["pancreas"]}' + mistral_tokenizer.eos_token  # ... but only this is learnt
    assert item["labels"][-1] == item["input_ids"][-1]  # the end of sequence is learnt


def test_too_long_examples_are_dropped(tokenizer):
    assert tokenize_example(tokenizer, CHAT, max_length=10) is None
    assert tokenize_example(tokenizer, CHAT, max_length=1000) is not None


def test_chat_jsonl_errors_name_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"messages": CHAT}) + "\n" + json.dumps({"messages": CHAT[:2]}) + "\n")
    with pytest.raises(ExampleError, match=r"bad.jsonl:2: the last message must be a non-empty assistant answer"):
        read_chat_jsonl(path)
    path.write_text("{not json\n")
    with pytest.raises(ExampleError, match=r"bad.jsonl:1: not a"):
        read_chat_jsonl(path)


def test_paper_jsonl_masks_to_its_assistant_answers(shared_dir, tokenizer):
    examples = read_chat_jsonl(shared_dir / "fewshot" / "07_QA_YesNo_11B2_Validation.jsonl")
    assert len(examples) == 24
    for example in examples[:5]:
        item = tokenize_example(tokenizer, example.messages)
        assert learnt_text(tokenizer, item) == example.messages[-1]["content"] + "<|im_end|>"


@pytest.fixture(scope="module")
def train_cfg():
    cfg = compose_config("train", ["prompt=3shot", "model=tiny-mixtral"], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # resolves ${hydra:...} in paths
    return cfg


def demo_prompt(cfg) -> PromptConfig:
    from omegaconf import OmegaConf

    return PromptConfig.from_dict({**OmegaConf.to_container(cfg.prompt, resolve=True), "pool": "demo"})


def test_train_config_composes_with_a_model_train_block(train_cfg):
    assert train_cfg.task_name == "train"
    assert train_cfg.model.train.base._target_ == "bioqa.models.quantization.random_model_4bit"
    assert train_cfg.model.train.lora.experts is True
    assert train_cfg.prompt.n_shots == 3 and train_cfg.data.shot_pool == "demo"


def test_golden_examples_carry_shots_and_the_golden_answer(train_cfg, tokenizer):
    builder = PromptBuilder(demo_prompt(train_cfg))
    examples = golden_examples([demo_golden_path()], builder)
    assert len(examples) == 12 + 16  # exact answers of 12 yes/no, factoid and list questions, 16 ideal answers
    first = examples[0]
    assert first.source.endswith("(exact answer)")
    assert [m["role"] for m in first.messages] == ["system"] + ["user", "assistant"] * 4
    item = tokenize_example(tokenizer, first.messages)
    assert learnt_text(tokenizer, item) == first.messages[-1]["content"] + "<|im_end|>"
    question = load_questions(demo_golden_path())[0]
    assert first.source.endswith(f"question {question.id} (exact answer)")
    assert first.messages[-1]["content"] == builder.target(question, "exact")
    assert "yes" in first.messages[-1]["content"] or "no" in first.messages[-1]["content"]


def test_datamodule_splits_buckets_and_pads(train_cfg, tokenizer):
    module = ChatDataModule(
        tokenizer,
        [demo_golden_path()],
        builder=PromptBuilder(demo_prompt(train_cfg)),
        val_fraction=0.25,
        batch_size=4,
        max_length=4096,
    )
    module.setup("fit")
    assert (len(module.train_set), len(module.val_set)) == (21, 7)
    assert not set(module.train_set.sources) & set(module.val_set.sources)
    batch = next(iter(module.train_dataloader()))
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
    padded = batch["attention_mask"] == 0
    assert (batch["labels"][padded] == IGNORE_INDEX).all()
    assert (batch["labels"] != IGNORE_INDEX).any(dim=1).all()


def test_collate_right_pads_with_ignored_labels():
    batch = collate([{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8], "labels": [8]}], 0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


def test_length_grouped_sampler_is_a_permutation_of_similar_length_batches():
    lengths = [1, 100, 2, 99, 3, 98, 4, 97]
    sampler = LengthGroupedSampler(lengths, batch_size=2, seed=0)
    order = list(sampler)
    assert sorted(order) == list(range(8))
    batches = [order[i : i + 2] for i in range(0, 8, 2)]
    assert all(abs(lengths[a] - lengths[b]) <= 1 for a, b in batches)
    assert list(LengthGroupedSampler(lengths, 2, seed=0)) == order


def test_split_is_seeded_and_disjoint():
    items = list(range(10))
    train, val = split_examples(items, 0.3, seed=1)
    assert len(val) == 3 and sorted(train + val) == items
    assert split_examples(items, 0.3, seed=1) == (train, val)
    with pytest.raises(ValueError, match="val_fraction"):
        split_examples(items, 1.0)
