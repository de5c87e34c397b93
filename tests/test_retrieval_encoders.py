"""The dense encoders (torch, ONNX Runtime fp32 and int8) on a tiny random BERT sentence model built in tmp_path, and
on the packaged all-MiniLM-L6-v2 (slow); the ONNX export cache; the encoder option from config to run identity."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from helpers import compose_config
from hydra.utils import instantiate
from test_run_identity import Backends, run

from bioqa.errors import ConfigError, RunConflictError
from bioqa.resources import demo_corpus_path
from bioqa.retrieval import TantivyIndex
from bioqa.retrieval import encoders as encoders_module
from bioqa.retrieval.base import read_corpus
from bioqa.retrieval.dense import DenseIndex, _packaged_minilm, document_text
from bioqa.retrieval.encoders import EncoderSpec, load_encoder, onnx_export

pytest.importorskip("onnxruntime")
ROOT = Path(__file__).resolve().parent.parent
TEXTS = [*[document_text(d["title"], d["abstract"]) for d in read_corpus(demo_corpus_path())][:12], "p53", ""]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    """A 2-layer, 32-wide BERT with the packaged model's tokenizer, mean pooling and normalisation (random weights)."""
    import shutil

    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny") / "tiny-bert"
    bert = folder / "bert"
    torch.manual_seed(0)
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    BertModel(config).save_pretrained(bert)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(Path(_packaged_minilm()) / name, bert / name)
    transformer = models.Transformer(str(bert), max_seq_length=256)
    modules = [transformer, models.Pooling(32, "mean"), models.Normalize()]
    SentenceTransformer(modules=modules, device="cpu").save(str(folder))
    return str(folder)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1)


# int8: activations are quantised per batch (their range), so another batching moves a vector by ~1e-4
@pytest.mark.parametrize(("backend", "min_cosine", "atol"), [("onnx", 0.9999, 1e-5), ("onnx-int8", 0.95, 1e-3)])
def test_onnx_encoders_give_the_torch_vectors(tiny_model, tmp_path, backend, min_cosine, atol):
    reference = load_encoder(tiny_model, EncoderSpec("torch", 64)).encode(TEXTS, 4)
    vectors = load_encoder(tiny_model, EncoderSpec(backend, 64), export_dir=tmp_path).encode(TEXTS, 4)
    assert vectors.shape == reference.shape == (len(TEXTS), 32) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert cosines(vectors, reference).min() >= min_cosine  # same tokens, same order, same pooling
    shuffled = load_encoder(tiny_model, EncoderSpec(backend, 64), export_dir=tmp_path).encode(TEXTS[::-1], 5)
    assert np.allclose(shuffled[::-1], vectors, atol=atol)  # the batching never mixes rows up


def test_max_seq_length_cuts_the_text(tiny_model, tmp_path):
    long = [f"{TEXTS[0]} {TEXTS[1]} {TEXTS[2]}"]
    onnx = {n: load_encoder(tiny_model, EncoderSpec("onnx", n), export_dir=tmp_path).encode(long, 1) for n in (8, 256)}
    torch = load_encoder(tiny_model, EncoderSpec("torch", 8)).encode(long, 1)
    assert cosines(onnx[8], torch).min() >= 0.9999 and cosines(onnx[8], onnx[256]).min() < 0.99


def test_the_export_is_made_once_and_an_unreadable_one_again(tiny_model, tmp_path, monkeypatch, caplog):
    quantised = onnx_export(tiny_model, tmp_path, int8=True)
    fp32 = quantised.with_name("model.onnx")
    assert quantised.parent.parent == tmp_path and fp32.is_file() and quantised.stat().st_size < fp32.stat().st_size
    assert sorted(p.name for p in quantised.parent.iterdir()) == ["model-int8.onnx", "model.onnx"]  # no temp files
    made = {"fp32": 0, "int8": 0}
    export, quantise = encoders_module._export_fp32, encoders_module._quantise
    monkeypatch.setattr(encoders_module, "_export_fp32", lambda *a: made.update(fp32=made["fp32"] + 1) or export(*a))
    monkeypatch.setattr(encoders_module, "_quantise", lambda *a: made.update(int8=made["int8"] + 1) or quantise(*a))
    assert onnx_export(tiny_model, tmp_path, int8=True) == quantised and made == {"fp32": 0, "int8": 0}

    fp32.write_bytes(fp32.read_bytes()[:1000])  # truncated (a killed export, a full disk)
    quantised.write_bytes(b"not an onnx model")
    with caplog.at_level(logging.WARNING):
        again = load_encoder(tiny_model, EncoderSpec("onnx-int8", 64), export_dir=tmp_path)
    assert made == {"fp32": 1, "int8": 1} and "unreadable ONNX export" in caplog.text
    assert again.encode(TEXTS[:2], 2).shape == (2, 32)
    fp32.unlink()  # missing: made again
    assert onnx_export(tiny_model, tmp_path) == fp32 and fp32.is_file() and made["fp32"] == 2


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"backend": "tensorrt"}, "encoder.backend='tensorrt': expected torch, onnx or onnx-int8"),
        ({"backend": None}, "encoder.backend=None: expected"),
        ({"max_seq_length": 0}, "encoder.max_seq_length=0: expected an integer from 1 to 512"),
        ({"max_seq_length": 513}, "encoder.max_seq_length=513"),
        ({"max_seq_length": "128"}, "encoder.max_seq_length='128'"),
        ({"max_seq_length": 128.0}, "encoder.max_seq_length=128.0"),
        ({"max_seq_length": True}, "encoder.max_seq_length=True"),
        ({"precision": "int8"}, "encoder: unknown key 'precision' (expected backend or max_seq_length)"),
        ("onnx", "encoder='onnx': expected keys backend and max_seq_length"),
    ],
)
def test_bad_encoder_options_are_one_line_errors(options, error):
    with pytest.raises(ConfigError) as raised:
        EncoderSpec.of(options)
    assert str(raised.value).startswith(error) and "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda model: load_encoder(model, EncoderSpec("onnx"), device="cuda", export_dir="x"), "runs on the CPU"),
        (lambda model: load_encoder(model, EncoderSpec("onnx-int8")), "no export_dir"),
    ],
)
def test_onnx_backends_refuse_what_they_cannot_do(tiny_model, call, error):
    with pytest.raises(ConfigError, match=error):
        call(tiny_model)


def test_onnx_without_onnxruntime_names_the_extra(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)
    with pytest.raises(ConfigError, match=r"needs onnxruntime: pip install 'bioqa\[onnx\]'"):
        load_encoder(tiny_model, EncoderSpec("onnx"), export_dir=tmp_path)


def test_each_encoder_keeps_its_own_vectors(tiny_model, tmp_path):
    docs = TantivyIndex(cache_dir=tmp_path / "tantivy", show_progress=False)
    made = {
        spec: DenseIndex(docs, tiny_model, encoder=spec, show_progress=False)
        for spec in (EncoderSpec("torch", 256), EncoderSpec("onnx-int8", 128))
    }
    for spec, index in made.items():
        assert index.path.name == f"dense-tiny-bert-{spec.label}" and index.num_docs == 41
        info = json.loads((index.path / "info.json").read_text())
        assert info["encoder"] == {"backend": spec.backend, "max_seq_length": spec.max_seq_length}
    assert (Path(docs.path).parent / "onnx").is_dir()  # export_dir's default: beside the index
    int8 = made[EncoderSpec("onnx-int8", 128)]
    assert [h.pmid for h in int8.search(TEXTS[3], 1)] == [int8.pmids[int8.nearest(TEXTS[3], 1)[0][0]]]


def test_the_encoder_option_composes_and_builds(tiny_model, tmp_path):
    for option, node in (("dense", ()), ("hybrid", ("dense",))):
        cfg = compose_config(
            overrides=[
                f"+retrieval={option}",
                "+paths=default",
                "+task_name=test",
                f"paths.root_dir={ROOT}",
                f"paths.cache_dir={tmp_path}",
                f"retrieval.index.{'.'.join((*node, 'model_path'))}={tiny_model}",
                f"retrieval.index.{'.'.join((*node, 'encoder.backend'))}=onnx-int8",
                f"retrieval.index.{'.'.join((*node, 'encoder.max_seq_length'))}=128",
            ]
        )
        index = instantiate(cfg.retrieval.index)
        dense = index.dense if node else index
        assert dense.encoder == EncoderSpec("onnx-int8", 128) and dense.export_dir == str(tmp_path / "onnx")
        assert index.search("cystic fibrosis chloride channel", 3)


def test_runs_are_bound_to_their_encoder(tiny_model, tmp_path, monkeypatch):
    from bioqa.pipeline import app

    monkeypatch.setattr(app, "build_backend", Backends())
    base = ["task=phase_a_plus", "retrieval=dense", f"retrieval.index.model_path={tiny_model}", "task.kinds=[exact]"]
    base += ["retrieval.phase_a.strategy=bm25"]
    run(tmp_path, *base)
    identity = json.loads((tmp_path / "run" / "run_identity.json").read_text())["identity"]
    assert identity["retrieval"]["index"]["encoder"] == {"backend": "torch", "max_seq_length": 256}
    with pytest.raises(RunConflictError, match=r'retrieval\.index\.encoder\.backend: "torch" → "onnx-int8"'):
        run(tmp_path, *base, "retrieval.index.encoder.backend=onnx-int8")


@pytest.mark.slow  # exports all-MiniLM-L6-v2 (seconds alone, a minute on a busy machine)
def test_packaged_minilm_on_onnx_int8_keeps_its_vectors_and_finds_the_golden_document(tmp_path):
    model = _packaged_minilm()
    reference = load_encoder(model, EncoderSpec("torch")).encode(TEXTS, 8)
    for backend, min_cosine in (("onnx", 0.9999), ("onnx-int8", 0.97)):
        vectors = load_encoder(model, EncoderSpec(backend), export_dir=tmp_path).encode(TEXTS, 8)
        assert cosines(vectors, reference)[:-1].min() >= min_cosine  # the empty text aside
    docs = TantivyIndex(cache_dir=tmp_path / "tantivy", show_progress=False)
    index = DenseIndex(docs, encoder={"backend": "onnx-int8"}, export_dir=tmp_path, show_progress=False)
    assert index.search("Which chloride channel is defective in cystic fibrosis?", 1)[0].pmid == "90000005"
