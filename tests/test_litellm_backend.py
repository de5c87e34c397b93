"""LiteLLMBackend against a real loopback HTTP server (an OpenAI-style fixture answering scripted statuses)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from functools import partial

import httpx
import litellm
import pytest
from helpers import InFlight, ask

from bioqa.models.base import ChatRequest, GenerationParams
from bioqa.models.litellm_backend import LiteLLMBackend, retry_after_s
from bioqa.models.serve import free_port

FAST = {"backoff_base_s": 0.01, "backoff_max_s": 0.05, "timeout_s": 5, "context_window": 4096}


class ScriptedChat:
    """An OpenAI-style endpoint: answers chat completions with the next scripted status (then 200s) and records
    every request body; ``api_base`` is where the ``scripted`` fixture serves it."""

    def __init__(self, script: list[int]):
        self.script = list(script)
        self.bodies: list[dict] = []
        self.lock = threading.Lock()
        self.api_base = ""

    def respond(self, path: str, body: dict, headers) -> tuple[int, dict]:
        with self.lock:
            self.bodies.append(body)
            status = self.script.pop(0) if self.script else 200
        if status != 200:
            return status, {"error": {"message": f"scripted {status}", "type": "x", "code": str(status)}}
        user = body["messages"][-1]["content"]
        return status, {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": user}}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
        }


@pytest.fixture
def scripted(json_server) -> Callable[[list[int]], ScriptedChat]:
    def start(script: list[int]) -> ScriptedChat:
        server = ScriptedChat(script)
        server.api_base = f"{json_server(server.respond)}/v1"
        return server

    return start


ask = partial(ask, max_new_tokens=5)


def test_rate_limited_twice_then_answered(scripted):
    server = scripted([429, 429])
    backend = LiteLLMBackend("openai/fixture", api_base=server.api_base, max_retries=3, **FAST)
    (completion,) = backend.generate([ask("hello")])
    assert completion.ok, completion.error
    assert completion.text == "hello" and completion.finish_reason == "stop" and completion.error_kind is None
    assert (completion.prompt_tokens, completion.completion_tokens) == (11, 3)
    assert completion.cost_usd == 0.0  # not in LiteLLM's cost map
    assert len(server.bodies) == 3


def test_retries_are_bounded_and_end_in_an_error_completion(scripted):
    server = scripted([429] * 10)
    backend = LiteLLMBackend("openai/fixture", api_base=server.api_base, max_retries=2, **FAST)
    completions = backend.generate([ask("a"), ask("b")])
    assert all(c.error and "RateLimitError after 3 attempt(s)" in c.error and c.text == "" for c in completions)
    assert [c.error_kind for c in completions] == ["rate_limit", "rate_limit"]
    assert len(server.bodies) == 6


def test_bad_request_is_not_retried(scripted):
    server = scripted([400])
    backend = LiteLLMBackend("openai/fixture", api_base=server.api_base, max_retries=3, **FAST)
    (completion,) = backend.generate([ask("a")])
    assert completion.error and "BadRequestError after 1 attempt(s)" in completion.error
    assert completion.error_kind == "bad_request" and completion.raw and "scripted 400" in completion.raw
    assert len(server.bodies) == 1


def test_server_errors_are_retried(scripted):
    server = scripted([500, 503])
    backend = LiteLLMBackend("openai/fixture", api_base=server.api_base, max_retries=2, **FAST)
    assert backend.generate([ask("a")])[0].ok
    assert len(server.bodies) == 3


def test_order_kept_under_concurrency(scripted):
    server = scripted([429, 500, 429])
    backend = LiteLLMBackend("openai/fixture", api_base=server.api_base, concurrency=4, max_retries=3, **FAST)
    texts = [f"question {i}" for i in range(12)]
    assert [c.text for c in backend.generate([ask(t) for t in texts])] == texts


@pytest.mark.parametrize(("concurrency", "requests", "peak"), [(1, 5, 1), (4, 12, 4), (8, 3, 3)])
def test_requests_overlap_up_to_concurrency(json_server, concurrency, requests, peak):
    """``concurrency`` requests are in flight at once at the server (never more), and replies keep request order."""
    server = ScriptedChat([])
    in_flight = InFlight(server.respond, expected=peak)
    backend = LiteLLMBackend("openai/fixture", api_base=f"{json_server(in_flight)}/v1", concurrency=concurrency, **FAST)
    texts = [f"question {i}" for i in range(requests)]
    assert [c.text for c in backend.generate([ask(t) for t in texts])] == texts
    assert in_flight.peak == peak


def test_json_mode_and_request_parameters(scripted):
    server = scripted([])
    schema = {"type": "object", "properties": {"answer": {"enum": ["yes", "no"]}}}
    request = ChatRequest(({"role": "user", "content": "q"},), GenerationParams(7, 0.0, 0.9, ("\n",), 5), schema)
    LiteLLMBackend("openai/fixture", api_base=server.api_base, **FAST).generate([request])
    LiteLLMBackend("openai/fixture", api_base=server.api_base, json_mode=False, **FAST).generate([request])
    with_json, plain = server.bodies
    assert with_json["response_format"] == {"type": "json_object"}  # no schema support known: JSON mode
    assert "response_format" not in plain
    assert with_json["max_tokens"] == 7 and with_json["top_p"] == 0.9 and with_json["stop"] == ["\n"]
    assert with_json["seed"] == 5
    assert with_json["model"] == "fixture"


def test_response_schema_sent_where_supported(scripted, monkeypatch):
    server = scripted([])
    monkeypatch.setenv("BIOQA_TEST_KEY", "sk-test")
    backend = LiteLLMBackend("openai/gpt-4o-2024-08-06", api_base=server.api_base, api_key_env="BIOQA_TEST_KEY")
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    completion = backend.generate([ask("q", json_schema=schema)])[0]
    assert server.bodies[0]["response_format"]["json_schema"]["schema"] == schema
    assert completion.cost_usd > 0  # a known model: priced from the offline cost map
    assert backend.context_window == 128000


def test_dead_port_gives_an_error_completion_quickly():
    backend = LiteLLMBackend("openai/x", api_base=f"http://127.0.0.1:{free_port()}/v1", max_retries=1, **FAST)
    (completion,) = backend.generate([ask("a")])
    assert completion.error and "after 2 attempt(s)" in completion.error and "onnection" in completion.error
    assert completion.error_kind == "connection" and completion.raw is None


def test_missing_api_key_fails_at_construction(monkeypatch):
    monkeypatch.delenv("BIOQA_NO_SUCH_KEY", raising=False)
    with pytest.raises(OSError, match="BIOQA_NO_SUCH_KEY"):
        LiteLLMBackend("gpt-4o", api_key_env="BIOQA_NO_SUCH_KEY")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(OSError, match="OPENAI_API_KEY"):
        LiteLLMBackend("gpt-4o")


def test_unknown_context_window_must_be_given():
    with pytest.raises(ValueError, match="context_window"):
        LiteLLMBackend("openai/some-local-model", api_base="http://127.0.0.1:1/v1")


def test_count_tokens_grows_with_the_messages():
    backend = LiteLLMBackend("openai/x", api_base="http://127.0.0.1:1/v1", context_window=100)
    short = backend.count_tokens([{"role": "user", "content": "gene"}])
    long = backend.count_tokens([{"role": "user", "content": "gene " * 50}])
    assert 0 < short < long


def in_seconds(seconds: float) -> str:
    return format_datetime(datetime.now(timezone.utc) + timedelta(seconds=seconds), usegmt=True)


@pytest.mark.parametrize(
    ("headers", "low", "high"),
    [
        ({"Retry-After": "2"}, 2, 2),
        ({"Retry-After": "1.5"}, 1.5, 1.5),
        ({"Retry-After": "0"}, 0, 0),
        ({"retry-after-ms": "250", "Retry-After": "9"}, 0.25, 0.25),  # the finer header wins
        ({"Retry-After": in_seconds(3600)}, 3000, 3600),  # an HTTP date (built at collection)
        ({"Retry-After": in_seconds(-30)}, 0, 0),  # a date already past: retry now
        ({"Retry-After": "-1"}, None, None),
        ({"Retry-After": "nan"}, None, None),
        ({"Retry-After": "inf"}, None, None),
        ({"Retry-After": "soon"}, None, None),
        ({"Retry-After": ""}, None, None),
        ({}, None, None),
    ],
)
def test_retry_after_header_values(headers, low, high):
    response = httpx.Response(429, headers=headers, request=httpx.Request("POST", "http://127.0.0.1/v1"))
    error = litellm.RateLimitError("slow", llm_provider="openai", model="m", response=response)
    wait = retry_after_s(error)
    assert wait is None if low is None else low <= wait <= high


def test_litellm_prints_nothing_of_its_own_where_the_log_level_is_info(scripted, capfd):
    """Hydra sets the root logger to INFO; LiteLLM's own stream handler then printed a "LiteLLM:INFO" line per call
    on the user's stderr. Its records now take bioqa's handlers (the run's log file; stderr from WARNING, one line)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)
    try:
        server = scripted([429])
        backend = LiteLLMBackend("openai/fixture", api_base=server.api_base, max_retries=2, **FAST)
        (completion,) = backend.generate([ask("hello")])
    finally:
        root.setLevel(level)
    assert completion.ok, completion.error
    out, err = capfd.readouterr()
    assert "LiteLLM" not in out + err
