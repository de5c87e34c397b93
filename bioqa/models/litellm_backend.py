"""Every provider LiteLLM knows (OpenAI, Anthropic, Mistral, Fireworks, vLLM, any OpenAI-compatible server)."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before importing litellm: no network at import

import random
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

import litellm
from tqdm.auto import tqdm

from bioqa.models.base import Backend, ChatRequest, Completion, Message

litellm.suppress_debug_info = True

#: Failures worth another try: rate limits, overload, timeouts, dropped connections, 5xx.
RETRYABLE = (
    litellm.RateLimitError,
    litellm.Timeout,
    litellm.APIConnectionError,
    litellm.InternalServerError,
    litellm.ServiceUnavailableError,
    litellm.BadGatewayError,
)


class LiteLLMBackend(Backend):
    """Chat completions through LiteLLM with bounded concurrency, retries and offline cost accounting.

    Each request is retried up to ``max_retries`` times on rate limits and transient errors, waiting
    ``backoff_base_s * 2**attempt`` (capped at ``backoff_max_s``, or the server's ``Retry-After``) times a random
    factor in [0.5, 1]; a request that still fails becomes ``Completion(error=...)``.
    With ``json_mode`` a request's ``json_schema`` is sent as a ``response_format`` json_schema where the provider
    supports it, else JSON mode is asked for where supported, else the prompt alone must ask for JSON.
    """

    kind = "litellm"

    def __init__(
        self,
        model: str,
        api_base: str | None = None,
        api_key_env: str | None = None,
        concurrency: int = 4,
        max_retries: int = 5,
        timeout_s: float = 60.0,
        context_window: int | None = None,
        json_mode: bool = True,
        extra_params: dict[str, Any] | None = None,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 60.0,
    ):
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.model = model
        self.api_base = api_base
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.timeout_s = timeout_s
        self.json_mode = json_mode
        self.extra_params = dict(extra_params or {})
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self._api_key = self._resolve_api_key(model, api_base, api_key_env)
        self._context_window = context_window or self._known_context_window(model)
        self._supports_schema = litellm.supports_response_schema(model=model)
        try:
            self._supports_json = "response_format" in (litellm.get_supported_openai_params(model=model) or [])
        except Exception:  # unknown provider prefix: plain prompts
            self._supports_json = False

    @staticmethod
    def _resolve_api_key(model: str, api_base: str | None, api_key_env: str | None) -> str | None:
        if api_key_env is not None:
            key = os.environ.get(api_key_env)
            if not key:
                raise OSError(f"environment variable {api_key_env} (API key for {model}) is not set")
            return key
        if api_base is not None:
            return "none"  # local OpenAI-compatible servers (transformers serve, vLLM) want a key, any key
        check = litellm.validate_environment(model=model)
        if not check.get("keys_in_environment", False):
            missing = ", ".join(check.get("missing_keys") or []) or "an API key"
            raise OSError(f"{model} needs {missing} in the environment (or set api_key_env / api_base)")
        return None

    @staticmethod
    def _known_context_window(model: str) -> int:
        try:
            info = litellm.get_model_info(model=model)
        except Exception:
            info = {}
        window = info.get("max_input_tokens") or info.get("max_tokens")
        if not window:
            raise ValueError(f"LiteLLM does not know the context window of {model}: set context_window")
        return int(window)

    @property
    def model_id(self) -> str:
        return self.model if self.api_base is None else f"{self.model}@{self.api_base}"

    @property
    def context_window(self) -> int:
        return self._context_window

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return litellm.token_counter(model=self.model, messages=list(messages))

    def stream(self, requests: Sequence[ChatRequest]) -> Iterator[tuple[int, Completion]]:
        """Yield completions as the threads finish them (at most ``concurrency`` requests in flight)."""
        if not requests:
            return
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests))) as pool:
            futures = {pool.submit(self.complete, request): index for index, request in enumerate(requests)}
            with tqdm(total=len(futures), desc=f"litellm {self.model}", unit="req", disable=None) as progress:
                for future in as_completed(futures):
                    progress.update()
                    yield futures[future], future.result()

    def _arguments(self, request: ChatRequest) -> dict[str, Any]:
        params = request.params
        arguments: dict[str, Any] = {
            "model": self.model,
            "messages": [dict(message) for message in request.messages],
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "timeout": self.timeout_s,
            "max_retries": 0,  # retries are ours (backoff with jitter); the OpenAI client must not add its own
            "num_retries": 0,
        }
        if params.top_p != 1.0:
            arguments["top_p"] = params.top_p
        if params.stop:
            arguments["stop"] = list(params.stop)
        if self.api_base is not None:
            arguments["api_base"] = self.api_base
        if self._api_key is not None:
            arguments["api_key"] = self._api_key
        if request.json_schema is not None and self.json_mode:
            if self._supports_schema:
                arguments["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "response", "schema": request.json_schema},
                }
            elif self._supports_json:
                arguments["response_format"] = {"type": "json_object"}
        return {**arguments, **self.extra_params}

    def complete(self, request: ChatRequest) -> Completion:
        """One request with retries; never raises for API failures."""
        arguments = self._arguments(request)
        start = time.perf_counter()
        for attempt in range(self.max_retries + 1):
            try:
                response = litellm.completion(**arguments)
            except RETRYABLE as error:
                if attempt == self.max_retries:
                    return self._failure(error, attempt + 1, start)
                time.sleep(self._backoff(attempt, error))
            except Exception as error:  # bad request, auth, context window: another try would fail the same way
                return self._failure(error, attempt + 1, start)
            else:
                return self._completion(response, start)
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int, error: Exception) -> float:
        delay = min(self.backoff_max_s, self.backoff_base_s * 2**attempt)
        headers = getattr(getattr(error, "response", None), "headers", None) or {}
        retry_after = headers.get("retry-after") if hasattr(headers, "get") else None
        if retry_after and str(retry_after).replace(".", "", 1).isdigit():  # seconds (an HTTP date is ignored)
            delay = min(self.backoff_max_s, max(delay, float(retry_after)))
        return delay * random.uniform(0.5, 1.0)

    @staticmethod
    def _failure(error: Exception, attempts: int, start: float) -> Completion:
        return Completion(
            text="",
            error=f"{type(error).__name__} after {attempts} attempt(s): {error}",
            latency_s=time.perf_counter() - start,
        )

    @staticmethod
    def _completion(response: Any, start: float) -> Completion:
        usage = getattr(response, "usage", None)
        try:
            cost = float(litellm.completion_cost(completion_response=response) or 0.0)
        except Exception:  # not in the offline cost map (local servers, new models)
            cost = 0.0
        return Completion(
            text=response.choices[0].message.content or "",
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
            cost_usd=cost,
            latency_s=time.perf_counter() - start,
        )
