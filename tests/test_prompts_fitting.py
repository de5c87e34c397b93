"""Context fitting with a real tokenizer (bioqa's tiny BPE, ChatML): shots go first, then snippets."""

from __future__ import annotations

import pytest
from helpers import compose_config
from omegaconf import OmegaConf

from bioqa.data import Question, Snippet
from bioqa.prompts import PromptBuilder, PromptConfig, PromptTooLongError, ShotPool, fit_prompt

MAX_NEW = 64


@pytest.fixture(scope="module")
def count_tokens(tokenizer):
    def count(messages) -> int:
        encoded = tokenizer.apply_chat_template(list(messages), tokenize=True, add_generation_prompt=True)
        return len(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)

    return count


@pytest.fixture(scope="module")
def config() -> PromptConfig:
    cfg = compose_config(overrides=["+prompt=5shot", "+paths.shared_dir=/absent"])
    return PromptConfig.from_dict(OmegaConf.to_container(cfg.prompt, resolve=True))


def question(qid: str, n_snippets: int) -> Question:
    snippets = [
        Snippet(
            document=f"http://www.ncbi.nlm.nih.gov/pubmed/{1000 + i}",
            text=f"Snippet {i} of {qid}: statins lowered LDL cholesterol by {20 + i} percent in the treated cohort.",
        )
        for i in range(n_snippets)
    ]
    body = f"Do statins lower LDL cholesterol (case {qid})?"
    return Question(id=qid, body=body, type="yesno", snippets=snippets, exact_answer="yes", ideal_answer=["Yes."])


POOL = ShotPool.from_questions([question(f"shot{i}", 4) for i in range(5)])
TARGET = question("target", 12)


def budget_for(count_tokens, config, shots: int, snippets: int) -> int:
    """Exact token count of the prompt with the first ``shots`` shots and ``snippets`` snippets."""
    unfitted = PromptBuilder(config, POOL).build(TARGET, "exact")
    system, turns = unfitted.messages[:1], unfitted.messages[1 : 1 + 2 * shots]
    asked = PromptBuilder(config, ShotPool((), ())).build(
        Question(TARGET.id, TARGET.body, "yesno", snippets=TARGET.snippets[:snippets]), "exact"
    )
    return count_tokens([*system, *turns, asked.messages[-1]])


def build(config, count_tokens, window: int):
    return PromptBuilder(config, POOL, count_tokens=count_tokens, context_window=window, max_new_tokens=MAX_NEW).build(
        TARGET, "exact"
    )


def test_everything_fits_in_a_large_window(config, count_tokens):
    built = build(config, count_tokens, 8192)
    assert (len(built.shot_ids), built.n_snippets_used, built.dropped) == (5, 12, {"shots": 0, "snippets": 0})


def test_shots_are_dropped_first_from_the_last(config, count_tokens):
    window = budget_for(count_tokens, config, shots=3, snippets=12) + MAX_NEW + 5  # room for 3 shots, not 4
    built = build(config, count_tokens, window)
    assert built.shot_ids == ["shot0", "shot1", "shot2"]
    assert (built.n_snippets_used, built.dropped) == (12, {"shots": 2, "snippets": 0})
    assert count_tokens(built.messages) <= window - MAX_NEW
    assert len(built.messages) == 1 + 2 * 3 + 1 and built.messages[-1]["content"].count("Snippet ") == 12


def test_then_snippets_are_dropped_from_the_end(config, count_tokens):
    window = budget_for(count_tokens, config, shots=0, snippets=7) + MAX_NEW + 3  # all shots and 5 snippets must go
    built = build(config, count_tokens, window)
    assert (built.shot_ids, built.n_snippets_used, built.dropped) == ([], 7, {"shots": 5, "snippets": 5})
    last = built.messages[-1]["content"]
    assert "Snippet 6 of target" in last and "Snippet 7 of target" not in last
    assert last.rstrip().endswith("not sure about the answer.")  # whole snippets dropped, the instruction kept
    assert count_tokens(built.messages) <= window - MAX_NEW


def test_a_question_that_cannot_fit_is_a_clear_error(config, count_tokens):
    window = budget_for(count_tokens, config, shots=0, snippets=0) + MAX_NEW - 1
    with pytest.raises(PromptTooLongError, match=r"question target \(exact answer\): \d+ tokens without any shot"):
        build(config, count_tokens, window)


def test_fitting_tokenizes_logarithmically_often():
    calls = []

    def count(messages):
        calls.append(1)
        return sum(len(m["content"]) for m in messages)

    def render(shots, snippets):
        return [{"content": "s" * 100}] * shots + [{"content": "q" + "x" * 10 * snippets}]

    assert fit_prompt(render, 10, 80, count, budget=1 + 10 * 80 + 350) == (3, 80)
    assert len(calls) <= 1 + 5
    calls.clear()
    assert fit_prompt(render, 10, 80, count, budget=1 + 10 * 33 + 5) == (0, 33)
    assert len(calls) <= 1 + 5 + 8
