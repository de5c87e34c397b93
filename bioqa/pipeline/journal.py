"""The per-question JSONL of a run: written as answers arrive, so a killed run keeps them and resumes."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class PredictionJournal:
    """Append-only JSONL of prediction records keyed by ``(question id, kind)``.

    Records with an ``error`` are kept for the record; answering reuses a record only when it succeeded and was
    made for the very request planned now (:func:`bioqa.pipeline.answering.reusable`), else recomputes it.
    A line cut short by a kill is ignored (with a warning) and its item is recomputed.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._records: dict[tuple[str, str], dict[str, Any]] = {}
        if self.path.exists():
            self._load()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.path.open("a", encoding="utf-8")

    def _load(self) -> None:
        text = self.path.read_text(encoding="utf-8")
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                log.warning("%s:%d: ignoring an incomplete record (interrupted run)", self.path, lineno)
                continue
            self._records[(record["id"], record["kind"])] = record
        if text and not text.endswith("\n"):
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write("\n")

    def latest(self, qid: str, kind: str) -> dict[str, Any] | None:
        """The newest record of this item, failed or not (``None`` if never attempted)."""
        return self._records.get((qid, kind))

    def append(self, record: dict[str, Any]) -> None:
        """Persist one record now (flushed and fsynced: a kill right after loses nothing)."""
        self._records[(record["id"], record["kind"])] = record
        self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def records(self) -> Iterator[dict[str, Any]]:
        """The latest record of every item, in first-seen order."""
        return iter(self._records.values())

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> PredictionJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
