"""The completion cache: one SQLite row per (backend kind, model, messages, params, schema); runs resume for free.

Cache hits are reported honestly: ``cached=True``, ``cost_usd=0`` and ``latency_s`` = the lookup time (nothing was
paid or waited for this run); what the original call cost, how long it took and its share of that call's wall time
come with the hit (``original_cost_usd``, ``original_latency_s``, ``original_wall_s``), so a cached run can report
how its answers were produced. Only successful completions are stored — never an error (malformed, empty, a
structured reply cut at ``max_new_tokens``, ...), so failed requests are retried by the next run — and only for
requests whose answer may be repeated: greedy ones, or samples (``temperature > 0``) with a ``seed``. An unseeded
sample is neither looked up nor stored, and two of them in one call are two requests. A free-text completion cut at
``max_new_tokens`` is a success and is stored with its ``finish_reason``, so a hit is flagged like the original.

Key format 2 (``KEY_FORMAT``) covers the seed, and rows keep the finish reason; rows written by format 1 (which could
hold null or truncated replies) are never served. Several processes may share one file: WAL journal, and a busy timeout
(``timeout_s``) so that writers wait for each other instead of failing with "database is locked".
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path

from bioqa.models.base import Backend, ChatRequest, Completion, Message, timed

#: Part of every key: raised when what a key covers, or what a row means, changes.
KEY_FORMAT = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS completions (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    model_id TEXT NOT NULL,
    request TEXT NOT NULL,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    latency_s REAL NOT NULL,
    created TEXT NOT NULL,
    finish_reason TEXT,
    wall_s REAL
)
"""


def request_payload(kind: str, model_id: str, request: ChatRequest) -> str:
    """Canonical JSON of everything that determines a completion (sorted keys, no whitespace)."""
    payload = {
        "format": KEY_FORMAT,
        "kind": kind,
        "model_id": model_id,
        "messages": [dict(message) for message in request.messages],
        "params": asdict(request.params),
        "json_schema": request.json_schema,
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def cacheable(request: ChatRequest, completion: Completion | None = None) -> bool:
    """Whether ``request`` (and its ``completion``, when given) may be stored and served again."""
    return request.params.deterministic and (completion is None or completion.ok)


def cache_key(kind: str, model_id: str, request: ChatRequest) -> str:
    return hashlib.sha256(request_payload(kind, model_id, request).encode("utf-8")).hexdigest()


class CompletionCache:
    """SQLite file in WAL mode; safe to share between threads (one connection each) and processes."""

    def __init__(self, path: str | Path, timeout_s: float = 60.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.timeout_s = timeout_s
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        connection = self._connection()
        self._enable_wal(connection)
        connection.execute("BEGIN IMMEDIATE")  # one process at a time creates or upgrades the table
        try:
            connection.execute(_SCHEMA)
            columns = {row[1] for row in connection.execute("PRAGMA table_info(completions)")}
            if "finish_reason" not in columns:  # a format-1 file: its rows are never served (keys differ)
                connection.execute("ALTER TABLE completions ADD COLUMN finish_reason TEXT")
            if "wall_s" not in columns:  # rows written before wall-time shares were kept: served, share unknown
                connection.execute("ALTER TABLE completions ADD COLUMN wall_s REAL")
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    def _enable_wal(self, connection: sqlite3.Connection) -> None:
        """Switch a new file to WAL. SQLite answers "database is locked" at once, without its busy handler, when
        processes race to do so on a fresh file: retry until ``timeout_s``."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                connection.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(  # timeout: SQLite's busy timeout, a writer waits for the others
                self.path, timeout=self.timeout_s, isolation_level=None, check_same_thread=False
            )
            connection.execute("PRAGMA synchronous=NORMAL")
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def get(self, key: str) -> Completion | None:
        row = (
            self._connection()
            .execute(
                "SELECT text, prompt_tokens, completion_tokens, cost_usd, latency_s, wall_s, finish_reason"
                " FROM completions WHERE key = ?",
                (key,),
            )
            .fetchone()
        )
        if row is None:
            return None
        text, prompt_tokens, completion_tokens, cost, latency, wall, finish_reason = row
        return Completion(
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cached=True,
            original_cost_usd=cost,
            original_latency_s=latency,
            original_wall_s=wall,
            finish_reason=finish_reason,
        )

    def put(self, key: str, kind: str, model_id: str, request: ChatRequest, completion: Completion) -> None:
        """Store a successful completion of a greedy or seeded request (committed at once); anything else is
        refused with ``ValueError``."""
        if not completion.ok:
            raise ValueError(f"refusing to cache a failed completion ({completion.error_kind}): {completion.error}")
        if not cacheable(request):
            raise ValueError("refusing to cache an unseeded sample (temperature > 0 and no seed)")
        self._connection().execute(
            "INSERT OR REPLACE INTO completions (key, kind, model_id, request, text, prompt_tokens, completion_tokens,"
            " cost_usd, latency_s, created, finish_reason, wall_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key,
                kind,
                model_id,
                request_payload(kind, model_id, request),
                completion.text,
                completion.prompt_tokens,
                completion.completion_tokens,
                completion.cost_usd,
                completion.latency_s,
                datetime.now(timezone.utc).isoformat(timespec="seconds"),
                completion.finish_reason,
                completion.wall_s,
            ),
        )

    def __len__(self) -> int:
        return self._connection().execute("SELECT COUNT(*) FROM completions").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()


class CachedBackend(Backend):
    """Wraps a backend: answers what the cache knows, sends only the misses (each distinct request once), and
    stores every successful completion the moment the wrapped backend yields it. Unseeded samples bypass the
    cache (each is sent, none stored); ``bypassed`` counts them."""

    def __init__(self, backend: Backend, cache: CompletionCache):
        self.backend = backend
        self.cache = cache
        self.kind = backend.kind
        self.hits = 0
        self.misses = 0
        self.bypassed = 0

    @property
    def model_id(self) -> str:
        return self.backend.model_id

    @property
    def context_window(self) -> int:
        return self.backend.context_window

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return self.backend.count_tokens(messages)

    def stream(self, requests: Sequence[ChatRequest]) -> Iterator[tuple[int, Completion]]:
        waiting: dict[str, list[int]] = {}  # key (or, for an unseeded sample, its own slot) -> request indices
        for index, request in enumerate(requests):
            if not cacheable(request):
                waiting[f"sample:{index}"] = [index]
                self.bypassed += 1
                continue
            key = cache_key(self.kind, self.model_id, request)
            if key in waiting:
                waiting[key].append(index)
                continue
            start = time.perf_counter()
            hit = self.cache.get(key)
            if hit is None:
                waiting[key] = [index]
                self.misses += 1
                continue
            hit.latency_s = time.perf_counter() - start
            self.hits += 1
            yield index, hit
        keys = list(waiting)
        if not keys:
            return
        misses = [requests[waiting[key][0]] for key in keys]
        for position, completion in timed(self.backend.stream(misses)):
            key = keys[position]
            if cacheable(misses[position], completion):
                self.cache.put(key, self.kind, self.model_id, misses[position], completion)
            first, *duplicates = waiting[key]
            yield first, completion
            for index in duplicates:  # the same request twice in one call: paid and waited for once, like a hit
                yield (
                    index,
                    replace(
                        completion,
                        cost_usd=0.0,
                        cached=True,
                        wall_s=None,
                        original_cost_usd=completion.cost_usd,
                        original_latency_s=completion.latency_s,
                        original_wall_s=0.0,
                    ),
                )

    def close(self) -> None:
        self.backend.close()
        self.cache.close()
