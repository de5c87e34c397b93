"""PubMed XML ingestion: the project's NLM-format fixtures, gzipped like NLM ships them, go through the real
``python -m bioqa.retrieval.ingest`` command into a real tantivy index, which Phase A then searches."""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ScriptedBackend

from bioqa.data import Question, pmid_of
from bioqa.errors import ConfigError, error_boundary
from bioqa.pipeline.phase_a import PhaseAConfig, run_phase_a
from bioqa.resources import demo_corpus_path
from bioqa.retrieval import TantivyIndex
from bioqa.retrieval.ingest import MANIFEST_NAME, Manifest, TantivySink, ingest, main
from bioqa.retrieval.pubmed import Citation, Deletion, PubMedFile, PubMedFormatError

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "pubmed"


def gzipped(name: str, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    target = into / f"{name}.gz"
    target.write_bytes(gzip.compress((FIXTURES / name).read_bytes()))
    return target


@pytest.fixture
def sources(tmp_path) -> Path:
    for name in ("pubmed26n0001.xml", "pubmed26n0002.xml"):
        gzipped(name, tmp_path / "src")
    return tmp_path / "src"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict]:
    """The index built once by the real command line (a subprocess, as a user runs it)."""
    tmp = tmp_path_factory.mktemp("ingest")
    for name in ("pubmed26n0001.xml", "pubmed26n0002.xml"):
        gzipped(name, tmp / "src")
    out = tmp / "index"
    run = subprocess.run(
        [sys.executable, "-m", "bioqa.retrieval.ingest", str(tmp / "src"), "--out", str(out), "--threads", "2"],
        cwd=tmp,  # not the checkout: nothing may depend on the current directory
        env={**os.environ, "PYTHONPATH": str(FIXTURES.parents[2])},  # this checkout's bioqa
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "ingest 2/2 pubmed26n0002.xml.gz" in run.stderr  # the progress bar names files
    return out, json.loads(run.stdout)


def test_parser_reads_every_kind_of_record(tmp_path):
    items = list(PubMedFile(FIXTURES / "pubmed26n0001.xml"))
    citations = {c.pmid: c for c in items if isinstance(c, Citation) and c.version == 1}
    structured = citations["91000001"]
    assert structured.abstract == (
        "BACKGROUND: Metformin is the first-line drug for type 2 diabetes."
        "METHODS: We randomised 120 adults to metformin or placebo for 24 weeks."
        "RESULTS: Fasting plasma glucose fell by 1.9 mmol/L with metformin (p < 0.001)."
        "CONCLUSIONS: Metformin reduces fasting glucose by suppressing hepatic gluconeogenesis."
    )
    assert structured.year == 2019 and structured.mesh == ("Diabetes Mellitus, Type 2", "Metformin")
    assert citations["91000002"].abstract == "" and citations["91000002"].year == 1998  # MedlineDate
    assert citations["91000003"].title == (
        "Effect of β-blockers on heart rate in patients from São Paulo with Trypanosoma cruzi cardiomyopathy."
    )
    assert "≥ 25 µg/kg" in citations["91000003"].abstract
    book = citations["91000007"]
    assert (book.title, book.abstract, book.year) == (
        "Vitamin C deficiency and scurvy.",
        "SUMMARY: Scurvy results from a lack of vitamin C (ascorbic acid).",
        2010,
    )
    assert [(c.pmid, c.version) for c in items if c.pmid == "91000006"] == [("91000006", 2), ("91000006", 1)]
    update = list(PubMedFile(gzipped("pubmed26n0002.xml", tmp_path)))
    assert update[-1] == Deletion(("91000004", "91000999"))


def test_the_command_builds_an_index_with_updates_and_deletions_applied(built):
    out, report = built
    assert report == {**report, "files_ingested": 2, "files_skipped": 0, "citations": 9, "deleted": 2}
    index = TantivyIndex(index_dir=out)
    assert index.num_docs == 7  # 8 PMIDs, one deleted
    docs = index.documents([f"9100000{k}" for k in range(1, 9)])
    assert "91000004" not in docs  # DeleteCitation honoured
    assert docs["91000005"].title.startswith("Imatinib inhibits the BCR-ABL")  # the update file's version
    assert docs["91000006"].title.endswith("(corrected version).")  # Version 2 kept over a later Version 1
    assert index.search("Superseded STI571", 5) == []
    assert [h.pmid for h in index.search('"São Paulo" AND Düsseldorf', 5)] == ["91000003"]
    assert [h.pmid for h in index.search('mesh:"diabetes mellitus"', 5)] == ["91000001"]
    manifest = json.loads((out / MANIFEST_NAME).read_text())["files"]
    assert manifest["pubmed26n0001.xml.gz"]["older_versions_skipped"] == 1
    assert manifest["pubmed26n0002.xml.gz"]["deleted"] == 2


def test_phase_a_runs_on_the_ingested_index(built):
    index = TantivyIndex(index_dir=built[0])
    questions = [
        Question(id="q1", type="factoid", body="Which enzyme does imatinib inhibit in chronic myeloid leukaemia?"),
        Question(id="q2", type="yesno", body="Does metformin lower fasting glucose in type 2 diabetes?"),
    ]
    baseline = run_phase_a(questions, None, index, PhaseAConfig(strategy="bm25", show_progress=False))
    assert [pmid_of(a.documents[0]) for a in baseline.answers] == ["91000005", "91000001"]

    def reply(user: str) -> str:
        if "write an Elasticsearch query string" in user:
            return '(imatinib AND "BCR-ABL"' if "imatinib" in user else "mesh:metformin AND glucose"
        if "extract relevant sentences" in user:
            return json.dumps({"snippets": ["METHODS: We randomised 120 adults to metformin or placebo"]})
        return '{"snippets": [0]}'

    config = PhaseAConfig(
        prompts={
            "system": "s",
            "query": "write an Elasticsearch query string for {question}",
            "broader": "found no PubMed articles for {question}: {failed_queries}",
            "extract": "extract relevant sentences for {question} from {title} {abstract}",
            "rerank": "rank for {question}: {snippets}",
        },
        show_progress=False,
    )
    result = run_phase_a(questions, ScriptedBackend(reply), index, config)
    first, second = result.traces
    assert first["queries"][0]["parse"]["mode"] == "repaired" and first["queries"][0]["hits"] == 1
    assert "parse" not in second["queries"][0]  # parsed as written
    snippet = result.answers[1].snippets[0]
    structured = index.documents(["91000001"])["91000001"].abstract
    assert structured[snippet.offset_begin : snippet.offset_end] == snippet.text
    assert snippet.text.startswith("METHODS: We randomised") and snippet.offset_begin == structured.index("METHODS")
    assert result.stats["stages"]["query"]["model_calls"] == 2 and result.stats["model_errors"] == 0


def test_rerun_is_incremental_and_new_update_files_add_only_what_changed(sources, tmp_path):
    out = tmp_path / "index"
    args = [str(sources), "--out", str(out), "--no-progress"]
    assert main(args).files_ingested == 2
    again = main(args)
    assert (again.files_ingested, again.files_skipped) == (0, 2)
    newer = (FIXTURES / "pubmed26n0002.xml").read_text().replace("91000008", "91000009")
    (sources / "pubmed26n0003.xml").write_text(newer, encoding="utf-8")
    third = main(args)
    assert (third.files_ingested, third.files_skipped, third.citations) == (1, 2, 2)
    assert TantivyIndex(index_dir=out).num_docs == 8


def test_parsing_in_worker_processes_builds_the_same_index(sources, tmp_path):
    main([str(sources), "--out", str(tmp_path / "serial"), "--no-progress"])
    report = main([str(sources), "--out", str(tmp_path / "parallel"), "--no-progress", "--workers", "2"])
    assert (report.files_ingested, report.citations, report.deleted) == (2, 9, 2)
    pmids = [f"9100000{k}" for k in range(1, 9)]
    serial, parallel = TantivyIndex(index_dir=tmp_path / "serial"), TantivyIndex(index_dir=tmp_path / "parallel")
    assert serial.documents(pmids) == parallel.documents(pmids) and parallel.num_docs == 7


def test_a_run_that_fails_part_way_resumes_with_the_unfinished_file(sources, tmp_path):
    out = tmp_path / "index"
    good = (sources / "pubmed26n0002.xml.gz").read_bytes()
    (sources / "pubmed26n0002.xml.gz").write_bytes(good[: len(good) // 2])  # truncated download
    with pytest.raises(PubMedFormatError, match=r"pubmed26n0002\.xml\.gz"):
        ingest([sources], TantivySink(out, threads=1, heap_size_mb=32), Manifest(out / MANIFEST_NAME), False)
    assert list(Manifest(out / MANIFEST_NAME).files) == ["pubmed26n0001.xml.gz"]
    index = TantivyIndex(index_dir=out)
    assert index.num_docs == 7 and "91000008" not in index.documents(["91000008"])  # nothing of the bad file
    (sources / "pubmed26n0002.xml.gz").write_bytes(good)
    report = ingest([sources], TantivySink(out, 1, 32), Manifest(out / MANIFEST_NAME), False)
    assert (report.files_ingested, report.files_skipped) == (1, 1)
    assert TantivyIndex(index_dir=out).num_docs == 7


#: nine levels of ten-fold entity expansion ("billion laughs")
_LAUGHS = b"><!ENTITY ".join([b'l0 "ha"', *(b'l%d "%s"' % (n, b"&l%d;" % (n - 1) * 10) for n in range(1, 10))])


def _with_entity(xml: bytes, declaration: bytes, reference: bytes) -> bytes:
    """``xml`` with its DOCTYPE declaring an entity, referenced in a title."""
    xml = re.sub(rb"<!DOCTYPE[^>]*>", b"<!DOCTYPE PubmedArticleSet [<!ENTITY " + declaration + b">]>", xml, count=1)
    return xml.replace(b"Trypanosoma", reference)


def _write(tmp_path: Path, kind: str) -> list[str]:
    src = tmp_path / "src"
    src.mkdir()
    xml = (FIXTURES / "pubmed26n0001.xml").read_bytes()
    if kind == "missing":
        return [str(tmp_path / "nope.xml.gz"), "--out", str(tmp_path / "i")]
    if kind == "empty_dir":
        return [str(src), "--out", str(tmp_path / "i")]
    if kind == "dir_named_like_a_file":
        (src / "pubmed26n0001.xml.gz").mkdir()
        return [str(src), "--out", str(tmp_path / "i")]
    files = {
        "empty_file": b"",
        "not_xml": b"this is not xml",
        "truncated_gzip": gzip.compress(xml)[:200],
        "truncated_xml": xml[: len(xml) // 2],
        "latin1": xml.replace(b'encoding="utf-8"', b"").replace("São".encode(), "São".encode("latin-1")),
        "foreign_xml": b'<?xml version="1.0"?><catalog><book id="1"><title>Not PubMed</title></book></catalog>',
        "empty_set": b'<?xml version="1.0"?><PubmedArticleSet>\n</PubmedArticleSet>',
        "gzipped_foreign_xml": gzip.compress(b"<rss><channel><item>news</item></channel></rss>"),
        "corrupt_gzip": gzip.compress(xml)[:40] + bytes(40) + gzip.compress(xml)[80:],
        "undefined_entity": xml.replace(b"Trypanosoma", b"&nbsp;Trypanosoma"),
        "external_entity": _with_entity(xml, b'e SYSTEM "file:///etc/hostname"', b"&e;"),
        "entity_bomb": _with_entity(xml, _LAUGHS, b"&l9;"),
        "pmid_not_a_number": gzip.compress(xml.replace(b">91000001</PMID>", b">abc</PMID>", 1)),
    }
    if kind in files:
        (src / "pubmed26n0001.xml.gz").write_bytes(files[kind])
        return [str(src), "--out", str(tmp_path / "i")]
    gzipped("pubmed26n0001.xml", src)
    if kind == "out_is_file":
        (tmp_path / "i").write_text("x")
    elif kind == "out_not_index":
        (tmp_path / "i").mkdir()
        (tmp_path / "i" / "notes.txt").write_text("x")
    elif kind == "bad_manifest":
        (tmp_path / "m.json").write_text("{not json")
        return [str(src), "--out", str(tmp_path / "i"), "--manifest", str(tmp_path / "m.json")]
    elif kind == "no_out":
        return [str(src)]
    elif kind == "zero_threads":
        return [str(src), "--out", str(tmp_path / "i"), "--threads", "0"]
    elif kind == "zero_workers":
        return [str(src), "--out", str(tmp_path / "i"), "--workers", "0"]
    elif kind == "es_without_manifest":
        return [str(src), "--index", "opensearch"]
    elif kind in ("zero_batch", "text_threads", "zero_shards"):
        option, value = {"zero_batch": ("--batch-size", "0"), "text_threads": ("--threads", "abc")}.get(
            kind, ("--shards", "0")
        )
        return [str(src), "--out", str(tmp_path / "i"), option, value]
    elif kind == "manifest_is_dir":
        (tmp_path / "m").mkdir()
        return [str(src), "--out", str(tmp_path / "i"), "--manifest", str(tmp_path / "m")]

    return [str(src), "--out", str(tmp_path / "i")]


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", "nope.xml.gz: no such file or directory"),
        ("empty_dir", "no *.xml.gz or *.xml files"),
        ("dir_named_like_a_file", "no *.xml.gz or *.xml files"),
        ("empty_file", "pubmed26n0001.xml.gz: not a readable PubMed XML file"),
        ("not_xml", "not a readable PubMed XML file"),
        ("truncated_gzip", "not a readable PubMed XML file"),
        ("truncated_xml", "not a readable PubMed XML file"),
        ("latin1", "not a readable PubMed XML file"),
        ("foreign_xml", "not a PubMed XML file (its root element is <catalog>, expected <PubmedArticleSet>)"),
        ("gzipped_foreign_xml", "not a PubMed XML file (its root element is <rss>"),
        ("corrupt_gzip", "pubmed26n0001.xml.gz: not a readable PubMed XML file"),
        ("undefined_entity", "not a readable PubMed XML file (Entity 'nbsp' not defined"),
        ("external_entity", "not a readable PubMed XML file (Entity 'e' not defined"),  # never read from disk
        ("entity_bomb", "not a readable PubMed XML file (Maximum entity amplification factor exceeded"),
        ("empty_set", "no PubMed record in this file (no PubmedArticle, PubmedBookArticle or DeleteCitation)"),
        ("out_is_file", "is not a directory"),
        ("out_not_index", "not a tantivy index"),
        ("bad_manifest", "unreadable ingest manifest"),
        ("no_out", "needs --out DIR"),
        ("zero_threads", "threads must be >= 1"),
        ("zero_workers", "workers must be >= 1"),
        ("es_without_manifest", "needs --manifest FILE"),
        ("zero_batch", "argument --batch-size: must be >= 1, got 0 (see python -m bioqa.retrieval.ingest --help)"),
        ("zero_shards", "argument --shards: must be >= 1, got 0"),
        ("text_threads", "argument --threads: invalid int value: 'abc' (see python -m bioqa.retrieval.ingest --help)"),
        ("manifest_is_dir", "/m: is a directory, expected the file that records ingested files"),
        ("pmid_not_a_number", "pubmed26n0001.xml.gz: record 1 has PMID 'abc', not a number: not a PubMed citation"),
    ],
)
def test_bad_inputs_end_in_one_line(kind, message, tmp_path, capsys):
    args = [*_write(tmp_path, kind), "--no-progress"]
    with pytest.raises(SystemExit) as exit_info:
        error_boundary(main)(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_a_file_that_only_deletes_is_a_legitimate_update(sources, tmp_path):
    deletions = '<?xml version="1.0"?><PubmedArticleSet><DeleteCitation><PMID Version="1">91000001</PMID>'
    (sources / "pubmed26n0003.xml").write_text(deletions + "</DeleteCitation></PubmedArticleSet>")
    report = main([str(sources), "--out", str(tmp_path / "index"), "--no-progress"])
    assert (report.files_ingested, report.deleted) == (3, 2 + 1)
    assert Manifest(tmp_path / "index" / MANIFEST_NAME).files["pubmed26n0003.xml"].deleted == 1
    assert TantivyIndex(index_dir=tmp_path / "index").num_docs == 6


#: a script that ingests ``sources`` into ``out`` with writes slowed down, printing ``started`` once it holds the index
SLOW_INGEST = (
    "import sys, time\n"
    "from bioqa.retrieval import ingest\n"
    "original = ingest.TantivySink.upsert\n"
    "def slow(self, docs):\n"
    "    print('started', flush=True); time.sleep(float(sys.argv[3])); original(self, docs)\n"
    "ingest.TantivySink.upsert = slow\n"
    "ingest.main([sys.argv[1], '--out', sys.argv[2], '--no-progress', '--batch-size', '1', *sys.argv[4:]])\n"
)


def slow_ingest(sources: Path, out: Path, seconds: float, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(FIXTURES.parents[2])}
    command = [sys.executable, "-c", SLOW_INGEST, str(sources), str(out), str(seconds), *extra]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "started", proc.stderr.read()
    return proc


@pytest.mark.parametrize("manifest", [None, "elsewhere/m.json"])
def test_a_second_writer_is_told_who_holds_the_index_and_the_index_stays_intact(manifest, sources, tmp_path, capsys):
    out = tmp_path / "index"
    extra = ("--manifest", str(tmp_path / manifest)) if manifest else ()
    first = slow_ingest(sources, out, 0.2, *extra)
    with pytest.raises(SystemExit) as refused:
        error_boundary(main)([str(sources), "--out", str(out), "--no-progress", *extra])
    assert refused.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"the index {out} is busy: another ingest is writing it (pid {first.pid} on " in err[0]
    assert first.wait(timeout=120) == 0, first.stderr.read()
    assert TantivyIndex(index_dir=out).num_docs == 7  # the first ingest finished undisturbed
    report = main([str(sources), "--out", str(out), "--no-progress", *extra])  # free again: nothing left to do
    assert (report.files_ingested, report.files_skipped) == (0, 2)


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_parsing_workers_die_with_a_killed_ingest(sources, tmp_path):
    for n in range(3, 7):  # more files than workers: the workers parse ahead, then wait for the writer
        gzipped("pubmed26n0001.xml", tmp_path / "more").rename(sources / f"pubmed26n000{n}.xml.gz")
    ingest_proc = slow_ingest(sources, tmp_path / "index", 30, "--workers", "2")
    deadline = time.monotonic() + 60
    while len(workers := children(ingest_proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(workers) >= 2, workers
    ingest_proc.send_signal(signal.SIGKILL)
    ingest_proc.wait()
    deadline = time.monotonic() + 10
    while any(map(alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if alive(pid)], "orphaned workers"


def test_an_index_dir_that_is_no_index_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="no tantivy index here"):
        TantivyIndex(index_dir=tmp_path / "absent")


def test_demo_corpus_is_found_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    index = TantivyIndex(cache_dir=tmp_path / "cache", show_progress=False)  # corpus_path=None: the demo
    assert index.corpus_path == demo_corpus_path() and index.num_docs == 41


@pytest.mark.parametrize("dies", ["upsert", "commit"])
def test_a_killed_run_resumes_to_the_same_index(dies, sources, tmp_path):
    """The process dies without any cleanup (``os._exit``, as under SIGKILL) while indexing the second file:
    in the middle of its writes, or right after the index committed it but before the manifest recorded it."""
    out = tmp_path / "index"
    crash = (
        "import os, sys\n"
        "from bioqa.retrieval import ingest\n"
        f"original = ingest.TantivySink.{dies}\n"
        "calls = []\n"
        "def dying(self, *args):\n"
        "    calls.append(1)\n"
        f"    if len(calls) == {2 if dies == 'commit' else 5}:\n"
        f"        {'original(self, *args); ' if dies == 'commit' else ''}os._exit(9)\n"
        "    return original(self, *args)\n"
        f"ingest.TantivySink.{dies} = dying\n"
        f"ingest.main([{str(sources)!r}, '--out', {str(out)!r}, '--no-progress', '--batch-size', '2'])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(FIXTURES.parents[2])}
    killed = subprocess.run([sys.executable, "-c", crash], env=env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == 9, killed.stderr
    assert list(Manifest(out / MANIFEST_NAME).files) == ["pubmed26n0001.xml.gz"]
    report = main([str(sources), "--out", str(out), "--no-progress"])
    assert (report.files_ingested, report.files_skipped) == (1, 1)
    index = TantivyIndex(index_dir=out)
    assert index.num_docs == 7 and sorted(index.documents([f"9100000{k}" for k in range(1, 9)])) == [
        "91000001",
        "91000002",
        "91000003",
        "91000005",
        "91000006",
        "91000007",
        "91000008",
    ]


def test_a_fresh_index_skips_no_delete_that_an_upsert_needs(tmp_path):
    """An index empty at open deletes only the PMIDs it added (a bitmap); PMIDs it cannot track (not numeric,
    too large) and every PMID of an index that was not empty are always deleted first: none is ever doubled."""

    def upsert(title: str) -> None:
        sink = TantivySink(tmp_path / "i", threads=1, heap_size_mb=32)
        for pmid in ("5", "NBK1", "99999999999", "5"):  # twice in one run, once per batch
            sink.upsert([{"pmid": pmid, "title": f"{title} {pmid}", "abstract": ""}])
        sink.commit()
        sink.close()

    pmids = ["5", "NBK1", "99999999999"]
    for title in ("first", "second"):  # fresh at open: the bitmap; then not empty: deletes always
        upsert(title)
        index = TantivyIndex(index_dir=tmp_path / "i")
        assert index.num_docs == 3
        assert sorted(d.title for d in index.documents(pmids).values()) == [f"{title} {p}" for p in sorted(pmids)]
