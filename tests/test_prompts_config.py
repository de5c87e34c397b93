"""Prompt options compose with Hydra into typed PromptConfig values; bad settings get clear messages."""

from __future__ import annotations

import re

import pytest
from helpers import compose_config
from omegaconf import OmegaConf

from bioqa.errors import ConfigError
from bioqa.prompts import PromptConfig, Template


def prompt_settings(option: str, *overrides: str) -> dict:
    cfg = compose_config(overrides=[f"+prompt={option}", "+paths.shared_dir=/data/bioasq", *overrides])
    return OmegaConf.to_container(cfg.prompt, resolve=True)


@pytest.mark.parametrize(
    ("option", "n_shots"), [("0shot", 0), ("1shot", 1), ("3shot", 3), ("5shot", 5), ("10shot", 10)]
)
def test_every_prompt_option_composes(option, n_shots):
    config = PromptConfig.from_dict(prompt_settings(option))
    assert config.n_shots == n_shots
    assert (config.selection, config.pool, config.pool_path) == ("first_n", "fewshot", "/data/bioasq/fewshot")
    assert (config.snippet_format, config.structured) == ("paper", True)
    factoid = config.template("exact", "factoid")
    assert factoid.system.startswith("You are BioASQ-GPT")
    assert factoid.answer == '{"entities": {answer}}'
    assert "at max 5 elements" in factoid.user and "{snippets}" in factoid.user
    # one ideal prompt for every type, as in the paper
    assert len({config.template("ideal", t) for t in ("yesno", "factoid", "list", "summary")}) == 1


def test_overrides_reach_the_config():
    settings = prompt_settings(
        "5shot", "prompt.selection=knn", "prompt.pool=golden", "prompt.pool_path=/x/11B1_golden.json"
    )
    config = PromptConfig.from_dict(settings)
    assert (config.selection, config.pool, config.pool_path) == ("knn", "golden", "/x/11B1_golden.json")


def test_summary_questions_have_no_exact_template():
    config = PromptConfig.from_dict(prompt_settings("0shot"))
    with pytest.raises(ValueError, match="summary questions have no exact answer"):
        config.template("exact", "summary")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"selection": "random"}, "prompt.selection=random: Input should be 'first_n' or 'knn'"),
        ({"n_shots": -1}, "prompt.n_shots=-1: Input should be greater than or equal to 0"),
        ({"snippet_format": "xml"}, "prompt.snippet_format=xml"),
        ({"temperature": 0.3}, "prompt.temperature: unknown config key"),
    ],
)
def test_bad_settings_are_named(change, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        PromptConfig.from_dict({**prompt_settings("1shot"), **change})


def test_bad_templates_are_named():
    settings = prompt_settings("0shot")
    del settings["templates"]["exact"]["list"]
    with pytest.raises(ConfigError, match=r"prompt.templates.exact lacks templates for \['list'\]"):
        PromptConfig.from_dict(settings)
    settings = prompt_settings("0shot")
    settings["templates"]["ideal"]["factoid"]["user"] = "no placeholders here"
    user = r"^prompt.templates.ideal.factoid.user='no placeholders here': no \{question\} placeholder$"
    with pytest.raises(ConfigError, match=user):
        PromptConfig.from_dict(settings)
    with pytest.raises(ValueError, match=r"no \{answer\} placeholder"):
        Template(system="", user="{question}", answer="yes")
