"""Shot pools (paper JSONL, golden files, demo batch) and shot selection (first-n, kNN)."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import pytest

from bioqa.data import BioASQFormatError, Question, Snippet, load_questions
from bioqa.prompts import QuestionEmbedder, ShotPool, ShotSelector, load_pool, read_fewshot_pool, read_golden_pool


def factoid(qid: str, body: str, answer: str) -> Question:
    return Question(
        id=qid,
        body=body,
        type="factoid",
        snippets=[Snippet(document="http://www.ncbi.nlm.nih.gov/pubmed/1", text=f"{answer} is the answer.")],
        exact_answer=[[answer]],
        ideal_answer=[f"{answer}."],
    )


POOL = [
    factoid("p1", "Which enzyme is deficient in phenylketonuria?", "phenylalanine hydroxylase"),
    factoid("p2", "What virus causes infectious mononucleosis?", "Epstein-Barr virus"),
    factoid("p3", "Which drug is the first-line treatment of chronic myeloid leukemia?", "imatinib"),
    factoid("p4", "What is the main symptom of narcolepsy?", "excessive daytime sleepiness"),
    factoid("p5", "Which gene is mutated in cystic fibrosis?", "CFTR"),
]


@pytest.fixture(scope="module")
def embedder() -> QuestionEmbedder:
    return QuestionEmbedder()


def test_fewshot_pool_reads_the_papers_files(shared_dir):
    pool = read_fewshot_pool(shared_dir / "fewshot")
    assert Counter(q.type for q in pool.exact) == {"factoid": 76, "yesno": 62, "list": 54}
    assert len(pool.ideal) == 255
    assert Counter(q.type for q in pool.ideal) == {"factoid": 76, "summary": 63, "yesno": 62, "list": 54}
    first = pool.candidates("exact", "factoid")[0]
    assert first.id == "04_QA_Factoid_11B1-3-4_76:0"
    assert first.body.endswith("?") and first.snippets and first.exact_answer
    # parsed bodies and snippets are the golden ones (the pools were built from 11B1/3/4)
    golden = {
        q.body: q
        for name in ("11B1", "11B3", "11B4")
        for q in load_questions(shared_dir / f"golden/{name}_golden.json")
    }
    matched = [q for q in pool.exact if q.body in golden]
    assert len(matched) >= len(pool.exact) - 1
    assert all([s.text for s in q.snippets] == [s.text for s in golden[q.body].snippets] for q in matched)
    assert all(q.exact_answer == golden[q.body].exact_answer for q in matched if q.type == "yesno")


def test_fewshot_pool_errors_name_file_and_line(shared_dir, tmp_path):
    for path in (shared_dir / "fewshot").glob("0[4-7]_QA_*_11B1-3-4_*.jsonl"):
        shutil.copy(path, tmp_path / path.name)
    target = next(tmp_path.glob("07_QA_YesNo_*.jsonl"))
    lines = target.read_text(encoding="utf-8").splitlines()
    broken = json.loads(lines[2])
    broken["messages"][2]["content"] = "maybe"
    target.write_text("\n".join([*lines[:2], json.dumps(broken), *lines[3:]]), encoding="utf-8")
    with pytest.raises(BioASQFormatError, match=r"07_QA_YesNo_11B1-3-4_62:2.*expected 'yes' or 'no'"):
        read_fewshot_pool(tmp_path)
    target.unlink()
    with pytest.raises(FileNotFoundError, match="expected one 07_QA_YesNo_"):
        read_fewshot_pool(tmp_path)


def test_golden_and_demo_pools(shared_dir):
    pool = read_golden_pool(shared_dir / "golden" / "11B2_golden.json")
    assert pool.exact and pool.ideal
    assert {q.type for q in pool.exact} == {"yesno", "factoid", "list"}
    assert len(pool.ideal) >= len(pool.exact)
    demo = load_pool("demo")
    assert {q.type for q in demo.ideal} == {"yesno", "factoid", "list", "summary"}
    with pytest.raises(ValueError, match=r"needs prompt\.pool_path"):
        load_pool("golden", None)


def test_first_n_keeps_pool_order_and_skips_the_question_itself():
    selector = ShotSelector(ShotPool.from_questions(POOL))
    assert [q.id for q in selector.select(POOL[0], "exact", 3)] == ["p2", "p3", "p4"]
    same_text = factoid("new", "  which ENZYME is deficient in   phenylketonuria? ", "x")
    assert "p1" not in [q.id for q in selector.select(same_text, "exact", 5)]
    assert selector.select(POOL[0], "exact", 0) == []
    assert selector.select(Question(id="y", body="Is it?", type="yesno"), "exact", 3) == []
    assert [q.id for q in selector.select(Question(id="y", body="Is it?", type="yesno"), "ideal", 2)] == ["p1", "p2"]


@pytest.mark.parametrize(
    ("body", "closest"),
    [
        ("Which medication is used first for CML?", "p3"),
        ("Which protein is defective in patients with cystic fibrosis?", "p5"),
        ("Which pathogen is responsible for glandular fever (mono)?", "p2"),
        ("What are the typical complaints of people with narcolepsy?", "p4"),
        ("A deficiency of which enzyme leads to PKU?", "p1"),
    ],
)
def test_knn_picks_the_semantically_closest_question(embedder, body, closest):
    selector = ShotSelector(ShotPool.from_questions(POOL), "knn", embedder)
    shots = selector.select(factoid("q", body, "?"), "exact", 2)
    assert shots[0].id == closest and len(shots) == 2


def test_knn_excludes_the_question_and_caches_pool_embeddings(embedder):
    selector = ShotSelector(ShotPool.from_questions(POOL), "knn", embedder)
    shots = selector.select(POOL[2], "exact", 4)
    assert "p3" not in [q.id for q in shots] and len(shots) == 4
    cached = len(embedder._cache)
    selector.select(POOL[4], "exact", 2)
    assert len(embedder._cache) == cached  # pool and question texts were embedded once
    assert len(selector.select(POOL[2], "exact", 10)) == 4
