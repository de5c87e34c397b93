"""Checks of a golden/system pair before scoring: what the official evaluator would score without a word but a user
surely did not mean. Unusable inputs raise :class:`~bioqa.data.BioASQFormatError` (one line, exit 2 in the entry
points); doubtful ones return warnings that go to stderr and into ``metrics.json``.

* refused: a file that is not a JSON object with a ``questions`` list; a golden file with duplicate ids (the jar
  would count those questions twice); no question id in common; a golden file without any exact or ideal answer
  while the submission has them (golden= and system= swapped);
* warned: fewer than half of the golden questions answered; ids the golden file does not know; duplicate ids in the
  submission (the jar scores the first occurrence and ignores the rest, checked with ``BioASQEvaluation.jar``);
  a submission whose answers are the golden answers themselves (the golden file given as system=), or whose ideal
  answers are lists while the golden file's are strings (the two files look swapped).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from typing import Any

from bioqa.data.bioasq_json import BioASQFormatError

#: Below this share of golden questions answered, a warning says the submission covers little of the batch.
MIN_SHARED_FRACTION = 0.5


def _kind(data: Any) -> str:
    return "a JSON list" if isinstance(data, list) else f"a JSON {type(data).__name__}"


def questions_of(data: Any, label: str) -> list[dict[str, Any]]:
    """The ``questions`` list of a BioASQ file, refused when the file has none."""
    if not isinstance(data, dict):
        raise BioASQFormatError(label, None, None, f"expected a JSON object with a 'questions' list, got {_kind(data)}")
    if "questions" not in data:
        keys = ", ".join(map(repr, list(data)[:5])) or "none"
        raise BioASQFormatError(label, None, "questions", f"no 'questions' list (top-level keys: {keys})")
    questions = data["questions"]
    if not isinstance(questions, list):
        raise BioASQFormatError(label, None, "questions", f"expected a list, got {_kind(questions)}")
    return [q for q in questions if isinstance(q, dict)]


def _ids(questions: list[dict[str, Any]]) -> list[str]:
    return [q["id"] for q in questions if isinstance(q.get("id"), str)]


def _has_answers(questions: list[dict[str, Any]]) -> bool:
    return any(q.get("exact_answer") or q.get("ideal_answer") for q in questions)


def _sample(ids: list[str]) -> str:
    return ", ".join(ids[:3]) + (", ..." if len(ids) > 3 else "")


def check_pair(
    golden: Any, system: Any, golden_label: str, system_label: str, selected: Collection[str] | None = None
) -> list[str]:
    """Refuse an unusable golden/system pair (``BioASQFormatError``); return warnings for a doubtful one. With
    ``selected`` (the golden ids the submission was meant to answer), coverage is counted against those only."""
    gold_qs = questions_of(golden, golden_label)
    sys_qs = questions_of(system, system_label)
    gold_ids, sys_ids = _ids(gold_qs), _ids(sys_qs)
    duplicated = sorted(i for i, n in Counter(gold_ids).items() if n > 1)
    if duplicated:
        raise BioASQFormatError(
            golden_label, duplicated[0], "id", f"{len(duplicated)} question id(s) occur more than once in the golden "
            f"file ({_sample(duplicated)}); the official evaluator would score those questions twice"
        )  # fmt: skip
    if not gold_ids:
        raise BioASQFormatError(golden_label, None, "questions", "no golden question has an id")
    shared = set(gold_ids) & set(sys_ids)
    if not shared:
        raise BioASQFormatError(
            system_label, None, "id", f"no question id in common with the golden file {golden_label} "
            f"({len(set(sys_ids))} submission ids, e.g. {_sample(sys_ids) or 'none'}; "
            f"golden e.g. {_sample(gold_ids)}): "
            "is it a submission for another batch?"
        )  # fmt: skip
    if not _has_answers(gold_qs) and _has_answers(sys_qs):
        raise BioASQFormatError(
            golden_label, None, "exact_answer", f"the golden file has no exact or ideal answers but the submission "
            f"{system_label} has: are golden= and system= swapped?"
        )  # fmt: skip
    warnings = []
    wanted = set(gold_ids) if selected is None else set(gold_ids) & set(selected)
    if len(shared & wanted) < MIN_SHARED_FRACTION * len(wanted):
        warnings.append(
            f"{system_label} answers only {len(shared & wanted)} of the {len(wanted)} golden questions of "
            f"{golden_label}; the measures are over those questions only (-e 9 skips missing ones)"
        )
    unknown = [i for i in dict.fromkeys(sys_ids) if i not in set(gold_ids)]
    if unknown:
        warnings.append(
            f"{system_label}: {len(unknown)} question id(s) not in the golden file ({_sample(unknown)}), ignored"
        )
    repeated = sorted(i for i, n in Counter(sys_ids).items() if n > 1)
    if repeated:
        warnings.append(
            f"{system_label}: {len(repeated)} question id(s) occur more than once ({_sample(repeated)}); "
            "only the first occurrence is scored, as the official evaluator does"
        )
    warnings += _swap_warnings(gold_qs, sys_qs, golden_label, system_label)
    return warnings


def _swap_warnings(gold_qs: list[dict], sys_qs: list[dict], golden_label: str, system_label: str) -> list[str]:
    """Signs that system= is a golden file: golden-style list ideal answers, or answers equal to the golden ones."""
    first: dict[str, dict] = {}
    for q in sys_qs:
        first.setdefault(q.get("id"), q)
    pairs = [(g, first[g["id"]]) for g in gold_qs if g.get("id") in first]
    copies = [
        g["id"]
        for g, s in pairs
        if (g.get("exact_answer") or g.get("ideal_answer"))
        and s.get("exact_answer") == g.get("exact_answer")
        and s.get("ideal_answer") == g.get("ideal_answer")
    ]
    if pairs and len(copies) == len(pairs):
        return [
            f"{system_label}: the exact and ideal answers of all {len(pairs)} scored questions are the golden answers "
            f"of {golden_label} themselves: is system= the golden file?"
        ]
    sys_lists = sum(isinstance(s.get("ideal_answer"), list) for _, s in pairs)
    gold_strings = sum(isinstance(g.get("ideal_answer"), str) for g, _ in pairs)
    if pairs and sys_lists == len(pairs) and gold_strings == len(pairs):
        return [
            f"ideal answers are lists in {system_label} (golden style) but strings in {golden_label} "
            "(submission style): are golden= and system= swapped?"
        ]
    return []
