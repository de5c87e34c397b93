"""Stage oracles for Phase A: any subset of its model stages answered perfectly from the golden file.

Where does Phase A lose? With ``retrieval.phase_a.oracle_stages=[extract,rerank]`` the query stage is the model's
and the other two are perfect, and so on for every subset. Each oracle answers only what its stage decides, and
everything after it runs for real (search depth, quote alignment to exact offsets, ``min_fuzzy_ratio``, the
k and 10-item limits), so that an all-oracle run measures the pipeline's own ceiling:

- ``query``: the golden documents of the question that are in the index, in golden order (a perfect search);
- ``extract``: for each document the model would read, the golden snippets of that document, verbatim, as the
  model's reply (they are then located in the document like any quote);
- ``rerank``: the candidates that overlap a golden snippet, in golden order, as the model's ranking reply.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from bioqa.data import Question, Snippet, pmid_of
from bioqa.retrieval.base import Hit, SearchIndex

#: The Phase A stages an oracle can answer.
ORACLE_STAGES = ("query", "extract", "rerank")


def _words(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


class PhaseAOracle:
    """Perfect answers for Phase A's stages from the questions' golden documents and snippets."""

    def __init__(self, questions: Sequence[Question]):
        lacking = [q.id for q in questions if not q.documents]
        if lacking:
            raise ValueError(
                f"phase A stage oracles need golden documents: {len(lacking)} of {len(questions)} questions have "
                f"none (first: {lacking[0]}); use a golden file, or no oracle_stages"
            )

    @staticmethod
    def documents(question: Question, index: SearchIndex, k: int) -> list[Hit]:
        """The golden documents of ``question`` found in ``index``, in golden order, at most ``k``."""
        lookup = getattr(index, "documents", None)
        if lookup is None:
            raise ValueError(f"the query oracle needs an index that returns documents by PMID ({type(index).__name__})")
        pmids = list(dict.fromkeys(pmid_of(url) for url in question.documents))
        found = lookup(pmids)
        return [found[p] for p in pmids if p in found][:k]

    @staticmethod
    def extract_reply(question: Question, hit: Hit) -> str:
        """The model's perfect extraction reply for one document: its golden snippets, verbatim."""
        quotes = [s.text for s in question.snippets if pmid_of(s.document) == hit.pmid]
        return json.dumps({"snippets": list(dict.fromkeys(quotes))}, ensure_ascii=False)

    @staticmethod
    def rerank_reply(question: Question, candidates: Sequence[Snippet]) -> str:
        """The model's perfect ranking reply: the ids of the candidates matching a golden snippet (same document,
        overlapping offsets in the same section, or the same words), in golden order."""
        chosen: list[int] = []
        for golden in question.snippets:
            for k, candidate in enumerate(candidates):
                if k not in chosen and _matches(candidate, golden):
                    chosen.append(k)
        return json.dumps({"snippets": chosen})


def _matches(candidate: Snippet, golden: Snippet) -> bool:
    if pmid_of(candidate.document) != pmid_of(golden.document):
        return False
    same_section = candidate.begin_section == golden.begin_section
    overlap = candidate.offset_begin < golden.offset_end and golden.offset_begin < candidate.offset_end
    return (same_section and overlap) or _words(candidate.text) == _words(golden.text)
