"""The answer contract's registry and schemas, and the salvage of Phase A outputs (tests/test_parse.py holds the
parsing contract of the four answer styles)."""

from __future__ import annotations

import json

import pytest
import xgrammar

from bioqa.answers import (
    RANKING_SCHEMA,
    SNIPPETS_SCHEMA,
    answer_schema,
    answer_style,
    available_styles,
    parse_answer,
    parse_list,
    style_for,
    titles_schema,
)
from bioqa.errors import ConfigError
from bioqa.prompts import PromptConfig

ENTITY = {"type": "string", "minLength": 1, "maxLength": 100}


def exact_schema(properties: dict) -> dict:
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


#: The hand-written schemas the pydantic models replaced: constrained decoding and the completion cache's keys
#: (sorted JSON) see exactly these.
SCHEMAS = [
    (answer_schema("yesno", "exact"), exact_schema({"answer": {"type": "string", "enum": ["yes", "no"]}})),
    (
        answer_schema("factoid", "exact"),
        exact_schema({"entities": {"type": "array", "items": ENTITY, "maxItems": 5}}),
    ),
    (answer_schema("list", "exact"), exact_schema({"entities": {"type": "array", "items": ENTITY, "maxItems": 20}})),
    (
        SNIPPETS_SCHEMA,
        {
            "type": "object",
            "properties": {"snippets": {"type": "array", "items": {"type": "string"}}},
            "required": ["snippets"],
        },
    ),
    (
        RANKING_SCHEMA,
        {
            "type": "object",
            "properties": {"snippets": {"type": "array", "items": {"type": "integer"}}},
            "required": ["snippets"],
        },
    ),
    # bounded like the answers (at most max_articles titles), so that a small model's list closes in time
    (titles_schema(3), exact_schema({"articles": {"type": "array", "items": ENTITY, "maxItems": 3}})),
]


@pytest.mark.parametrize(("schema", "expected"), SCHEMAS)
def test_schemas_are_the_ones_they_replaced(schema, expected):
    assert json.dumps(schema, sort_keys=True) == json.dumps(expected, sort_keys=True)
    xgrammar.Grammar.from_json_schema(json.dumps(schema), strict_mode=True)


def test_every_style_module_is_found_and_answers_its_defaults():
    assert available_styles() == ["entity_list", "factoid", "ideal", "yesno"]
    for qtype in ("yesno", "factoid", "list", "summary"):
        assert style_for(qtype, "ideal").name == "ideal"
    assert [style_for(t, "exact").name for t in ("yesno", "factoid", "list")] == ["yesno", "factoid", "entity_list"]


@pytest.mark.parametrize(
    ("qtype", "kind", "name", "message"),
    [
        ("yesno", "exact", "yes_no_maybe", "unknown answer style 'yes_no_maybe'; known: ['entity_list'"),
        ("yesno", "exact", "ideal", "answers ideal answers of"),
        ("list", "exact", "factoid", "answers exact answers of ['factoid'] questions, not exact answers of list"),
        ("yesno", "exact", "json", "unknown answer style 'json'"),  # a plain name is a module of bioqa.answers
        ("yesno", "exact", "os.path", "module os.path has no STYLE"),
        ("yesno", "exact", "bioqa.answers.salvage", "has no STYLE"),
        ("yesno", "exact", "no_such_package.style", "unknown answer style 'no_such_package.style'"),
    ],
)
def test_a_wrong_style_is_a_config_error(qtype, kind, name, message):
    with pytest.raises(ConfigError) as caught:
        style_for(qtype, kind, name)
    assert message in str(caught.value)


def test_a_style_whose_own_import_fails_is_not_reported_as_unknown(tmp_path, monkeypatch):
    import bioqa.answers
    from bioqa.answers import registry

    (tmp_path / "broken_style.py").write_text("import no_such_dependency\n", encoding="utf-8")
    monkeypatch.setattr(bioqa.answers, "__path__", [*bioqa.answers.__path__, str(tmp_path)])
    monkeypatch.setattr(registry, "_STYLES", dict(registry._STYLES))
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency"):
        answer_style("broken_style")


def test_prompt_config_refuses_a_template_style_in_one_line():
    templates = {
        "exact": {t: {"system": "", "user": "{question}"} for t in ("yesno", "factoid", "list")},
        "ideal": {t: {"system": "", "user": "{question}"} for t in ("yesno", "factoid", "list", "summary")},
    }
    templates["exact"]["list"]["style"] = "yesno"
    with pytest.raises(ConfigError, match=r"^prompt\.templates\.exact\.list\.style: answer style 'yesno' answers"):
        PromptConfig.from_dict({"templates": templates})


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ('{"snippets": ["a", "b"]}', "snippets", ["a", "b"]),
        ('```json\n{"snippets": ["a"]}\n```', "snippets", ["a"]),
        ("{'snippets': ['single', 'quoted']}", "snippets", ["single", "quoted"]),
        ('{"snippets": ["a", "b", "an unfinished quo', "snippets", ["a", "b"]),  # cut by the token limit
        ('{"snippets": ["a", "b"', "snippets", ["a", "b"]),
        ("[3, 1, 12", "snippets", [3, 1]),  # 12 may have been 120: dropped
        ("[3, 1,", "snippets", [3, 1]),
        ('{"articles": ["Aspirin"], "note": "x"}', "articles", ["Aspirin"]),
        ("[the patient's record] shows nothing", "snippets", None),  # prose in brackets stays prose
        ('{"snippets": "not a list"}', "snippets", None),
        ("", "snippets", None),
    ],
)
def test_phase_a_lists_are_read_and_salvaged(text, key, expected):
    assert parse_list(text, key) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '{"entities": [["phenylalanine hydroxylase", "PAH"], ["BH4", "tetrahydro',
            [["phenylalanine hydroxylase", "PAH"], ["BH4"]],
        ),
        ('{"entities": ["a [1] b", "c", "unfinish', [["a [1] b"], ["c"]]),  # "[1]" is inside a string
        ("[the patient's record]", [["[the patient's record]"]]),  # prose in brackets: read as a line, not JSON
    ],
)
def test_truncated_entities_keep_their_synonyms(text, expected):
    parsed = parse_answer("list", "exact", text)
    assert (parsed.value, parsed.method) == (expected, "fallback")
