"""Every provider LiteLLM knows (OpenAI, Anthropic, Mistral, Fireworks, vLLM, any OpenAI-compatible server)."""

from __future__ import annotations

import logging
import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before importing litellm: no network at import

import random
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

import httpx
import litellm
import openai
from tqdm.auto import tqdm

from bioqa.errors import BackendAuthError, MissingCredentials
from bioqa.models.base import Backend, ChatRequest, Completion, ErrorKind, Message, api_key
from bioqa.retry_after import retry_after_seconds

litellm.suppress_debug_info = True


def _route_litellm_logs() -> None:
    """LiteLLM's loggers come with its own stream handler, which prints every record at the root logger's level
    (INFO under Hydra: a line per call) on stderr; without it their records take the application's handlers
    (Hydra's: the run's log file in full, stderr from WARNING as one line, :mod:`bioqa.console`)."""
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
        logger = logging.getLogger(name)
        for handler in logger.handlers[:]:
            logger.removeHandler(handler)


_route_litellm_logs()

#: Failures worth another try: rate limits, overload, timeouts, dropped connections, 5xx.
RETRYABLE: dict[type[Exception], ErrorKind] = {
    litellm.RateLimitError: "rate_limit",
    litellm.Timeout: "timeout",  # before APIConnectionError, its base class
    litellm.APIConnectionError: "connection",
    litellm.InternalServerError: "server",
    litellm.ServiceUnavailableError: "server",
    litellm.BadGatewayError: "server",
}
#: Failures another try would repeat (most specific first).
FINAL: dict[type[Exception], ErrorKind] = {
    litellm.ContextWindowExceededError: "context_window",
    litellm.ContentPolicyViolationError: "content_filter",
    litellm.BadRequestError: "bad_request",
    litellm.NotFoundError: "bad_request",
    litellm.UnprocessableEntityError: "bad_request",
}
#: HTTP statuses meaning "these credentials are refused": the run stops (every request would fail the same way).
AUTH_STATUSES = (401, 403)


class LiteLLMBackend(Backend):
    """Chat completions through LiteLLM with bounded concurrency, retries and offline cost accounting.

    Failure semantics (see :class:`~bioqa.models.base.Completion`): rate limits, timeouts (``timeout_s`` per
    attempt), dropped connections and 5xx are retried up to ``max_retries`` times, waiting
    ``backoff_base_s * 2**attempt`` (capped at ``backoff_max_s``) times a random factor in [0.5, 1]; a server's
    ``Retry-After`` (or ``retry-after-ms``) is a floor on that wait, never shortened (a Retry-After beyond
    ``backoff_max_s`` ends the request as a ``rate_limit`` failure instead). Other 4xx are not retried. A reply
    that cannot be read (no choices, no message, not JSON) is a ``malformed`` failure, null or empty content an
    ``empty`` one, and a structured request (``json_schema``) stopped by ``finish_reason == "length"`` a
    ``truncated`` one — each with the raw reply. A 401/403 raises :class:`~bioqa.errors.BackendAuthError`.
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
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.model = model
        self.api_base = api_base
        self.api_key_env = api_key_env
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
            return api_key(api_key_env, model)
        if api_base is not None:
            return "none"  # local OpenAI-compatible servers (transformers serve, vLLM) want a key, any key
        check = litellm.validate_environment(model=model)
        if not check.get("keys_in_environment", False):
            missing = ", ".join(check.get("missing_keys") or []) or "an API key"
            raise MissingCredentials(
                f"{model} needs {missing} in the environment: export it, or set api_key_env / api_base"
            )
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
        refusals: list[BackendAuthError] = []

        def complete_unless_refused(request: ChatRequest) -> Completion | None:
            if refusals:  # the credentials were refused: nothing more is sent
                return None
            try:
                return self.complete(request)
            except BackendAuthError as refusal:
                refusals.append(refusal)
                raise

        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests)))
        try:
            futures = {pool.submit(complete_unless_refused, request): i for i, request in enumerate(requests)}
            with tqdm(total=len(futures), desc=f"litellm {self.model}", unit="req", disable=None) as progress:
                for future in as_completed(futures):
                    progress.update()
                    completion = future.result()  # re-raises BackendAuthError from the worker
                    if completion is None:
                        raise refusals[0]
                    yield futures[future], completion
        finally:  # done, refused, or the consumer stopped: send nothing more, wait for what is in flight
            pool.shutdown(wait=True, cancel_futures=True)

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
        if params.seed is not None:
            arguments["seed"] = params.seed
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
        """One request with retries; never raises for API failures (only :class:`BackendAuthError`)."""
        arguments = self._arguments(request)
        start = time.perf_counter()
        for attempt in range(self.max_retries + 1):
            try:
                response = litellm.completion(**arguments)
            except Exception as error:
                if _status(error) in AUTH_STATUSES:
                    raise BackendAuthError(self._auth_message(error)) from error
                kind = _kind(error)
                if kind not in RETRYABLE.values() or attempt == self.max_retries:
                    return self._failure(kind, error, attempt + 1, start)
                wait = self._backoff(attempt, error)
                if wait is None:
                    note = f"Retry-After {retry_after_s(error):g}s exceeds backoff_max_s={self.backoff_max_s:g}"
                    return self._failure(kind, error, attempt + 1, start, note)
                time.sleep(wait)
            else:
                return self._completion(response, request, start)
        raise AssertionError("unreachable")

    def _auth_message(self, error: Exception) -> str:
        if self.api_key_env is not None:
            key = f"the key in ${self.api_key_env}"
        elif self.api_base is not None:
            key = "no key (model.backend.api_key_env is not set)"
        else:
            key = "the key LiteLLM read from the environment (set model.backend.api_key_env to choose the variable)"
        where = self.api_base or "the provider's default endpoint"
        return f"{self.model} at {where} refused {key}: HTTP {_status(error)} ({_message(error)})"

    def _backoff(self, attempt: int, error: Exception) -> float | None:
        """Seconds to wait before the next attempt; ``None`` when the server asks for more than ``backoff_max_s``."""
        delay = min(self.backoff_max_s, self.backoff_base_s * 2**attempt) * random.uniform(0.5, 1.0)
        floor = retry_after_s(error)
        if floor is None:
            return delay
        if floor > self.backoff_max_s:
            return None
        return max(delay, floor * random.uniform(1.0, 1.1))  # jitter spreads the retries, never before the floor

    @staticmethod
    def _failure(kind: ErrorKind, error: Exception, attempts: int, start: float, note: str = "") -> Completion:
        body = getattr(getattr(error, "response", None), "text", None)
        return Completion.failure(
            kind,
            f"{type(error).__name__} after {attempts} attempt(s){f' ({note})' if note else ''}: {_message(error)}",
            raw=body or (str(error) if kind == "malformed" else None),
            latency_s=time.perf_counter() - start,
        )

    @staticmethod
    def _completion(response: Any, request: ChatRequest, start: float) -> Completion:
        usage = getattr(response, "usage", None)
        fields: dict[str, Any] = {
            "prompt_tokens": getattr(usage, "prompt_tokens", 0) or 0,
            "completion_tokens": getattr(usage, "completion_tokens", 0) or 0,
            "latency_s": time.perf_counter() - start,
        }
        choices = getattr(response, "choices", None) or []
        message = getattr(choices[0], "message", None) if choices else None
        if message is None:
            what = "no choices" if not choices else "a choice without a message"
            return Completion.failure("malformed", f"reply has {what}", raw=_raw(response), **fields)
        try:
            fields["cost_usd"] = float(litellm.completion_cost(completion_response=response) or 0.0)
        except Exception:  # not in the offline cost map (local servers, new models)
            fields["cost_usd"] = 0.0
        finish_reason = getattr(choices[0], "finish_reason", None)
        content = message.content
        if not isinstance(content, str) or not content:  # whitespace is what the model said: kept, as hf does
            return Completion.failure(
                "empty",
                f"reply content is {content!r} (finish_reason {finish_reason!r})",
                raw=_raw(response),
                finish_reason=finish_reason,
                **fields,
            )
        if finish_reason == "length" and request.json_schema is not None:
            return Completion.failure(
                "truncated",
                f"structured reply cut at max_new_tokens={request.params.max_new_tokens} (finish_reason 'length')",
                raw=content,
                finish_reason=finish_reason,
                **fields,
            )
        return Completion(text=content, finish_reason=finish_reason, **fields)


def retry_after_s(error: Exception) -> float | None:
    """The wait a server asked for (``retry-after-ms``, or ``Retry-After`` in seconds or as an HTTP date)."""
    headers = getattr(getattr(error, "response", None), "headers", None)
    return retry_after_seconds(headers) if hasattr(headers, "get") else None


def _status(error: Exception) -> int | None:
    status = getattr(error, "status_code", None)
    return status if isinstance(status, int) else None


def _kind(error: Exception) -> ErrorKind:
    """The failure kind of a LiteLLM exception."""
    if isinstance(error, litellm.InternalServerError) and not _has_http_headers(error):
        return "connection" if _transport_failure(error) else "malformed"
    for table in (RETRYABLE, FINAL):
        for error_type, kind in table.items():
            if isinstance(error, error_type):
                return kind
    status = _status(error)
    if status is not None and 400 <= status < 500:
        return "bad_request"
    if status is not None and status >= 500:
        return "server"
    return "other"


def _has_http_headers(error: Exception) -> bool:
    """Whether the error carries a server's HTTP reply. LiteLLM reports a 200 reply it could not parse (not JSON,
    no choices, no message) and a refused connection as 500s of its own making, without headers."""
    headers = getattr(getattr(error, "response", None), "headers", None)
    return bool(getattr(error, "litellm_response_headers", None) or headers)


def _transport_failure(error: BaseException) -> bool:
    """Whether a network failure (refused, reset, DNS) lies in the error's chain of causes."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, httpx.TransportError | openai.APIConnectionError | ConnectionError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _message(error: Exception) -> str:
    return " ".join(str(getattr(error, "message", None) or error).split())[:500]


def _raw(response: Any) -> str:
    try:
        return response.model_dump_json()
    except Exception:
        return repr(response)
