"""A run directory belongs to one config and one live process: resuming with another config is refused naming
what differs, a second process is kept out, a run ends with a summary line and exits 3 after writing everything
when too many requests failed; the composed infer config is the real one, the backend a scripted double."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from helpers import ScriptedBackend, compose_config, yes
from hydra.core.hydra_config import HydraConfig

from bioqa.data import load_questions, select_questions
from bioqa.errors import EXIT_FAILURES, ConfigError, RunConflictError, TooManyFailures, error_boundary
from bioqa.models import CachedBackend, Completion, CompletionCache
from bioqa.pipeline import app
from bioqa.pipeline.app import infer_from_config
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
    assert again.metrics["accounting.resumed"] == 4
    assert again.metrics["accounting.questions_per_minute"] == first.metrics["accounting.questions_per_minute"]
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
        ("data.closed_book=true", "data.closed_book"),
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


def test_a_closed_book_run_answers_without_snippets_and_records_it(tmp_path, backends):
    data = json.loads(demo_golden_path().read_text())
    test_set = tmp_path / "test_set.json"
    test_set.write_text(json.dumps({"questions": [{**q, "snippets": []} for q in data["questions"]]}))
    run(tmp_path, "data.closed_book=true", "data.shot_pool=demo", f"data.golden={test_set}")
    identity = json.loads((tmp_path / "run" / IDENTITY).read_text())["identity"]
    assert identity["data"]["closed_book"] is True and backends.calls == 4

    def prompts(*overrides: str) -> list[str]:  # the demo batch, whose questions have snippets
        infer_from_config(compose_infer(tmp_path, *overrides), tmp_path / " ".join(overrides or ("open",)))
        return [r.messages[-1]["content"] for r in backends.built[-1].requests]

    snippets = [s["text"] for q in data["questions"] if q["type"] == "yesno" for s in q["snippets"]]
    used = [s for s in snippets if any(s in text for text in prompts())]
    assert used and not any(s in text for s in used for text in prompts("data.closed_book=true"))


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


def slow_yes(request):
    """A reply that takes time, so that latency and wall time are measurable."""
    time.sleep(0.05)
    return Completion(text='{"answer": "yes"}', prompt_tokens=10, completion_tokens=3, cost_usd=0.01, latency_s=0.05)


PRODUCTION = (
    "accounting.latency_p50_s",
    "accounting.latency_p90_s",
    "accounting.wall_time_s",
    "accounting.questions_per_minute",
    "accounting.requests_per_minute",
    "accounting.cost_usd",
    "accounting.prompt_tokens",
)


@pytest.mark.parametrize(
    ("rerun_dir", "resumed", "from_cache"),
    [("run", 4, 0), ("fresh", 0, 4)],  # the same directory: every answer resumed; a new one: every answer cached
)
def test_a_rerun_reports_how_the_answers_were_produced_and_its_own_time_apart(
    tmp_path, monkeypatch, rerun_dir, resumed, from_cache
):
    built = []

    def build(cfg_model, cache_path=None):
        built.append(ScriptedBackend(complete=slow_yes, name=cfg_model["name"]))
        return built[-1] if cache_path is None else CachedBackend(built[-1], CompletionCache(cache_path))

    monkeypatch.setattr(app, "build_backend", build)
    first = run(tmp_path, "cache.enabled=true").metrics
    assert first["accounting.wall_time_s"] >= 0.2 and first["accounting.latency_p50_s"] == 0.05
    assert first["accounting.cost_usd"] == 0.04 and first["accounting.rerun_wall_time_s"] >= 0.2
    again = infer_from_config(compose_infer(tmp_path, "cache.enabled=true"), tmp_path / rerun_dir).metrics
    assert sum(len(b.requests) for b in built) == 4  # no new call
    assert {k: again[k] for k in PRODUCTION} == {k: first[k] for k in PRODUCTION}
    assert again["accounting.resumed"] == resumed and again["accounting.from_cache"] == from_cache
    assert again["accounting.rerun_wall_time_s"] < 0.2 and again["accounting.rerun_cost_usd"] == 0.0


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
    with pytest.raises(ConfigError, match=rf"errors\.max_fraction={value}: Input should be"):
        run(tmp_path, f"errors.max_fraction={value}")
    assert not backends.built


@pytest.mark.parametrize(
    ("limit", "types", "expected"),
    [(None, None, 16), (2, ["yesno"], 2), (100, None, 16), (None, ["summary"], 4), (None, ["list", "summary"], 7)],
)
def test_question_selection(limit, types, expected):
    """Selection is a plain filter (the values are parsed by the infer schema: tests/test_config_schema.py)."""
    chosen = select_questions(load_questions(demo_golden_path()), limit, types)
    assert len(chosen) == expected and all(types is None or q.type in types for q in chosen)


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
    with pytest.raises(ConfigError, match=r"data\.shot_pool_fallback=golden: Input should be 'demo'"):
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


@pytest.mark.parametrize(("max_fraction", "exits"), [("0", True), ("0.5", False)])
def test_failed_wikipedia_calls_are_counted_recorded_and_budgeted(max_fraction, exits, tmp_path, backends, caplog):
    """Every title request cut at its token limit: said, in metrics.json, and a failure like a failed answer."""

    def reply(request):
        if request.json_schema and "articles" in request.json_schema.get("properties", {}):
            return Completion.failure("truncated", "structured output cut at max_new_tokens=64")
        return yes(request)

    backends.reply = reply
    overrides = ["retrieval=wikipedia", "retrieval.wikipedia.max_articles=2", "task.kinds=[exact]"]
    if exits:
        with pytest.raises(TooManyFailures, match=r"2 of 4 requests failed"):
            run(tmp_path, *overrides, f"errors.max_fraction={max_fraction}")
    else:
        run(tmp_path, *overrides, f"errors.max_fraction={max_fraction}")
    facts = read_metrics(tmp_path / "run").facts
    assert facts["wikipedia.titles.calls"] == 2 and facts["wikipedia.titles.failed_truncated"] == 2
    assert facts["wikipedia.questions_with_context"] == 0 and facts["wikipedia.articles"] == 0
    assert "wikipedia: 2 of 2 titles requests failed (truncated ×2)" in caplog.text
    assert "raise retrieval.wikipedia.titles_max_tokens" in caplog.text


#: What the wiki answers every fetch of a run with Wikipedia context (2 questions, both naming one title: one fetch):
#: the budget (errors.max_fraction=0, 2 answers + 2 titles calls + the fetch) refused, or not, and the facts recorded.
WIKI_SERVER = [
    ((500, b"down"), "1 of 5 requests failed", {"wikipedia.unreachable": 1, "wikipedia.articles": 0}),
    ((200, b"null"), "1 of 5 requests failed", {"wikipedia.unreachable": 1, "wikipedia.articles": 0}),
    (None, None, {"wikipedia.unreachable": 0, "wikipedia.fetched": 1, "wikipedia.articles": 2}),
]


@pytest.mark.parametrize(("reply", "refused", "facts"), WIKI_SERVER, ids=["HTTP 500", "null", "ok"])
def test_failed_wikipedia_fetches_are_budgeted_like_failed_calls(
    reply, refused, facts, tmp_path, backends, json_server
):
    """A wiki that cannot answer: the questions go without context, so the fetches count as failed requests."""

    def wiki(path, body, headers):
        title = dict(parse_qsl(urlsplit(path).query))["titles"]
        return reply or (200, {"query": {"pages": [{"title": title, "extract": f"{title} is a drug."}]}})

    titles = Completion(text='{"articles": ["Aspirin"]}', prompt_tokens=10, completion_tokens=5)
    backends.reply = lambda request: titles if "articles" in str(request.json_schema) else yes(request)
    url = json_server(wiki) + "/w/api.php"
    overrides = ["retrieval=wikipedia", "retrieval.wikipedia.max_articles=1", "retrieval.wikipedia.max_retries=0"]
    overrides += [f"retrieval.wikipedia.api_url={url}", "task.kinds=[exact]", "retrieval.wikipedia.cache_path=null"]
    if refused:
        with pytest.raises(TooManyFailures, match=refused):
            run(tmp_path, *overrides)
    else:
        run(tmp_path, *overrides)
    recorded = read_metrics(tmp_path / "run").facts
    assert {key: recorded[key] for key in facts} == facts


def trained_adapter(tmp_path: Path, prompt_option: str) -> Path:
    """An adapter directory as ``train.py`` leaves it, as far as infer reads it: trained with ``prompt_option``."""
    from bioqa.config.common import check_prompt
    from bioqa.training.recipe import _prompt_json

    cfg = compose_config("train", [f"prompt={prompt_option}", f"paths.root_dir={ROOT}"])
    adapter = tmp_path / f"adapter-{prompt_option}"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    info = {"prompt": _prompt_json(check_prompt(cfg.prompt, "demo"))}
    (adapter / "bioqa_training.json").write_text(json.dumps(info))
    return adapter


def run_from_command_line(tmp_path: Path, *overrides: str):
    """:func:`run`, with Hydra's record of the command line set (what a real ``python infer.py ...`` has)."""
    HydraConfig.instance().set_config(compose_config("infer", overrides, return_hydra_config=True))
    try:
        return run(tmp_path, *overrides)
    finally:
        HydraConfig.instance().cfg = None


def identity_of(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "run" / IDENTITY).read_text())["identity"]


def test_an_adapter_answers_with_its_training_prompt_unless_one_is_chosen(tmp_path, backends, caplog):
    adapter = trained_adapter(tmp_path, "3shot")
    run_from_command_line(tmp_path, f"model.adapter={adapter}")
    identity = identity_of(tmp_path)
    assert identity["prompt"]["n_shots"] == 3 and identity["adapter_prompt"]["source"] == "adapter"
    assert "trained with another prompt" not in caplog.text


def test_a_prompt_other_than_the_adapters_is_warned_and_recorded(tmp_path, backends, caplog):
    adapter = trained_adapter(tmp_path, "3shot")
    run_from_command_line(tmp_path, f"model.adapter={adapter}", "prompt=0shot")
    identity = identity_of(tmp_path)
    assert identity["prompt"]["n_shots"] == 0
    assert identity["adapter_prompt"]["matches_training"] is False
    assert identity["adapter_prompt"]["training"]["n_shots"] == 3
    assert f"model.adapter={adapter} was trained with another prompt (3 shots" in caplog.text


def test_the_adapters_own_prompt_chosen_again_is_no_mismatch(tmp_path, backends, caplog):
    adapter = trained_adapter(tmp_path, "1shot")
    run_from_command_line(tmp_path, f"model.adapter={adapter}", "prompt=1shot")
    assert identity_of(tmp_path)["adapter_prompt"]["matches_training"] is True
    assert "trained with another prompt" not in caplog.text
