"""Training examples: chat messages → token ids with completion-only labels, length-bucketed batches.

Two sources:

- ``chat_jsonl``: the paper's fine-tuning files (one ``{"messages": [...]}`` per line, last turn = the answer),
  used as they are;
- ``golden``: BioASQ golden files turned into examples by the same :class:`bioqa.prompts.PromptBuilder` that
  inference uses (``prompt=10shot``: every example carries its 10 shots), one per question and answer kind.

Every token is masked (label -100) except those of the final assistant answer, its end-of-turn token included.

Batches are either padded (:func:`collate`: similar lengths grouped by :class:`LengthGroupedSampler`) or packed
(``packing=True``: :func:`pack_lengths` puts several examples into one row of at most ``pack_length`` tokens and
:func:`collate_packed` gives every example its own ``position_ids`` starting at 0 and no ``attention_mask``, from
which transformers derives a block-diagonal causal mask (SDPA/eager) or variable-length flash attention).
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from transformers import PreTrainedTokenizerBase

from bioqa.data import load_questions
from bioqa.errors import BioQAError

log = logging.getLogger(__name__)

IGNORE_INDEX = -100
Message = dict[str, str]
DATA_FORMATS = ("golden", "chat_jsonl")


class ExampleError(BioQAError, ValueError):
    """A training example that cannot be used (names its source)."""


@dataclass(frozen=True)
class Example:
    """One chat whose last turn is the assistant answer to learn; ``source`` names file and line/question."""

    messages: tuple[Message, ...]
    source: str


def read_chat_jsonl(path: str | os.PathLike) -> list[Example]:
    """The paper's chat-format JSONL: each line ``{"messages": [system?, user, assistant, ...]}``."""
    path = Path(path)
    examples = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                messages = json.loads(line)["messages"]
            except (json.JSONDecodeError, KeyError, TypeError) as error:
                raise ExampleError(f"{where}: not a {{'messages': [...]}} JSON line ({error})") from None
            examples.append(Example(tuple(_checked(messages, where)), where))
    return examples


def golden_examples(
    paths: Sequence[str | os.PathLike], builder: Any, kinds: Sequence[str] = ("exact", "ideal")
) -> list[Example]:
    """One example per question and answer kind, rendered by ``builder`` (a :class:`bioqa.prompts.PromptBuilder`)."""
    from bioqa.prompts import EXACT_TYPES

    examples = []
    for path in paths:
        for question in load_questions(path):
            for kind in kinds:
                if kind == "exact" and question.type not in EXACT_TYPES:
                    continue
                where = f"{path}: question {question.id} ({kind} answer)"
                examples.append(Example(tuple(_checked(builder.training_example(question, kind), where)), where))
    return examples


def _checked(messages: Any, where: str) -> list[Message]:
    if not isinstance(messages, list) or not messages:
        raise ExampleError(f"{where}: 'messages' must be a non-empty list")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not {"role", "content"} <= set(message):
            raise ExampleError(f"{where}: message {i} needs 'role' and 'content'")
    if messages[-1]["role"] != "assistant" or not str(messages[-1]["content"]).strip():
        raise ExampleError(f"{where}: the last message must be a non-empty assistant answer")
    return [{"role": m["role"], "content": str(m["content"])} for m in messages]


def tokenize_example(
    tokenizer: PreTrainedTokenizerBase, messages: Sequence[Message], max_length: int | None = None
) -> dict[str, list[int]] | None:
    """Token ids of the chat (the model's chat template) and labels that keep only the final answer.

    The answer span runs from the end of the prompt rendered with ``add_generation_prompt=True`` to the end of
    the rendered chat, trailing whitespace excluded (so the end-of-turn token is learnt, the newline after it is
    not). Returns None when the chat is longer than ``max_length`` tokens.
    """
    messages = list(messages)
    prompt = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=False)
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    if not full.startswith(prompt):
        raise ExampleError("the chat template renders the prompt differently with and without the answer")
    start, end = len(prompt), len(full.rstrip())
    encoded = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids = encoded["input_ids"]
    if max_length is not None and len(ids) > max_length:
        return None
    labels = [
        token if (tok_end > start and tok_start < end) else IGNORE_INDEX
        for token, (tok_start, tok_end) in zip(ids, encoded["offset_mapping"], strict=True)
    ]
    return {"input_ids": ids, "labels": labels}


class TokenizedDataset(Dataset):
    """Examples tokenised once; too-long ones are dropped with a warning naming how many and the first."""

    def __init__(self, examples: Sequence[Example], tokenizer: PreTrainedTokenizerBase, max_length: int):
        self.items: list[dict[str, list[int]]] = []
        self.sources: list[str] = []
        too_long = []
        for example in examples:
            try:
                item = tokenize_example(tokenizer, example.messages, max_length)
            except ExampleError as error:
                raise ExampleError(f"{example.source}: {error}") from None
            if item is None:
                too_long.append(example.source)
                continue
            self.items.append(item)
            self.sources.append(example.source)
        if too_long:
            log.warning(
                "dropped %d of %d examples longer than %d tokens (first: %s)",
                len(too_long),
                len(examples),
                max_length,
                too_long[0],
            )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        return self.items[index]

    @property
    def lengths(self) -> list[int]:
        return [len(item["input_ids"]) for item in self.items]


class LengthGroupedSampler(Sampler[int]):
    """Shuffled batches of similar length (less padding): shuffle, sort within windows of ``batch_size * 50``,
    cut into batches, shuffle the batches. Deterministic per ``seed`` and epoch."""

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int = 0, window: int = 50):
        self.lengths, self.batch_size, self.seed, self.window = list(lengths), batch_size, seed, window
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        rng = random.Random(self.seed + self.epoch)
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        span = self.batch_size * self.window
        grouped = []
        for i in range(0, len(order), span):
            grouped += sorted(order[i : i + span], key=lambda j: -self.lengths[j])
        batches = [grouped[i : i + self.batch_size] for i in range(0, len(grouped), self.batch_size)]
        rng.shuffle(batches)
        self.epoch += 1
        return iter([i for batch in batches for i in batch])


def collate(items: Sequence[dict[str, list[int]]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad to the longest item: padded positions get ``attention_mask`` 0 and label -100."""
    width = max(len(item["input_ids"]) for item in items)
    batch = {
        "input_ids": torch.full((len(items), width), pad_token_id, dtype=torch.long),
        "attention_mask": torch.zeros((len(items), width), dtype=torch.long),
        "labels": torch.full((len(items), width), IGNORE_INDEX, dtype=torch.long),
    }
    for row, item in enumerate(items):
        n = len(item["input_ids"])
        batch["input_ids"][row, :n] = torch.tensor(item["input_ids"])
        batch["attention_mask"][row, :n] = 1
        batch["labels"][row, :n] = torch.tensor(item["labels"])
    return batch


def pack_lengths(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Example indices grouped into packs of at most ``capacity`` tokens (first-fit decreasing; deterministic)."""
    too_long = [i for i, n in enumerate(lengths) if n > capacity]
    if too_long:
        raise ValueError(f"example {too_long[0]} has {lengths[too_long[0]]} tokens, more than pack_length={capacity}")
    packs: list[list[int]] = []
    room: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        slot = next((j for j, free in enumerate(room) if free >= lengths[index]), None)
        if slot is None:
            packs.append([])
            room.append(capacity)
            slot = len(packs) - 1
        packs[slot].append(index)
        room[slot] -= lengths[index]
    return packs


class PackedDataset(Dataset):
    """Packs of tokenised examples (see :func:`pack_lengths`); each item is a list of examples."""

    def __init__(self, dataset: TokenizedDataset, capacity: int):
        self.dataset, self.capacity = dataset, capacity
        self.packs = pack_lengths(dataset.lengths, capacity)

    def __len__(self) -> int:
        return len(self.packs)

    def __getitem__(self, index: int) -> list[dict[str, list[int]]]:
        return [self.dataset[i] for i in self.packs[index]]

    @property
    def lengths(self) -> list[int]:
        return [sum(len(item["input_ids"]) for item in pack) for pack in self]


def collate_packed(packs: Sequence[Sequence[dict[str, list[int]]]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """One row per pack: examples concatenated, ``position_ids`` restarting at 0 for each example, no
    ``attention_mask`` (transformers then keeps attention within each example). The first label of every example
    is -100 (nothing before it belongs to the example); right padding is one more masked "example"."""
    rows = []
    for pack in packs:
        ids, labels, positions = [], [], []
        for item in pack:
            ids += item["input_ids"]
            labels += [IGNORE_INDEX, *item["labels"][1:]]
            positions += range(len(item["input_ids"]))
        rows.append((ids, labels, positions))
    width = max(len(ids) for ids, _, _ in rows)
    batch = {
        "input_ids": torch.full((len(rows), width), pad_token_id, dtype=torch.long),
        "labels": torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long),
        "position_ids": torch.arange(width).repeat(len(rows), 1),
    }
    for row, (ids, labels, positions) in enumerate(rows):
        n = len(ids)
        batch["input_ids"][row, :n] = torch.tensor(ids)
        batch["labels"][row, :n] = torch.tensor(labels)
        batch["position_ids"][row, :n] = torch.tensor(positions)
        batch["position_ids"][row, n:] = torch.arange(width - n)
    return batch


def padding_fraction(widths_and_tokens: Sequence[tuple[int, int]]) -> float:
    """Share of a run's token slots that are padding: ``sum(width - tokens) / sum(width)`` over its rows."""
    slots = sum(width for width, _ in widths_and_tokens)
    return sum(width - tokens for width, tokens in widths_and_tokens) / slots if slots else 0.0


def split_examples(examples: Sequence[Example], fraction: float, seed: int = 0) -> tuple[list[Example], list[Example]]:
    """A seeded random (train, validation) split; the validation part has ``round(fraction * n)`` (≥ 1) examples."""
    if not 0 < fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {fraction}")
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_val = max(1, round(fraction * len(examples)))
    val = set(order[:n_val])
    return [e for i, e in enumerate(examples) if i not in val], [e for i, e in enumerate(examples) if i in val]


class ChatDataModule(pl.LightningDataModule):
    """Train/validation loaders of tokenised chat examples.

    ``train_files``/``val_files``: JSONL files (``data_format="chat_jsonl"``) or BioASQ golden JSON files
    (``"golden"``, which needs ``builder``). Without ``val_files``, ``val_fraction`` of the training examples
    are held out (0: no validation). ``packing``: each batch row packs several examples into at most
    ``pack_length`` (default ``max_length``) tokens; ``batch_size`` then counts packs.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        train_files: Sequence[str | os.PathLike],
        val_files: Sequence[str | os.PathLike] = (),
        data_format: str = "golden",
        builder: Any = None,
        kinds: Sequence[str] = ("exact", "ideal"),
        val_fraction: float = 0.0,
        max_length: int = 2048,
        batch_size: int = 1,
        bucket_by_length: bool = True,
        num_workers: int = 0,
        seed: int = 0,
        packing: bool = False,
        pack_length: int | None = None,
    ):
        super().__init__()
        if data_format not in DATA_FORMATS:
            raise ValueError(f"data format must be one of {DATA_FORMATS}, got {data_format!r}")
        if data_format == "golden" and builder is None:
            raise ValueError("golden-file data needs a prompt builder")
        if not train_files:
            raise ValueError("no training files given")
        for path in [*train_files, *val_files]:
            if not Path(path).is_file():
                raise FileNotFoundError(f"training data file not found: {path}")
        self.tokenizer, self.builder = tokenizer, builder
        self.train_files, self.val_files = [str(p) for p in train_files], [str(p) for p in val_files]
        self.data_format, self.kinds = data_format, tuple(kinds)
        self.val_fraction, self.max_length, self.batch_size = val_fraction, max_length, batch_size
        self.bucket_by_length, self.num_workers, self.seed = bucket_by_length, num_workers, seed
        self.packing, self.pack_length = packing, pack_length or max_length
        if self.pack_length < max_length:
            raise ValueError(f"pack_length={self.pack_length} is shorter than max_length={max_length}")
        self.train_set: TokenizedDataset | None = None
        self.val_set: TokenizedDataset | None = None

    def read(self, files: Sequence[str]) -> list[Example]:
        if self.data_format == "chat_jsonl":
            return [example for path in files for example in read_chat_jsonl(path)]
        return golden_examples(files, self.builder, self.kinds)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        train = self.read(self.train_files)
        val = self.read(self.val_files) if self.val_files else []
        if not self.val_files and self.val_fraction > 0:
            train, val = split_examples(train, self.val_fraction, self.seed)
        self.train_set = TokenizedDataset(train, self.tokenizer, self.max_length)
        self.val_set = TokenizedDataset(val, self.tokenizer, self.max_length) if val else None
        if not len(self.train_set):
            raise ExampleError(f"no training example fits in max_length={self.max_length} tokens")
        log.info(
            "training examples: %d, validation examples: %d",
            len(self.train_set),
            len(self.val_set) if self.val_set else 0,
        )

    def _loader(self, dataset: TokenizedDataset, train: bool) -> DataLoader:
        if self.packing:
            packed = PackedDataset(dataset, self.pack_length)
            return DataLoader(
                packed,
                batch_size=self.batch_size,
                shuffle=train,
                collate_fn=partial(collate_packed, pad_token_id=self.tokenizer.pad_token_id),
                num_workers=self.num_workers,
            )
        sampler = (
            LengthGroupedSampler(dataset.lengths, self.batch_size, self.seed)
            if train and self.bucket_by_length
            else None
        )
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            shuffle=train and sampler is None,
            collate_fn=partial(collate, pad_token_id=self.tokenizer.pad_token_id),
            num_workers=self.num_workers,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader(self.val_set, train=False) if self.val_set else []
