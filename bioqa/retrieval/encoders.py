"""Sentence encoders for dense retrieval: one sentence-transformers model run three ways, all giving L2-normalised
float32 vectors of the first ``max_seq_length`` word pieces of each text.

* ``torch``: sentence-transformers on torch in fp32 (the reference);
* ``onnx``: the same model (transformer, pooling and normalisation in one graph) exported to ONNX from the local
  weights and run by ONNX Runtime in fp32 — the same vectors to ~1e-6;
* ``onnx-int8``: that export with its MatMul weights quantised to int8 per output channel (ONNX Runtime's dynamic
  quantisation: activations are quantised on the fly); cosine to the fp32 vectors ≥ 0.98 on biomedical text.

The ONNX backends need ``pip install 'bioqa[onnx]'`` (onnxruntime, onnx). Exports are made once, with nothing
downloaded, under ``<export_dir>/<model>-<sha256 of its weights>/`` (written to a temporary file, then renamed); an
unreadable export is made again. Throughput and retrieval quality of each: ``benchmarks/dense_encoding.py``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bioqa.errors import ConfigError
from bioqa.rundir import write_atomically

log = logging.getLogger(__name__)
BACKENDS = ("torch", "onnx", "onnx-int8")
_MAX_POSITIONS = 512  # BERT-family position embeddings (all-MiniLM-L6-v2's too)


@dataclasses.dataclass(frozen=True)
class EncoderSpec:
    """How a dense index encodes text: ``backend`` (torch | onnx | onnx-int8) and the word pieces read per text."""

    backend: str = "torch"
    max_seq_length: int = 256

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"encoder.backend={self.backend!r}: expected torch, onnx or onnx-int8")
        length = self.max_seq_length
        if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= _MAX_POSITIONS:
            raise ConfigError(f"encoder.max_seq_length={length!r}: expected an integer from 1 to {_MAX_POSITIONS}")

    @classmethod
    def of(cls, options: Mapping[str, Any] | EncoderSpec | None) -> EncoderSpec:
        """The spec of a config node (``{backend: onnx-int8, max_seq_length: 128}``; ``None``: the defaults)."""
        if isinstance(options, EncoderSpec):
            return options
        if options is not None and not isinstance(options, Mapping):
            raise ConfigError(f"encoder={options!r}: expected keys backend and max_seq_length (encoder.backend=onnx)")
        options = dict(options or {})
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ConfigError(f"encoder: unknown key {unknown[0]!r} (expected {' or '.join(known)})")
        return cls(**options)

    @property
    def label(self) -> str:
        return f"{self.backend}-{self.max_seq_length}"


class Encoder(Protocol):
    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text, in order."""
        ...


class TorchEncoder:
    """sentence-transformers on torch (fp32)."""

    def __init__(self, model_path: str, max_seq_length: int, device: str = "cpu"):
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(model_path, device=device)
        self.model.max_seq_length = max_seq_length

    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        vectors = self.model.encode(
            list(texts), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return vectors.astype(np.float32)


class OnnxEncoder:
    """The model's ONNX export (fp32 or int8) on ONNX Runtime's CPU provider, with the model's own fast tokenizer."""

    def __init__(self, model_path: str, spec: EncoderSpec, export_dir: str | os.PathLike, threads: int | None = None):
        try:
            import onnxruntime
        except ImportError as err:
            raise ConfigError(f"encoder.backend={spec.backend}: needs onnxruntime: pip install 'bioqa[onnx]'") from err
        from tokenizers import Tokenizer

        self.path = onnx_export(model_path, export_dir, int8=spec.backend == "onnx-int8")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or 0  # 0: ONNX Runtime's default (the physical cores)
        self.session = onnxruntime.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(Path(model_path) / "tokenizer.json"))
        pad = self.tokenizer.padding or {}  # the file's own settings (all-MiniLM-L6-v2's: a fixed 128) are replaced
        self.tokenizer.enable_truncation(spec.max_seq_length)
        self.tokenizer.enable_padding(pad_id=pad.get("pad_id", 0), pad_token=pad.get("pad_token", "[PAD]"))
        self.inputs = [i.name for i in self.session.get_inputs()]

    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))  # like texts together: less padding
        out = np.zeros((len(texts), self.session.get_outputs()[0].shape[-1]), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            batch = self.tokenizer.encode_batch([texts[i] for i in rows])
            arrays = {
                "input_ids": np.array([b.ids for b in batch], dtype=np.int64),
                "attention_mask": np.array([b.attention_mask for b in batch], dtype=np.int64),
                "token_type_ids": np.array([b.type_ids for b in batch], dtype=np.int64),
            }
            out[rows] = self.session.run(None, {name: arrays[name] for name in self.inputs})[0]
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def load_encoder(
    model_path: str,
    spec: EncoderSpec,
    device: str = "cpu",
    export_dir: str | os.PathLike | None = None,
    threads: int | None = None,
) -> Encoder:
    """The encoder of ``spec`` (``export_dir``: where ONNX exports are kept; ``threads``: ONNX Runtime's)."""
    if spec.backend == "torch":
        return TorchEncoder(model_path, spec.max_seq_length, device)
    if device != "cpu":
        raise ConfigError(f"encoder.backend={spec.backend} runs on the CPU: use encoder.backend=torch on {device}")
    if export_dir is None:
        raise ConfigError(f"encoder.backend={spec.backend}: no export_dir to keep the ONNX export in")
    return OnnxEncoder(model_path, spec, export_dir, threads)


@functools.lru_cache(maxsize=1)
def _weights_digest(model_path: str) -> str:
    digest = hashlib.sha256()
    for weights in sorted(Path(model_path).glob("*.safetensors")) or sorted(Path(model_path).glob("*.bin")):
        with weights.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def onnx_export(model_path: str, export_dir: str | os.PathLike, int8: bool = False) -> Path:
    """The ONNX file of the model in ``model_path`` (fp32, or int8-quantised), exported once into ``export_dir``."""
    folder = Path(export_dir) / f"{Path(model_path).name}-{_weights_digest(model_path)}"
    fp32 = folder / "model.onnx"
    if not _readable(fp32):
        write_atomically(fp32, lambda tmp: _export_fp32(model_path, tmp))
    if not int8:
        return fp32
    quantised = folder / "model-int8.onnx"
    if not _readable(quantised):
        write_atomically(quantised, lambda tmp: _quantise(fp32, tmp))
    return quantised


def _readable(path: Path) -> bool:
    """Whether ``path`` is an ONNX model that loads; an unreadable one is removed (and made again)."""
    if not path.is_file():
        return False
    import onnx

    try:
        onnx.checker.check_model(str(path))
        return True
    except Exception as err:  # truncated or corrupt: onnx raises protobuf's and its own errors alike
        log.warning("unreadable ONNX export %s (%s): exporting it again", path, str(err).splitlines()[0][:200])
        path.unlink()
        return False


def _export_fp32(model_path: str, target: Path) -> None:
    """Trace transformer + pooling + normalisation of the sentence-transformers model into one ONNX graph."""
    import torch
    from sentence_transformers import SentenceTransformer

    log.info("exporting %s to ONNX (once): %s", model_path, target.parent)
    model = SentenceTransformer(model_path, device="cpu", model_kwargs={"attn_implementation": "eager"})
    sample = model.tokenize(["an example sentence", "a second, longer example sentence to export with"])
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]

    class Sentence(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *tensors):
            return self.model(dict(zip(names, tensors, strict=True)))["sentence_embedding"]

    axes = {name: {0: "batch", 1: "tokens"} for name in names}
    with torch.no_grad():
        torch.onnx.export(
            Sentence().eval(),
            tuple(sample[n] for n in names),
            str(target),
            dynamo=False,
            input_names=names,
            output_names=["embedding"],
            dynamic_axes={**axes, "embedding": {0: "batch"}},
            opset_version=17,
        )


def _quantise(fp32: Path, target: Path) -> None:
    """int8 MatMul weights, one scale per output channel (per-tensor scales lose too much: cosine ~0.83 on text)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(fp32), str(target), op_types_to_quantize=["MatMul"], per_channel=True, weight_type=QuantType.QInt8
    )
