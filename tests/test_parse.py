"""Answer schemas and parsing of realistic (messy) model outputs."""

from __future__ import annotations

import json

import pytest
import xgrammar

from bioqa.answers import answer_schema, clean_entity, parse_answer


@pytest.mark.parametrize(
    ("text", "expected", "method"),
    [
        ("yes", "yes", "text"),
        ("No", "no", "text"),
        ("  'no'.\n", "no", "text"),
        ("**Yes**", "yes", "text"),
        ('{"answer": "yes"}', "yes", "json"),
        ('```json\n{"answer": "no"}\n```', "no", "json"),
        ("{'answer': 'Yes'}", "yes", "json"),
        ('Sure! Here is the answer: {"answer": "no"} Let me know if you need more.', "no", "json"),
        ('["yes"]', "yes", "json"),
        ('{"answer": true}', "yes", "json"),
        ("Yes, metformin lowers hepatic glucose output.", "yes", "fallback"),
        ("No, because the trial showed no benefit.", "no", "fallback"),
        ("Based on the snippets, the answer is no. Treatment did not reduce atrophy.", "no", "fallback"),
        ("The studies clearly show that it does; yes.", "yes", "fallback"),
        ("<think>Snippet 2 says it does not work... so no.</think>\nno", "no", "text"),
    ],
)
def test_yesno_outputs(text, expected, method):
    parsed = parse_answer("yesno", "exact", text)
    assert (parsed.ok, parsed.value, parsed.method, parsed.error) == (True, expected, method, None)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        ("I cannot determine this from the given snippets.", "no 'yes' or 'no'"),
        ("Some studies say yes, others say no.", "both"),
        ('{"answer": "maybe"}', "no 'yes' or 'no'"),
        ("Not enough evidence.", "no 'yes' or 'no'"),
        ("<think>yes or no? hard to say", "empty"),
    ],
)
def test_yesno_failures(text, reason):
    parsed = parse_answer("yesno", "exact", text)
    assert parsed.ok is False and parsed.value is None and parsed.method is None
    assert reason in parsed.error


@pytest.mark.parametrize(
    ("text", "expected", "method"),
    [
        ('{"entities": ["Imatinib", "Nilotinib"]}', [["Imatinib"], ["Nilotinib"]], "json"),
        ('```json\n{"entities": ["BRCA1"]}\n```\nThese are the genes.', [["BRCA1"]], "json"),
        ("```\n{'entities': ['IL-6', 'TNF-alpha']}\n```", [["IL-6"], ["TNF-alpha"]], "json"),
        ('Answer: {"entities": ["dystrophin"]} (based on snippet 3)', [["dystrophin"]], "json"),
        ('["EBV", "Epstein-Barr virus"]', [["EBV"], ["Epstein-Barr virus"]], "json"),
        ("['CFTR']", [["CFTR"]], "json"),
        (
            '{"entities": [["phenylalanine hydroxylase", "PAH"], ["tetrahydrobiopterin"]]}',
            [["phenylalanine hydroxylase", "PAH"], ["tetrahydrobiopterin"]],
            "json",
        ),
        ('{"entities": " aspirin. "}', [["aspirin"]], "json"),
        ('{"entities": [" Aspirin.", "aspirin", "ASPIRIN ", "warfarin"]}', [["Aspirin"], ["warfarin"]], "json"),
        ('{"entities": ["a", "b", "c", "d", "e", "f", "g"]}', [["a"], ["b"], ["c"], ["d"], ["e"]], "json"),
        ('{"entities": []}', [], "json"),
        ('{"Entities": ["3\' UTR", "\\"5-HT\\""]}', [["3' UTR"], ["5-HT"]], "json"),
        ('{"entities": ["SMN1", "SMN2", "NA', [["SMN1"], ["SMN2"]], "fallback"),
        ("Imatinib", [["Imatinib"]], "fallback"),
        ("The answer is imatinib.", [["imatinib"]], "fallback"),
        ("1. Imatinib\n2. Dasatinib\n3. Nilotinib", [["Imatinib"], ["Dasatinib"], ["Nilotinib"]], "fallback"),
        ("- **Imatinib**\n- Dasatinib.", [["Imatinib"], ["Dasatinib"]], "fallback"),
        ("Imatinib [1] is the first-line drug.", [["Imatinib [1] is the first-line drug"]], "fallback"),
    ],
)
def test_factoid_outputs(text, expected, method):
    parsed = parse_answer("factoid", "exact", text)
    assert (parsed.ok, parsed.value, parsed.method) == (True, expected, method)


@pytest.mark.parametrize(
    ("text", "expected", "method"),
    [
        ('{"entities": ["Srrm4", "Nova1"]}', [["Srrm4"], ["Nova1"]], "json"),
        ('{"entities": ["Srrm4", "srrm4", "SRRM4.", "Nova1"]}', [["Srrm4"], ["Nova1"]], "json"),
        ("Here are the answers:\n* fever\n* cough\n* fatigue\n", [["fever"], ["cough"], ["fatigue"]], "fallback"),
        ("Symptoms:\nfever\ndry cough\nloss of smell", [["fever"], ["dry cough"], ["loss of smell"]], "fallback"),
        ("fever, dry cough and fatigue.", [["fever"], ["dry cough"], ["fatigue"]], "fallback"),
        ("The entities are: BRCA1; BRCA2; PALB2", [["BRCA1"], ["BRCA2"], ["PALB2"]], "fallback"),
        ("['a', 'b', 'c", [["a"], ["b"]], "fallback"),
        (
            "- **Fever**: reported by 80% of patients\n- Dry cough - the second most common\n- IL-6 elevation",
            [["Fever"], ["Dry cough"], ["IL-6 elevation"]],
            "fallback",
        ),
        (
            '{"entities": [\'Crohn\\\'s disease\', "ulcerative colitis"]}',
            [["Crohn's disease"], ["ulcerative colitis"]],
            "json",
        ),
        ('{"genes": ["KRAS", "NRAS"], "confidence": 0.8}', [["KRAS"], ["NRAS"]], "json"),
        (
            "1) Sézary syndrome\n2) mycosis fungoides\n3) adult T-cell leukemia",
            [["Sézary syndrome"], ["mycosis fungoides"], ["adult T-cell leukemia"]],
            "fallback",
        ),
    ],
)
def test_list_outputs(text, expected, method):
    parsed = parse_answer("list", "exact", text)
    assert (parsed.ok, parsed.value, parsed.method) == (True, expected, method)


def test_list_answers_are_not_capped_like_factoid():
    text = json.dumps({"entities": [f"gene{i}" for i in range(30)]})
    assert len(parse_answer("list", "exact", text).value) == 30
    assert len(parse_answer("factoid", "exact", text).value) == 5


@pytest.mark.parametrize(
    "text",
    [
        "",
        "I'm sorry, but the provided snippets do not contain enough information to identify the specific protein "
        "that is responsible for this effect in the patients that were studied.",
        '{"confidence": 0.3, "note": "unsure"}',
        '{"entities": null}',
        "Several answers are possible, but the snippets mainly discuss the genes that are listed in table 2 below.",
    ],
)
def test_entity_failures(text):
    for qtype in ("factoid", "list"):
        parsed = parse_answer(qtype, "exact", text)
        assert parsed.ok is False and parsed.value is None and parsed.error


@pytest.mark.parametrize(
    ("text", "expected", "method"),
    [
        (
            "  Losartan did not reduce brain atrophy.\n\nIt was well tolerated.  ",
            "Losartan did not reduce brain atrophy. It was well tolerated.",
            "text",
        ),
        ("Answer: Yes. Metformin is first-line therapy.", "Yes. Metformin is first-line therapy.", "text"),
        ('{"ideal_answer": "CHARMS is a checklist."}', "CHARMS is a checklist.", "json"),
        ('```json\n{"answer": "It is a checklist\\nfor reviews."}\n```', "It is a checklist for reviews.", "json"),
        ("```\nA fenced\nanswer.\n```", "A fenced answer.", "text"),
        ("<think>Let me check snippet 1.</think>The answer is yes: it works.", "The answer is yes: it works.", "text"),
        ("{This starts with a brace} but is prose.", "{This starts with a brace} but is prose.", "text"),
    ],
)
def test_ideal_outputs(text, expected, method):
    for qtype in ("summary", "yesno", "factoid", "list"):
        parsed = parse_answer(qtype, "ideal", text)
        assert (parsed.ok, parsed.value, parsed.method) == (True, expected, method)


def test_ideal_failure():
    parsed = parse_answer("summary", "ideal", "```\n\n```")
    assert parsed.ok is False and parsed.error == "no answer text"


def test_clean_entity_trims_only_what_the_official_evaluator_would_not():
    assert clean_entity('  "Imatinib mesylate."  ') == "Imatinib mesylate"
    assert clean_entity("`IL-6`,") == "IL-6"
    assert clean_entity("interleukin 6 (IL-6)") == "interleukin 6 (IL-6)"
    assert clean_entity("5' cap") == "5' cap"
    assert clean_entity("**CD4**") == "CD4"


def test_programming_errors_raise():
    with pytest.raises(ValueError, match="no exact answer"):
        parse_answer("summary", "exact", "x")
    with pytest.raises(ValueError, match="answer kind"):
        parse_answer("factoid", "short", "x")
    with pytest.raises(ValueError, match="question type"):
        answer_schema("opinion", "exact")


def test_schemas():
    assert answer_schema("summary", "ideal") is None and answer_schema("list", "ideal") is None
    yesno = answer_schema("yesno", "exact")
    assert yesno["properties"]["answer"]["enum"] == ["yes", "no"] and yesno["required"] == ["answer"]
    assert answer_schema("factoid", "exact")["properties"]["entities"]["maxItems"] == 5
    entities = answer_schema("list", "exact")["properties"]["entities"]
    assert entities["maxItems"] == 20 and entities["items"]["maxLength"] == 100


@pytest.mark.parametrize("qtype", ["yesno", "factoid", "list"])
def test_schemas_compile_to_grammars_and_parse_back(qtype):
    schema = answer_schema(qtype, "exact")
    grammar = xgrammar.Grammar.from_json_schema(json.dumps(schema), strict_mode=True)
    assert "root" in str(grammar)
    sample = {"answer": "no"} if qtype == "yesno" else {"entities": ["x", "y"]}
    expected = "no" if qtype == "yesno" else [["x"], ["y"]]
    assert parse_answer(qtype, "exact", json.dumps(sample)).value == expected
