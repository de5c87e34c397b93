"""Bad inputs × entry points: every case ends in exit code 2 and exactly one stderr line without a traceback, before
any model is built, and leaves every file it found (inputs, a previous run's outputs, the cache) as it was.

One case per rule bioqa owns, and one per schema section for the validator's own wording, runs in-process: the real
configs composed with Hydra's compose API, passed to each script's real ``main`` (``@hydra.main`` hands a given
config straight to the error-boundary-wrapped body). The other bad values (VALUES) are checked against the checks
``main`` runs first, on configs composed once per choice of config groups: the same one-line message, fast. One
subprocess smoke case per script proves the command-line wiring. The validators also accept every real config option
(no false alarms), and a single-string ``data.train_files`` is one file, never its characters.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import script
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from bioqa.config.evaluate import validate_evaluate_config, validate_report_config
from bioqa.config.infer import validate_infer_config
from bioqa.errors import EXIT_USAGE, ConfigError, describe
from bioqa.resources import demo_golden_path
from bioqa.runs import register_resolvers

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"
ERROR_LINE = re.compile(r"^[\w.-]+: error: \S")
CHAT = [{"role": "user", "content": "Is water wet?"}, {"role": "assistant", "content": "yes"}]


@dataclass(frozen=True)
class Case:
    """``script`` run with ``overrides`` (``{name}`` = a file of :func:`write_inputs`) must fail with a line
    containing ``expect``."""

    script: str
    overrides: tuple[str, ...]
    expect: str

    @property
    def id(self) -> str:
        return f"{self.script}:{' '.join(self.overrides) or 'defaults'}"


def cases(table: str) -> list[Case]:
    """Rows ``script | overrides (space-separated) | expected part of the line``; ``#`` lines are comments.
    evaluate gets ``golden={golden} system={system}`` first (a row's own value wins: Hydra applies them in order)."""
    rows = []
    for line in table.strip().splitlines():
        if not line.startswith("#"):
            script, overrides, expect = (part.strip() for part in line.split("|", 2))
            files = ("golden={golden}", "system={system}") if script == "evaluate" else ()
            rows.append(Case(script, files + tuple(overrides.split()), expect))
    return rows


# Through the entry point (``main``): one row per rule bioqa owns, and one row per schema section for the validator's
# own wording (the other values are in VALUES, checked against the validators directly).
CASES = cases(
    """
# evaluate.py: unusable files, bad options, missing arguments
evaluate | system={non_utf8} | not UTF-8 text
evaluate | system={directory} | is a directory
evaluate | system={nested} | nested too deeply
evaluate | system={truncated} | not valid JSON
evaluate | system={empty} | empty file
evaluate | system={json_list} | expected a BioASQ JSON object {"questions": [...]}, got list
evaluate | system={missing} | no such file
evaluate | system=??? | system is missing: pass system=PATH
evaluate | phase=C | phase=C: Input should be 'A', 'B' or 'AB'
# evaluate.py report=: the sweep report's options and sources
evaluate | report={directory} bootstrap=abc | bootstrap=abc: Input should be a valid integer
evaluate | report={missing} | report={missing}: no such directory
evaluate | report={golden} | report={golden}: is a file, expected a directory
evaluate | report={directory} | no run directories (metrics.json) under
evaluate | report={directory} report_dir={inputs} | report_dir={inputs}: exists and is not a report's output
# infer.py: data selection
infer    | data.limit=abc | data.limit=abc: Input should be a valid integer
infer    | data.golden={yesno_only} data.types=[summary] | no question of these types
# infer.py: the questions file
infer    | data.golden={malformed_golden} | question q2, field 'type': unknown question type
infer    | data.golden=??? | data.golden is missing (???): pass data.golden=...
infer    | data.golden=${oc.env:BIOQA_UNSET_VARIABLE} | Environment variable 'BIOQA_UNSET_VARIABLE' not found
# infer.py: answering, prompt, task, retrieval, evaluation, cache
infer    | answering.chunk_size=0 | answering.chunk_size=0: Input should be greater than or equal to 1
infer    | ~answering.max_new_tokens.ideal | answering.max_new_tokens has no entry for ['ideal']
infer    | model.adapter={directory} | model.adapter={directory}: not a PEFT adapter directory
infer    | prompt.selection=bogus | prompt.selection=bogus: Input should be 'first_n' or 'knn'
infer    | task=phase_a_plus | task=phase_a_plus needs a search index for Phase A
infer    | retrieval=dense retrieval.index.encoder.backend=fp16 | retrieval.index.encoder.backend='fp16': expected torch
infer    | retrieval=hybrid retrieval.index.dense.encoder.max_seq_length=999 | index.dense.encoder.max_seq_length=999:
infer    | retrieval=dense retrieval.index.encoder.max_seq_length=0 | encoder.max_seq_length=0: expected an integer
infer    | retrieval=dense retrieval.index.encoder.max_seq_length=abc | encoder.max_seq_length='abc': expected an
infer    | retrieval=dense retrieval.index.encoder.max_seq_length=true | encoder.max_seq_length=True: expected an
infer    | retrieval=dense +retrieval.index.encoder.precision=int8 | retrieval.index.encoder: unknown key 'precision'
infer    | retrieval=dense retrieval.index.encoder=onnx | retrieval.index.encoder='onnx': expected keys backend
infer    | cache.path={directory} | cache.path={directory}: is a directory
infer    | cache.path={empty}/completions.sqlite | is not a directory
infer    | evaluation.version=7 | evaluation.version=7: Input should be 2, 3, 5, 8 or 9
# infer.py: Phase B answers from the questions' snippets; none (a Phase A test set) is refused unless closed-book
infer    | data.golden={no_snippets} | task=phase_b answers from the questions' snippets, but 3 of 3 selected
infer    | task=phase_a_plus task.phase_a_submission={golden} data.closed_book=true | but task=phase_a_plus retrieves
infer    | retrieval=wikipedia retrieval.wikipedia.offline=true | wikipedia.sqlite: no Wikipedia cache here
infer    | errors.max_fraction=1.5 | errors.max_fraction=1.5: Input should be less than or equal to 1
# infer.py task=ensemble: parsed like every other task
infer    | task=ensemble | ensemble.runs is missing (???): pass ensemble.runs=...
infer    | task=ensemble ensemble.runs=[{directory}] | ensemble.runs=[{directory}]: List should have at least 2
infer    | task=ensemble ensemble.runs=[{directory},{directory}] | ensemble.runs: the same run directory is listed
infer    | task=ensemble ensemble.runs=[a,b] ensemble.ideal_member=2 | ensemble.ideal_member=2: must index ensemble.runs
# prompt templates: one language ({name} is a placeholder when the prompt fills it, other braces are literal)
infer    | prompt.templates.exact.yesno.user='{snippets}{questoin}' | unknown placeholder {questoin}
infer    | task=phase_a retrieval=tantivy retrieval.phase_a.search_k=abc | retrieval.phase_a.search_k=abc: Input should
infer    | retrieval=wikipedia retrieval.wikipedia.offline=true retrieval.wikipedia.cache_path=null | offline=true needs
infer    | retrieval=wikipedia retrieval.wikipedia.api_url=en.wiki.org | api_url=en.wiki.org: String should match
# first contact: a remote model without its API key, named before anything runs
infer    | model=gpt-3.5-turbo model.backend.api_key_env=BIOQA_NO_SUCH_KEY | variable BIOQA_NO_SUCH_KEY (the API key
train    | model=mixtral prompt=10shot | are not in the Hugging Face cache && pass model.backend.model_path=DIR
# several problems at once: every one reported, on one line (a row's `&&` parts are all in it)
infer    | +foo=1 data.limit=0 answering.chunk_size=0 | foo: unknown && ; data.limit=0 && ; answering.chunk_size=0
infer    | prompt.n_shots=-1 data.limit=0 | data.limit=0: Input should be && ; prompt.n_shots=-1: Input should be
# train.py: data files (a single string is one path or pattern)
train    | data.train_files=[{directory}/nothing*.json] | matches no file
train    | data.train_files={summary_only} data.kinds=[exact] | no training examples
train    | data.train_files={one_question} data.kinds=[ideal] | hold out the only training example
train    | data.format=chat_jsonl data.train_files={bad_chat} | :2: the last message must be
train    | data.format=chat_jsonl | data.format=chat_jsonl needs data.train_files
# train.py: settings
train    | data.batch_size=0 | data.batch_size=0: Input should be greater than or equal to 1
train    | model=gpt-4o | model=gpt-4o has no `train:` block
train    | model.train.lora.r=0 | model.train.lora.r=0
train    | ckpt_path=last resume_root={directory} | ckpt_path=last: no checkpoints/last.ckpt
train    | data.pack_length=16 | data.pack_length=16 is shorter than model.train.max_length=1024
train    | model.train.gradient_checkpointing=auto | gradient_checkpointing=auto needs model.train.memory_budget_gb
# unknown keys (a typo, or a +key nothing reads) are refused, naming the closest known key
infer    | +data.limt=3 | data.limt: unknown config key (did you mean 'data.limit'?
# keys of an object built from _target_ (or the Lightning Trainer's) are checked against its signature, up front
infer    | model=smollm2 +model.backend.batch_sise=4 | model.backend.batch_sise: not a parameter of bioqa.models.hf
train    | +trainer.max_step=3 | trainer.max_step: not an argument of the Lightning Trainer (did you mean 'trainer.max_
"""
)

# Validated directly (the run's checks on the composed config, no ``main``): the validator's wording for each value,
# and the rules above on the other keys and scripts that share them.
VALUES = cases(
    """
# evaluate.py: unusable files, bad options, missing arguments
evaluate | golden=??? | golden is missing: pass golden=PATH
evaluate | golden={missing} | golden={missing}: no such file
evaluate | golden={directory} | is a directory
evaluate | golden={non_utf8} | not UTF-8 text
evaluate | compare={truncated} | compare={truncated}: not valid JSON
evaluate | version=7 | version=7: Input should be 2, 3, 5, 8 or 9
evaluate | bootstrap=-5 | bootstrap=-5: Input should be greater than or equal to 0
evaluate | bootstrap=abc | bootstrap=abc: Input should be a valid integer
# evaluate.py report=: the sweep report's options and sources
evaluate | report={directory} report_baselines=maybe | report_baselines=maybe: Input should be a valid boolean
# infer.py: data selection
infer    | data.limit=0 | data.limit=0: Input should be greater than or equal to 1
infer    | data.limit=-1 | data.limit=-1: Input should be greater than or equal to 1
infer    | data.limit=1.5 | data.limit=1.5: Input should be a valid integer
infer    | data.types=[foo] | data.types[0]=foo: Input should be 'yesno', 'factoid', 'list' or 'summary'
infer    | data.types=yesno | data.types=yesno: Input should be a valid list
infer    | data.types=[] | data.types=[]: List should have at least 1 item
infer    | data.shot_pool=bogus | data.shot_pool=bogus: Input should be 'fewshot', 'golden' or 'demo'
# infer.py: the questions file
infer    | data.golden={non_utf8} | data.golden={non_utf8}: not UTF-8 text
infer    | data.golden={directory} | data.golden={directory}: is a directory
infer    | data.golden={missing} | data.golden={missing}: no such file
infer    | data.golden={empty} | empty file
infer    | data.golden={truncated} | not valid JSON
infer    | data.golden={nested} | nested too deeply
# infer.py: answering, prompt, task, retrieval, evaluation, cache
infer    | answering.max_new_tokens.ideal=0 | answering.max_new_tokens.ideal=0
infer    | answering.temperature=-1 | answering.temperature=-1
infer    | +answering.max_new_tokens.summary=5 | answering.max_new_tokens.summary=summary: Input should be
infer    | prompt.pool=bogus | prompt.pool=bogus
infer    | prompt.n_shots=-1 | prompt.n_shots=-1: Input should be greater than or equal to 0
infer    | task=phase_a | task=phase_a needs a search index for Phase A
infer    | task=phase_a_plus task.phase_a_submission={missing} | task.phase_a_submission={missing}
infer    | task=phase_a_plus task.phase_a_submission={truncated} | not valid JSON
infer    | task=phase_a_plus retrieval=tantivy retrieval.index.corpus_path={missing} | no such file
infer    | evaluation.bootstrap=-5 | evaluation.bootstrap=-5: Input should be greater than or equal to 0
infer    | evaluation.enabled=maybe | evaluation.enabled=maybe: Input should be a valid boolean
# infer.py: Phase B answers from the questions' snippets; none (a Phase A test set) is refused unless closed-book
infer    | data.golden={no_snippets} data.limit=2 | 2 of 2 selected question(s) in {no_snippets} have none
infer    | data.golden={no_snippets} | task=phase_a_plus retrieval=tantivy|bm25|elasticsearch, or answer without
infer    | data.golden={some_snippets} | but 1 of 3 selected question(s)
infer    | data.golden={no_snippets} data.closed_book=maybe | data.closed_book=maybe: Input should be a valid boolean
infer    | errors.max_fraction=true | errors.max_fraction=true: Input should be a valid number
infer    | data.shot_pool_fallback=golden | data.shot_pool_fallback=golden: Input should be 'demo'
infer    | data.limit=true | data.limit=true: Input should be a valid integer
# infer.py task=ensemble: parsed like every other task
infer    | task=ensemble ensemble.runs=[{directory}] +ensemble.rrfk=1 | (did you mean 'ensemble.rrf_k'?
infer    | task=ensemble ensemble.runs=[a,b] ensemble.ideal=longest | ensemble.ideal=longest: Input should be 'member'
infer    | task=ensemble ensemble.runs=[a,b] ensemble.list_min_votes=0 | ensemble.list_min_votes=0: Input should be
infer    | task=ensemble ensemble.runs=[a,b] ensemble.rrf_k=-1 | ensemble.rrf_k=-1: Input should be greater than
# prompt templates: one language ({name} is a placeholder when the prompt fills it, other braces are literal)
infer    | task=phase_a retrieval=tantivy retrieval.phase_a.prompts.query='Find:{querstion}' | {querstion}
infer    | retrieval=wikipedia retrieval.wikipedia.prompts.titles='{question}{n}' | unknown placeholder {n}
# first contact: a remote model without its API key, named before anything runs
infer    | model=mixtral | model.backend.model_path=mistralai/Mixtral-8x7B-Instruct-v0.1: the weights are not in
# several problems at once: every one reported, on one line (a row's `&&` parts are all in it)
evaluate | phase=C version=7 bootstrap=-1 | phase=C: Input && ; version=7: Input && ; bootstrap=-1: Input should be
evaluate | report={directory} report_reference=[a] bootstrap=x | report_reference=[a]: Input && ; bootstrap=x:
# train.py: data files (a single string is one path or pattern)
train    | data.train_files={missing} | data.train_files={missing}: no such file
train    | data.train_files=[{directory}] | is a directory
train    | data.train_files={truncated} | not valid JSON
train    | data.train_files={malformed_golden} | question q2, field 'type'
train    | data.val_files={empty} | data.val_files={empty}: empty file
train    | data.format=chat_jsonl data.train_files={non_utf8} | not UTF-8 text
# train.py: settings
train    | data.batch_size=abc | data.batch_size=abc: Input should be a valid integer
train    | data.val_fraction=1.0 | data.val_fraction=1.0: Input should be less than 1
train    | data.val_fraction=-0.1 | data.val_fraction=-0.1
train    | data.format=bogus | data.format=bogus: Input should be 'golden' or 'chat_jsonl'
train    | data.kinds=[foo] | data.kinds[0]=foo
train    | model.train.optim.schedule=bogus | model.train.optim.schedule=bogus
train    | +model.train.lora.rank=8 | model.train.lora.rank: unknown config key
train    | prompt.selection=bogus | prompt.selection=bogus
train    | ckpt_path={missing} | ckpt_path={missing}: no such file
train    | +model.train.base.experts_forward=groupd | model.train.base.experts_forward=groupd: Input should be 'routed'
train    | data.batch_size=0 model.train.lora.r=0 +trainer.max_step=3 | ; model.train.lora.r=0 && ; trainer.max_step:
# unknown keys (a typo, or a +key nothing reads) are refused, naming the closest known key
infer    | +foo=1 | foo: unknown config key
infer    | +answering.max_new_token=64 | max_new_token: unknown config key (did you mean 'answering.max_new_tokens'
infer    | +model.adaptr=x | model.adaptr: unknown config key (did you mean 'model.adapter'?
infer    | +prompt.n_shot=3 | prompt.n_shot: unknown config key (did you mean 'prompt.n_shots'?
infer    | +retrieval.idx=1 | retrieval.idx: unknown config key (did you mean 'retrieval.index'?
infer    | +errors.max_fracton=0.5 | errors.max_fracton: unknown config key (did you mean 'errors.max_fraction'?
infer    | +paths.log=x | paths.log: unknown config key (did you mean 'paths.log_dir'?
evaluate | +boostrap=10 | boostrap: unknown config key (did you mean 'bootstrap'?
evaluate | report=x +report_dirr=y | report_dirr: unknown config key (did you mean 'report_dir'?
train    | +model.train.optim.l=1 | model.train.optim.l: unknown config key
train    | +data.bach_size=2 | data.bach_size: unknown config key (did you mean 'data.batch_size'?
train    | +merged=true | merged: unknown config key (did you mean 'merge'?
# keys of an object built from _target_ (or the Lightning Trainer's) are checked against its signature, up front
infer    | model=mixtral +model.backend.load_in_4bits=1 | (did you mean 'model.backend.load_in_4bit'?
infer    | model=gpt-4o +model.backend.temprature=1 | model.backend.temprature: not a parameter of bioqa.models.litellm
infer    | task=phase_a retrieval=tantivy +retrieval.index.field_boost=1 | (did you mean 'retrieval.index.field_boosts'?
train    | logger=wandb +logger.wandb.projet=x | logger.wandb.projet: not a parameter of bioqa.loggers.wandb_logger (did
infer    | logger=wandb +logger.wandb.notez=x | (did you mean 'logger.wandb.notes'?
infer    | task=phase_a retrieval=tantivy +retrieval.phase_a.lang=en | retrieval.phase_a.lang: not a parameter of
"""
)


def paper_phase_a(rows: str) -> list[Case]:
    """Rows ``overrides of retrieval.phase_a (a leading + kept) | expected part of the line`` with the seed paper's
    Phase A prompt set (retrieval/phase_a=paper), which reads its shot files before any model is built."""
    return [
        Case("infer", PAPER_PHASE_A + tuple(re.sub(r"^(\+?)", r"\1retrieval.phase_a.", o) for o in row.split()), expect)
        for row, expect in (line.split(" | ", 1) for line in rows.strip().splitlines())
    ]


PAPER_PHASE_A = ("task=phase_a", "retrieval=tantivy", "retrieval/phase_a=paper")
CASES += paper_phase_a(
    """
shots.extract=3 shot_files.extract={bad_chat} | {bad_chat}: 3 shots asked for, the file has 2 examples
shots.rerank=1 shot_files.rerank={golden} | {golden}:1: expected {"messages": [{"role", "content"}, ...]}
shots.query=1 | retrieval.phase_a: shots.query=1 needs shot_files.query=FILE
shots.query=1 shot_files.query={golden} | {golden}: not a query shot pool
"""
)
VALUES += paper_phase_a(
    """
shots.extract=1 shot_files.extract={missing} | shot_files.extract={missing}: no such file
shots.extract=1 shot_files.extract={empty} | shot_files.extract={empty}: empty file
shots.rerank=1 shot_files.rerank={non_utf8} | shot_files.rerank={non_utf8}: not UTF-8 text
shots.query=2 shot_files.query={query_pool} | {query_pool}: 2 shots asked for, the pool has 1
shots.query=1 shot_files.query={truncated} | {truncated}: not valid JSON
shots.extract=-1 | shots.extract=-1: Input should be greater than or equal to 0
+shots.expand=1 | shots.expand=expand: Input should be 'query', 'extract' or 'rerank'
shots=3 | shots=3: Input should be a valid dictionary
"""
)


def demo_questions() -> list[dict]:
    return json.loads(demo_golden_path().read_text(encoding="utf-8"))["questions"]


def write_inputs(folder: Path) -> dict[str, str]:
    """Good and bad input files; ``{name}`` in a case's overrides is replaced by the path."""
    folder.mkdir()
    questions = demo_questions()
    golden = {"questions": questions}
    text = json.dumps(golden)
    malformed = [questions[0], {**questions[1], "id": "q2", "type": "essay"}]
    contents: dict[str, str | bytes] = {
        "golden": text,
        "system": text,
        "non_utf8": b'{"questions": [{"id": "\xff\xfe"}]}',
        "nested": "[" * 100_000 + "]" * 100_000,
        "truncated": text[: len(text) // 2],
        "empty": "",
        "json_list": json.dumps(questions),
        "malformed_golden": json.dumps({"questions": malformed}),
        "yesno_only": json.dumps({"questions": [q for q in questions if q["type"] == "yesno"]}),
        "summary_only": json.dumps({"questions": [q for q in questions if q["type"] == "summary"]}),
        "one_question": json.dumps({"questions": questions[:1]}),
        "no_snippets": json.dumps({"questions": [{**q, "snippets": []} for q in questions[:3]]}),
        "some_snippets": json.dumps({"questions": [*questions[:2], {**questions[2], "snippets": []}]}),
        "bad_chat": json.dumps({"messages": CHAT}) + "\n" + json.dumps({"messages": CHAT[:1]}) + "\n",
        "query_pool": json.dumps(
            {"kind": "bioqa.query_shot_pool", "shots": [{"question": "Q?", "completion": "##q##"}]}
        ),
    }
    paths = {"directory": str(folder / "a_directory"), "missing": str(folder / "missing.json"), "inputs": str(folder)}
    (folder / "a_directory").mkdir()
    for name, content in contents.items():
        path = folder / f"{name}.json"
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        paths[name] = str(path)
    return paths


def fill(text: str, files: dict[str, str]) -> str:
    """``text`` with every ``{name}`` of ``files`` replaced by its path (other braces kept)."""
    for name, path in files.items():
        text = text.replace(f"{{{name}}}", path)
    return text


def write_previous_run(run_dir: Path, cache_dir: Path) -> None:
    """What a run directory and the cache hold from earlier work (must survive a refused run untouched)."""
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.json").write_text('{"yesno.acc": 0.75}\n')
    (run_dir / "predictions.jsonl").write_text('{"id": "q1", "kind": "exact", "text": "yes"}\n')
    cache_dir.mkdir(parents=True)
    (cache_dir / "completions.sqlite").write_bytes(b"SQLite format 3\x00 earlier completions")


def snapshot(folder: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


def compose_config(name: str, overrides: list[str], run_dir: Path) -> DictConfig:
    """The real ``conf/<name>.yaml`` composed with ``overrides``, its Hydra node set as in a run into ``run_dir``."""
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            config_name=name,
            overrides=[*overrides, f"hydra.runtime.output_dir={run_dir}"],
            return_hydra_config=True,
        )
    HydraConfig.instance().set_config(cfg)
    return cfg


def base_overrides(case: Case, tmp_path: Path) -> list[str]:
    """Logs, cache and loggers inside ``tmp_path``; infer uses the tiny random model (never built here)."""
    paths = [f"paths.log_dir={tmp_path}/logs", f"paths.cache_dir={tmp_path}/cache"]
    return {"infer": ["model=tiny-llama", "logger=none"], "train": ["logger=none"], "evaluate": []}[case.script] + paths


#: What each script must not reach before refusing a bad input: building a model, or scoring.
WORK = {
    "infer": ("bioqa.pipeline.app", "build_backend"),
    "train": ("bioqa.training.app", "instantiate"),
    "evaluate": (None, "evaluate_from_config"),
}


def forbid_work(monkeypatch, name: str) -> None:
    """Building a backend or training model (or, for evaluate, scoring) fails the test: validation refuses first."""

    def started(*args, **kwargs):
        pytest.fail(f"{name}.py started work before refusing the bad input")

    module, attribute = WORK[name]
    monkeypatch.setattr(importlib.import_module(module) if module else script(name), attribute, started)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.delenv("BIOQA_VERBOSE", raising=False)


def assert_one_line(code: int | str | None, stderr: str, expect: str) -> None:
    lines = stderr.strip().splitlines()
    assert code == EXIT_USAGE, stderr
    assert "Traceback" not in stderr
    assert len(lines) == 1, stderr
    assert ERROR_LINE.match(lines[0]) and all(part in lines[0] for part in expect.split(" && ")), lines[0]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_bad_input_ends_in_one_line_and_loses_nothing(case: Case, tmp_path_factory, capsys, monkeypatch):
    folder = tmp_path_factory.mktemp("bad")  # a short path: a message shortens values over 80 characters
    forbid_work(monkeypatch, case.script)
    files = write_inputs(folder / "in")
    run_dir = folder / "logs" / "run"
    write_previous_run(run_dir, folder / "cache")
    before = snapshot(folder)
    overrides = [fill(o, files) for o in case.overrides]
    cfg = compose_config(case.script, base_overrides(case, folder) + overrides, run_dir)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        script(case.script).main(cfg)
    assert_one_line(exited.value.code, capsys.readouterr().err, fill(case.expect, files))
    assert snapshot(folder) == before


def checks(name: str, cfg: DictConfig) -> None:
    """What ``<name>.py`` checks before any work: the run plan, the training inputs, or the evaluation or report."""
    from bioqa.pipeline.app import plan_run  # here: collecting this module does not import torch
    from bioqa.training.config import validate_train_config

    if name == "infer":
        plan_run(cfg)
    elif name == "train":
        validate_train_config(cfg)
    elif cfg.report is not None:
        validate_report_config(cfg)
    else:
        validate_evaluate_config(cfg)


def is_group(override: str) -> bool:
    """Whether ``override`` chooses a config group's option (``model=mixtral``, ``retrieval/phase_a=paper``)."""
    return (CONF / override.split("=")[0]).is_dir()


@pytest.fixture(scope="module")
def composed(tmp_path_factory) -> tuple[Callable[[Case], DictConfig], dict[str, str]]:
    """The input files, and a case's config: its script's real config composed once per choice of config groups,
    the case's values then applied to a copy as Hydra applies overrides after composing."""
    root = tmp_path_factory.mktemp("values")
    files, configs = write_inputs(root / "in"), {}

    def config(case: Case) -> DictConfig:
        overrides = [fill(o, files) for o in case.overrides]
        groups = tuple(base_overrides(case, root) + [o for o in overrides if is_group(o)])
        if (case.script, groups) not in configs:
            configs[case.script, groups] = compose_config(case.script, list(groups), root / "logs" / "run")
        cfg = copy.deepcopy(configs[case.script, groups])
        for override in OverridesParser.create().parse_overrides([o for o in overrides if not is_group(o)]):
            OmegaConf.update(cfg, override.key_or_group, override.value(), merge=True, force_add=override.is_add())
        HydraConfig.instance().set_config(cfg)
        return cfg

    return config, files


@pytest.mark.parametrize("case", VALUES, ids=lambda case: case.id)
def test_bad_value_is_refused_by_the_checks_before_any_work(case: Case, composed):
    config, files = composed
    with pytest.raises(Exception) as raised:  # which error: describe() says whether it is a user-facing one
        checks(case.script, config(case))
    message = describe(raised.value)
    assert message is not None and getattr(raised.value, "exit_code", EXIT_USAGE) == EXIT_USAGE, raised.value
    assert all(part in message for part in fill(case.expect, files).split(" && ")), message


SMOKE = [
    Case("evaluate", ("golden={golden}",), "system is missing: pass system=PATH"),
    Case("infer", ("model=tiny-llama", "logger=none", "data.limit=abc"), "data.limit=abc"),
    Case("train", ("logger=none", "data.train_files={missing}"), "data.train_files={missing}: no such file"),
]


# infer.py and train.py import torch & co. in the fresh interpreter: slow (CI runs them)
@pytest.mark.parametrize(
    "case",
    [pytest.param(c, marks=[pytest.mark.slow] if c.script != "evaluate" else []) for c in SMOKE],
    ids=lambda case: case.script,
)
def test_script_refuses_a_bad_input_in_a_subprocess(case: Case, tmp_path):
    files = write_inputs(tmp_path / "in")
    run_dir = tmp_path / "logs" / "run"
    write_previous_run(run_dir, tmp_path / "cache")
    before = snapshot(tmp_path / "in") | {"run/metrics.json": (run_dir / "metrics.json").read_bytes()}
    overrides = [fill(o, files) for o in case.overrides]
    command = [sys.executable, f"{case.script}.py", *overrides, f"paths.log_dir={tmp_path}/logs"]
    command += [f"paths.cache_dir={tmp_path}/cache", f"hydra.run.dir={run_dir}"]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert_one_line(proc.returncode, proc.stderr, fill(case.expect, files))
    assert snapshot(tmp_path / "in") | {"run/metrics.json": (run_dir / "metrics.json").read_bytes()} == before


# The validators accept every real option: no false alarms on what the configs ship.
MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))


@pytest.mark.parametrize("model", MODELS)
def test_every_model_option_passes_infer_validation(model, tmp_path, monkeypatch):
    for variable in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "FIREWORKS_AI_API_KEY"):  # the keys remote models read
        monkeypatch.setenv(variable, "sk-test")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # hub ids not in the cache would be fetched when built
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    adapter = tmp_path / "adapter"  # an option that needs an adapter gets one (the file validation looks for)
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    overrides = [f"model={model}", "logger=none", f"paths.cache_dir={tmp_path}"]
    if model.endswith("qlora"):
        overrides.append(f"model.adapter={adapter}")
    cfg = compose_config("infer", overrides, tmp_path / "run")
    assert validate_infer_config(cfg).config.data.golden == str(demo_golden_path())


PROMPTS = sorted(p.stem for p in (CONF / "prompt").glob("[0-9]*.yaml"))


@pytest.mark.parametrize(
    "overrides",
    [[f"prompt={prompt}"] for prompt in PROMPTS]
    + [["task=phase_a_plus", "retrieval=tantivy"], ["task=phase_a", "retrieval=bm25"], ["retrieval=elasticsearch"]]
    + [["task=phase_a", "retrieval=tantivy", "retrieval/phase_a=paper"]]
    + [["task=phase_a", "retrieval=dense", "retrieval.index.encoder.backend=onnx-int8"]]
    + [["task=phase_a", "retrieval=hybrid", "retrieval.index.dense.encoder.max_seq_length=128"]]
    + [["data.limit=3", "data.types=[yesno,list]", "prompt.selection=knn", "cache.enabled=false"]],
    ids=" ".join,
)
def test_real_infer_options_pass_validation(overrides, tmp_path):
    cfg = compose_config("infer", ["logger=none", f"paths.cache_dir={tmp_path}", *overrides], tmp_path / "run")
    checked = validate_infer_config(cfg).config
    assert checked.task.name == cfg.task.name and checked.data.limit == cfg.data.limit


def test_a_valid_evaluation_passes_validation(tmp_path):
    golden = str(demo_golden_path())
    checked = validate_evaluate_config(compose_config("evaluate", [f"golden={golden}", f"system={golden}"], tmp_path))
    assert (checked.phase, checked.version, checked.compare) == ("AB", 9, None)


@pytest.mark.parametrize("model", ["smollm2", "tiny-mixtral", "mixtral"])
def test_train_validation_accepts_models_with_a_train_block(model, tmp_path, monkeypatch):
    from bioqa.training.config import validate_train_config

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # hub ids not in the cache would be fetched when built
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")

    inputs = validate_train_config(compose_config("train", [f"model={model}", "logger=none"], tmp_path / "run"))
    questions = demo_questions()
    assert inputs.train_files == [str(demo_golden_path())] and inputs.val_files == []
    assert inputs.n_train == sum(1 + (q["type"] != "summary") for q in questions)
    assert inputs.prompt is not None and inputs.prompt.pool == "demo"


def test_train_files_as_one_string_is_one_file_and_patterns_expand_sorted(tmp_path):
    from bioqa.training.config import validate_train_config

    files = write_inputs(tmp_path / "in")
    one = validate_train_config(compose_config("train", [f"data.train_files={files['golden']}"], tmp_path / "a"))
    assert one.train_files == [files["golden"]]
    pattern = f"data.train_files=[{tmp_path}/in/*_only.json,{files['golden']}]"
    many = validate_train_config(compose_config("train", [pattern], tmp_path / "b"))
    assert many.train_files == [files["summary_only"], files["yesno_only"], files["golden"]]


def test_chat_jsonl_files_are_read_and_counted_before_any_model(tmp_path):
    from bioqa.training.config import validate_train_config

    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps({"messages": CHAT}) + "\n" for _ in range(3)))
    overrides = ["data.format=chat_jsonl", f"data.train_files={path}", "data.val_fraction=0"]
    inputs = validate_train_config(compose_config("train", overrides, tmp_path / "run"))
    assert (inputs.n_train, inputs.prompt) == (3, None)


# Hydra's own errors, raised before any bioqa code runs (bad override syntax, unknown key, unknown option), on the
# real command line: main() with a patched sys.argv, as `python <script>.py ARGS` runs it.
SCRIPTS = ("infer", "evaluate", "train")
HYDRA_CASES = [
    # every script refuses Hydra's errors in one line; each kind of error once
    *(Case(name, ("modle=mixtral",), "modle=mixtral: no config key 'modle' (") for name in SCRIPTS),
    Case(
        "infer",
        ("prompt.n_shots=[1",),
        "prompt.n_shots=[1: not a valid override (no viable alternative at input '[1');",
    ),
    Case(
        "infer", ("data.limit",), "data.limit: not a valid override (missing EQUAL at '<EOF>'); see https://hydra.cc/"
    ),
    Case("infer", ("~modle",), "Could not delete from config. 'modle' does not exist."),
    Case("infer", ("modle=mixtral",), "modle=mixtral: no config key 'modle' (did you mean 'model'? use +modle=mixtral"),
    Case("evaluate", ("sytem=x",), "sytem=x: no config key 'sytem' (did you mean 'system'? use +sytem=x to add"),
    *(
        Case(script, ("model=mixtrall",), "model=mixtrall: no option 'mixtrall' in group 'model'; did you mean")
        for script in ("infer", "train")
    ),
    Case("infer", ("prompt/templates=papr",), "no option 'papr' in group 'prompt/templates'; did you mean 'paper'?"),
    Case(
        "infer",
        ("retrieval=wiki",),
        "choose one of: bm25, dense, elasticsearch, hybrid, none, opensearch, tantivy, wik",
    ),  # no _parts
    Case("infer", ("data.limt=3",), "data.limt=3: no config key 'data.limt' (did you mean 'data.limit'?"),
    Case("infer", ("--config-name=nope",), "Cannot find primary config 'nope'"),
    # -m sweeps: refused before the first job, and Hydra's sweep directory (multirun.yaml) is removed again
    Case("infer", ("-m", "model=tiny-llama,mixtrall"), "model=mixtrall: no option 'mixtrall' in group 'model'"),
    Case("infer", ("-m", "prompt=1shot,3shoot"), "prompt=3shoot: no option '3shoot' in group 'prompt'"),
    Case("infer", ("-m", "modle=1,2"), "modle=1: no config key 'modle' (did you mean 'model'?"),
    Case("train", ("-m", "data.limit=[1"), "data.limit=[1: not a valid override"),
    Case("evaluate", ("-m", "sytem=a,b"), "sytem=a: no config key 'sytem' (did you mean 'system'?"),
    Case("train", ("-m", "model=smollm2,mixtrall"), "model=mixtrall: no option 'mixtrall'"),
]


def run_script(name: str, args: list[str], monkeypatch) -> int | str | None:
    """``python <name>.py ARGS`` in-process: the exit code of the ``SystemExit`` it ends with."""
    from hydra.core.global_hydra import GlobalHydra

    monkeypatch.setattr(sys, "argv", [f"{name}.py", *args])
    try:
        with pytest.raises(SystemExit) as exited:
            script(name).main()
    finally:
        GlobalHydra.instance().clear()
    return exited.value.code


def command_line(case: Case, tmp_path: Path) -> list[str]:
    """``case``'s arguments (``-m`` first), logs and caches under ``tmp_path``."""
    mode = [a for a in case.overrides if a == "-m"]
    paths = [f"paths.log_dir={tmp_path}/logs", f"paths.cache_dir={tmp_path}/cache"]
    return [*mode, *paths, *(a for a in case.overrides if a != "-m")]


@pytest.mark.parametrize("case", HYDRA_CASES, ids=lambda case: case.id)
def test_hydra_errors_end_in_one_line(case: Case, tmp_path, capsys, monkeypatch):
    forbid_work(monkeypatch, case.script)
    write_previous_run(tmp_path / "logs" / "run", tmp_path / "cache")
    before = snapshot(tmp_path)
    code = run_script(case.script, command_line(case, tmp_path), monkeypatch)
    stderr = capsys.readouterr().err
    assert_one_line(code, stderr, case.expect)
    assert stderr.startswith(f"{case.script}.py: error: ")
    assert snapshot(tmp_path) == before  # no run or sweep directory left behind
    assert "HYDRA_FULL_ERROR" not in os.environ  # set for Hydra only while it ran


@pytest.mark.parametrize("verbose", ["HYDRA_FULL_ERROR", "BIOQA_VERBOSE"])
def test_verbose_keeps_hydras_full_error(verbose, tmp_path, capsys, monkeypatch):
    """HYDRA_FULL_ERROR=1: Hydra raises the error itself (its traceback); BIOQA_VERBOSE=1: Hydra's own report."""
    from hydra.errors import ConfigCompositionException

    forbid_work(monkeypatch, "infer")
    monkeypatch.setenv(verbose, "1")
    args = command_line(Case("infer", ("modle=mixtral",), ""), tmp_path)
    if verbose == "HYDRA_FULL_ERROR":
        monkeypatch.setattr(sys, "argv", ["infer.py", *args])
        with pytest.raises(ConfigCompositionException, match="Could not override 'modle'"):
            script("infer").main()
        return
    assert run_script("infer", args, monkeypatch) == 1
    assert "Could not override 'modle'.\nTo append to your config use +modle=mixtral" in capsys.readouterr().err


def test_the_task_runs_in_the_users_environment(tmp_path, capsys, monkeypatch):
    """HYDRA_FULL_ERROR=1 is Hydra's only: inside the run (and its subprocesses) the user's environment, so a bad
    value is still one line (not a traceback) and verbose() still means "the user asked"."""
    seen = {}

    def validate(cfg):
        seen["env"] = {name: os.environ.get(name) for name in ("HYDRA_FULL_ERROR", "BIOQA_HYDRA_FULL_ERROR_SET")}
        raise ConfigError("data.limit=abc: refused")

    forbid_work(monkeypatch, "infer")
    monkeypatch.setattr(importlib.import_module("bioqa.pipeline.app"), "validate_infer_config", validate)
    args = [*command_line(Case("infer", (), ""), tmp_path), f"hydra.run.dir={tmp_path}/run", "model=tiny-llama"]
    assert run_script("infer", args, monkeypatch) == EXIT_USAGE
    assert capsys.readouterr().err.strip() == "infer.py: error: data.limit=abc: refused"
    assert seen["env"] == {"HYDRA_FULL_ERROR": None, "BIOQA_HYDRA_FULL_ERROR_SET": None}


# Open sections still take extra keys their target (or the Trainer, or Hydra) takes.
OPEN = [
    ("infer", ["model=gpt-4o", "+model.backend.extra_params={seed: 1}", "+model.backend.timeout_s=5"]),
    ("infer", ["+model.backend.trust_remote_code=false"]),
    ("infer", ["retrieval=tantivy", "+retrieval.index.heap_size_mb=64"]),
    ("infer", ["logger=wandb", "+logger.wandb.entity=me"]),
    ("infer", ["+hydra.job.env_set.X=1"]),
    ("train", ["+trainer.deterministic=true", "+model.train.base.attn_implementation=eager"]),
    ("train", ["+model.train.optim.betas=[0.9,0.95]", "+logger.tb={_target_: x}"]),
]


@pytest.mark.parametrize(("name", "overrides"), OPEN, ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_open_sections_accept_extra_keys(name, overrides, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")  # model=gpt-4o reads it
    cfg = compose_config(name, [f"paths.cache_dir={tmp_path}", *overrides], tmp_path / "run")
    if name == "infer":
        assert validate_infer_config(cfg).config.task.name == "phase_b"
    else:
        from bioqa.training.config import validate_train_config

        assert validate_train_config(cfg).n_train > 0


@pytest.mark.parametrize(
    ("override", "key"),
    [("+data.limt=3", "data.limt"), ("+prompt.n_shot=3", "prompt.n_shot"), ("+errors.max_fracton=1", "max_fracton")],
)
def test_an_unknown_key_is_said_once(override, key, tmp_path):
    """The key check names it with the closest known key; the schema's own refusal of it is not said again."""
    cfg = compose_config(
        "infer", ["model=tiny-llama", "logger=none", f"paths.cache_dir={tmp_path}", override], tmp_path
    )
    with pytest.raises(ConfigError) as refused:
        validate_infer_config(cfg)
    assert str(refused.value).count(f"{key}:") == 1, str(refused.value)
