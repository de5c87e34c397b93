"""Plain helpers shared by the test modules (``from helpers import ...``); the fixtures built on them are in
conftest.py."""

from __future__ import annotations

import importlib.util
import math
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from bioqa.evaluation.official import OfficialResult
from bioqa.evaluation.registry import iter_metrics
from bioqa.models import Backend, ChatRequest, Completion, GenerationParams
from bioqa.runs import register_resolvers

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"
#: How often a loopback test server's loop looks for ``shutdown``: at socketserver's 0.5 s default, every test with a
#: server spent 0.5 s in teardown waiting for the loop to notice.
POLL_S = 0.01

#: Chats for the training tests: a system prompt and a JSON answer, a yes/no answer, a free-text answer.
CHATS = [
    [
        {"role": "system", "content": "You are a biomedical expert."},
        {"role": "user", "content": "Which organ secretes insulin?"},
        {"role": "assistant", "content": '{"entities": ["pancreas"]}'},
    ],
    [
        {"role": "user", "content": "Is the liver an organ? Answer yes or no."},
        {"role": "assistant", "content": "yes"},
    ],
    [
        {"role": "user", "content": "Name two hormones of the pancreas."},
        {"role": "assistant", "content": "insulin and glucagon"},
    ],
]


def compose_config(
    config_name: str | None = None,
    overrides: Sequence[str] = (),
    return_hydra_config: bool = False,
    config_dir: Path = CONF,
) -> DictConfig:
    """The real configs composed as the entry points compose them (``config_name=None``: only the groups the
    overrides add, e.g. ``["+prompt=1shot"]``); bioqa's resolvers are registered first."""
    register_resolvers()
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides), return_hydra_config=return_hydra_config)


@cache
def script(name: str) -> ModuleType:
    """``infer.py``, ``train.py`` or ``evaluate.py`` imported as a module (its ``main`` is the real entry point)."""
    spec = importlib.util.spec_from_file_location(f"bioqa_script_{name}", ROOT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(name: str, *argv: str) -> int:
    """``python <name>.py *argv`` in this process: Hydra parses the command line, composes ``conf/``, creates the run
    (or, with ``-m``, sweep) directory and writes ``.hydra/`` exactly as from a shell; returns the exit code. Output
    goes to ``sys.stdout``/``sys.stderr`` (``capsys``)."""
    GlobalHydra.instance().clear()
    with mock.patch.object(sys, "argv", [f"{name}.py", *argv]):
        try:
            script(name).main()
        except SystemExit as exited:
            return 0 if exited.code is None else exited.code if isinstance(exited.code, int) else 1
        finally:
            GlobalHydra.instance().clear()
    return 0


def in_tmp(cfg: DictConfig, tmp_path: Path) -> DictConfig:
    """A copy of ``cfg`` (composed with ``return_hydra_config=True``) whose run, log and cache directories lie under
    ``tmp_path``; Hydra's runtime config is set, as ``@hydra.main`` would, so ``${hydra:...}`` resolves."""
    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.paths.root_dir = str(ROOT)
        cfg.paths.output_dir = str(tmp_path / "run")
        cfg.paths.log_dir = str(tmp_path / "logs")
        cfg.paths.cache_dir = str(tmp_path / "cache")
        cfg.hydra.runtime.output_dir = str(tmp_path / "run")
        cfg.hydra.runtime.cwd = str(ROOT)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    return cfg


def ask(text: str, max_new_tokens: int = 24, json_schema: dict | None = None, **params) -> ChatRequest:
    """A one-message chat request (``params``: further ``GenerationParams`` fields, e.g. ``temperature``)."""
    return ChatRequest(
        ({"role": "user", "content": text},), GenerationParams(max_new_tokens=max_new_tokens, **params), json_schema
    )


def chat(content: Any, finish_reason: str = "stop") -> dict:
    """An OpenAI chat.completion payload with one choice."""
    message = {"role": "assistant", "content": content}
    return {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "fixture",
        "choices": [{"index": 0, "finish_reason": finish_reason, "message": message}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13},
    }


class InFlight:
    """A loopback server's responder that counts requests in flight: ``peak`` is the most it held at once. Every
    request is held until ``expected`` were in flight together (at most ``hold_s``), so a client that sends them
    one at a time shows ``peak == 1`` (after waiting ``hold_s`` per request), one that overlaps them ``expected``."""

    def __init__(self, respond: Callable[[str, Any, Any], tuple], expected: int, hold_s: float = 2.0):
        self.respond, self.expected, self.hold_s = respond, expected, hold_s
        self.in_flight = self.peak = 0
        self.condition = threading.Condition()

    def __call__(self, path: str, body: Any, headers: Any) -> tuple:
        with self.condition:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            self.condition.notify_all()
            self.condition.wait_for(lambda: self.peak >= self.expected, timeout=self.hold_s)
        try:
            return self.respond(path, body, headers)
        finally:
            with self.condition:
                self.in_flight -= 1


Reply = Callable[[ChatRequest], Completion]


def yes(request: ChatRequest) -> Completion:
    return Completion(text='{"answer": "yes"}', prompt_tokens=10, completion_tokens=3)


class ScriptedBackend(Backend):
    """The test double for pipeline tests. ``reply`` answers the last user message: a function of its text
    (``None``: a failed request) or ``{substring: reply}`` (first match; no match: an empty reply); or ``complete``
    makes the whole completion of a request (default: ``yes``). Every request is recorded (``requests``; per
    ``generate`` call in ``calls``); ``crash_after``: raise after yielding that many completions in total (a backend
    process dying mid-batch); ``reverse``: yield each batch's completions last-to-first (backends may answer in any
    order); ``name``: the model id is ``scripted:<name>``."""

    kind = "scripted"

    def __init__(
        self,
        reply: Callable[[str], str | None] | dict[str, str] | None = None,
        *,
        complete: Reply = yes,
        crash_after: int | None = None,
        reverse: bool = False,
        name: str = "s",
    ):
        if reply is not None:
            complete = _text_replies(reply)
        self.complete, self.crash_after, self.reverse, self.name = complete, crash_after, reverse, name
        self.requests: list[ChatRequest] = []
        self.calls: list[list[ChatRequest]] = []

    @property
    def model_id(self) -> str:
        return f"scripted:{self.name}"

    @property
    def context_window(self) -> int:
        return 8192

    def count_tokens(self, messages) -> int:
        return sum(len(m["content"]) for m in messages) // 4

    def stream(self, requests: Sequence[ChatRequest]) -> Iterator[tuple[int, Completion]]:
        self.calls.append(list(requests))
        order = range(len(requests) - 1, -1, -1) if self.reverse else range(len(requests))
        for index in order:
            if self.crash_after is not None and len(self.requests) >= self.crash_after:
                raise RuntimeError("backend died")
            self.requests.append(requests[index])
            yield index, self.complete(requests[index])


def assert_registry_is_the_jar(result: OfficialResult) -> None:
    """The registry's specs, computed from the per-question rows (what bioqa reports), give the jar port's numbers
    bit for bit (NaN where it is NaN)."""
    computed = {s.name: s.compute(result.per_question) for s in iter_metrics(phase=result.phase)}
    assert list(computed) == list(result.metrics)
    wrong = {k: (v, result.metrics[k]) for k, v in computed.items() if not _same(v, result.metrics[k])}
    assert not wrong, wrong


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def _text_replies(reply: Callable[[str], str | None] | dict[str, str]) -> Reply:
    """``ScriptedBackend``'s text ``reply`` as a function making the completion of a request."""
    if isinstance(reply, dict):
        replies = dict(reply)
        reply = lambda user: next((v for k, v in replies.items() if k in user), "")  # noqa: E731

    def complete(request: ChatRequest) -> Completion:
        text = reply(request.messages[-1]["content"])
        return Completion(text="", error="scripted failure") if text is None else Completion(text=text)

    return complete
