"""End-to-end PubMed ingest speed (``python -m bioqa.retrieval.ingest``) on generated NLM baseline files.

    flock /work/cpu.lock python benchmarks/ingest_speed.py --label after [--citations 120000] [--repeats 2]
    flock /work/cpu.lock python benchmarks/ingest_speed.py --label before --code /tmp/bioqa-before

Citations are generated deterministically (``--seed``) in NLM's format and size: a DOCTYPE, 6–12 authors with
affiliations, a structured or plain abstract with inline markup (``<i>``, ``<sup>``), MeSH headings with
qualifiers, chemicals, keywords, history dates, article ids and 15–45 references: ~7 KB of XML each, like
the baseline files (``pubmedYYnNNNN.xml.gz``, ``--per-file`` citations each, gzipped). They are written once
into ``--work`` and reused, so runs of different code (``--code``: the checkout whose ``bioqa`` is measured,
e.g. a ``git worktree`` of an older commit) read the same bytes. Measured per repeat: gunzip alone, the
reader alone (``PubMedFile``, one process), and the real command into a fresh tantivy index (``--ingest-args``
are passed to it). Results are merged into the JSON under ``--label``; the 36M projection uses the best repeat.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import time
from itertools import accumulate
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
PUBMED_CITATIONS = 36_000_000
DOCTYPE = (
    '<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, '
    '1st January 2025//EN" "https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n<PubmedArticleSet>\n'
)
LABELS = ("BACKGROUND", "OBJECTIVE", "METHODS", "RESULTS", "CONCLUSIONS")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
SYLLABLES = [c + v for c in "bcdfghklmnprstvz" for v in ("a", "e", "i", "o", "u", "ae", "io", "ou")]


class CitationWriter:
    """Deterministic NLM-format ``PubmedArticle`` elements over a Zipf-distributed synthetic vocabulary."""

    def __init__(self, seed: int, vocabulary: int = 30_000):
        self.rng = random.Random(seed)
        words = {"".join(self.rng.choices(SYLLABLES, k=self.rng.randint(1, 3))) for _ in range(vocabulary * 2)}
        self.words = sorted(words)[:vocabulary]
        self.rng.shuffle(self.words)
        self.cumulative = list(accumulate(1 / rank**1.1 for rank in range(1, len(self.words) + 1)))

    def text(self, count: int, markup: bool = False) -> str:
        words = self.rng.choices(self.words, cum_weights=self.cumulative, k=count)
        if markup:
            at = self.rng.randrange(count)
            words[at] = f"<i>{words[at]}</i>"
            at = self.rng.randrange(count)
            words[at] = f"{words[at]}<sup>{self.rng.randint(2, 9)}</sup>"
        sentences, step = [], self.rng.randint(12, 24)
        for start in range(0, count, step):
            sentence = " ".join(words[start : start + step])
            sentences.append(sentence[:1].upper() + sentence[1:] + ".")
        return " ".join(sentences)

    def name(self) -> str:
        return self.rng.choice(self.words).capitalize()

    def article(self, pmid: int) -> str:
        rng, year = self.rng, self.rng.randint(1975, 2025)
        date = f"<Year>{year}</Year><Month>{rng.choice(MONTHS)}</Month><Day>{rng.randint(1, 28)}</Day>"
        authors = "".join(
            f'<Author ValidYN="Y"><LastName>{self.name()}</LastName><ForeName>{self.name()} {self.name()[0]}</ForeName>'
            f"<Initials>{self.name()[0]}</Initials><AffiliationInfo><Affiliation>Department of {self.name()} "
            f"{self.name()}, {self.name()} University School of Medicine, {self.name()}, {self.name()} "
            f"{rng.randint(10000, 99999)}, {self.name()}.</Affiliation></AffiliationInfo></Author>"
            for _ in range(rng.randint(1, 8))
        )
        if rng.random() < 0.5:
            abstract = "".join(
                f'<AbstractText Label="{label}" NlmCategory="{label}">{self.text(rng.randint(35, 70), True)}'
                "</AbstractText>"
                for label in LABELS[: rng.randint(3, 5)]
            )
        else:
            abstract = f"<AbstractText>{self.text(rng.randint(120, 240), True)}</AbstractText>"
        mesh = "".join(
            f'<MeshHeading><DescriptorName UI="D{rng.randint(0, 999999):06d}" MajorTopicYN="N">{self.name()} '
            f"{self.name()}</DescriptorName>"
            + "".join(
                f'<QualifierName UI="Q{rng.randint(0, 999999):06d}" MajorTopicYN="Y">{self.text(2)[:-1]}'
                "</QualifierName>"
                for _ in range(rng.randint(0, 1))
            )
            + "</MeshHeading>"
            for _ in range(rng.randint(4, 10))
        )
        chemicals = "".join(
            f"<Chemical><RegistryNumber>{rng.randint(0, 99999)}-{rng.randint(10, 99)}-{rng.randint(0, 9)}"
            f'</RegistryNumber><NameOfSubstance UI="D{rng.randint(0, 999999):06d}">{self.name()}</NameOfSubstance>'
            "</Chemical>"
            for _ in range(rng.randint(1, 5))
        )
        references = "".join(
            f"<Reference><Citation>{self.name()} {self.name()[0]}, {self.name()} {self.name()[0]}. {self.text(12)} "
            f"{self.name()} {self.name()}. {rng.randint(1960, 2025)};{rng.randint(1, 99)}({rng.randint(1, 12)}):"
            f'{rng.randint(1, 999)}-{rng.randint(1, 999)}.</Citation><ArticleIdList><ArticleId IdType="pubmed">'
            f"{rng.randint(1, 39_999_999)}</ArticleId></ArticleIdList></Reference>"
            for _ in range(rng.randint(0, 10))
        )
        return (
            '<PubmedArticle><MedlineCitation Status="MEDLINE" Owner="NLM" IndexingMethod="Automated">'
            f'<PMID Version="1">{pmid}</PMID><DateCompleted>{date}</DateCompleted><DateRevised>{date}</DateRevised>'
            '<Article PubModel="Print-Electronic"><Journal><ISSN IssnType="Electronic">1234-5678</ISSN>'
            f'<JournalIssue CitedMedium="Internet"><Volume>{rng.randint(1, 200)}</Volume><Issue>{rng.randint(1, 12)}'
            f"</Issue><PubDate>{date}</PubDate></JournalIssue><Title>Journal of {self.name()} {self.name()}</Title>"
            f"<ISOAbbreviation>J {self.name()}</ISOAbbreviation></Journal><ArticleTitle>{self.text(14, True)}"
            f"</ArticleTitle><Pagination><StartPage>{rng.randint(1, 999)}</StartPage></Pagination>"
            f'<ELocationID EIdType="doi" ValidYN="Y">10.{rng.randint(1000, 9999)}/j.{pmid}</ELocationID>'
            f"<Abstract>{abstract}<CopyrightInformation>© {year} {self.name()}.</CopyrightInformation></Abstract>"
            f'<AuthorList CompleteYN="Y">{authors}</AuthorList><Language>eng</Language><PublicationTypeList>'
            '<PublicationType UI="D016428">Journal Article</PublicationType></PublicationTypeList>'
            f'<ArticleDate DateType="Electronic">{date}</ArticleDate></Article><MedlineJournalInfo><Country>'
            f"{self.name()}</Country><MedlineTA>J {self.name()}</MedlineTA><NlmUniqueID>{rng.randint(1, 99999999)}"
            f"</NlmUniqueID></MedlineJournalInfo><ChemicalList>{chemicals}</ChemicalList><CitationSubset>IM"
            f'</CitationSubset><MeshHeadingList>{mesh}</MeshHeadingList><KeywordList Owner="NOTNLM">'
            + "".join(f'<Keyword MajorTopicYN="N">{self.text(2)[:-1]}</Keyword>' for _ in range(rng.randint(3, 6)))
            + "</KeywordList></MedlineCitation><PubmedData><History>"
            + "".join(f'<PubMedPubDate PubStatus="{s}">{date}</PubMedPubDate>' for s in ("received", "accepted"))
            + f'</History><PublicationStatus>ppublish</PublicationStatus><ArticleIdList><ArticleId IdType="pubmed">'
            f'{pmid}</ArticleId><ArticleId IdType="doi">10.{rng.randint(1000, 9999)}/j.{pmid}</ArticleId>'
            f"</ArticleIdList><ReferenceList>{references}</ReferenceList></PubmedData></PubmedArticle>\n"
        )


def generate(work: Path, citations: int, per_file: int, seed: int) -> list[Path]:
    """The baseline files (written once per ``citations``/``per_file``/``seed``, then reused)."""
    folder = work / f"baseline-{citations}-{per_file}-{seed}"
    done = folder / "COMPLETE"
    if not done.is_file():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        writer = CitationWriter(seed)
        for number, start in enumerate(range(0, citations, per_file), 1):
            with gzip.open(folder / f"pubmed99n{number:04d}.xml.gz", "wt", encoding="utf-8") as out:
                out.write(DOCTYPE)
                for pmid in range(start, min(start + per_file, citations)):
                    out.write(writer.article(30_000_001 + pmid))
                out.write("</PubmedArticleSet>\n")
        done.write_text("")
    return sorted(folder.glob("*.xml.gz"))


PARSE_ONLY = (
    "import sys, time\n"
    "from bioqa.retrieval import pubmed\n"
    "began = time.perf_counter()\n"
    "count = sum(1 for path in sys.argv[1:] for _ in pubmed.PubMedFile(path))\n"
    "print(count, time.perf_counter() - began, pubmed.__file__)\n"
)


FLOORS = (
    "import gzip, resource, sys, time\n"
    "from lxml import etree\n"
    "from bioqa.retrieval.ingest import TantivySink\n"
    "from bioqa.retrieval.pubmed import PubMedFile\n"
    "def cpu():\n"
    "    usage = resource.getrusage(resource.RUSAGE_SELF)\n"
    "    return usage.ru_utime + usage.ru_stime\n"
    "path, out = sys.argv[1:]\n"
    "began, count = time.perf_counter(), 0\n"
    "for _, element in etree.iterparse(gzip.open(path), tag='PubmedArticle'):\n"
    "    count += 1\n"
    "    element.clear()\n"
    "    while element.getprevious() is not None:\n"
    "        del element.getparent()[0]\n"
    "bare = count / (time.perf_counter() - began)\n"
    "docs = [c.as_document() for c in PubMedFile(path)]\n"
    "sink = TantivySink(out)\n"
    "began, used = time.perf_counter(), cpu()\n"
    "sink.upsert(docs)\n"
    "sink.commit()\n"
    "sink.close()\n"
    "print(bare, len(docs) / (time.perf_counter() - began), (cpu() - used) / len(docs) * 1e6)\n"
)


def floors(path: Path, code: Path, work: Path) -> dict:
    """What bounds the ingest: bare lxml iterparse (no text extracted) and tantivy indexing documents already
    parsed (the ``TantivySink`` of ``code``, default threads), on one file."""
    shutil.rmtree(work / "floor-index", ignore_errors=True)
    _, _, out = timed([sys.executable, "-c", FLOORS, str(path), str(work / "floor-index")], code, work)
    shutil.rmtree(work / "floor-index")
    bare, indexing, cpu_us = map(float, out.split())
    return {
        "lxml_iterparse_bare_citations_per_s": round(bare),
        "index_only_docs_per_s": round(indexing),
        "index_only_cpu_us_per_doc": round(cpu_us, 1),
    }


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str], code: Path, work: Path) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (all its threads and processes) and stdout of a command that must succeed,
    run with ``code``'s bioqa (from ``work``: a current directory holding a checkout would shadow it)."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    began, used = time.perf_counter(), children_cpu()
    run = subprocess.run(command, env=env, cwd=work, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - began
    if run.returncode:
        sys.exit(f"{command[:4]} failed: {run.stderr.strip()[-2000:]}")
    return seconds, children_cpu() - used, run.stdout


def measure(files: list[Path], code: Path, work: Path, ingest_args: list[str]) -> dict:
    """One repeat: gunzip, the reader alone, and the ingest command, each with the load average around it."""
    xml_bytes, began = 0, time.perf_counter()
    for path in files:
        with gzip.open(path, "rb") as raw:
            while chunk := raw.read(1 << 20):
                xml_bytes += len(chunk)
    gunzip_s = time.perf_counter() - began
    load = os.getloadavg()[0]
    _, _, out = timed([sys.executable, "-c", PARSE_ONLY, *map(str, files)], code, work)
    parsed, parse_s, module = out.split()
    if not Path(module).is_relative_to(code):
        sys.exit(f"measured {module}, not the bioqa of {code}")
    index = work / "index"
    shutil.rmtree(index, ignore_errors=True)
    command = [sys.executable, "-m", "bioqa.retrieval.ingest", str(files[0].parent), "--out", str(index)]
    seconds, cpu, out = timed([*command, "--no-progress", *ingest_args], code, work)
    report = json.loads(out.strip().splitlines()[-1])
    size = sum(f.stat().st_size for f in index.rglob("*") if f.is_file())
    shutil.rmtree(index)
    return {
        "xml_mb": round(xml_bytes / 1e6, 1),
        "gunzip_mb_per_s": round(xml_bytes / 1e6 / gunzip_s),
        "parse_only_citations_per_s": round(int(parsed) / float(parse_s)),
        "ingest_s": round(seconds, 2),
        "ingest_citations_per_s": round(report["citations"] / seconds),
        "citations": report["citations"],
        "ingest_cpu_s": round(cpu, 2),
        "ingest_cores_busy": round(cpu / seconds, 2),
        "index_mb": round(size / 1e6, 1),
        "load_1min_before": round(load, 2),
        "load_1min_after": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--label", required=True, help="the name these results are saved under (before, after...)")
    parser.add_argument("--code", type=Path, default=ROOT, help="the checkout whose bioqa is measured")
    parser.add_argument("--citations", type=int, default=120_000)
    parser.add_argument("--per-file", type=int, default=30_000, help="citations per file (NLM: ~30,000)")
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--floors", action="store_true", help="also measure bare lxml and tantivy-only rates")
    parser.add_argument("--ingest-args", nargs=argparse.REMAINDER, default=[], help="passed to the ingest command")
    parser.add_argument("--work", type=Path, default=ROOT / "cache" / "ingest_speed")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ingest_speed.json")
    args = parser.parse_args()
    args.work = args.work.resolve()
    files = generate(args.work, args.citations, args.per_file, args.seed)
    runs = []
    for repeat in range(args.repeats):
        runs.append(measure(files, args.code.resolve(), args.work, args.ingest_args))
        if args.floors:
            runs[-1]["floors"] = floors(files[0], args.code.resolve(), args.work)
        print(f"{args.label} repeat {repeat + 1}: {runs[-1]}", flush=True)
    best = max(runs, key=lambda r: r["ingest_citations_per_s"])
    commit = subprocess.run(
        ["git", "-C", str(args.code), "describe", "--always", "--dirty"], capture_output=True, text=True
    )
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results["generated"] = {
        "citations": args.citations,
        "files": len(files),
        "seed": args.seed,
        "gz_mb": round(sum(f.stat().st_size for f in files) / 1e6, 1),
        "xml_kb_per_citation": round(runs[0]["xml_mb"] * 1000 / args.citations, 2),
    }
    results.setdefault("runs", {})[args.label] = {
        "code": commit.stdout.strip(),
        "ingest_args": args.ingest_args,
        "repeats": runs,
        "best_ingest_citations_per_s": best["ingest_citations_per_s"],
        "projection_36M_hours": round(PUBMED_CITATIONS / best["ingest_citations_per_s"] / 3600, 2),
    }
    results["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    table = Table(title=f"PubMed ingest, {args.citations} generated citations ({results['generated']['gz_mb']} MB gz)")
    for column in ("label", "code", "parse only /s", "ingest /s", "ingest s", "cores busy", "load", "36M hours"):
        table.add_column(column, justify="right")
    for label, run in results["runs"].items():
        for r in run["repeats"]:
            table.add_row(
                label,
                run["code"],
                str(r["parse_only_citations_per_s"]),
                str(r["ingest_citations_per_s"]),
                str(r["ingest_s"]),
                str(r["ingest_cores_busy"]),
                f"{r['load_1min_before']} → {r['load_1min_after']}",
                str(round(PUBMED_CITATIONS / r["ingest_citations_per_s"] / 3600, 2)),
            )
    Console(width=140).print(table)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
