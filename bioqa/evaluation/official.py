"""The official BioASQ Task B measures, re-implemented bit for bit on the raw JSON (GMAP: to 2 ulp, see below).

Reproduces ``evaluation.EvaluatorTask1b`` of ``BioASQEvaluation.jar`` (BioASQ/Evaluation-Measures @8c8e689) for the
challenge versions ``-e`` 2, 3, 5, 8 and 9 (see ``shared/bioasq/OFFICIAL_METRICS.md``), including its quirks: documents
and concepts de-duplicated at read time, snippets concatenated in place with the jar's loop order (twice, as the jar
evaluates phase A twice), inclusive snippet offsets, average precision not capped at 1, ``eps`` in GMAP, NaN rules,
greedy consuming list matching, lower-casing as the only normalisation and the per-version question-skipping rules.
Where the jar crashes (no numbers), :class:`SubmissionRejected` is raised instead.

Everything is computed with the jar's operation order (sequential sums, same divisions), so every number is
bit-identical to the jar's except GMAP, which may differ in the last bit. The jar's ``Math.log``/``Math.exp`` are
HotSpot's Intel-libm intrinsics (the same in the interpreter and the JIT). Its log is the correctly rounded one on
199,999 of 200,000 random arguments, so :func:`_log` rounds correctly (the C library's ``log`` differs from Java's on
100 of them). Its exp differs from the C library's on 1,026 of 400,000 arguments (in 850 of them the C library's is
the correctly rounded one), which only a port of the intrinsic would remove (``benchmarks/java_math_agreement.py``).
On 320 GMAPs of generated submissions, 319 are identical and 1 is 1 ulp off, from exp
(``tests/test_official_differential.py`` allows 2 ulp). Per-question values are returned as well (they feed the
bootstrap CIs of :mod:`bioqa.evaluation.stats`).
"""

from __future__ import annotations

import decimal
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from bioqa.data.bioasq_json import BioASQFormatError
from bioqa.errors import ConfigError

EPSILON = 0.00001
VERSIONS = (2, 3, 5, 8, 9)
DEFAULT_VERSION = 9

#: The columns the jar prints for each phase, in its order (the registry's measures of that phase, see
#: :mod:`bioqa.evaluation.measures`; the numbers here are the oracle that the registry's are checked against).
JAR_COLUMNS: dict[str, tuple[str, ...]] = {
    "A": tuple(
        f"{group}.{name}"
        for group in ("concepts", "documents", "snippets", "triples")
        for name in ("MPrec", "MRec", "MF1", "MAP", "GMAP")
    ),
    "B": (
        "yesno.acc",
        "factoid.strict_acc",
        "factoid.lenient_acc",
        "factoid.mrr",
        "list.precision",
        "list.recall",
        "list.f1",
        "yesno.macro_f1",
        "yesno.f1_yes",
        "yesno.f1_no",
    ),
}


class SubmissionRejected(BioASQFormatError):
    """The official evaluator would crash on this input (it prints no numbers); the message says where and why."""


# --------------------------------------------------------------------------------------------------- Java arithmetic


def _div(a: float, b: float) -> float:
    """Java double division (x/0 is ±Infinity or NaN instead of an exception)."""
    if b == 0:
        if a == 0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
    return a / b


_LN_CONTEXT = decimal.Context(prec=30)


@lru_cache(maxsize=1 << 16)
def _correctly_rounded_log(x: float) -> float:
    """ln(x) rounded once to the nearest double (30 significant digits first, then to binary)."""
    return float(_LN_CONTEXT.ln(decimal.Decimal(x)))


def _log(x: float) -> float:
    """Java's ``Math.log``: HotSpot's intrinsic agrees with the correctly rounded log on 199,999 of 200,000 random
    arguments, the C library's ``log`` on 199,900, so the correctly rounded value is used (cached: APs repeat)."""
    if math.isnan(x) or x < 0:
        return math.nan
    if x == 0:
        return -math.inf
    if math.isinf(x):
        return math.inf
    return _correctly_rounded_log(x)


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def _isnan(x: float) -> bool:
    return x != x


# --------------------------------------------------------------------------------------------------- reading (gson)


@dataclass
class _Snippet:
    document: str
    begin_section: str
    end_section: str
    begin: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.begin + 1

    def _same_sections(self, other: _Snippet) -> bool:
        return (self.begin_section == other.begin_section and self.end_section == other.end_section) or (
            self.begin_section == "0" and other.begin_section == "abstract"
        )

    def overlap(self, other: _Snippet) -> int:
        """Common positions of the two ranges, both ends inclusive (the jar's four cases, in its order)."""
        if not self._same_sections(other):
            return 0
        b, e, gb, ge = self.begin, self.end, other.begin, other.end
        if b > ge or e < gb:
            return 0
        if b >= gb and e <= ge:
            return e - b + 1
        if b >= gb and e > ge:
            return ge - b + 1
        if b < gb and e <= ge:
            return e - gb + 1
        return ge - gb + 1

    def touches(self, other: _Snippet) -> bool:
        return self._same_sections(other) and not (self.begin > other.end or self.end < other.begin)


@dataclass
class _Exact:
    answer: str | None = None  # yes/no value after the substring rule
    answers: list[str] = field(default_factory=list)  # flat list (-e 2 only)
    lists: list[list[str]] = field(default_factory=list)  # list of synonym lists


@dataclass
class _Question:
    index: int
    id: str | None = None
    type: str | None = None
    documents: list[str] = field(default_factory=list)
    concepts: list[str] = field(default_factory=list)
    triples: list[tuple] = field(default_factory=list)
    snippets: list[_Snippet] = field(default_factory=list)
    exact: _Exact | None = None


QUESTION_TYPES = ("yesno", "factoid", "list", "summary")
SNIPPET_KEYS = ("offsetInBeginSection", "offsetInEndSection", "document", "beginSection", "endSection", "text")


class _Reader:
    """Reads one file the way the jar's gson stream reader does, raising where it would throw."""

    def __init__(self, source: str, is_gold: bool, version: int):
        self.source, self.is_gold, self.version = source, is_gold, version
        self.qid: str | None = None

    def reject(self, fld: str | None, problem: str) -> SubmissionRejected:
        return SubmissionRejected(self.source, self.qid, fld, problem + " (the official evaluator crashes on this)")

    def string(self, value: Any, fld: str) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return json.dumps(value)  # gson's nextString() accepts a number literal
        raise self.reject(fld, f"expected a string, got {_show(value)}")

    def integer(self, value: Any, fld: str) -> int:
        if isinstance(value, bool):
            raise self.reject(fld, f"expected an integer, got {_show(value)}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise self.reject(fld, f"expected an integer offset, got {_show(value)}")

    def array(self, value: Any, fld: str) -> list:
        if not isinstance(value, list):
            raise self.reject(fld, f"expected a JSON array, got {_show(value)}")
        return value

    def read(self, data: Any) -> list[_Question]:
        if not isinstance(data, dict):
            raise self.reject(None, f"expected a JSON object at the top level, got {_show(data)}")
        if "questions" not in data:
            return []
        questions = []
        for index, raw in enumerate(self.array(data["questions"], "questions")):
            self.qid = None
            if not isinstance(raw, dict):
                raise self.reject(f"questions[{index}]", f"a question must be an object, got {_show(raw)}")
            raw_id = raw.get("id")
            self.qid = raw_id if isinstance(raw_id, str) else f"#{index}"
            questions.append(self.question(raw, index))
        self.qid = None
        return questions

    def question(self, raw: dict, index: int) -> _Question:
        q = _Question(index=index)
        for name, value in raw.items():
            if name == "id":
                q.id = self.string(value, "id")
            elif name == "type":
                kind = self.string(value, "type")
                q.type = kind if kind in QUESTION_TYPES else None  # case-sensitive; unknown types drop out
            elif name == "body":
                self.string(value, "body")
            elif name in ("documents", "concepts"):
                items: list[str] = []
                for item in self.array(value, name):
                    text = self.string(item, name)
                    if text not in items:
                        items.append(text)
                setattr(q, name, items)
            elif name == "triples":
                q.triples.extend(self.triple(t) for t in self.array(value, "triples"))
            elif name == "snippets":
                q.snippets.extend(self.snippet(s, i) for i, s in enumerate(self.array(value, "snippets")))
            elif name == "exact_answer":
                q.exact = self.exact(value)
        return q

    def triple(self, raw: Any) -> tuple:
        if not isinstance(raw, dict):
            raise self.reject("triples", f"a triple must be an object, got {_show(raw)}")
        p = self.string(raw["p"], "triples.p") if "p" in raw else ""
        s = "" if raw.get("s") is None else self.string(raw["s"], "triples.s")
        o = "" if raw.get("o") is None else self.string(raw["o"], "triples.o")
        return (p, s, o)

    def snippet(self, raw: Any, i: int) -> _Snippet:
        if not isinstance(raw, dict):
            raise self.reject(f"snippets[{i}]", f"a snippet must be an object, got {_show(raw)}")
        extra = [k for k in raw if k not in SNIPPET_KEYS]
        if extra:
            raise self.reject(f"snippets[{i}].{extra[0]}", f"unknown snippet key {extra[0]!r}; allowed: {SNIPPET_KEYS}")
        values = {"document": "", "beginSection": "", "endSection": ""}
        for key in ("document", "beginSection", "endSection", "text"):
            if key in raw:
                values[key] = self.string(raw[key], f"snippets[{i}].{key}")
        offsets = {k: self.integer(raw[k], f"snippets[{i}].{k}") if k in raw else 0 for k in SNIPPET_KEYS[:2]}
        return _Snippet(
            document=values["document"],
            begin_section=_section(values["beginSection"]),
            end_section=_section(values["endSection"]),
            begin=offsets["offsetInBeginSection"],
            end=offsets["offsetInEndSection"],
        )

    def exact(self, raw: Any) -> _Exact:
        if isinstance(raw, str):
            low = raw.lower()
            return _Exact(answer="yes" if "yes" in low else "no" if "no" in low else "none")
        if not isinstance(raw, list):
            raise self.reject("exact_answer", f"expected a string or a list of lists, got {_show(raw)}")
        if not raw:
            return _Exact()
        first = raw[0]
        if isinstance(first, list):
            keep_synonyms = self.is_gold or self.version in (2, 3)
            lists = []
            for k, item in enumerate(raw):
                if not isinstance(item, list):
                    raise self.reject(f"exact_answer[{k}]", f"expected a list of lists, but item {k} is {_show(item)}")
                strings = [self.string(s, f"exact_answer[{k}]").lower() for s in item]
                if strings:  # an empty inner list is not read at all
                    lists.append(strings if keep_synonyms else strings[:1])
            return _Exact(lists=lists)
        if isinstance(first, str) and self.version == 2:
            return _Exact(answers=[self.string(s, "exact_answer").lower() for s in raw])
        if isinstance(first, str):
            raise self.reject(
                "exact_answer",
                f"a flat list of strings ({_show(raw)}) is not accepted with -e {self.version}; "
                'wrap each answer in its own list: [["answer 1"], ["answer 2"]]',
            )
        raise self.reject("exact_answer", f"unexpected first item {_show(first)}")


def _section(name: str) -> str:
    return name[name.find(".") + 1 :]  # "sections.0" -> "0"; "abstract" stays


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def load_json(source: str | os.PathLike | dict, label: str) -> tuple[Any, str]:
    """(parsed JSON, name for messages): a dict is taken as is; a file that is not JSON is rejected."""
    if isinstance(source, dict):
        return source, label
    try:
        with open(source, encoding="utf-8") as handle:
            return json.load(handle), str(source)
    except FileNotFoundError:
        raise BioASQFormatError(source, None, None, "file not found") from None
    except IsADirectoryError:
        raise BioASQFormatError(source, None, None, "is a directory, expected a JSON file") from None
    except UnicodeDecodeError as err:
        raise BioASQFormatError(source, None, None, f"not UTF-8 text ({err.reason} at byte {err.start})") from None
    except RecursionError:
        raise BioASQFormatError(source, None, None, "JSON nested too deeply to read") from None
    except json.JSONDecodeError as err:
        raise SubmissionRejected(source, None, None, f"not valid JSON ({err})") from None


class _Lookup:
    """``Task1bData.getQuestion(id)``: the first system question with that id (a question without id before it NPEs)."""

    def __init__(self, questions: list[_Question], source: str):
        self.first: dict[str, _Question] = {}
        self.no_id_at: int | None = None
        self.source = source
        for q in questions:
            if q.id is None:
                if self.no_id_at is None:
                    self.no_id_at = q.index
            elif q.id not in self.first:
                self.first[q.id] = q

    def __call__(self, qid: str | None) -> _Question | None:
        found = self.first.get(qid) if qid is not None else None
        if self.no_id_at is not None and (found is None or self.no_id_at < found.index):
            raise SubmissionRejected(
                self.source, None, f"questions[{self.no_id_at}].id", "question without id (the jar crashes on it)"
            )
        return found


def _read_pair(golden, system, version: int) -> tuple[list[_Question], _Lookup]:
    if version not in VERSIONS:
        raise ConfigError(f"version={version!r}: expected a version of the official evaluator {VERSIONS}")
    gold_data, gold_src = load_json(golden, "golden (dict)")
    sys_data, sys_src = load_json(system, "submission (dict)")
    gold = _Reader(gold_src, True, version).read(gold_data)
    resp = _Reader(sys_src, False, version).read(sys_data)
    return gold, _Lookup(resp, sys_src)


# --------------------------------------------------------------------------------------------------- phase A


@dataclass
class _Measures:
    precision: float = 0.0
    recall: float = 0.0
    f1: float = 0.0
    ap: float = 0.0


def _prf(gold: list, resp: list, m: _Measures) -> None:
    if not resp:
        return
    gold_set, resp_set = set(gold), set(resp)
    tp = sum(1 for item in resp if item in gold_set)
    fp = len(resp) - tp
    fn = sum(1 for item in gold if item not in resp_set)
    m.precision = tp / (tp + fp)
    if fn + tp != 0:
        m.recall = tp / (tp + fn)
    if m.precision != 0 and m.recall != 0:
        m.f1 = 2 * m.precision * m.recall / (m.precision + m.recall)


def _divisor(version: int, n_gold: int) -> float:
    if version == 2:
        return float(n_gold)
    if version in (3, 5):
        return 10.0
    return min(10.0, float(n_gold))


def _average_precision(gold: list, resp: list, m: _Measures, version: int) -> None:
    """AP over the whole submitted list (not cut at 10); like the jar, keeps only relevant items in ``resp``."""
    gold_set = set(gold)
    ap, tp = 0.0, 0
    for rank, item in enumerate(resp, start=1):
        if item in gold_set:
            tp += 1
            ap += tp / rank
    resp[:] = [item for item in resp if item in gold_set]
    m.ap = 0.0 if not resp else _div(ap, _divisor(version, len(gold)))


def _document_id(document: str, source: str) -> str:
    if "/" not in document:
        return document
    parts = document.split("/")
    while parts and parts[-1] == "":
        parts.pop()
    if not parts:
        raise SubmissionRejected(source, None, "snippets.document", f"document {document!r} has no id after '/'")
    return parts[-1]


def _concatenate(snippets: list[_Snippet]) -> None:
    """Merge touching snippets of the same document and sections, in place, in the jar's exact loop order."""
    i = 0
    while i < len(snippets):
        j = 0
        while j < len(snippets):
            if j != i:
                a, b = snippets[i], snippets[j]
                if (
                    a.document == b.document
                    and a.begin_section == b.begin_section
                    and a.end_section == b.end_section
                    and a.touches(b)
                ):
                    snippets[i] = _Snippet(
                        a.document, a.begin_section, a.end_section, min(a.begin, b.begin), max(a.end, b.end)
                    )
                    del snippets[j]
                    j = 0
            j += 1
        i += 1


def _snippet_prf(gold: list[_Snippet], resp: list[_Snippet], m: _Measures, source: str) -> None:
    if not resp:
        return
    by_id: dict[str, list[_Snippet]] = {}
    for g in gold:
        by_id.setdefault(_document_id(g.document, source), []).append(g)
    resp_size = overlap = 0
    for s in resp:
        resp_size += s.size
        for g in by_id.get(_document_id(s.document, source), ()):
            overlap += s.overlap(g)
    gold_size = sum(g.size for g in gold)
    if resp_size != 0:
        m.precision = overlap / resp_size
    if gold_size != 0:
        m.recall = overlap / gold_size
    if m.precision != 0 or m.recall != 0:
        m.f1 = _div(2 * m.precision * m.recall, m.precision + m.recall)


def _snippet_ap(gold: list[_Snippet], resp: list[_Snippet], m: _Measures, version: int) -> None:
    """Character precision of the first r snippets, summed at every snippet whose *document* is a golden one."""
    by_doc: dict[str, list[_Snippet]] = {}
    for g in gold:
        by_doc.setdefault(g.document, []).append(g)
    ap, size, overlap = 0.0, 0, 0
    for s in resp:
        size += s.size
        same_doc = by_doc.get(s.document, ())
        overlap += sum(s.overlap(g) for g in same_doc)
        ap += _div(overlap, size) * (1.0 if same_doc else 0.0)
    m.ap = _div(ap, float(len(gold)) if version == 2 else _divisor(version, len(gold)))


@dataclass
class _PairA:
    gold: _Question
    concepts: _Measures = field(default_factory=_Measures)
    documents: _Measures = field(default_factory=_Measures)
    snippets: _Measures = field(default_factory=_Measures)
    triples: _Measures = field(default_factory=_Measures)
    has_concepts: bool = False
    has_triples: bool = False


def _pair_a(gold: _Question, resp: _Question, version: int, source: str) -> _PairA:
    """``calculateMeasuresForPair``: same steps, same order, same in-place changes to both questions."""
    pair = _PairA(gold)
    if gold.concepts and resp.concepts:
        _prf(gold.concepts, resp.concepts, pair.concepts)
        pair.has_concepts = True
    _prf(gold.documents, resp.documents, pair.documents)
    if gold.triples:
        _prf(gold.triples, resp.triples, pair.triples)
        pair.has_triples = True
    _concatenate(gold.snippets)
    _concatenate(resp.snippets)
    _snippet_prf(gold.snippets, resp.snippets, pair.snippets, source)
    _average_precision(gold.concepts, resp.concepts, pair.concepts, version)
    _average_precision(gold.documents, resp.documents, pair.documents, version)
    if gold.triples:
        _average_precision(gold.triples, resp.triples, pair.triples, version)
    _snippet_ap(gold.snippets, resp.snippets, pair.snippets, version)
    return pair


def _nan0(x: float) -> float:
    return 0.0 if _isnan(x) else x


def jar_mean(values: Sequence[float], empty: float) -> float:
    """Sequential sum (the jar's order; Python's ``sum`` may compensate) divided by the count, NaN counted as 0."""
    total = 0.0
    for v in values:
        total += _nan0(v)
    return empty if not values else total / len(values)


def _mean_over(values: list[float]) -> float:
    """``m / qeval.size()`` without a zero check: 0/0 is NaN."""
    total = 0.0
    for v in values:
        total += _nan0(v)
    return _div(total, float(len(values)))


def jar_gmap(aps: Sequence[float], nan_as_eps: bool) -> float:
    """exp(mean(log(AP + eps))) in the jar's order; a NaN AP adds log(eps) (``nan_as_eps``) or makes it NaN."""
    total = 0.0
    for ap in aps:
        total += _log(EPSILON) if nan_as_eps and _isnan(ap) else _log(ap + EPSILON)
    return _exp(_div(total, float(len(aps))))


def gmap_snippets(aps: Sequence[float]) -> float:
    """Snippet GMAP with the jar's quirks: NaN APs add nothing, a NaN or exactly-0 log sum gives 0."""
    total = 0.0
    for ap in aps:
        if not _isnan(ap):
            total += _log(ap + EPSILON)
    if _isnan(total) or total == 0:
        return 0.0
    return _exp(total / len(aps))


def _phase_a_metrics(doc_pairs: list[_PairA], snip_pairs: list[_PairA]) -> dict[str, float]:
    concepts = [p.concepts for p in doc_pairs if p.has_concepts]
    docs = [p.documents for p in doc_pairs]
    snips = [p.snippets for p in snip_pairs]
    triples = [p.triples for p in snip_pairs if p.has_triples]
    out: dict[str, float] = {}
    for name, group in (("concepts", concepts), ("triples", triples)):
        out[f"{name}.MPrec"] = jar_mean([m.precision for m in group], 0.0)
        out[f"{name}.MRec"] = jar_mean([m.recall for m in group], 0.0)
        out[f"{name}.MF1"] = jar_mean([m.f1 for m in group], 0.0)
        out[f"{name}.MAP"] = jar_mean([m.ap for m in group], 0.0)
        if not group:
            out[f"{name}.GMAP"] = 0.0
        elif name == "concepts":
            out[f"{name}.GMAP"] = jar_gmap([m.ap for m in group], nan_as_eps=False)
        else:
            total = 0.0
            for m in group:  # triples: no NaN check at all
                total += _log(m.ap + EPSILON)
            out[f"{name}.GMAP"] = _exp(total / len(group))
    out["documents.MPrec"] = jar_mean([m.precision for m in docs], 0.0)
    out["documents.MRec"] = jar_mean([m.recall for m in docs], 0.0)
    out["documents.MF1"] = _mean_over([m.f1 for m in docs])
    out["documents.MAP"] = _mean_over([m.ap for m in docs])
    out["documents.GMAP"] = jar_gmap([m.ap for m in docs], nan_as_eps=True)
    out["snippets.MPrec"] = _mean_over([m.precision for m in snips])
    out["snippets.MRec"] = _mean_over([m.recall for m in snips])
    out["snippets.MF1"] = _mean_over([m.f1 for m in snips])
    out["snippets.MAP"] = _mean_over([m.ap for m in snips])
    out["snippets.GMAP"] = gmap_snippets([m.ap for m in snips])
    return {name: out[name] for name in JAR_COLUMNS["A"]}


# --------------------------------------------------------------------------------------------------- phase B


def _contains_synonym(owner: _Exact, resp: list[str], remove: bool) -> bool:
    """``ExactAnswer.containsAnswerSynonym``: does any item of ``owner.lists`` share a string with ``resp``?"""
    for i, synonyms in enumerate(owner.lists):
        for s in synonyms:
            if s in resp:
                if remove:
                    del owner.lists[i]
                return True
    return False


@dataclass
class _PairB:
    gold: _Question
    type: str | None
    correct: float = 0.0  # yes/no accuracy
    is_yes: bool = False
    strict: float = 0.0
    lenient: float = 0.0
    rr: float = 0.0
    precision: float = 0.0
    recall: float = 0.0
    f1: float = 0.0


def _pair_b(gold: _Question, resp: _Question, version: int, sources: tuple[str, str]) -> _PairB:
    """``calculatePhaseBMeasuresForPair`` (the golden type decides; crashes where the jar's NPEs are)."""
    pair = _PairB(gold, gold.type)
    g, r = gold.exact, resp.exact

    def npe(src: str, what: str) -> SubmissionRejected:
        return SubmissionRejected(src, gold.id, "exact_answer", what + " (the official evaluator crashes on this)")

    if gold.type == "factoid":
        if version == 2:
            if r is None:
                return pair
            if g is None:
                raise npe(sources[0], "golden factoid question without exact_answer")
            if r.answers and g.answers and r.answers[0] == g.answers[0]:
                pair.strict = 1.0
            hit = next((i for i, a in enumerate(r.answers) if a in g.answers), None)
            if hit is not None:
                pair.lenient, pair.rr = 1.0, 1.0 / (hit + 1)
            return pair
        if r is None:
            return pair
        if r.lists and g is None:
            raise npe(sources[0], "golden factoid question without exact_answer")
        hit = next((i for i, cand in enumerate(r.lists) if _contains_synonym(g, cand, False)), None)
        if hit == 0:
            pair.strict = 1.0
        if hit is not None:
            pair.lenient, pair.rr = 1.0, 1.0 / (hit + 1)
    elif gold.type == "list":
        if r is None or not r.lists:
            return pair
        if g is None:
            raise npe(sources[0], "golden list question without exact_answer")
        tp = fp = fn = 0
        for item in r.lists:
            if _contains_synonym(g, item, True):
                tp += 1
            else:
                fp += 1
        for golden_item in g.lists:
            if not _contains_synonym(r, golden_item, True):
                fn += 1
        pair.precision = tp / (tp + fp)
        if fn + tp != 0:
            pair.recall = tp / (tp + fn)
        if pair.precision != 0 and pair.recall != 0:
            pair.f1 = 2 * pair.precision * pair.recall / (pair.precision + pair.recall)
    elif gold.type == "yesno":
        if r is not None:
            if r.answer is None:
                raise npe(sources[1], 'a yes/no answer must be the string "yes" or "no", not a list')
            if g is None or g.answer is None:
                raise npe(sources[0], "golden yes/no question without a string exact_answer")
            if g.answer == r.answer:
                pair.correct = 1.0
        if g is None or g.answer is None:
            raise npe(sources[0], "golden yes/no question without a string exact_answer")
        pair.is_yes = g.answer.lower() == "yes"
    return pair


def _has_golden_answer(q: _Question) -> bool:
    e = q.exact
    return e is not None and not (e.answer is None and not e.lists and not e.answers)


def _f1_yesno(pairs: list[_PairB], label: bool) -> float:
    tp = fp = fn = 0
    for p in pairs:
        if p.is_yes == label:
            if p.correct == 1:
                tp += 1
            else:
                fp += 1
        elif p.correct != 1:
            fn += 1
    denominator = 2 * tp + fp + fn
    return 0.0 if not pairs or denominator == 0 else 2 * tp / denominator


def _phase_b_metrics(pairs: list[_PairB]) -> dict[str, float]:
    yesno = [p for p in pairs if p.type == "yesno"]
    factoid = [p for p in pairs if p.type == "factoid"]
    lists = [p for p in pairs if p.type == "list"]
    f1_yes, f1_no = _f1_yesno(yesno, True), _f1_yesno(yesno, False)
    return {
        "yesno.acc": jar_mean([p.correct for p in yesno], 0.0),
        "factoid.strict_acc": jar_mean([p.strict for p in factoid], 0.0),
        "factoid.lenient_acc": jar_mean([p.lenient for p in factoid], 0.0),
        "factoid.mrr": jar_mean([p.rr for p in factoid], 0.0),
        "list.precision": jar_mean([p.precision for p in lists], 0.0),
        "list.recall": jar_mean([p.recall for p in lists], 0.0),
        "list.f1": jar_mean([p.f1 for p in lists], 0.0),
        "yesno.macro_f1": (f1_yes + f1_no) / 2,
        "yesno.f1_yes": f1_yes,
        "yesno.f1_no": f1_no,
    }


# --------------------------------------------------------------------------------------------------- public API


@dataclass
class OfficialResult:
    """Set-level measures (the jar's columns, in its order) and per-question values of the counted questions."""

    phase: str
    version: int
    metrics: dict[str, float]
    per_question: list[dict[str, Any]]


def evaluate_phase_a(
    golden: str | os.PathLike | dict, system: str | os.PathLike | dict, version: int = DEFAULT_VERSION
) -> OfficialResult:
    """Phase A (concepts, documents, snippets, triples) as ``EvaluatorTask1b -phaseA -e VERSION``."""
    gold, lookup = _read_pair(golden, system, version)
    doc_pairs, snip_pairs = [], []
    for pairs, attr in ((doc_pairs, "documents"), (snip_pairs, "snippets")):
        for g in gold:  # the jar evaluates the pair once per loop (in-place changes accumulate)
            resp = lookup(g.id)
            if (version == 9 and not getattr(g, attr)) or resp is None:
                continue
            pairs.append(_pair_a(g, resp, version, lookup.source))
    rows: dict[int, dict[str, Any]] = {}
    for p in doc_pairs:
        row = rows.setdefault(p.gold.index, _row(p.gold))
        row.update(_values("documents", p.documents))
        if p.has_concepts:
            row.update(_values("concepts", p.concepts))
    for p in snip_pairs:
        row = rows.setdefault(p.gold.index, _row(p.gold))
        row.update(_values("snippets", p.snippets))
        if p.has_triples:
            row.update(_values("triples", p.triples))
    return OfficialResult("A", version, _phase_a_metrics(doc_pairs, snip_pairs), [rows[i] for i in sorted(rows)])


def evaluate_phase_b(
    golden: str | os.PathLike | dict, system: str | os.PathLike | dict, version: int = DEFAULT_VERSION
) -> OfficialResult:
    """Phase B exact answers (yes/no, factoid, list) as ``EvaluatorTask1b -phaseB -e VERSION``."""
    gold, lookup = _read_pair(golden, system, version)
    gold_src = "golden (dict)" if isinstance(golden, dict) else str(golden)
    pairs = []
    for g in gold:
        resp = lookup(g.id)
        if version == 9 and (not _has_golden_answer(g) or resp is None):
            continue
        if resp is None:
            if g.type in ("yesno", "factoid", "list"):
                raise SubmissionRejected(
                    lookup.source,
                    g.id,
                    "questions",
                    f"golden {g.type} question missing from the submission; with -e {version} the official "
                    "evaluator crashes (use -e 9, which skips missing questions)",
                )
            resp = _Question(index=-1)  # summary / untyped: the jar never touches the missing answer
        pairs.append(_pair_b(g, resp, version, (gold_src, lookup.source)))
    rows = []
    for p in pairs:
        row = _row(p.gold)
        if p.type == "yesno":
            row.update({"yesno.correct": p.correct, "yesno.is_yes": p.is_yes})
        elif p.type == "factoid":
            row.update({"factoid.strict": p.strict, "factoid.lenient": p.lenient, "factoid.rr": p.rr})
        elif p.type == "list":
            row.update({"list.precision": p.precision, "list.recall": p.recall, "list.f1": p.f1})
        rows.append(row)
    return OfficialResult("B", version, _phase_b_metrics(pairs), rows)


def evaluate_official(
    golden: str | os.PathLike | dict,
    system: str | os.PathLike | dict,
    phase: str,
    version: int = DEFAULT_VERSION,
) -> OfficialResult:
    """One phase (``"A"`` or ``"B"``) of the official evaluator."""
    if phase == "A":
        return evaluate_phase_a(golden, system, version)
    if phase == "B":
        return evaluate_phase_b(golden, system, version)
    raise ValueError(f"phase must be 'A' or 'B', got {phase!r}")


def _row(q: _Question) -> dict[str, Any]:
    return {"id": q.id, "index": q.index, "type": q.type}


def _values(group: str, m: _Measures) -> dict[str, float]:
    return {f"{group}.precision": m.precision, f"{group}.recall": m.recall, f"{group}.f1": m.f1, f"{group}.ap": m.ap}
