"""The SQLite completion cache around a real (tiny random) HF backend."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest
from helpers import ask

from bioqa.models.base import ChatRequest, Completion, GenerationParams
from bioqa.models.cache import CachedBackend, CompletionCache, cache_key
from bioqa.models.hf import HFBackend

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class RecordingHF(HFBackend):
    """The real tiny model, remembering which requests reached it."""

    def stream(self, requests: Sequence[ChatRequest]) -> Iterator[tuple[int, Completion]]:
        self.sent.append(list(requests))
        yield from super().stream(requests)


@pytest.fixture(scope="module")
def backend(tokenizer_dir):
    model = RecordingHF.from_random_config(tokenizer_dir, seed=1, batch_size=2, context_window=80)
    model.sent = []
    return model


ask = partial(ask, max_new_tokens=4)


def test_second_identical_call_never_reaches_the_backend(backend, tmp_path):
    backend.sent.clear()
    requests = [ask(f"question {i}") for i in range(5)]
    cached = CachedBackend(backend, CompletionCache(tmp_path / "cache.sqlite"))
    first = cached.generate(requests)
    assert len(backend.sent) == 1 and len(backend.sent[0]) == 5
    assert not any(c.cached for c in first)

    reopened = CachedBackend(backend, CompletionCache(tmp_path / "cache.sqlite"))  # a new run, same file
    second = reopened.generate(requests)
    assert len(backend.sent) == 1
    assert [c.text for c in second] == [c.text for c in first]
    assert all(c.cached and c.cost_usd == 0.0 and c.original_cost_usd == 0.0 for c in second)
    assert [c.prompt_tokens for c in second] == [c.prompt_tokens for c in first]
    assert (reopened.hits, reopened.misses) == (5, 0)


def test_different_params_miss_and_duplicates_are_sent_once(backend, tmp_path):
    cached = CachedBackend(backend, CompletionCache(tmp_path / "cache.sqlite"))
    cached.generate([ask("question")])
    backend.sent.clear()
    longer, again = ask("question", max_new_tokens=6), ask("question")
    out = cached.generate([longer, longer, again])
    assert backend.sent == [[longer]]
    assert out[2].cached and not out[0].cached and out[1].cached
    assert out[0].text == out[1].text


def test_errors_are_returned_but_not_cached(backend, tmp_path):
    cache = CompletionCache(tmp_path / "cache.sqlite")
    cached = CachedBackend(backend, cache)
    too_long = ask("gene " * 100)  # beyond the 80-token context window: an error completion
    first = cached.generate([too_long, ask("short")])
    assert first[0].error and first[1].ok
    assert len(cache) == 1
    backend.sent.clear()
    second = cached.generate([too_long, ask("short")])
    assert second[0].error and backend.sent == [[too_long]]  # the failure is retried, the success is not


def test_completions_are_committed_as_they_stream(backend, tmp_path):
    path = tmp_path / "cache.sqlite"
    cached = CachedBackend(backend, CompletionCache(path))
    stream = cached.stream([ask(f"q{i}", max_new_tokens=3) for i in range(6)])
    next(stream)
    next(stream)  # the first batch (batch_size 2) is done; then the run "dies"
    stream.close()
    with sqlite3.connect(path) as other_process_view:
        assert other_process_view.execute("SELECT COUNT(*) FROM completions").fetchone()[0] == 2


def test_key_covers_kind_model_messages_params_and_schema():
    base = ask("q")
    keys = {
        cache_key("hf", "m", base),
        cache_key("litellm", "m", base),
        cache_key("hf", "m2", base),
        cache_key("hf", "m", ask("q2")),
        cache_key("hf", "m", ask("q", max_new_tokens=5)),
        cache_key("hf", "m", ChatRequest(base.messages, base.params, {"type": "object"})),
        cache_key("hf", "m", ChatRequest(base.messages, GenerationParams(max_new_tokens=4, seed=1))),
        cache_key("hf", "m", ChatRequest(base.messages, GenerationParams(max_new_tokens=4, seed=2))),
    }
    assert len(keys) == 8
    assert cache_key("hf", "m", base) == cache_key("hf", "m", ask("q"))


WRITER = """
import sys
from bioqa.models.base import ChatRequest, Completion, GenerationParams
from bioqa.models.cache import CompletionCache, cache_key

path, writer, rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cache = CompletionCache(path)
for i in range(rows):
    messages = ({"role": "user", "content": f"writer {writer} row {i}"},)
    request = ChatRequest(messages, GenerationParams(max_new_tokens=4))
    cache.put(cache_key("hf", "m", request), "hf", "m", request, Completion(text=f"{writer}-{i}"))
"""


def test_concurrent_writers_threads_and_processes(tmp_path):
    path = str(tmp_path / "cache.sqlite")
    cache = CompletionCache(path)
    root = Path(__file__).resolve().parent.parent
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, path, str(w), "50"], cwd=root, env={**os.environ, "PYTHONPATH": str(root)}
        )
        for w in range(2)
    ]

    def write_rows(writer: int) -> None:
        for i in range(50):
            request = ask(f"writer {writer} row {i}")
            cache.put(cache_key("hf", "m", request), "hf", "m", request, Completion(text=f"{writer}-{i}"))

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write_rows, range(2, 6)))
    assert [process.wait(60) for process in processes] == [0, 0]
    assert len(cache) == 6 * 50
    for writer in (1, 5):
        hit = cache.get(cache_key("hf", "m", ask(f"writer {writer} row 49")))
        assert hit is not None and hit.text == f"{writer}-49" and hit.cached


def test_failed_completion_cannot_be_stored(tmp_path):
    cache = CompletionCache(tmp_path / "cache.sqlite")
    with pytest.raises(ValueError, match="refusing to cache a failed completion"):
        cache.put("k", "hf", "m", ask("q"), Completion(text="", error="boom"))
    with pytest.raises(ValueError, match="refusing to cache an unseeded sample"):
        sample = ChatRequest(ask("q").messages, GenerationParams(temperature=0.5))
        cache.put("k", "hf", "m", sample, Completion(text="x"))
    assert len(cache) == 0


def test_a_format_1_cache_is_upgraded_and_its_rows_never_served(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as old:  # the table as format 1 wrote it, holding a null reply stored as ""
        old.execute(
            "CREATE TABLE completions (key TEXT PRIMARY KEY, kind TEXT NOT NULL, model_id TEXT NOT NULL,"
            " request TEXT NOT NULL, text TEXT NOT NULL, prompt_tokens INTEGER NOT NULL,"
            " completion_tokens INTEGER NOT NULL, cost_usd REAL NOT NULL, latency_s REAL NOT NULL,"
            " created TEXT NOT NULL)"
        )
        old_key = hashlib.sha256(
            json.dumps(
                {"kind": "hf", "model_id": "m", "messages": [{"role": "user", "content": "q"}], "json_schema": None,
                 "params": {"max_new_tokens": 4, "temperature": 0.0, "top_p": 1.0, "stop": []}},
                sort_keys=True, separators=(",", ":"),
            ).encode()
        ).hexdigest()  # fmt: skip
        old.execute("INSERT INTO completions VALUES (?, 'hf', 'm', '{}', '', 1, 0, 0.0, 0.1, 'then')", (old_key,))
    cache = CompletionCache(path)
    assert cache.get(cache_key("hf", "m", ask("q"))) is None and len(cache) == 1
    cache.put(cache_key("hf", "m", ask("q")), "hf", "m", ask("q"), Completion(text="yes", finish_reason="length"))
    hit = cache.get(cache_key("hf", "m", ask("q")))
    assert hit is not None and (hit.text, hit.finish_reason, hit.truncated) == ("yes", "length", True)
