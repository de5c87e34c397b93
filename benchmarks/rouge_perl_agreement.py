"""Agreement of bioqa's ROUGE with the original ROUGE-1.5.5 Perl script on golden ideal answers.

Cases: every golden question (all batches in ``shared/bioasq/golden``) with at least two ideal answers; the first
is the candidate, the others are its references. Each case is scored by ``ROUGE-1.5.5.pl`` (5-decimal output) and by
bioqa (:mod:`bioqa.evaluation.rouge`), without stemming, with stemming (``-m``: WordNet exceptions, then Porter) and,
for comparison, with Porter only (bioqa before the WordNet lists). Two agreement counts per setting:

* ``printed``: bioqa's ROUGE-2 and ROUGE-SU4 recall and F1, printed the way the Perl script prints them (R and P
  rounded to 5 decimals, F computed from those rounded values, then rounded), equal the Perl output — i.e. same counts;
* ``full``: bioqa's full-precision values (what metrics.json holds) within half a unit of the 5th decimal of the Perl
  output (F1 can miss by up to 1e-5 because the Perl script computes F from the rounded R and P).

Needs perl with XML::DOM and DB_File (``apt-get install libxml-dom-perl``).

    python benchmarks/rouge_perl_agreement.py [--shared ../shared/bioasq] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bioqa.evaluation.rouge import RougeOptions, rouge_counts
from bioqa.evaluation.rouge_reference import as_printed, perl_rouge_scores, unavailable
from bioqa.runs import write_json

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 0.5e-5 + 1e-12  # half a unit of ROUGE's 5th decimal


def golden_pairs(shared: Path, limit: int | None = None) -> tuple[list[str], list[list[str]]]:
    """(candidate, references) = (first ideal answer, the other ideal answers) of every multi-answer question."""
    candidates, references = [], []
    for path in sorted((shared / "golden").glob("*_golden.json")):
        for q in json.loads(path.read_text(encoding="utf-8"))["questions"]:
            ideal = [a for a in q.get("ideal_answer") or [] if isinstance(a, str) and a.strip()]
            if len(ideal) >= 2:
                candidates.append(ideal[0])
                references.append(ideal[1:])
    return candidates[:limit], references[:limit]


def agreement(candidates: list[str], references: list[list[str]], stem: bool, wordnet: bool = True) -> dict:
    """Cases; cases whose four values agree as printed and at full precision; the largest full-precision difference."""
    perl = perl_rouge_scores(candidates, references, stem=stem)
    ours = rouge_counts(candidates, references, RougeOptions(stem=stem, wordnet=wordnet))
    printed = full = 0
    worst = 0.0
    for o, p in zip(ours, perl, strict=True):
        same_print, diff = True, 0.0
        for measure, key in (("rouge-2", "rouge2"), ("rouge-su4", "rouge_su4")):
            recall, f1 = p[f"ideal.{key}_recall"], p[f"ideal.{key}_f1"]
            same_print &= as_printed(o[measure]["r"], o[measure]["p"]) == (recall, f1)
            diff = max(diff, abs(o[measure]["r"] - recall), abs(o[measure]["f"] - f1))
        printed += same_print
        full += diff <= TOLERANCE
        worst = max(worst, diff)
    n = len(perl)
    return {"cases": n, "printed": printed, "printed_share": printed / n, "full": full, "full_share": full / n,
            "max_abs_diff": worst}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shared", type=Path, default=Path(os.environ.get("BIOQA_SHARED", ROOT.parent / "shared/bioasq"))
    )
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    if reason := unavailable():
        sys.exit(f"rouge_perl_agreement: error: {reason}")
    candidates, references = golden_pairs(args.shared, args.limit)
    start = time.perf_counter()
    rows = {
        "no stemming": agreement(candidates, references, stem=False),
        "stemming (-m): WordNet exceptions + Porter": agreement(candidates, references, stem=True),
        "stemming, Porter only (bioqa before)": agreement(candidates, references, stem=True, wordnet=False),
    }
    table = Table(title=f"bioqa ROUGE vs ROUGE-1.5.5.pl on golden ideal-answer pairs ({len(candidates)} cases)")
    for column in ("setting", "cases", "printed equal", "share", "full within 5e-6", "share", "max |diff|"):
        table.add_column(column, justify="left" if column == "setting" else "right")
    for name, r in rows.items():
        table.add_row(
            name,
            str(r["cases"]),
            str(r["printed"]),
            f"{r['printed_share']:.4f}",
            str(r["full"]),
            f"{r['full_share']:.4f}",
            f"{r['max_abs_diff']:.5f}",
        )
    Console(width=140).print(table)
    write_json(
        ROOT / "benchmarks/results/rouge_perl_agreement.json",
        {"cases": len(candidates), "tolerance": TOLERANCE, "seconds": time.perf_counter() - start, "settings": rows},
    )


if __name__ == "__main__":
    main()
