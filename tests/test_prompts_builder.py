"""Prompt building: the paper's prompts reproduced exactly, shots as chat turns, training examples."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from helpers import compose_config
from omegaconf import OmegaConf

from bioqa.answers import answer_schema, parse_answer
from bioqa.data import Question, Snippet, load_questions
from bioqa.prompts import PromptBuilder, PromptConfig, ShotPool, read_fewshot_pool


def prompt_config(option: str, shared_dir: Path | str = "/absent", *overrides: str) -> PromptConfig:
    """The paper's free-text prompt format (``structured=false``) unless an override says otherwise."""
    cfg = compose_config(
        overrides=[f"+prompt={option}", f"+paths.shared_dir={shared_dir}", "prompt.structured=false", *overrides]
    )
    return PromptConfig.from_dict(OmegaConf.to_container(cfg.prompt, resolve=True))


def snippet(text: str, pmid: int = 1) -> Snippet:
    return Snippet(
        document=f"http://www.ncbi.nlm.nih.gov/pubmed/{pmid}", text=text, offset_begin=0, offset_end=len(text)
    )


QUESTIONS = {
    "yesno": Question(
        id="h-yn",
        body="Does regular aspirin use reduce colorectal adenoma recurrence?",
        type="yesno",
        snippets=[snippet("Aspirin reduced adenoma recurrence in two randomised trials.")],
        exact_answer="yes",
        ideal_answer=["Yes. Aspirin reduces the recurrence of colorectal adenomas."],
    ),
    "factoid": Question(
        id="h-fa",
        body="Which kinase inhibitor was the first approved for chronic myeloid leukemia?",
        type="factoid",
        snippets=[snippet("Imatinib was the first approved BCR-ABL inhibitor."), snippet("Dasatinib came later.", 2)],
        exact_answer=[["imatinib", "STI571"], ["Gleevec"], ["a"], ["b"], ["c"]],
        ideal_answer=["Imatinib."],
    ),
    "list": Question(
        id="h-li",
        body="Which genes are mutated in hereditary breast cancer?",
        type="list",
        snippets=[snippet("Germline BRCA1 and BRCA2 mutations confer a high risk.")],
        exact_answer=[["BRCA1"], ["BRCA2"]],
        ideal_answer=["BRCA1 and BRCA2."],
    ),
    "summary": Question(
        id="h-su",
        body="What is the function of the CFTR protein?",
        type="summary",
        snippets=[snippet("CFTR is a chloride channel of epithelial cells.")],
        ideal_answer=["CFTR is an epithelial chloride channel."],
    ),
}


def test_the_papers_prompts_are_reproduced_byte_for_byte(shared_dir):
    """Every pool line: our 0-shot prompt plus the rendered gold answer equals the paper's messages."""
    builder = PromptBuilder(prompt_config("0shot", shared_dir), pool=ShotPool((), ()))
    pool = read_fewshot_pool(shared_dir / "fewshot")
    checked = 0
    for path in sorted((shared_dir / "fewshot").glob("0[4-7]_QA_*_11B1-3-4_*.jsonl")):
        kind = "ideal" if "_Ideal_" in path.name else "exact"
        questions = {q.id: q for q in (pool.ideal if kind == "ideal" else pool.exact)}
        for line, text in enumerate(path.read_text(encoding="utf-8").splitlines()):
            expected = json.loads(text)["messages"]
            assert builder.training_example(questions[f"{path.stem}:{line}"], kind) == expected, (path.name, line)
            checked += 1
    assert checked == 76 + 255 + 54 + 62


def test_ten_shots_from_the_papers_pools(shared_dir):
    config = prompt_config("10shot", shared_dir)
    builder = PromptBuilder(config)
    question = next(q for q in load_questions(shared_dir / "golden/11B2_golden.json") if q.type == "list")
    built = builder.build(question, "exact")
    roles = [m["role"] for m in built.messages]
    assert roles == ["system", *["user", "assistant"] * 10, "user"]
    assert built.shot_ids == [f"06_QA_List_11B1-3-4_54:{i}" for i in range(10)]
    paper = [json.loads(line)["messages"] for line in (shared_dir / "fewshot/06_QA_List_11B1-3-4_54.jsonl").open()]
    assert [m["content"] for m in built.messages[1:-1]] == [t["content"] for p in paper[:10] for t in p[1:]]
    assert question.body in built.messages[-1]["content"]
    assert (built.n_snippets_used, built.dropped, built.json_schema) == (
        len(question.snippets),
        {"shots": 0, "snippets": 0},
        None,
    )
    ideal = builder.build(question, "ideal")
    assert ideal.shot_ids == [f"05_QA_Ideal_11B1-3-4_255:{i}" for i in range(10)]


@pytest.mark.slow
def test_knn_never_shows_a_question_its_own_answer(shared_dir):
    """Pool == evaluation set (the paper's pool questions answered with kNN shots from the same pool)."""
    config = dataclasses.replace(prompt_config("3shot", shared_dir), selection="knn")
    builder = PromptBuilder(config)
    pool = builder.selector.pool
    for question in pool.candidates("exact", "yesno")[:5]:
        built = builder.build(question, "exact")
        assert len(built.shot_ids) == 3 and question.id not in built.shot_ids
        shown = [m["content"] for m in built.messages[1:-1:2]]
        assert not any(f"'{question.body}'" in turn for turn in shown)


@pytest.mark.parametrize("kind", ["exact", "ideal"])
@pytest.mark.parametrize("qtype", ["yesno", "factoid", "list"])
def test_training_target_is_rendered_exactly_like_a_shot(qtype, kind):
    shot = QUESTIONS[qtype]
    other = dataclasses.replace(shot, id="other", body="Another question of the same type?", snippets=[])
    for structured in (False, True):
        config = dataclasses.replace(prompt_config("1shot"), structured=structured)
        with_shot = PromptBuilder(config, ShotPool.from_questions([shot])).build(other, kind)
        example = PromptBuilder(dataclasses.replace(config, n_shots=0), ShotPool((), ())).training_example(shot, kind)
        assert with_shot.shot_ids == [shot.id]
        assert with_shot.messages[1:3] == tuple(example[1:])  # the shot's user and assistant turns
        assert example[-1]["role"] == "assistant"
        parsed = parse_answer(qtype, kind, example[-1]["content"])
        assert parsed.ok and parsed.method == (
            "text" if kind == "ideal" or (qtype == "yesno" and not structured) else "json"
        )


def test_structured_prompts_render_schema_json_and_carry_the_schema():
    config = dataclasses.replace(prompt_config("0shot"), structured=True)
    builder = PromptBuilder(config, ShotPool((), ()))
    assert builder.target(QUESTIONS["yesno"], "exact") == '{"answer": "yes"}'
    entities = json.loads(builder.target(QUESTIONS["factoid"], "exact"))["entities"]
    assert entities == ["imatinib", "STI571", "Gleevec", "a", "b"]  # synonyms flattened, at most 5
    assert builder.build(QUESTIONS["list"], "exact").json_schema == answer_schema("list", "exact")
    assert builder.build(QUESTIONS["list"], "ideal").json_schema is None
    paper = PromptBuilder(prompt_config("0shot"), ShotPool((), ()))
    assert paper.target(QUESTIONS["yesno"], "exact") == "yes"
    assert (
        paper.target(QUESTIONS["factoid"], "exact") == '{"entities": ["imatinib", "STI571", "Gleevec", "a", "b", "c"]}'
    )


def test_numbered_snippets_and_no_system_turn():
    config = prompt_config(
        "0shot", "/absent", "prompt.snippet_format=numbered", "prompt.templates.exact.factoid.system="
    )
    built = PromptBuilder(config, ShotPool((), ())).build(QUESTIONS["factoid"], "exact")
    assert [m["role"] for m in built.messages] == ["user"]
    assert built.messages[0]["content"].startswith(
        " [1] Imatinib was the first approved BCR-ABL inhibitor.\n[2] Dasatinib came later.\n\n\n"
    )


def test_what_cannot_be_built_is_named():
    builder = PromptBuilder(prompt_config("0shot"), ShotPool((), ()))
    with pytest.raises(ValueError, match="summary questions have no exact answer"):
        builder.build(QUESTIONS["summary"], "exact")
    unanswered = dataclasses.replace(QUESTIONS["list"], id="test-42", exact_answer=None)
    assert builder.build(unanswered, "exact").messages[-1]["role"] == "user"
    with pytest.raises(ValueError, match="question test-42: no golden exact answer"):
        builder.training_example(unanswered, "exact")
    with pytest.raises(ValueError, match="both count_tokens and context_window"):
        PromptBuilder(prompt_config("0shot"), count_tokens=len)
