"""Local transformers models (directories or GGUF files, optional PEFT adapter, optional 4-bit) as a ``Backend``."""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerBase

from bioqa.models.base import Backend, ChatRequest, Completion, GenerationParams, Message
from bioqa.models.constrained import SchemaCompiler
from bioqa.models.tiny import load_tokenizer, random_model, save_random_model

__all__ = ["DEFAULT_CONTEXT_WINDOW", "HFBackend", "load_tokenizer", "random_model", "save_random_model"]

DEFAULT_CONTEXT_WINDOW = 4096


def _adapter_digest(adapter: Path) -> str:
    """Short hash of the adapter files: retraining into the same directory must not reuse cached answers."""
    digest = hashlib.sha256()
    for path in sorted(adapter.iterdir()):
        if path.suffix in (".safetensors", ".bin") or path.name == "adapter_config.json":
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


class HFBackend(Backend):
    """Batched chat generation with a local transformers model.

    Requests are sorted by prompt length and generated ``batch_size`` at a time (left padding) with the model's
    chat template; ``max_batch_tokens`` caps a batch's padded size (prompt + new tokens, times rows), so long
    prompts go in smaller batches (on CPU, padded attention over long prompts costs more than batching saves).
    Greedy when ``temperature`` is 0, sampled otherwise; stop strings are honoured and cut off.
    A request with ``json_schema`` is constrained to it (xgrammar), also inside a mixed batch.
    ``latency_s`` of a completion is the wall time of the batch that produced it.
    """

    kind = "hf"

    def __init__(
        self,
        model_path: str | Path,
        gguf_file: str | None = None,
        adapter: str | Path | None = None,
        load_in_4bit: bool = False,
        dtype: str = "auto",
        device: str = "auto",
        batch_size: int = 8,
        context_window: int | None = None,
        trust_remote_code: bool = False,
        max_batch_tokens: int | None = None,
    ):
        local = Path(model_path).expanduser()
        if local.exists():
            model_path = str(local.resolve())
            if gguf_file is not None and not (local / gguf_file).is_file():
                raise FileNotFoundError(f"GGUF file {gguf_file!r} not found in {local}")
        elif str(model_path).startswith((".", "/", "~")) or str(model_path).count("/") != 1:
            raise FileNotFoundError(f"model_path {model_path} does not exist")
        # else: a hub id, found in the local Hugging Face cache (nothing is downloaded with HF_HUB_OFFLINE=1)
        model_path = str(model_path)
        try:
            tokenizer = load_tokenizer(model_path, gguf_file, trust_remote_code=trust_remote_code)
        except OSError as error:
            raise FileNotFoundError(
                f"cannot load {model_path} ({error}); point model.backend.model_path at local weights"
            ) from error

        def load() -> PreTrainedModel:
            if load_in_4bit:
                return self._load_4bit(model_path, gguf_file, dtype, device, trust_remote_code)
            return AutoModelForCausalLM.from_pretrained(
                model_path,
                gguf_file=gguf_file,
                dtype=dtype,
                device_map=None if device == "auto" and not torch.cuda.is_available() else device,
                trust_remote_code=trust_remote_code,
            )

        if context_window is None:
            config = AutoConfig.from_pretrained(model_path, gguf_file=gguf_file, trust_remote_code=trust_remote_code)
            context_window = getattr(config.get_text_config(), "max_position_embeddings", DEFAULT_CONTEXT_WINDOW)
        name = model_path + (f":{gguf_file}" if gguf_file else "") + (":4bit" if load_in_4bit else "")
        self._init(load, tokenizer, name, adapter, batch_size, context_window)
        self.max_batch_tokens = max_batch_tokens

    @classmethod
    def from_random_config(
        cls,
        tokenizer_path: str | Path,
        tokenizer_gguf_file: str | None = None,
        architecture: str = "llama",
        seed: int = 0,
        adapter: str | Path | None = None,
        batch_size: int = 8,
        context_window: int | None = None,
        max_batch_tokens: int | None = None,
        **config: Any,
    ) -> HFBackend:
        """A tiny random model in memory (tests, demos): see :func:`random_model` for ``architecture``/``config``."""
        tokenizer = load_tokenizer(tokenizer_path, tokenizer_gguf_file)
        model = random_model(tokenizer, architecture, seed, **config)
        sizes = ",".join(f"{k}={v}" for k, v in sorted(config.items()))
        backend = cls.__new__(cls)
        backend._init(
            model, tokenizer, f"random:{architecture}:seed={seed}:{sizes}", adapter, batch_size, context_window
        )
        backend.max_batch_tokens = max_batch_tokens
        return backend

    @staticmethod
    def _load_4bit(
        model_path: str, gguf_file: str | None, dtype: str, device: str, trust_remote_code: bool
    ) -> PreTrainedModel:
        """All weights in 4-bit (MoE experts included) with the loader training uses, so inference sees the
        same quantised base the adapter was trained on."""
        from bioqa.models.quantization import load_model_4bit

        options: dict[str, Any] = {"gguf_file": gguf_file, "trust_remote_code": trust_remote_code}
        if dtype != "auto":
            options["compute_dtype"] = dtype
        if device != "auto":
            options["device_map"] = device
        return load_model_4bit(model_path, **options)

    def _init(
        self,
        model: PreTrainedModel | Callable[[], PreTrainedModel],
        tokenizer: PreTrainedTokenizerBase,
        name: str,
        adapter: str | Path | None,
        batch_size: int,
        context_window: int | None,
    ) -> None:
        """``model``: the weights, or a function that loads them on first use."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self._adapter = Path(adapter).expanduser() if adapter is not None else None
        if self._adapter is not None:
            if not (self._adapter / "adapter_config.json").is_file():
                raise FileNotFoundError(f"{self._adapter} is not a PEFT adapter directory (no adapter_config.json)")
            name += f"+adapter:{self._adapter.resolve()}@{_adapter_digest(self._adapter)}"
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self._model_id = name
        self._model: PreTrainedModel | None = None
        if isinstance(model, PreTrainedModel):
            self._loader = None
            self._attach(model)
            context_window = context_window or getattr(model.config, "max_position_embeddings", None)
        else:
            self._loader = model
        self._context_window = context_window or DEFAULT_CONTEXT_WINDOW

    def _attach(self, model: PreTrainedModel) -> None:
        if self._adapter is not None:
            from bioqa.models.adapters import load_adapter  # PEFT LoRA plus bioqa's expert LoRA, if saved

            model = load_adapter(model, self._adapter)
        self._model = model.eval()
        # A turn ends at the tokenizer's eos (the chat template's end of turn) or any eos the model declares.
        eos = model.generation_config.eos_token_id if model.generation_config else None
        declared = eos if isinstance(eos, list) else [eos]
        self._eos_ids = list(dict.fromkeys(i for i in [self.tokenizer.eos_token_id, *declared] if i is not None))
        self._schemas = SchemaCompiler(self.tokenizer, model.config.get_text_config().vocab_size, self._eos_ids)

    @property
    def model(self) -> PreTrainedModel:
        """The weights, loaded on first use: a run answered entirely from the cache never loads them."""
        if self._model is None:
            if self._loader is None:
                raise RuntimeError("this backend was closed")
            self._attach(self._loader())
        return self._model

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def context_window(self) -> int:
        return self._context_window

    def _prompt(self, messages: Sequence[Message]) -> str:
        return self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return len(self.tokenizer(self._prompt(messages), add_special_tokens=False)["input_ids"])

    def stream(self, requests: Sequence[ChatRequest]) -> Iterator[tuple[int, Completion]]:
        """Yield each batch's completions as soon as the batch is done."""
        prompts = [self._prompt(request.messages) for request in requests]
        lengths = [len(self.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
        groups: dict[GenerationParams, list[int]] = defaultdict(list)
        for index, request in enumerate(requests):
            budget = lengths[index] + request.params.max_new_tokens
            if budget > self.context_window:
                yield (
                    index,
                    Completion.failure(
                        "context_window",
                        f"prompt of {lengths[index]} tokens + max_new_tokens {request.params.max_new_tokens} "
                        f"exceeds the context window of {self.context_window}",
                        prompt_tokens=lengths[index],
                    ),
                )
            else:
                groups[request.params].append(index)
        batches = []
        for params, indices in groups.items():
            indices.sort(key=lambda i: lengths[i], reverse=True)  # longest first: memory trouble shows early
            start = 0
            while start < len(indices):  # a batch pads to its first (longest) prompt: cap its padded tokens
                longest = lengths[indices[start]] + params.max_new_tokens
                size = min(self.batch_size, max(1, (self.max_batch_tokens or longest) // longest))
                batches.append((params, indices[start : start + size]))
                start += size
        with tqdm(total=sum(len(b) for _, b in batches), desc="generate", unit="req", disable=None) as progress:
            for params, batch in batches:
                yield from self._generate_batch(params, batch, prompts, requests)
                progress.update(len(batch))

    def _generate_batch(
        self, params: GenerationParams, batch: list[int], prompts: list[str], requests: Sequence[ChatRequest]
    ) -> Iterator[tuple[int, Completion]]:
        try:
            yield from self._run_batch(params, batch, prompts, requests)
        except torch.cuda.OutOfMemoryError as error:
            torch.cuda.empty_cache()
            if len(batch) == 1:
                yield batch[0], Completion.failure("out_of_memory", f"out of memory: {error}")
                return
            half = len(batch) // 2  # retry in halves until one request alone does not fit
            yield from self._generate_batch(params, batch[:half], prompts, requests)
            yield from self._generate_batch(params, batch[half:], prompts, requests)

    def _run_batch(
        self, params: GenerationParams, batch: list[int], prompts: list[str], requests: Sequence[ChatRequest]
    ) -> Iterator[tuple[int, Completion]]:
        start = time.perf_counter()
        inputs = self.tokenizer(
            [prompts[i] for i in batch], return_tensors="pt", padding=True, add_special_tokens=False
        ).to(self.model.device)
        schemas = [requests[i].json_schema for i in batch]
        processors = [self._schemas.logits_processor(schemas)] if any(s is not None for s in schemas) else None
        sampling = {"do_sample": True, "temperature": params.temperature, "top_p": params.top_p}
        with _seeded(params.seed if params.temperature > 0 else None, self.model.device):
            output = self.model.generate(
                **inputs,
                max_new_tokens=params.max_new_tokens,
                **(sampling if params.temperature > 0 else {"do_sample": False, "temperature": None, "top_p": None}),
                top_k=None,
                stop_strings=list(params.stop) or None,
                tokenizer=self.tokenizer if params.stop else None,
                logits_processor=processors,
                eos_token_id=self._eos_ids,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        latency = time.perf_counter() - start
        generated = output[:, inputs["input_ids"].shape[1] :].tolist()
        for row, index in enumerate(batch):
            tokens = _until_eos(generated[row], self._eos_ids)
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            cut = _cut_at_stop(text, params.stop)
            ended = (bool(tokens) and tokens[-1] in self._eos_ids) or any(stop in text for stop in params.stop)
            finish_reason = "stop" if ended or len(tokens) < params.max_new_tokens else "length"
            fields: dict[str, Any] = {
                "prompt_tokens": int(inputs["attention_mask"][row].sum()),
                "completion_tokens": len(tokens),
                "latency_s": latency,
                "finish_reason": finish_reason,
            }
            if finish_reason == "length" and requests[index].json_schema is not None:
                completion = Completion.failure(
                    "truncated",
                    f"structured output cut at max_new_tokens={params.max_new_tokens} before its end",
                    raw=text,
                    **fields,
                )
            else:
                completion = Completion(text=cut, **fields)
            yield index, completion

    def close(self) -> None:
        self._model = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


@contextlib.contextmanager
def _seeded(seed: int | None, device: torch.device) -> Iterator[None]:
    """Sample from ``torch.manual_seed(seed)`` without touching the caller's random state (nothing when None)."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def _until_eos(tokens: list[int], eos_ids: Sequence[int]) -> list[int]:
    """Generated tokens up to and including the first stop token (the padding after it is not generated)."""
    for position, token in enumerate(tokens):
        if token in eos_ids:
            return tokens[: position + 1]
    return tokens


def _cut_at_stop(text: str, stop: Sequence[str]) -> str:
    cuts = [text.index(s) for s in stop if s in text]
    return text[: min(cuts)] if cuts else text
