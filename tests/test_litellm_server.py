"""LiteLLMBackend against a real ``transformers serve`` serving a tiny random model from a local directory."""

from __future__ import annotations

from functools import partial

import pytest
from helpers import ask

from bioqa.models.hf import HFBackend
from bioqa.models.litellm_backend import LiteLLMBackend
from bioqa.models.serve import ServedModel, model_spec

pytestmark = pytest.mark.slow  # starts a `transformers serve` subprocess


@pytest.fixture(scope="module")
def server(tiny_model_dir):
    threads = {"OMP_NUM_THREADS": "1"}  # the CPU is shared
    with ServedModel(model_spec(tiny_model_dir), device="cpu", startup_timeout_s=120, env=threads) as served:
        yield served


ask = partial(ask, max_new_tokens=6)


def test_served_completions_match_the_local_backend(server, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("BIOQA_LOCAL_KEY", "not-checked")
    backend = LiteLLMBackend(
        f"openai/{server.model}", api_base=server.api_base, api_key_env="BIOQA_LOCAL_KEY", context_window=2048
    )
    requests = [ask(f"Is gene {i} expressed in the liver?") for i in range(3)]
    served = backend.generate(requests)
    local = HFBackend(tiny_model_dir, batch_size=1).generate(requests)
    for remote, here in zip(served, local, strict=True):
        assert remote.ok, remote.error
        assert remote.prompt_tokens == here.prompt_tokens
        assert remote.finish_reason == here.finish_reason  # "length" when max_new_tokens was reached, on both
        assert 0 < remote.completion_tokens <= 6
        assert remote.cost_usd == 0.0
    assert [c.text for c in served] == [c.text for c in local]  # same weights, same greedy decoding


def test_concurrent_requests_all_come_back_in_order(server):
    backend = LiteLLMBackend(f"openai/{server.model}", api_base=server.api_base, concurrency=4, context_window=2048)
    requests = [ask("gene " * (i + 1), max_new_tokens=3) for i in range(8)]
    completions = backend.generate(requests)
    assert all(c.ok for c in completions), [c.error for c in completions]
    prompt_tokens = [c.prompt_tokens for c in completions]
    assert prompt_tokens == sorted(prompt_tokens) and len(set(prompt_tokens)) == 8


def test_wrong_model_name_is_an_error_completion(server):
    backend = LiteLLMBackend("openai/not-served", api_base=server.api_base, max_retries=0, context_window=2048)
    (completion,) = backend.generate([ask("hi")])
    assert completion.error and "BadRequestError after 1 attempt(s)" in completion.error
    assert completion.error_kind == "bad_request"
