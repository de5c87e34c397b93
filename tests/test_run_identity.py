"""A run directory belongs to one config and one live process: resuming with another config is refused naming
what differs, a second process is kept out, a run ends with a summary line and exits 3 after writing everything
when too many requests failed; the composed infer config is the real one, the backend a scripted double."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ScriptedBackend, compose_config, yes

from bioqa.errors import EXIT_FAILURES, ConfigError, RunConflictError, TooManyFailures, error_boundary
from bioqa.models import Completion
from bioqa.pipeline import app
from bioqa.pipeline.app import infer_from_config, select_questions
from bioqa.resources import demo_golden_path
from bioqa.retrieval.wikipedia import WikiArticle, WikipediaContext
from bioqa.rundir import IDENTITY, read_metrics
from bioqa.runs import RunDirectory

ROOT = Path(__file__).resolve().parent.parent


def compose_infer(tmp_path: Path, *overrides: str):
    """The real ``conf/infer.yaml``: 2 yes/no questions of the demo batch, exact and ideal answers (4 requests)."""
    return compose_config(
        "infer",
        [
            "model=tiny-llama",
            "prompt=1shot",
            "logger=none",
            f"paths.root_dir={ROOT}",
            f"paths.cache_dir={tmp_path}/cache",
            "cache.enabled=false",
            "data.types=[yesno]",
            "data.limit=2",
            "evaluation.bootstrap=0",
            "evaluation.rouge=false",
            *overrides,
        ],
    )


class Backends:
    """Every backend ``infer_from_config`` builds is a scripted one named after the model config (so a model
    override changes the model id), replying with ``reply``."""

    def __init__(self):
        self.built: list[ScriptedBackend] = []
        self.reply = yes

    def __call__(self, cfg_model, cache_path=None):
        self.built.append(ScriptedBackend(complete=self.reply, name=cfg_model["name"]))
        return self.built[-1]

    @property
    def calls(self) -> int:
        return sum(len(b.requests) for b in self.built)


@pytest.fixture
def backends(monkeypatch) -> Backends:
    made = Backends()
    monkeypatch.setattr(app, "build_backend", made)
    return made


def run(tmp_path: Path, *overrides: str):
    return infer_from_config(compose_infer(tmp_path, *overrides), tmp_path / "run")


def snapshot(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file() and p.name not in (".run.lock",)}


def test_same_config_resumes_without_new_calls_and_ends_with_a_summary_line(tmp_path, backends, capsys):
    first = run(tmp_path)
    assert backends.calls == 4 and first.metrics["accounting.answered"] == 4
    identity = json.loads((tmp_path / "run" / IDENTITY).read_text())["identity"]
    assert identity["backend"] == {"kind": "scripted", "model_id": "scripted:tiny-llama-random"}
    assert identity["prompt"]["n_shots"] == 1 and identity["data"]["limit"] == 2
    capsys.readouterr()

    again = run(tmp_path, "answering.chunk_size=1", "evaluation.enabled=false")  # neither changes an answer
    assert backends.calls == 4  # nothing recomputed
    assert again.metrics["accounting.resumed"] == 4 and again.metrics["accounting.questions_per_minute"] == 0.0
    line = "run: requests: 4 — answered 4, failed 0, cached 0, resumed 4, truncated 0"
    assert capsys.readouterr().err.strip().splitlines()[-1] == line  # after the progress bar


@pytest.mark.parametrize(
    ("override", "differing"),
    [
        ("model=smollm2", "backend.model_id"),
        ("prompt=0shot", "prompt.n_shots"),
        ("prompt.selection=knn", "prompt.selection"),
        ("prompt.structured=false", "prompt.structured"),
        ("answering.temperature=0.7", "answering.temperature"),
        ("answering.max_new_tokens.ideal=9", "answering.max_new_tokens.ideal"),
        ("task.kinds=[exact]", "answering.kinds"),
        ("data.limit=3", "data.limit"),
        ("data.types=[yesno,factoid]", "data.types"),
    ],
)
def test_a_resume_with_another_config_is_refused_naming_what_differs(tmp_path, backends, override, differing):
    run(tmp_path)
    before = snapshot(tmp_path / "run")
    with pytest.raises(RunConflictError, match=rf"holds a run of another config.*{differing}:") as refused:
        run(tmp_path, override)
    assert "\n" not in str(refused.value)
    assert backends.calls == 4 and snapshot(tmp_path / "run") == before  # nothing called, nothing written


def test_phase_a_plus_runs_are_bound_to_their_retrieval_settings(tmp_path, backends):
    base = ["task=phase_a_plus", "retrieval=bm25", "task.kinds=[exact]"]
    run(tmp_path, *base)
    run(tmp_path, *base, "retrieval.index.show_progress=false")  # display only: resumes
    with pytest.raises(RunConflictError, match=r"retrieval\.phase_a\.max_snippets: 10 → 5"):
        run(tmp_path, *base, "retrieval.phase_a.max_snippets=5")


def test_another_question_file_is_another_run(tmp_path, backends):
    golden = tmp_path / "golden.json"
    shutil.copy(demo_golden_path(), golden)
    run(tmp_path, f"data.golden={golden}", "data.shot_pool=demo")
    data = json.loads(golden.read_text())
    data["questions"][0]["body"] += " (edited)"
    golden.write_text(json.dumps(data))
    with pytest.raises(RunConflictError, match=r"data\.sha256"):
        run(tmp_path, f"data.golden={golden}", "data.shot_pool=demo")


def test_a_refused_run_puts_back_hydras_record_of_the_run(tmp_path):
    hydra = tmp_path / "run" / ".hydra"
    hydra.mkdir(parents=True)
    (hydra / "config.yaml").write_text("prompt: {n_shots: 1}\n")
    with RunDirectory(tmp_path / "run") as held:
        held.bind({"prompt": {"n_shots": 1}})
    (hydra / "config.yaml").write_text("prompt: {n_shots: 0}\n")  # what Hydra writes for the next command
    with pytest.raises(RunConflictError, match=r"prompt\.n_shots: 1 → 0"), RunDirectory(tmp_path / "run") as held:
        held.bind({"prompt": {"n_shots": 0}})
    assert (hydra / "config.yaml").read_text() == "prompt: {n_shots: 1}\n"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"identity": {"prompt": ', "unreadable run identity"),
        (b"\xff\xfe not UTF-8", "unreadable run identity"),
        (b"[1, 2]", "not a run identity"),
        (b'{"identity": null}', "not a run identity"),
        (b"", "unreadable run identity"),
    ],
)
def test_a_damaged_identity_file_is_one_clear_error(tmp_path, content, expected):
    (tmp_path / IDENTITY).write_bytes(content)
    match = rf"{IDENTITY}: {expected}.*choose another hydra\.run\.dir"
    with pytest.raises(RunConflictError, match=match), RunDirectory(tmp_path) as held:
        held.bind({"prompt": {"n_shots": 1}})
    assert (tmp_path / IDENTITY).read_bytes() == content  # left as found


HOLD = """
import sys
from bioqa.runs import RunDirectory
with RunDirectory(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_a_second_process_is_kept_out_of_a_live_run(tmp_path, backends):
    run_dir = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run_dir)], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunConflictError, match=rf"in use by pid {holder.pid} on .*choose another hydra.run.dir"):
            run(tmp_path)
        assert backends.calls == 0 and not (run_dir / "predictions.jsonl").exists()
    finally:
        holder.communicate("", timeout=30)
    run(tmp_path)  # the holder has ended: the directory is free again
    assert backends.calls == 4


def failing(request):
    return Completion(text="", error="InternalServerError after 1 attempt(s): 500")


def test_a_run_whose_requests_all_failed_writes_everything_then_exits_3(tmp_path, backends, capsys):
    backends.reply = failing

    @error_boundary
    def main():
        run(tmp_path)

    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == EXIT_FAILURES == 3
    run_dir = tmp_path / "run"
    metrics = read_metrics(run_dir).flat()
    assert metrics["accounting.errors"] == metrics["accounting.requests"] == 4
    assert metrics["accounting.answered"] == 0 and metrics["accounting.questions_per_minute"] == 0.0
    assert json.loads((run_dir / "submission.json").read_text())["questions"]  # written, answers left out
    assert len((run_dir / "predictions.jsonl").read_text().splitlines()) == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-2] == "run: requests: 4 — answered 0, failed 4, cached 0, resumed 0, truncated 0"
    assert err[-1].startswith(": error: 4 of 4 requests failed") or "error: 4 of 4 requests failed" in err[-1]

    backends.reply = yes  # the rerun retries exactly the failed requests
    result = run(tmp_path)
    assert backends.calls == 8 and result.metrics["accounting.errors"] == 0


@pytest.mark.parametrize(
    ("failed", "max_fraction", "refused"), [(1, 0.0, True), (1, 0.2, True), (1, 0.25, False), (4, 1.0, False)]
)
def test_errors_max_fraction_is_the_share_of_failed_requests_allowed(tmp_path, backends, failed, max_fraction, refused):
    replies = iter([failing] * failed + [yes] * (4 - failed))
    backends.reply = lambda request: next(replies)(request)
    if refused:
        with pytest.raises(TooManyFailures, match=f"{failed} of 4 requests failed"):
            run(tmp_path, f"errors.max_fraction={max_fraction}")
    else:
        assert run(tmp_path, f"errors.max_fraction={max_fraction}").metrics["accounting.errors"] == failed
    assert (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.parametrize("value", ["-0.1", "1.5", "abc", "true", "null"])
def test_a_bad_errors_max_fraction_is_refused_before_any_call(tmp_path, backends, value):
    with pytest.raises(ConfigError, match=r"errors\.max_fraction must be a number in"):
        run(tmp_path, f"errors.max_fraction={value}")
    assert not backends.built


@pytest.mark.parametrize(
    ("limit", "types", "expected"),
    [
        (0, None, "data.limit must be a positive integer"),
        (-1, None, "data.limit must be a positive integer"),
        ("abc", None, "data.limit must be a positive integer"),
        (2.5, None, "data.limit must be a positive integer"),
        (True, None, "data.limit must be a positive integer"),
        (None, ["foo"], r"unknown question type\(s\) \['foo'\]; valid: yesno, factoid, list, summary"),
        (None, ["yesno", "Yesno"], r"unknown question type\(s\) \['Yesno'\]"),
        (None, [], "unknown question type"),
        (2, ["yesno"], 2),
        (100, None, 16),
        (None, "summary", 4),
        (None, ["list", "summary"], 7),
    ],
)
def test_question_selection(limit, types, expected):
    if isinstance(expected, str):
        with pytest.raises(ConfigError, match=expected):
            select_questions(demo_golden_path(), limit, types)
    else:
        assert len(select_questions(demo_golden_path(), limit, types)) == expected


def test_selecting_no_question_is_an_error(tmp_path):
    golden = tmp_path / "yesno.json"
    data = json.loads(demo_golden_path().read_text())
    golden.write_text(json.dumps({"questions": [q for q in data["questions"] if q["type"] == "yesno"]}))
    with pytest.raises(ConfigError, match=rf"{golden}: no question selected \(data.types=\['list'\]"):
        select_questions(golden, None, ["list"])


def test_a_missing_shot_pool_is_an_error_unless_the_fallback_is_asked_for(tmp_path, backends, caplog):
    golden = tmp_path / "golden.json"  # not the embedded demo file: the prompt config's pool applies
    shutil.copy(demo_golden_path(), golden)
    missing = tmp_path / "no-such-pool"
    overrides = [f"data.golden={golden}", f"prompt.pool_path={missing}"]
    with pytest.raises(
        ConfigError, match=rf"few-shot pool 'fewshot' not found at {missing}.*data.shot_pool_fallback=demo"
    ):
        run(tmp_path, *overrides)
    assert not backends.built
    with pytest.raises(ConfigError, match=r"data\.shot_pool_fallback must be null or demo"):
        run(tmp_path, *overrides, "data.shot_pool_fallback=golden")

    result = run(tmp_path, *overrides, "data.shot_pool_fallback=demo")
    assert result.metrics["run.shot_pool"] == "demo" and result.metrics["run.shot_pool_requested"] == "fewshot"
    identity = json.loads((tmp_path / "run" / IDENTITY).read_text())["identity"]
    assert identity["prompt"]["pool"] == "demo"
    assert "using the embedded demo pool" in caplog.text
    metrics = read_metrics(tmp_path / "run").flat()
    assert metrics["run.shot_pool"] == "demo"


def test_phase_a_alone_needs_no_shot_pool(tmp_path, backends):
    golden = tmp_path / "golden.json"
    shutil.copy(demo_golden_path(), golden)
    overrides = [f"data.golden={golden}", f"prompt.pool_path={tmp_path}/missing", "task=phase_a", "retrieval=bm25"]
    result = run(tmp_path, *overrides)
    assert result.metrics["run.shot_pool"] is None and result.metrics["accounting.requests"] == 0
    assert json.loads((tmp_path / "run" / IDENTITY).read_text())["identity"]["prompt"] is None


def test_phase_a_plus_prompts_carry_phase_a_snippets_and_wikipedia_context(tmp_path, backends, monkeypatch):
    def reply(request):
        if request.json_schema and "articles" in request.json_schema.get("properties", {}):
            return Completion(text='{"articles": ["Marker article"]}')
        return yes(request)

    backends.reply = reply
    monkeypatch.setattr(
        WikipediaContext,
        "fetch",
        lambda self, title: WikiArticle(title, "https://en.wikipedia.org/wiki/Marker", "WIKI-MARKER text."),
    )
    run(tmp_path, "task=phase_a_plus", "retrieval=bm25", "retrieval.wikipedia.max_articles=1", "task.kinds=[exact]")
    submission = json.loads((tmp_path / "run" / "submission.json").read_text())["questions"]
    answer_prompts = [r for r in backends.built[0].requests if "answer" in (r.json_schema or {}).get("properties", {})]
    assert len(answer_prompts) == 2
    for request, entry in zip(answer_prompts, submission, strict=True):
        prompt = request.messages[-1]["content"]
        assert "Wikipedia, Marker article: WIKI-MARKER text." in prompt
        assert entry["snippets"] and entry["snippets"][0]["text"][:60] in prompt  # Phase A's own snippets too
        assert all("wikipedia" not in s["document"] for s in entry["snippets"])  # not submitted as PubMed snippets
