"""Failure semantics of the backends, one table: every misbehaving reply of a real loopback HTTP server ends in a
typed ``Completion`` (or, for refused credentials, ``BackendAuthError``), and only successes reach the cache."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import httpx
import litellm
import pytest
from helpers import chat

from bioqa.errors import BackendAuthError
from bioqa.models.base import ChatRequest, Completion, GenerationParams
from bioqa.models.cache import CachedBackend, CompletionCache, cache_key
from bioqa.models.hf import HFBackend
from bioqa.models.litellm_backend import LiteLLMBackend

FAST = {"backoff_base_s": 0.01, "backoff_max_s": 0.05, "timeout_s": 5, "context_window": 4096}
SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
Reply = tuple[int, Any] | tuple[int, Any, dict[str, str]]


def error(status: int, message: str = "scripted") -> dict:
    return {"error": {"message": message, "type": "x", "code": str(status)}}


OK = (200, chat("fine"))
NO_CHOICES = {**chat("x"), "choices": []}
CONTEXT = {
    "error": {
        "message": "This model's maximum context length is 8 tokens. However, your messages resulted in 20 tokens.",
        "type": "invalid_request_error",
        "code": "context_length_exceeded",
    }
}
NO_MESSAGE = {**chat("x"), "choices": [{"index": 0, "finish_reason": "stop"}]}


class Script:
    """Answers the n-th request with ``replies[n]`` (the last one repeats); records bodies and arrival times."""

    def __init__(self, replies: list[Reply], delay_s: float = 0.0):
        self.replies = replies
        self.delay_s = delay_s
        self.bodies: list[dict] = []
        self.times: list[float] = []
        self.lock = threading.Lock()

    def __call__(self, path: str, body: dict, headers) -> Reply:
        with self.lock:
            self.bodies.append(body)
            self.times.append(time.monotonic())
            reply = self.replies[min(len(self.bodies), len(self.replies)) - 1]
        time.sleep(self.delay_s)
        return reply


@pytest.fixture
def serve(json_server) -> Callable[[Script], str]:
    """``serve(script)`` -> the ``api_base`` of a real loopback server answering with ``script``."""
    return lambda script: f"{json_server(script)}/v1"


def ask(text: str = "q", schema: dict | None = None, **params: Any) -> ChatRequest:
    return ChatRequest(({"role": "user", "content": text},), GenerationParams(max_new_tokens=8, **params), schema)


# (case, server replies, structured?, expected kind (None: ok), finish_reason, text, requests sent, in raw)
CASES = [
    ("empty choices", [(200, NO_CHOICES)], False, "malformed", None, "", 1, '"choices":[]'),
    ("choice without message", [(200, NO_MESSAGE)], False, "malformed", None, "", 1, "Invalid response object"),
    ("null content", [(200, chat(None))], False, "empty", "stop", "", 1, '"content":null'),
    ("empty content", [(200, chat(""))], False, "empty", "stop", "", 1, '"content":""'),
    ("blank content is content", [(200, chat(" \n"))], True, None, "stop", " \n", 1, None),
    ("non-JSON body", [(200, b"<html>proxy error</html>")], False, "malformed", None, "", 1, "Expecting value"),
    ("JSON list body", [(200, [1, 2])], False, "malformed", None, "", 1, "[1, 2]"),
    ("free text cut by length", [(200, chat("The gene is", "length"))], False, None, "length", "The gene is", 1, None),
    ("JSON cut by length", [(200, chat('{"answer": "BR', "length"))], True, "truncated", "length", "", 1, '"BR'),
    ("JSON complete", [(200, chat('{"answer": "BRCA1"}'))], True, None, "stop", '{"answer": "BRCA1"}', 1, None),
    ("500 then success", [(500, error(500)), OK], False, None, "stop", "fine", 2, None),
    ("500 html every time", [(500, b"<html>boom</html>")], False, "server", None, "", 3, "<html>boom</html>"),
    ("503 every time", [(503, error(503, "overloaded"))], False, "server", None, "", 3, "overloaded"),
    ("429 every time", [(429, error(429, "slow down"))], False, "rate_limit", None, "", 3, "slow down"),
    ("400", [(400, error(400, "bad field"))], False, "bad_request", None, "", 1, "bad field"),
    ("404", [(404, error(404, "no such model"))], False, "bad_request", None, "", 1, "no such model"),
    ("context too long", [(400, CONTEXT)], False, "context_window", None, "", 1, "maximum context length"),
    ("Retry-After beyond backoff_max_s", [(429, error(429), {"Retry-After": "30"})], False, "rate_limit", None, "", 1,
     None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("replies", "structured", "kind", "finish_reason", "text", "sent", "raw"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_every_reply_ends_in_a_typed_completion(serve, replies, structured, kind, finish_reason, text, sent, raw):
    script = Script(replies)
    backend = LiteLLMBackend("openai/fixture", api_base=serve(script), max_retries=2, **FAST)
    (completion,) = backend.generate([ask(schema=SCHEMA if structured else None)])
    assert (completion.error_kind, completion.finish_reason, completion.text) == (kind, finish_reason, text)
    assert completion.ok is (kind is None) and (completion.error is None) is (kind is None)
    assert completion.truncated is (kind is None and finish_reason == "length")
    assert len(script.bodies) == sent
    if raw is None:
        assert kind is not None or completion.raw is None
    else:
        assert completion.raw is not None and raw in completion.raw, completion.raw


@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize("key_env", [None, "BIOQA_TEST_KEY"])
def test_refused_credentials_stop_the_run_at_once(serve, monkeypatch, status, key_env):
    monkeypatch.setenv("BIOQA_TEST_KEY", "sk-secret-value")
    script = Script([(status, error(status, "invalid key"))])
    api_base = serve(script)
    backend = LiteLLMBackend(
        "openai/fixture", api_base=api_base, api_key_env=key_env, concurrency=1, max_retries=3, **FAST
    )
    with pytest.raises(BackendAuthError) as refused:
        backend.generate([ask(f"q{i}") for i in range(20)])
    line = str(refused.value)
    assert "\n" not in line and "openai/fixture" in line and api_base in line and f"HTTP {status}" in line
    assert (key_env or "api_key_env") in line and "sk-secret-value" not in line
    time.sleep(0.2)  # nothing further was queued behind the refused request
    assert len(script.bodies) == 1


@pytest.mark.parametrize(
    ("headers", "floor_s"),
    [({"Retry-After": "1"}, 1.0), ({"retry-after-ms": "400"}, 0.4)],
    ids=["Retry-After seconds", "retry-after-ms"],
)
def test_retry_after_is_a_floor(serve, headers, floor_s):
    script = Script([(429, error(429), headers), OK])
    backend = LiteLLMBackend("openai/fixture", api_base=serve(script), max_retries=2, **{**FAST, "backoff_max_s": 5})
    (completion,) = backend.generate([ask()])
    assert completion.ok, completion.error
    waited = script.times[1] - script.times[0]
    assert waited >= floor_s  # the jittered backoff alone (base 0.01 s) would have retried at once


def test_a_hanging_server_times_out_and_is_retried(serve):
    script = Script([OK], delay_s=5.0)
    backend = LiteLLMBackend("openai/fixture", api_base=serve(script), max_retries=1, **{**FAST, "timeout_s": 0.3})
    (completion,) = backend.generate([ask()])  # waiting for the reply would have made it a success
    assert completion.error_kind == "timeout" and "after 2 attempt(s)" in completion.error
    assert len(script.bodies) == 2 and completion.latency_s < 5


class ByContent:
    """Replies by the user message: ``"null"``, ``"empty"``, ``"list"``, ``"html"``, ``"cut"`` (length) or
    ``"500"`` misbehave; anything else is echoed. Counts the requests per message."""

    BAD: ClassVar[dict[str, Reply]] = {
        "null": (200, chat(None)),
        "empty": (200, chat("")),
        "no choices": (200, NO_CHOICES),
        "list": (200, [1, 2]),
        "html": (200, b"<html>"),
        "cut": (200, chat('{"answer": "BR', "length")),
        "500": (500, error(500)),
    }

    def __init__(self):
        self.sent: dict[str, int] = {}
        self.seeds: list[Any] = []
        self.lock = threading.Lock()

    def __call__(self, path: str, body: dict, headers) -> Reply:
        text = body["messages"][-1]["content"]
        with self.lock:
            self.sent[text] = self.sent.get(text, 0) + 1
            self.seeds.append(body.get("seed"))
            count = self.sent[text]
        if text == "long":
            return 200, chat("cut free text", "length")
        return self.BAD.get(text, (200, chat(f"{text} #{count}")))


def test_failures_are_never_cached_successes_are(json_server, tmp_path):
    server = ByContent()
    api_base = f"{json_server(server)}/v1"
    bad = [ask(text, SCHEMA if text == "cut" else None) for text in ByContent.BAD]
    good = [ask("a"), ask("b", SCHEMA), ask("long")]

    def run() -> list[Completion]:
        backend = LiteLLMBackend("openai/fixture", api_base=api_base, max_retries=0, **FAST)
        return CachedBackend(backend, CompletionCache(tmp_path / "cache.sqlite")).generate(bad + good)

    first, second = run(), run()
    kinds = ["empty", "empty", "malformed", "malformed", "malformed", "truncated", "server"]
    assert [c.error_kind for c in first[: len(bad)]] == [c.error_kind for c in second[: len(bad)]] == kinds
    assert all(server.sent[r.messages[0]["content"]] == 2 for r in bad)  # every failure was asked again
    assert [c.text for c in second[len(bad) :]] == ["a #1", "b #1", "cut free text"]
    assert all(c.cached for c in second[len(bad) :]) and not any(c.cached for c in first)
    assert second[-1].finish_reason == "length" and second[-1].truncated  # the cut free text stays flagged
    assert server.sent["a"] == server.sent["b"] == server.sent["long"] == 1
    assert len(CompletionCache(tmp_path / "cache.sqlite")) == len(good)


def test_only_seeded_samples_are_cached(json_server, tmp_path):
    server = ByContent()
    api_base = f"{json_server(server)}/v1"
    unseeded, seeded, greedy = ask("u", temperature=0.7), ask("s", temperature=0.7, seed=3), ask("g")

    def run() -> tuple[list[Completion], CachedBackend]:
        backend = LiteLLMBackend("openai/fixture", api_base=api_base, **FAST)
        cached = CachedBackend(backend, CompletionCache(tmp_path / "cache.sqlite"))
        return cached.generate([unseeded, unseeded, seeded, seeded, greedy]), cached

    (first, _), (second, again) = run(), run()
    assert sorted(c.text for c in first[:2]) == ["u #1", "u #2"]  # two samples, not one paid twice
    assert sorted(c.text for c in second[:2]) == ["u #3", "u #4"] and not any(c.cached for c in second[:2])
    assert [c.text for c in second[2:]] == ["s #1", "s #1", "g #1"] and all(c.cached for c in second[2:])
    assert (again.hits, again.misses, again.bypassed) == (3, 0, 2)
    assert sorted(server.seeds, key=str) == [3, None, None, None, None, None]  # the seed is sent to the API
    with pytest.raises(ValueError, match="unseeded"):
        again.cache.put("k", "litellm", "m", unseeded, Completion(text="x"))


def test_completion_rejects_an_untyped_or_unknown_failure():
    assert Completion(text="", error="boom").error_kind == "other"
    assert Completion.failure("empty", "no content", raw="x" * 5000).raw == "x" * 2000
    with pytest.raises(ValueError, match="error_kind"):
        Completion(text="", error="boom", error_kind="weird")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="error_kind"):
        Completion(text="x", error_kind="empty")


@pytest.fixture(scope="module")
def tiny(one_torch_thread, tokenizer_dir):
    return HFBackend.from_random_config(tokenizer_dir, seed=2, batch_size=4, context_window=512)


def test_hf_reports_length_and_stop(tiny):
    free = tiny.generate([ask("Is BRCA1 a gene?")])[0]
    assert free.ok and free.completion_tokens == 8 and free.finish_reason == "length" and free.truncated
    stop = free.text[len(free.text) // 2 :][:1]
    stopped = tiny.generate([ask("Is BRCA1 a gene?", stop=(stop,))])[0]
    assert stopped.ok and stopped.finish_reason == "stop" and not stopped.truncated


def test_hf_structured_output_cut_short_is_an_error_and_not_cached(tiny, tmp_path):
    request = ChatRequest(({"role": "user", "content": "Name a gene."},), GenerationParams(max_new_tokens=3), SCHEMA)
    cache = CompletionCache(tmp_path / "cache.sqlite")
    (completion,) = CachedBackend(tiny, cache).generate([request])
    assert completion.error_kind == "truncated" and completion.finish_reason == "length" and completion.text == ""
    assert completion.raw and completion.raw.startswith("{") and completion.completion_tokens == 3
    assert len(cache) == 0


def test_hf_seeded_samples_repeat_unseeded_ones_vary(tiny):
    def sample(seed: int | None) -> list[str]:
        requests = [ask(f"Is BRCA{i} a gene?", temperature=1.0, seed=seed) for i in range(4)]
        return [c.text for c in tiny.generate(requests)]

    assert sample(7) == sample(7) != sample(8)
    assert sample(None) != sample(None)


WRITER = """
import sys, time
from bioqa.models.base import ChatRequest, Completion, GenerationParams
from bioqa.models.cache import CompletionCache, cache_key

path, writer, rows, start = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
time.sleep(max(0.0, start - time.time()))  # every process opens the new file at the same moment
cache = CompletionCache(path)
for i in range(rows):
    request = ChatRequest(({"role": "user", "content": f"{writer}/{i}"},), GenerationParams(max_new_tokens=4))
    cache.put(cache_key("hf", "m", request), "hf", "m", request, Completion(text=f"{writer}-{i}", finish_reason="stop"))
    assert cache.get(cache_key("hf", "m", request)).text == f"{writer}-{i}"
"""


def test_processes_creating_and_writing_one_cache_at_once(tmp_path):
    root = Path(__file__).resolve().parent.parent
    path, start = tmp_path / "fresh" / "cache.sqlite", time.time() + 2.0
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(w), "40", str(start)],
            cwd=root,
            env={**os.environ, "PYTHONPATH": str(root)},
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(4)
    ]
    results = [(process.wait(60), process.stderr.read()) for process in processes]
    assert results == [(0, "")] * 4
    cache = CompletionCache(path)
    assert len(cache) == 4 * 40
    request = ask("3/39")
    hit = cache.get(cache_key("hf", "m", ChatRequest(request.messages, GenerationParams(max_new_tokens=4))))
    assert hit is not None and hit.text == "3-39" and hit.finish_reason == "stop"


def test_backoff_never_undercuts_retry_after():
    backend = LiteLLMBackend("openai/fixture", api_base="http://127.0.0.1:1/v1", **{**FAST, "backoff_max_s": 5})

    def rate_limited(retry_after: str) -> Exception:
        response = httpx.Response(429, headers={"Retry-After": retry_after}, request=httpx.Request("POST", "http://x"))
        return litellm.RateLimitError("slow", llm_provider="openai", model="fixture", response=response)

    waits = [backend._backoff(attempt % 3, rate_limited("2")) for attempt in range(300)]
    assert min(waits) >= 2 and max(waits) <= 2.2 and len(set(waits)) > 1  # a floor, with jitter added above it
    assert backend._backoff(0, rate_limited("30")) is None  # beyond backoff_max_s: given up, not shortened
