"""Index NLM PubMed baseline and update files into tantivy, Elasticsearch or OpenSearch.

    python -m bioqa.retrieval.ingest pubmed25n0001.xml.gz ... --index tantivy --out indexes/pubmed
    python -m bioqa.retrieval.ingest baseline/ updatefiles/ --index opensearch --url http://localhost:9200 \\
        --name pubmed --manifest indexes/pubmed-os.manifest.json
    (credentials from BIOQA_ES_API_KEY, or BIOQA_ES_USERNAME and BIOQA_ES_PASSWORD)

Files (directories are expanded to their ``*.xml.gz``/``*.xml``) are processed in file-name order, which is
NLM's release order: a citation read later replaces the one indexed under the same PMID (baseline, then
update files), ``DeleteCitation`` removes it; within one file a lower ``PMID Version`` never replaces a higher one.

Incremental and resumable: after each file the index is committed and the file (name, size, SHA-256, counts)
is recorded in a manifest (``<out>/bioqa_ingest.json`` for tantivy). A re-run skips the files recorded with the
same hash, so new update files add only what changed, and a run killed part-way redoes only the file it was in
(replaying a file is idempotent: updates are by PMID).

One ingest writes an index at a time: a second one is refused, naming the process that holds it (a lock beside
the manifest, ``.<manifest>.lock``). Parsing workers (``--workers``) exit when the ingest that started them dies;
with ``--workers 2`` this process only indexes, which can keep two cores busy (README, "PubMed ingest speed").
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import platform
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from tqdm.auto import tqdm

from bioqa.errors import ArgumentParser, ConfigError, at_least_one, error_boundary
from bioqa.retrieval.pubmed import Citation, Deletion, PubMedFile
from bioqa.rundir import write_json
from bioqa.runs import file_sha256

log = logging.getLogger(__name__)
MANIFEST_NAME = "bioqa_ingest.json"
_PMID_LIMIT = 1 << 27  # PMIDs below it are tracked by a fresh index's bitmap (16 MB; PubMed is near 4e7)


class Sink(Protocol):
    """Where citations go; ``commit`` makes everything before it durable."""

    def upsert(self, documents: list[dict]) -> None: ...
    def delete(self, pmids: Sequence[str]) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def close(self) -> None: ...


class TantivySink:
    """An on-disk tantivy index (created when absent) written by ``threads`` indexing threads.

    An upsert deletes the PMID's earlier document first, except where there can be none: in an index that was
    empty when the sink opened, a PMID this sink has not added yet (a bitmap of numeric PMIDs). Deleting a term
    no document has changes nothing, but tantivy still pays for it at every commit (a baseline build: 36M).
    """

    def __init__(self, path: str | os.PathLike, threads: int = 2, heap_size_mb: int = 512):
        import tantivy  # noqa: F401 - fail early when missing

        from bioqa.retrieval.index import open_index

        if threads < 1 or heap_size_mb < 16:
            raise ConfigError(f"tantivy sink: threads must be >= 1 and heap >= 16 MB, got {threads}, {heap_size_mb}")
        self.path = Path(path)
        self.index = open_index(self.path, create=True)
        try:
            self.writer = self.index.writer(heap_size=heap_size_mb * 1_000_000, num_threads=threads)
        except ValueError as error:
            if "LockBusy" not in str(error):
                raise
            raise ConfigError(f"{self.path}: the index is busy: another process is writing it") from None
        self._added = bytearray(_PMID_LIMIT // 8) if self.index.searcher().num_docs == 0 else None

    def _may_hold(self, pmid: str) -> bool:
        """Whether the index may hold a document of ``pmid`` (then it needs deleting); records ``pmid`` as added."""
        if self._added is None or not (pmid.isascii() and pmid.isdigit()) or int(pmid) >= _PMID_LIMIT:
            return True
        byte, bit = divmod(int(pmid), 8)
        held = self._added[byte] >> bit & 1
        self._added[byte] |= 1 << bit
        return bool(held)

    def upsert(self, documents: list[dict]) -> None:
        from bioqa.retrieval.index import tantivy_document

        for doc in documents:
            if self._may_hold(doc["pmid"]):
                self.writer.delete_documents_by_term("pmid", doc["pmid"])
            self.writer.add_document(tantivy_document(doc))

    def delete(self, pmids: Sequence[str]) -> None:
        for pmid in pmids:
            self.writer.delete_documents_by_term("pmid", pmid)

    def commit(self) -> None:
        self.writer.commit()

    def rollback(self) -> None:
        self.writer.rollback()

    def close(self) -> None:
        self.writer.wait_merging_threads()
        del self.writer  # releases the index lock


@dataclass
class FileRecord:
    """What one ingested file contributed."""

    sha256: str
    size: int
    citations: int
    deleted: int
    older_versions_skipped: int
    seconds: float
    ingested_at: str


class Manifest:
    """The files already in an index, saved atomically after every file."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.files: dict[str, FileRecord] = {}
        if self.path.is_file():
            try:
                raw = json.loads(self.path.read_text(encoding="utf-8"))
                self.files = {name: FileRecord(**rec) for name, rec in raw["files"].items()}
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise ConfigError(
                    f"{self.path}: unreadable ingest manifest ({err}); move it away to start over"
                ) from None

    def done(self, name: str, sha256: str) -> bool:
        return name in self.files and self.files[name].sha256 == sha256

    def record(self, name: str, record: FileRecord) -> None:
        self.files[name] = record
        write_json(self.path, {"files": {n: asdict(r) for n, r in sorted(self.files.items())}})


class IngestLock:
    """One ingest per index at a time: an exclusive lock beside the manifest, with its holder (pid, host, start)
    recorded so that a second ingest is told who holds the index."""

    def __init__(self, manifest_path: str | os.PathLike, index: str):
        from filelock import FileLock

        manifest = Path(manifest_path)
        if manifest.parent.exists() and not manifest.parent.is_dir():
            raise NotADirectoryError(20, "not a directory", str(manifest.parent))
        self.index = index
        self.holder = manifest.with_name(f".{manifest.name}.holder.json")
        self._lock = FileLock(manifest.with_name(f".{manifest.name}.lock"), timeout=0)

    def __enter__(self) -> IngestLock:
        from filelock import Timeout

        self.holder.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()
        except Timeout:
            try:
                info = json.loads(self.holder.read_text(encoding="utf-8"))
                who = f"pid {info['pid']} on {info['host']}, started {info['started']}"
            except (OSError, ValueError, KeyError):
                who = "another process"
            raise ConfigError(
                f"{self.index} is busy: another ingest is writing it ({who}); wait for it to end, or ingest into "
                "another index"
            ) from None
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.holder.write_text(json.dumps({"pid": os.getpid(), "host": platform.node(), "started": started}))
        return self

    def __exit__(self, *exc: object) -> None:
        self.holder.unlink(missing_ok=True)
        self._lock.release()


def _die_with(parent: int) -> None:
    """Worker initializer: exit as soon as the process that started this worker is gone (killed, even with -9),
    instead of waiting forever on a queue nobody reads."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def pubmed_files(sources: Iterable[str | os.PathLike]) -> list[Path]:
    """The XML files named or contained (not recursively) in ``sources``, in file-name order."""
    files: list[Path] = []
    for source in map(Path, sources):
        if source.is_dir():
            found = [p for p in source.iterdir() if p.name.endswith((".xml.gz", ".xml")) and p.is_file()]
            if not found:
                raise ConfigError(f"{source}: no *.xml.gz or *.xml files in this directory")
            files.extend(found)
        elif source.is_file():
            files.append(source)
        else:
            raise FileNotFoundError(2, "no such file or directory", str(source))
    names = [f.name for f in files]
    if len(set(names)) != len(names):
        raise ConfigError(f"two source files share a name: {sorted({n for n in names if names.count(n) > 1})}")
    return sorted(files, key=lambda f: f.name)


@dataclass
class IngestReport:
    """Counts of one ingest run."""

    files_ingested: int = 0
    files_skipped: int = 0
    citations: int = 0
    deleted: int = 0
    seconds: float = 0.0


def parse_file(path: str) -> list[Citation | Deletion]:
    """Every citation and deletion of one file, in order (run in worker processes with ``workers > 1``)."""
    return list(PubMedFile(path))


def _ingest_file(
    path: Path,
    items: Iterable[Citation | Deletion],
    read_bytes: Callable[[], int],
    sink: Sink,
    bar: tqdm,
    batch_size: int,
    report: IngestReport,
) -> tuple[int, int, int]:
    """Send one file's citations (in batches, in order) and deletions to ``sink``: the counts of citations
    read, PMIDs deleted and lower versions skipped. ``read_bytes()`` tells how far into the file it is."""
    versions: dict[str, int] = {}
    pending: dict[str, dict] = {}
    citations = deleted = skipped = 0
    position = 0

    def flush() -> None:
        nonlocal position
        if pending:
            sink.upsert(list(pending.values()))
            pending.clear()
        now = read_bytes()
        bar.update(now - position)
        position = now

    for item in items:
        if isinstance(item, Citation):
            if versions.get(item.pmid, 0) > item.version:
                skipped += 1
                continue
            versions[item.pmid] = item.version
            pending.pop(item.pmid, None)
            pending[item.pmid] = item.as_document()
            citations += 1
            if len(pending) >= batch_size:
                flush()
                done = report.citations + citations
                bar.set_postfix(docs=done, docs_per_s=f"{done / max(bar.format_dict['elapsed'], 1e-9):.0f}")
        elif isinstance(item, Deletion):
            flush()
            sink.delete(item.pmids)
            deleted += len(item.pmids)
    flush()
    bar.update(path.stat().st_size - position)
    return citations, deleted, skipped


def ingest(
    sources: Iterable[str | os.PathLike],
    sink: Sink,
    manifest: Manifest,
    show_progress: bool = True,
    batch_size: int = 500,
    workers: int = 1,
) -> IngestReport:
    """Index every source file not yet in ``manifest`` (see the module docstring). With ``workers > 1``,
    that many processes parse the next files while this one writes (at most ``workers + 1`` parsed files
    held in memory); files still reach the sink one by one, in order."""
    if workers < 1:
        sink.close()
        raise ConfigError(f"ingest: workers must be >= 1, got {workers}")
    files = pubmed_files(sources)
    report = IngestReport()
    todo = []
    for path in files:
        digest = file_sha256(path)
        if manifest.done(path.name, digest):
            report.files_skipped += 1
        else:
            if path.name in manifest.files:
                log.warning("%s changed since it was ingested: indexing it again", path)
            todo.append((path, digest))
    if todo and manifest.files and todo[0][0].name < max(manifest.files):
        log.warning(
            "%s sorts before files already ingested (up to %s): its citations replace newer ones of the same PMID",
            todo[0][0].name,
            max(manifest.files),
        )
    start = time.perf_counter()
    total = sum(p.stat().st_size for p, _ in todo)
    pool = None
    if workers > 1:
        spawn = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(workers, mp_context=spawn, initializer=_die_with, initargs=(os.getpid(),))
    parsed: deque[Future] = deque()
    try:
        with tqdm(total=total, unit="B", unit_scale=True, desc="ingest", disable=not show_progress) as bar:
            for number, (path, digest) in enumerate(todo, 1):
                bar.set_description(f"ingest {number}/{len(todo)} {path.name}")
                began = time.perf_counter()
                if pool is not None:
                    while len(parsed) < workers + 1 and number - 1 + len(parsed) < len(todo):
                        parsed.append(pool.submit(parse_file, str(todo[number - 1 + len(parsed)][0])))
                    items, read_bytes = parsed.popleft().result(), lambda: 0
                else:
                    reader = PubMedFile(path)
                    items, read_bytes = reader, lambda reader=reader: reader.compressed_position
                try:
                    citations, deleted, skipped = _ingest_file(path, items, read_bytes, sink, bar, batch_size, report)
                except BaseException:
                    sink.rollback()  # the file's partial writes never reach the index
                    raise
                sink.commit()
                seconds = time.perf_counter() - began
                manifest.record(
                    path.name,
                    FileRecord(
                        digest,
                        path.stat().st_size,
                        citations,
                        deleted,
                        skipped,
                        round(seconds, 3),
                        datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    ),
                )
                report.files_ingested += 1
                report.citations += citations
                report.deleted += deleted
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        sink.close()
    report.seconds = round(time.perf_counter() - start, 3)
    return report


def manifest_path(args: argparse.Namespace) -> Path:
    """Where the command line's index records its ingested files."""
    if args.index == "tantivy":
        if not args.out:
            raise ConfigError("--index tantivy needs --out DIR (the index directory)")
        path = Path(args.manifest or Path(args.out) / MANIFEST_NAME)
    elif not args.manifest:
        raise ConfigError(f"--index {args.index} needs --manifest FILE (where ingested files are recorded)")
    else:
        path = Path(args.manifest)
    if path.is_dir():  # refused before the lock and the manifest's temporary file are written beside it
        raise ConfigError(f"--manifest {path}: is a directory, expected the file that records ingested files")
    return path


def build_sink(args: argparse.Namespace) -> Sink:
    """The sink the command line asks for."""
    if args.index == "tantivy":
        return TantivySink(Path(args.out), args.threads, args.heap_mb)
    from bioqa.retrieval.elasticsearch import BulkSink

    return BulkSink(
        url=args.url,
        index=args.name,
        flavour=args.index,
        api_key=os.environ.get("BIOQA_ES_API_KEY"),
        username=os.environ.get("BIOQA_ES_USERNAME"),
        password=os.environ.get("BIOQA_ES_PASSWORD"),
        shards=args.shards,
        replicas=args.replicas,
    )


def main(argv: Sequence[str] | None = None) -> IngestReport:
    parser = ArgumentParser(prog="python -m bioqa.retrieval.ingest", description=__doc__.split("\n\n")[0])
    parser.add_argument("sources", nargs="+", help="pubmedYYnNNNN.xml.gz files or directories holding them")
    parser.add_argument("--index", choices=("tantivy", "elasticsearch", "opensearch"), default="tantivy")
    parser.add_argument("--out", help="tantivy: the index directory (created when absent)")
    parser.add_argument("--threads", type=int, default=2, help="tantivy indexing threads")
    parser.add_argument("--heap-mb", type=int, default=512, help="tantivy writer memory budget")
    parser.add_argument("--manifest", help="ingested-files record (tantivy default: <out>/bioqa_ingest.json)")
    parser.add_argument("--url", default=os.environ.get("BIOQA_ES_URL", "http://localhost:9200"))
    parser.add_argument("--name", default="pubmed", help="Elasticsearch/OpenSearch index name")
    parser.add_argument("--shards", type=at_least_one, default=4)
    parser.add_argument("--replicas", type=int, default=0)
    parser.add_argument("--batch-size", type=at_least_one, default=500)
    parser.add_argument("--workers", type=int, default=1, help="processes parsing XML ahead of the writer")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    manifest = manifest_path(args)
    index = f"the index {args.out}" if args.index == "tantivy" else f"the {args.index} index {args.name} at {args.url}"
    with IngestLock(manifest, index):
        recorded = Manifest(manifest)
        report = ingest(
            args.sources,
            build_sink(args),
            recorded,
            show_progress=not args.no_progress,
            batch_size=args.batch_size,
            workers=args.workers,
        )
    print(json.dumps(asdict(report)), file=sys.stdout)
    return report


if __name__ == "__main__":
    error_boundary(main)()
