"""The seed paper's Phase A as it ran it (SamyAteia/bioasq2024, ``02_12B/Batch*/PhaseA/01_PhaseA-Retrieval.ipynb``):
what its prompts need besides their templates (``conf/retrieval/phase_a/paper.yaml``, quoted byte for byte).

- Query shots: the top n of a query shot pool (``python -m bioqa.pipeline.query_pool``: an earlier batch's questions
  with the completions that produced their queries, best retrieval F1 first), each a user turn of the
  ``query_shot`` template (the question's ``/`` written ``\\\\/`` as the paper did) and the completion.
- Extraction and rerank shots: the first n examples of the paper's chat JSONL files (``02_Snippet_Extraction_*``,
  ``03_Snippet_Ranking_*``), their messages without system messages.
- The article and the numbered snippets as the paper's prompts showed them: Python ``repr`` of
  ``{'id': url, 'title': ..., 'abstract': ...}`` and of ``[{'id': i, 'text': ...}, ...]``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from bioqa.config.common import read_json_file, read_text
from bioqa.errors import ConfigError, DataFileError

STAGES = ("query", "extract", "rerank")
#: The ``kind`` a query shot pool file carries (written by :mod:`bioqa.pipeline.query_pool`).
POOL_KIND = "bioqa.query_shot_pool"


def shot_question(question: str) -> str:
    """A pool question as the paper put it into a query shot (``question.replace("/", "\\\\\\\\/")``)."""
    return question.replace("/", "\\\\/")


def article_text(url: str, title: str, abstract: str) -> str:
    """The ``{article}`` of the paper's extraction prompt: the repr of the search hit's dict."""
    return repr({"id": url, "title": title, "abstract": abstract})


def numbered_snippets(texts: Sequence[str]) -> str:
    """The ``{snippets}`` of the paper's rerank prompt: the repr of ``[{'id': i, 'text': ...}, ...]``."""
    return repr([{"id": i, "text": text} for i, text in enumerate(texts)])


def _lines(key: str, path: str) -> list[str]:
    return [line for line in read_text(key, path).splitlines() if line.strip()]


def read_chat_shots(key: str, path: str, n: int) -> list[dict[str, str]]:
    """The non-system messages of the first ``n`` examples of a chat JSONL file (``{"messages": [...]}`` a line),
    in order; fewer examples than ``n``, a line that is not such an example, or a bad file is an error naming
    ``key``."""
    if n <= 0:
        return []
    lines = _lines(key, path)
    if len(lines) < n:
        raise DataFileError(f"{key}={path}: {n} shots asked for, the file has {len(lines)} examples")
    turns: list[dict[str, str]] = []
    for number, line in enumerate(lines[:n], 1):
        try:
            messages = json.loads(line)["messages"]
            turns += [
                {"role": m["role"], "content": m["content"]}
                for m in messages
                if m["role"] != "system" and isinstance(m["content"], str)
            ]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise DataFileError(
                f'{key}={path}:{number}: expected {{"messages": [{{"role", "content"}}, ...]}}'
            ) from None
    return turns


def read_query_pool(key: str, path: str, n: int) -> tuple[list[tuple[str, str]], str]:
    """``(question, completion)`` of the pool's top ``n`` shots (the pool is stored best F1 first) and the pool
    file's sha256; a file that is not a query shot pool, or holds fewer than ``n`` shots, is an error naming ``key``."""
    pool = read_json_file(key, path)
    if not isinstance(pool, dict) or pool.get("kind") != POOL_KIND:
        raise DataFileError(
            f"{key}={path}: not a query shot pool (kind {POOL_KIND!r}; "
            "build one with python -m bioqa.pipeline.query_pool)"
        )
    shots = pool.get("shots")
    if not isinstance(shots, list) or not all(
        isinstance(s, dict) and isinstance(s.get("question"), str) and isinstance(s.get("completion"), str)
        for s in shots
    ):
        raise DataFileError(f"{key}={path}: 'shots' must be a list of {{question, completion, ...}}")
    if len(shots) < n:
        raise DataFileError(f"{key}={path}: {n} shots asked for, the pool has {len(shots)}")
    sha = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return [(s["question"], s["completion"]) for s in shots[:n]], sha


def load_stage_shots(shots: dict[str, int], shot_files: dict[str, str | None]) -> dict[str, list]:
    """The shot turns of every stage (``retrieval.phase_a.shots`` / ``shot_files``): query ``(question,
    completion)`` pairs from a pool, extraction and rerank chat messages; ``n > 0`` without a file, an unknown stage
    or a negative ``n`` is an error."""
    for key, value in (("shots", shots), ("shot_files", shot_files)):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}={value}: expected {{query: ..., extract: ..., rerank: ...}}")
    unknown = sorted(set(shots) - set(STAGES)) + sorted(set(shot_files) - set(STAGES))
    if unknown:
        raise ConfigError(f"shots / shot_files: unknown stage {unknown[0]!r} (stages: {', '.join(STAGES)})")
    loaded: dict[str, list] = {}
    for stage in STAGES:
        n, path = shots.get(stage, 0), shot_files.get(stage)
        key = f"shot_files.{stage}"
        if not isinstance(n, int) or n < 0:
            raise ConfigError(f"shots.{stage}={n}: expected a whole number of shots, 0 or more")
        if n and not path:
            raise ConfigError(f"shots.{stage}={n} needs {key}=FILE")
        if stage == "query":
            loaded[stage] = read_query_pool(key, path, n)[0] if n else []
        else:
            loaded[stage] = read_chat_shots(key, path, n)
    return loaded
