"""ROUGE-2 and ROUGE-SU4 of ideal answers, multi-reference, as ROUGE-1.5.5 computes them.

Counting and multi-reference aggregation come from ``rouge-metric``'s pure-Python ``PyRouge`` (``multi_ref_mode=
"average"`` is ROUGE-1.5.5's ``-f A``: hits, reference n-grams and candidate n-grams are summed over all golden ideal
answers, so recall = sum of hits / sum of reference n-grams; its SU counts skip-bigrams with at most 4 words in between
plus unigrams, leaving out the last token's unigram exactly as the Perl script does). ``rouge-metric`` does no
tokenisation or stemming (it splits on white space), so this module re-implements ROUGE-1.5.5's own pre-processing:

* ASCII upper case -> lower case; ``-`` becomes a separate token; every character outside ``[A-Za-z0-9-]``
  becomes a space (so non-ASCII letters split words); tokens must start with ``[a-z0-9$]`` (lone ``-`` dropped);
* ``stem=True`` (``-m``, the default): tokens longer than 3 characters are first looked up in ROUGE-1.5.5's WordNet-2.0
  exception lists (irregular forms: mice -> mouse, data -> datum, better -> well; the lists ship with ``rouge-metric``
  as ``RELEASE-1.5.5/data/WordNet-2.0-Exceptions/{adj,adv,noun,verb}.exc``, read in that order, a later list winning
  on a duplicate key) and replaced by their base form; every other such token goes through ROUGE-1.5.5's Porter
  stemmer;
* stop words are kept (no ``-s``), as in the DUC settings ``-a -n 2 -x -m -2 4 -u -c 95 -r 1000 -f A -p 0.5 -t 0``
  that BioASQ code commonly uses; a custom ``stopwords`` set can be given.

F1 is ROUGE's F with ``alpha = 0.5`` (``-p 0.5``). The corpus score is the mean of the per-question scores.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path

import rouge_metric
from rouge_metric import PyRouge

#: The per-question keys :func:`rouge_scores` returns (each one a measure of :mod:`bioqa.evaluation.measures.ideal`).
ROUGE_KEYS = ("ideal.rouge2_recall", "ideal.rouge2_f1", "ideal.rouge_su4_recall", "ideal.rouge_su4_f1")


@dataclass(frozen=True)
class RougeOptions:
    """Pre-processing and counting options (defaults: ROUGE-1.5.5 ``-m -2 4 -u``, stop words kept)."""

    stem: bool = True
    wordnet: bool = True  # with stem: WordNet exception lookup first (ROUGE-1.5.5); False = Porter only
    stopwords: frozenset[str] = field(default_factory=frozenset)
    skip_gap: int = 4


# ----------------------------------------------------------------------------- ROUGE-1.5.5's Porter stemmer (Release 1)

_c = "[^aeiou]"
_v = "[aeiouy]"
_C = f"{_c}[^aeiouy]*"
_V = f"{_v}[aeiou]*"
_MGR0 = re.compile(f"^({_C})?{_V}{_C}")
_MEQ1 = re.compile(f"^({_C})?{_V}{_C}({_V})?$")
_MGR1 = re.compile(f"^({_C})?{_V}{_C}{_V}{_C}")
_VOWEL_IN_STEM = re.compile(f"^({_C})?{_v}")
_CVC = re.compile(f"^{_C}{_v}[^aeiouwxy]$")
_STEP2 = {
    "ational": "ate", "tional": "tion", "enci": "ence", "anci": "ance", "izer": "ize", "bli": "ble", "alli": "al",
    "entli": "ent", "eli": "e", "ousli": "ous", "ization": "ize", "ation": "ate", "ator": "ate", "alism": "al",
    "iveness": "ive", "fulness": "ful", "ousness": "ous", "aliti": "al", "iviti": "ive", "biliti": "ble", "logi": "log",
}  # fmt: skip
_STEP3 = {"icate": "ic", "ative": "", "alize": "al", "iciti": "ic", "ical": "ic", "ful": "", "ness": ""}
_STEP2_RE = re.compile("(" + "|".join(_STEP2) + ")$")
_STEP3_RE = re.compile("(" + "|".join(_STEP3) + ")$")
_STEP4_RE = re.compile("(al|ance|ence|er|ic|able|ible|ant|ement|ou|ism|ate|iti|ous|ive|ize)$")


@lru_cache(maxsize=1 << 16)
def porter_stem(word: str) -> str:
    """The Porter stemmer exactly as ROUGE-1.5.5 ships it (including its -ement/-ment/-ent change of 2004)."""
    if len(word) < 3:
        return word
    w = word
    initial_y = w[0] == "y"
    if initial_y:
        w = "Y" + w[1:]
    # step 1a
    if (m := re.search("(ss|i)es$", w)) or (m := re.search("([^s])s$", w)):
        w = w[: m.start()] + m.group(1)
    # step 1b
    if w.endswith("eed"):
        if _MGR0.search(w[:-3]):
            w = w[:-1]
    elif m := re.search("(ed|ing)$", w):
        stem = w[: m.start()]
        if _VOWEL_IN_STEM.search(stem):
            w = stem
            if re.search("(at|bl|iz)$", w):
                w += "e"
            elif re.search(r"([^aeiouylsz])\1$", w):
                w = w[:-1]
            elif _CVC.search(w):
                w += "e"
    # step 1c
    if w.endswith("y") and _VOWEL_IN_STEM.search(w[:-1]):
        w = w[:-1] + "i"
    # steps 2 and 3
    for pattern, table in ((_STEP2_RE, _STEP2), (_STEP3_RE, _STEP3)):
        if m := pattern.search(w):
            stem = w[: m.start()]
            if _MGR0.search(stem):
                w = stem + table[m.group(1)]
    # step 4
    if m := _STEP4_RE.search(w):
        stem = w[: m.start()]
        if _MGR1.search(stem):
            w = stem
    if w.endswith("ment") and _MGR1.search(w[:-4]):
        w = w[:-4]
    if w.endswith("ent"):
        if _MGR1.search(w[:-3]):
            w = w[:-3]
    elif m := re.search("(s|t)(ion)$", w):
        stem = w[: m.start()] + m.group(1)
        if _MGR1.search(stem):
            w = stem
    # step 5
    if w.endswith("e"):
        stem = w[:-1]
        if _MGR1.search(stem) or (_MEQ1.search(stem) and not _CVC.search(stem)):
            w = stem
    if w.endswith("ll") and _MGR1.search(w):
        w = w[:-1]
    if initial_y:
        w = "y" + w[1:]
    return w


#: ROUGE-1.5.5's WordNet-2.0 exception lists (the source of its ``WordNet-2.0.exc.db``), as shipped by rouge-metric.
WORDNET_EXCEPTIONS_DIR = Path(rouge_metric.__file__).parent / "RELEASE-1.5.5" / "data" / "WordNet-2.0-Exceptions"
WORDNET_EXCEPTION_LISTS = ("adj", "adv", "noun", "verb")


@cache
def wordnet_exceptions() -> dict[str, str]:
    """Irregular form -> base form, as ROUGE-1.5.5's exception DB (``buildExeptionDB.pl``: first two fields of
    each line; lists read in ``WORDNET_EXCEPTION_LISTS`` order, a later entry replacing an earlier one)."""
    table: dict[str, str] = {}
    for name in WORDNET_EXCEPTION_LISTS:
        for line in (WORDNET_EXCEPTIONS_DIR / f"{name}.exc").read_text(encoding="utf-8").splitlines():
            fields = line.split()
            if len(fields) >= 2:
                table[fields[0]] = fields[1]
    return table


def morph_stem(token: str) -> str:
    """ROUGE-1.5.5's ``MorphStem``: the WordNet base form of an irregular form, else the Porter stem."""
    base = wordnet_exceptions().get(token)
    return base if base is not None else porter_stem(token)


# ----------------------------------------------------------------------------- tokenisation and scoring

_NON_WORD = re.compile(r"[^A-Za-z0-9\-]")
_TOKEN_START = re.compile(r"^[a-z0-9$]")


def tokenize(text: str, options: RougeOptions = RougeOptions()) -> list[str]:
    """ROUGE-1.5.5's pre-processing of one summary (see the module docstring)."""
    text = _NON_WORD.sub(" ", text.replace("-", " - ")).lower()
    tokens = []
    for token in text.split():
        if token in options.stopwords or not _TOKEN_START.match(token):
            continue
        if options.stem and len(token) > 3:
            token = morph_stem(token) if options.wordnet else porter_stem(token)
        tokens.append(token)
    return tokens


def ideal_text(value: str | Sequence[str] | None) -> str | None:
    """A system ``ideal_answer`` (a string, or a list of strings some teams send) as one text."""
    if value is None:
        return None
    return value if isinstance(value, str) else " ".join(str(v) for v in value)


def rouge_counts(
    candidates: Sequence[str], references: Sequence[Sequence[str]], options: RougeOptions = RougeOptions()
) -> list[dict[str, dict[str, float]]]:
    """Per-candidate recall, precision and F (``{"rouge-2": {"r", "p", "f"}, "rouge-su4": {...}}``)."""
    if len(candidates) != len(references):
        raise ValueError(f"{len(candidates)} candidates but {len(references)} reference sets")
    scorer = PyRouge(
        rouge_n=(2,),
        rouge_l=False,
        rouge_su=True,
        skip_gap=options.skip_gap,
        multi_ref_mode="average",
        mode="individual",
    )
    hyps = [[tokenize(c, options)] for c in candidates]
    refs = [[[tokenize(r, options)] for r in refset] or [[[]]] for refset in references]
    su_key = f"rouge-su{options.skip_gap}"
    return [{"rouge-2": s["rouge-2"], "rouge-su4": s[su_key]} for s in scorer.evaluate_tokenized(hyps, refs)]


def rouge_scores(
    candidates: Sequence[str], references: Sequence[Sequence[str]], options: RougeOptions = RougeOptions()
) -> list[dict[str, float]]:
    """Per-candidate ROUGE-2 and ROUGE-SU4 recall/F1 against all its references (the :data:`ROUGE_KEYS`)."""
    return [
        dict(
            zip(
                ROUGE_KEYS,
                (s["rouge-2"]["r"], s["rouge-2"]["f"], s["rouge-su4"]["r"], s["rouge-su4"]["f"]),
                strict=True,
            )
        )
        for s in rouge_counts(candidates, references, options)
    ]
