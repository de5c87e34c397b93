"""Synthetic distractor documents for retrieval benchmarks (no openly licensed biomedical text ships in a
package on the registries this project can reach: the PubMed/PMC packages there all download at run time).

Method (deterministic for a seed; the first N distractors are the same whatever the total, so the corpora
of growing ratios are nested):

* the text known in the corpus (the golden-snippet fragments of the shared BioASQ corpus: runs of padding
  spaces split it into fragments) is tokenised on whitespace; a global word-bigram table is built from it;
* each distractor takes a *seed document* at random and writes a title (8–16 words) and an abstract (6–10
  sentences of 12–28 words) with a bigram chain that follows the seed document's own bigrams with
  probability 0.6 and the global table otherwise, restarting at a random word of the seed document when a
  word has no successor.

How they differ from PubMed: word salad beyond two words (no syntax, no argument), topics copied from
documents that are *relevant* to some BioASQ question (so they crowd the questions' topics more densely than
a random slice of PubMed, but PubMed's 36M documents hold far more true near-topic neighbours), vocabulary
limited to the golden snippets' words, uniform lengths, no title-abstract coherence, no MeSH. A dense
encoder can tell word salad from prose more easily than BM25 can, which flatters dense retrieval here.
"""

from __future__ import annotations

import itertools
import random
import re
from collections import defaultdict
from collections.abc import Iterator, Sequence

_FRAGMENT_BREAK = re.compile(r"\s{2,}")


def fragments(doc: dict) -> list[list[str]]:
    """Word lists of the known text runs of a corpus document (padding spaces separate runs)."""
    runs = _FRAGMENT_BREAK.split(f"{doc['title']}  {doc['abstract']}")
    return [run.split() for run in runs if len(run.split()) >= 3]


class DistractorGenerator:
    """Bigram-chain documents seeded by the documents of ``corpus`` (see the module docstring)."""

    def __init__(self, corpus: Sequence[dict], seed: int = 13, p_local: float = 0.6):
        self.rng = random.Random(seed)
        self.p_local = p_local
        self.global_next: dict[str, list[str]] = defaultdict(list)
        self.docs: list[tuple[list[str], dict[str, list[str]]]] = []
        for doc in corpus:
            words: list[str] = []
            local: dict[str, list[str]] = defaultdict(list)
            for run in fragments(doc):
                words.extend(run)
                for a, b in itertools.pairwise(run):
                    self.global_next[a].append(b)
                    local[a].append(b)
            if len(words) >= 20:
                self.docs.append((words, local))
        if not self.docs:
            raise ValueError("no corpus document has 20 known words to seed distractors with")

    def _run(self, words: list[str], local: dict[str, list[str]], length: int) -> list[str]:
        rng = self.rng
        out = [rng.choice(words)]
        while len(out) < length:
            table = local if rng.random() < self.p_local and local.get(out[-1]) else self.global_next
            successors = table.get(out[-1])
            out.append(rng.choice(successors) if successors else rng.choice(words))
        return out

    def documents(self, count: int, first_pmid: int = 9_900_000_001) -> Iterator[dict]:
        """``count`` corpus documents (``pmid``, ``title``, ``abstract``)."""
        rng = self.rng
        for k in range(count):
            words, local = rng.choice(self.docs)
            title = " ".join(self._run(words, local, rng.randint(8, 16))).rstrip(".") + "."
            sentences = []
            for _ in range(rng.randint(6, 10)):
                sentence = " ".join(self._run(words, local, rng.randint(12, 28))).rstrip(".")
                sentences.append(sentence[:1].upper() + sentence[1:] + ".")
            yield {"pmid": str(first_pmid + k), "title": title[:1].upper() + title[1:], "abstract": " ".join(sentences)}
