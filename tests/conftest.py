"""Shared fixtures: the BioASQ data beside the checkout (tests using it skip cleanly when it is absent), the real
``infer``/``train``/``evaluate`` configs composed with tiny models and paths under ``tmp_path``
(lightning-hydra-template style), the tiny and SmolLM2 tokenizers, a tantivy index of the demo corpus, the demo
questions, one torch thread for the modules that run tiny models, and loopback HTTP servers answering JSON.
Plain helpers (``compose_config``, ``in_tmp``, ``ask``, ``ScriptedBackend``) are in helpers.py."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from helpers import POLL_S, compose_config, in_tmp
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("BIOQA_SHARED", ROOT.parent / "shared" / "bioasq"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared/bioasq`` (golden/, fewshot/, oracle/, corpus/); skips the test when absent."""
    if not (SHARED / "golden").is_dir():
        pytest.skip(f"BioASQ shared data not found at {SHARED}")
    return SHARED


#: Overrides that make each entry point's config small: tiny random models, the embedded demo batch, no tracker
#: (``debug=smoke``: conf/debug/smoke.yaml).
INFER_OVERRIDES = (
    "debug=smoke",
    "data.limit=3",
    "model.backend.hidden_size=32",
    "model.backend.num_hidden_layers=1",
    "answering.max_new_tokens={exact: 24, ideal: 24}",
)
TRAIN_OVERRIDES = ("model=tiny-mixtral", "prompt=0shot", "logger=csv", "trainer.max_steps=2")
EVALUATE_OVERRIDES = ("golden=${demo_golden:}", "bootstrap=0")


@pytest.fixture(scope="session")
def cfg_infer_global() -> DictConfig:
    return compose_config("infer", INFER_OVERRIDES, return_hydra_config=True)


@pytest.fixture(scope="session")
def cfg_train_global() -> DictConfig:
    return compose_config("train", TRAIN_OVERRIDES, return_hydra_config=True)


@pytest.fixture(scope="session")
def cfg_evaluate_global() -> DictConfig:
    return compose_config("evaluate", EVALUATE_OVERRIDES, return_hydra_config=True)


@pytest.fixture
def cfg_infer(cfg_infer_global: DictConfig, tmp_path: Path) -> Iterator[DictConfig]:
    """``conf/infer.yaml`` with a tiny random llama (1 layer, bioqa's tiny tokenizer), 0-shot
    prompts, 3 demo questions, answers of at most 24 tokens, paths under ``tmp_path``."""
    yield in_tmp(cfg_infer_global, tmp_path)
    GlobalHydra.instance().clear()


@pytest.fixture
def cfg_train(cfg_train_global: DictConfig, tmp_path: Path) -> Iterator[DictConfig]:
    """``conf/train.yaml`` with a tiny random 4-bit Mixtral, 0-shot examples, 2 steps, paths under ``tmp_path``."""
    yield in_tmp(cfg_train_global, tmp_path)
    GlobalHydra.instance().clear()


@pytest.fixture
def cfg_evaluate(cfg_evaluate_global: DictConfig, tmp_path: Path) -> Iterator[DictConfig]:
    """``conf/evaluate.yaml`` scoring the demo golden file against itself (``system``: a copy under ``tmp_path``)."""
    from bioqa.resources import demo_golden_path

    cfg = in_tmp(cfg_evaluate_global, tmp_path)
    system = tmp_path / "system.json"
    system.write_text(demo_golden_path().read_text(encoding="utf-8"), encoding="utf-8")
    with open_dict(cfg):
        cfg.system = str(system)
    yield cfg
    GlobalHydra.instance().clear()


@pytest.fixture(scope="session")
def tokenizer_dir() -> Path:
    """bioqa's tiny tokenizer (a 2048-token byte-level BPE with the ChatML template): what the tiny random models
    use, so no test parses the SmolLM2 GGUF unless it tests SmolLM2."""
    from bioqa.resources import tiny_tokenizer_dir

    return tiny_tokenizer_dir()


@pytest.fixture(scope="session")
def tokenizer(tokenizer_dir: Path):
    """The tiny tokenizer, loaded once."""
    from bioqa.models.hf import load_tokenizer

    return load_tokenizer(tokenizer_dir)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer_dir: Path) -> Path:
    """A tiny random llama (hidden 64, 2 layers, seed 0) saved as a plain transformers model directory, once."""
    from bioqa.models.hf import save_random_model

    return save_random_model(tmp_path_factory.mktemp("tiny") / "llama", tokenizer_dir, seed=0)


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    """The embedded SmolLM2 tokenizer, parsed from its GGUF file (seconds): for tests of the real SmolLM2."""
    from bioqa.models.embedded import SMOLLM2_GGUF, smollm2_dir
    from bioqa.models.hf import load_tokenizer

    return load_tokenizer(smollm2_dir(), SMOLLM2_GGUF)


@pytest.fixture(scope="session")
def smollm2_config():
    """The embedded SmolLM2's transformers config, parsed from its GGUF file (seconds) once."""
    from transformers import AutoConfig

    from bioqa.models.embedded import SMOLLM2_GGUF, smollm2_dir

    return AutoConfig.from_pretrained(smollm2_dir(), gguf_file=SMOLLM2_GGUF)


@pytest.fixture
def smollm2_parsed_once(monkeypatch, smollm2_tokenizer, smollm2_config) -> None:
    """Backends built for ``model=smollm2`` get copies of the session's one parse of the SmolLM2 GGUF (tokenizer and
    config): for tests that build SmolLM2 backends, e.g. to plan a sweep, but are not about loading it."""
    import copy

    from bioqa.models import hf
    from bioqa.models.embedded import SMOLLM2_GGUF, smollm2_dir

    load_tokenizer, load_config = hf.load_tokenizer, hf.AutoConfig.from_pretrained

    def smollm2(model_path, gguf_file) -> bool:
        return gguf_file == SMOLLM2_GGUF and Path(model_path) == smollm2_dir()

    def tokenizer_once(model_path, gguf_file=None, **kwargs):
        return (
            copy.deepcopy(smollm2_tokenizer)
            if smollm2(model_path, gguf_file)
            else load_tokenizer(model_path, gguf_file, **kwargs)
        )

    def config_once(model_path, gguf_file=None, **kwargs):
        return (
            copy.deepcopy(smollm2_config)
            if smollm2(model_path, gguf_file)
            else load_config(model_path, gguf_file=gguf_file, **kwargs)
        )

    monkeypatch.setattr(hf, "load_tokenizer", tokenizer_once)
    monkeypatch.setattr(hf.AutoConfig, "from_pretrained", config_once)


@pytest.fixture(scope="session")
def demo_index(tmp_path_factory):
    """A real tantivy index of the embedded demo corpus (41 abstracts)."""
    from bioqa.resources import demo_corpus_path
    from bioqa.retrieval import TantivyIndex

    return TantivyIndex(demo_corpus_path(), tmp_path_factory.mktemp("tantivy"), show_progress=False)


@pytest.fixture(scope="session")
def demo_questions():
    """The embedded demo batch (16 questions, all four types, with golden answers and snippets)."""
    from bioqa.data import load_questions
    from bioqa.resources import demo_golden_path

    return load_questions(demo_golden_path())


@pytest.fixture(scope="module")
def one_torch_thread():
    """The CPU is shared: tiny models run several times faster on one thread than on oversubscribed cores.

    Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``; the count is restored after
    the module."""
    import torch  # here, so that collecting the modules that never touch torch does not import it

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


#: ``respond(path, JSON body, headers) -> (HTTP status, payload)`` or ``(status, payload, extra headers)``: what a
#: loopback server answers to a POST (a GET: ``path`` with its query string, body ``None``). A ``bytes`` payload is
#: sent as it is (a broken server), anything else as JSON; a responder that sleeps delays its answer (a hanging
#: server).
Responder = Callable[[str, Any, Message], tuple[int, Any] | tuple[int, Any, dict[str, str]]]


class JSONServer(ThreadingHTTPServer):
    """Answers every POST (a JSON body) and GET with ``respond``'s status, payload and headers."""

    def __init__(self, respond: Responder):
        self.respond = respond
        super().__init__(("127.0.0.1", 0), JSONHandler)


class JSONHandler(BaseHTTPRequestHandler):
    server: JSONServer

    def do_POST(self):
        self.answer(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))

    def do_GET(self):
        self.answer(None)

    def answer(self, body: Any) -> None:
        status, payload, *extra = self.server.respond(self.path, body, self.headers)
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up waiting (timeouts)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (extra[0] if extra else {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def json_server() -> Iterator[Callable[[Responder], str]]:
    """``json_server(respond)`` starts a real loopback HTTP server and returns its base URL
    (``http://127.0.0.1:PORT``); every server started is shut down after the test."""
    servers: list[JSONServer] = []

    def start(respond: Responder) -> str:
        server = JSONServer(respond)
        threading.Thread(target=server.serve_forever, args=(POLL_S,), daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
