"""The typed schemas parse values into frozen models: one wording per rule, every problem at once, cross-field rules
before anything is built (fast: no Hydra, no model)."""

from __future__ import annotations

import importlib.util

import pytest
from pydantic import ValidationError

from bioqa.config.infer import Answering, Ensemble, Evaluation, PhaseA, Task
from bioqa.errors import ConfigError
from bioqa.parsing import parse
from bioqa.prompts.template import check_template, fill
from bioqa.training.config import Recipe

ANSWERING = {"max_new_tokens": {"exact": 8, "ideal": 8}, "temperature": 0.0, "chunk_size": 16, "seed": 0}
EVALUATION = {"enabled": True, "version": 9, "bootstrap": 1000, "seed": 0, "rouge": True}
RECIPE = {
    "base": {"_target_": "bioqa.models.quantization.load_model_4bit", "model_path": "m"},
    "tokenizer": {"_target_": "bioqa.models.hf.load_tokenizer", "model_path": "m"},
    "max_length": 64,
    "gradient_checkpointing": False,
    "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj"], "experts": False},
    "optim": {"lr": 1e-4, "weight_decay": 0.0, "warmup_ratio": 0.0, "schedule": "constant"},
}
PHASE_A_PROMPTS = {
    "system": "You answer.",
    "query": "Query for '{question}'",
    "broader": "'{question}' found nothing with {failed_queries}",
    "extract": 'From {title} {abstract} answer \'{question}\' as {"snippets": ["..."]}',
    "rerank": "Rank {snippets} for '{question}'",
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"chunk_size": 0}, "answering.chunk_size=0: Input should be greater than or equal to 1"),
        ({"chunk_size": "abc"}, "answering.chunk_size=abc: Input should be a valid integer"),
        ({"chunk_size": 2.5}, "answering.chunk_size=2.5: Input should be a valid integer"),
        ({"chunk_size": True}, "answering.chunk_size=true: Input should be a valid integer"),
        ({"temperature": -0.1}, "answering.temperature=-0.1: Input should be greater than or equal to 0"),
        ({"temperature": "hot"}, "answering.temperature=hot: Input should be a valid number"),
        ({"max_new_tokens": {"exact": 0, "ideal": 8}}, "answering.max_new_tokens.exact=0"),
        ({"max_new_tokens": {"long": 8}}, "answering.max_new_tokens.long=long: Input should be 'exact' or 'ideal'"),
    ],
)
def test_answering_values_are_refused_with_their_key(change, message):
    with pytest.raises(ConfigError) as error:
        parse(Answering, {**ANSWERING, **change}, "answering.")
    assert str(error.value).startswith(message)


def test_every_problem_is_reported_at_once_on_one_line():
    with pytest.raises(ConfigError) as error:
        parse(Answering, {**ANSWERING, "chunk_size": 0, "temperature": -1, "seed": "x"}, "answering.")
    clauses = str(error.value).split("; ")
    assert [c.split("=")[0] for c in clauses] == ["answering.temperature", "answering.chunk_size", "answering.seed"]
    assert "\n" not in str(error.value)


def test_parsed_settings_are_frozen_and_typed():
    answering = parse(Answering, ANSWERING, "answering.")
    with pytest.raises(ValidationError, match="frozen"):
        answering.chunk_size = 2
    assert parse(Task, {"name": "t", "snippets": "golden", "phase_a_submission": None, "kinds": ["exact"]}).kinds == [
        "exact"
    ]
    with pytest.raises(ConfigError, match=r"task.kinds\[1\]=long: Input should be 'exact' or 'ideal'"):
        parse(
            Task, {"name": "t", "snippets": "golden", "phase_a_submission": None, "kinds": ["exact", "long"]}, "task."
        )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"version": 7}, "evaluation.version=7: Input should be 2, 3, 5, 8 or 9"),
        ({"bootstrap": -5}, "evaluation.bootstrap=-5: Input should be greater than or equal to 0"),
        ({"bootstrap": "many"}, "evaluation.bootstrap=many: Input should be a valid integer"),
        ({"rouge": "yes"}, "evaluation.rouge=yes: Input should be a valid boolean"),
        ({"seed": 1.5}, "evaluation.seed=1.5: Input should be a valid integer"),
        ({"enabled": 1}, "evaluation.enabled=1: Input should be a valid boolean"),
        ({"verison": 9}, "evaluation.verison: unknown config key"),
    ],
)
def test_evaluation_options_have_one_wording(values, message):
    with pytest.raises(ConfigError) as error:
        parse(Evaluation, {**EVALUATION, **values}, "evaluation.")
    assert str(error.value).startswith(message)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"runs": ["a"]}, "ensemble.runs=[a]: List should have at least 2 items"),
        ({"runs": ["a", "a"]}, "ensemble.runs: the same run directory is listed twice"),
        ({"runs": ["a", "b"], "list_min_votes": 0}, "ensemble.list_min_votes=0: Input should be greater than 0"),
        ({"runs": ["a", "b"], "ideal": "longest"}, "ensemble.ideal=longest: Input should be 'member' or 'condense'"),
        ({"runs": ["a", "b"], "ideal_member": 2}, "ensemble.ideal_member=2: must index ensemble.runs (0..1)"),
        ({"runs": ["a", "b"], "rrf_k": -1}, "ensemble.rrf_k=-1: Input should be greater than or equal to 0"),
        ({"runs": ["a", "b"], "rrf_k": "x"}, "ensemble.rrf_k=x: Input should be a valid integer"),
        ({"runs": ["a", "b"], "rrfk": 1}, "ensemble.rrfk: unknown config key"),
    ],
)
def test_bad_ensemble_settings_are_refused(settings, message):
    with pytest.raises(ConfigError) as error:
        parse(Ensemble, settings, "ensemble.")
    assert str(error.value).startswith(message)


def test_good_ensemble_settings_have_their_defaults():
    ensemble = parse(Ensemble, {"runs": ["a", "b"]}, "ensemble.")
    assert (ensemble.rrf_k, ensemble.list_min_votes, ensemble.ideal, ensemble.condense_max_tokens) == (
        60,
        0.5,
        "member",
        300,
    )


def test_a_json_example_in_a_phase_a_prompt_is_literal_text():
    phase_a = parse(PhaseA, {"strategy": "llm", "prompts": PHASE_A_PROMPTS}, "retrieval.phase_a.")
    extract = fill(phase_a.prompts.extract, question="Q?", title="T", abstract="A")
    assert extract == 'From T A answer \'Q?\' as {"snippets": ["..."]}'


@pytest.mark.parametrize(
    ("prompt", "text", "message"),
    [
        ("query", "Query for '{questoin}'", "unknown placeholder {questoin}"),
        ("broader", "'{question}' found nothing with {failed}", "unknown placeholder {failed}"),
        ("rerank", "Rank these snippets", "no {question} placeholder"),
        ("system", "You answer {question}", "unknown placeholder {question} (this prompt fills: none"),
    ],
)
def test_phase_a_templates_are_checked_up_front(prompt, text, message):
    prompts = {**PHASE_A_PROMPTS, prompt: text}
    with pytest.raises(ConfigError) as error:
        parse(PhaseA, {"strategy": "llm", "prompts": prompts}, "retrieval.phase_a.")
    assert str(error.value).startswith(f"retrieval.phase_a.prompts.{prompt}=") and message in str(error.value)


def test_phase_a_with_a_model_needs_its_prompts():
    with pytest.raises(ConfigError, match=r"^retrieval.phase_a.strategy=llm needs retrieval.phase_a.prompts$"):
        parse(PhaseA, {"strategy": "llm"}, "retrieval.phase_a.")
    assert parse(PhaseA, {"strategy": "bm25"}).prompts is None


def test_fill_replaces_only_the_names_given_and_never_reads_a_value_again():
    assert fill('{a} {b} {{a}} {"a": 1}', a="{b}") == '{b} {b} {{b}} {"a": 1}'
    check_template("{x} and {y}", ("x", "y"), ("x",))
    with pytest.raises(ValueError, match=r"no \{x\} placeholder"):
        check_template("{y}", ("x", "y"), ("x",))


def test_train_rules_that_fired_after_loading_the_model_fire_when_parsing(monkeypatch):
    with pytest.raises(ConfigError) as error:
        parse(Recipe, {**RECIPE, "gradient_checkpointing": "auto"}, "model.train.")
    assert str(error.value) == (
        "model.train.gradient_checkpointing=auto needs model.train.memory_budget_gb (the GPU memory to plan for, in GB)"
    )
    assert parse(Recipe, {**RECIPE, "gradient_checkpointing": "auto", "memory_budget_gb": 80}).memory_budget_gb == 80
    with pytest.raises(ConfigError, match=r"^model.train.base.experts_forward=groupd: Input should be 'routed'"):
        parse(Recipe, {**RECIPE, "base": {**RECIPE["base"], "experts_forward": "groupd"}}, "model.train.")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "liger_kernel" else real_find_spec(name, *a)
    )
    with pytest.raises(ConfigError) as error:
        parse(Recipe, {**RECIPE, "liger": True, "gradient_checkpointing": "auto"}, "model.train.")
    assert str(error.value) == (
        "model.train.gradient_checkpointing=auto needs model.train.memory_budget_gb (the GPU memory to plan for, in "
        "GB); model.train.liger=true needs the liger-kernel package: pip install liger-kernel, or set "
        "model.train.liger=false"
    )


def test_the_first_remote_model_run_without_its_key_names_the_variable(tmp_path, monkeypatch):
    """``python infer.py model=gpt-3.5-turbo`` without OPENAI_API_KEY: one line naming it, nothing built."""
    from helpers import compose_config, in_tmp

    from bioqa.config.infer import validate_infer_config
    from bioqa.errors import MissingCredentials

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    cfg = in_tmp(compose_config("infer", ["model=gpt-3.5-turbo", "logger=none"], True), tmp_path)
    with pytest.raises(MissingCredentials, match=r"^environment variable OPENAI_API_KEY \(the API key for gpt-3.5"):
        validate_infer_config(cfg)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert validate_infer_config(cfg).config.model.name == "gpt-3.5-turbo-0125"


def test_hub_weights_offline_are_looked_up_in_the_cache_not_fetched(tmp_path, monkeypatch):
    from huggingface_hub import constants
    from omegaconf import OmegaConf

    from bioqa.config.common import check_weights

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = OmegaConf.create({"model": {"backend": {"model_path": "org/model"}}})
    with pytest.raises(ConfigError, match=r"^model.backend.model_path=org/model: the weights are not in the Hugging"):
        check_weights("model.backend.model_path", cfg)
    snapshot = tmp_path / "hub" / "models--org--model" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "hub" / "models--org--model" / "refs").mkdir()
    (tmp_path / "hub" / "models--org--model" / "refs" / "main").write_text("abc123")
    check_weights("model.backend.model_path", cfg)  # cached: no complaint
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    check_weights("model.backend.model_path", OmegaConf.create({"model": {"backend": {"model_path": "org/other"}}}))
