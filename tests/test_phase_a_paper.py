# ruff: noqa: E501, W291
# (the paper's prompts are quoted as its notebook wrote them: one line a paragraph, a trailing space kept)
"""retrieval/phase_a=paper: the messages Phase A sends equal the seed paper's (its notebook's f-strings are quoted
below as the reference, independent of conf/retrieval/phase_a/paper.yaml), shots included, for every stage and
shot count; the ``##`` query reading on the paper's reply shapes; the paper's real shot files when present."""

from __future__ import annotations

import ast
import json
import logging
import re
from pathlib import Path

import pytest
from helpers import ScriptedBackend, compose_config
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from bioqa.answers.phase_a import parse_tagged_query
from bioqa.data import load_questions
from bioqa.pipeline.accounting import auxiliary_calls
from bioqa.pipeline.app import phase_a_metrics
from bioqa.pipeline.phase_a import run_phase_a
from bioqa.pipeline.phase_a_paper import read_chat_shots
from bioqa.resources import demo_corpus_path, demo_golden_path
from bioqa.retrieval import TantivyIndex
from bioqa.retrieval.base import read_corpus

SYSTEM = "You are BioASQ-GPT, an AI expert in question answering, research, and information retrieval in the biomedical domain."
CORPUS = {d["pmid"]: d for d in read_corpus(demo_corpus_path())}


# ----------------------------------------------------------------- the paper's prompts (01_PhaseA-Retrieval.ipynb)


def paper_query(question: str, indent: str = "        ") -> str:
    body = f"""
Given a biomedical question, generate an Elasticsearch query string that incorporates synonyms and related terms to improve the search results while maintaining precision and relevance to the original question.

The index contains the fields 'title' and 'abstract', which use the English stemmer. The query string syntax supports the following operators:
- '+' and '-' for requiring or excluding terms (e.g., +fox -news)
- '""' for phrase search (e.g., "quick brown")
- ':' for field-specific search (e.g., title:(quick OR brown))
- '*' or '?' for wildcards (e.g., qu?ck bro*)
- '//' for regular expressions (e.g., title:/joh?n(ath[oa]n)/)
- '~' for fuzzy matching (e.g., quikc~ or quikc~2)
- '"..."~N' for proximity search (e.g., "fox quick"~5)
- '^' for boosting terms (e.g., quick^2 fox)
- 'AND', 'OR', 'NOT' for boolean matching (e.g., ((quick AND fox) OR (brown AND fox) OR fox) AND NOT news)

Example:
Question: What are the effects of vitamin D deficiency on the human body?
Query string: (("vitamin d" OR "vitamin d3" OR "cholecalciferol") AND (deficiency OR insufficiency OR "low levels")) AND ("effects" OR "impact" OR "consequences") AND ("human body" OR "human health")

Tips:
- Focus on the main concepts and entities in the question.
- Use synonyms and related terms to capture variations in terminology.
- Be cautious not to introduce irrelevant terms that may dilute the search results.
- Strike a balance between precision and recall based on the specificity of the question.

Please generate a query string for the following biomedical question and wrap the final query in ## tags:
'{question}'
"""  # the notebook's f-string is indented by 8 spaces (the final question) or 12 (a shot): blank lines stay empty
    return "".join(indent + line if line.strip() else line for line in body.splitlines(keepends=True)) + indent


def paper_broader(question: str, original_query: str) -> str:
    return f"""Given that the following search query has returned no documents, please generate a broader query that retains the original question's context and relevance. Return only the query that can directly be used without any explanation text. Focus on maintaining the query's precision and relevance to the original question.

To generate a broader query, consider the following:

Identify the main concepts in the original query and prioritize them based on their importance to the question.
Simplify the query by removing less essential terms or concepts that might be too specific or restrictive.
Use more general terms or synonyms for the main concepts to expand the search scope while maintaining relevance.
Reduce the number of Boolean operators (AND, OR) to make the query less restrictive.
If the original query includes specific drug names, genes, or proteins, consider using their classes or families instead.
Avoid using too many search fields or specific phrases in quotes, as they can limit the search results.
Original question: '{question}', Original query that returned no results: '{original_query}' think step by step an wrapp the improved query in ## tags:"""


def paper_extract(question: str, article: dict) -> str:
    return f"""Given this question: '{question}' extract relevant sentences or longer snippets from the following article that help answer the question. 
If no relevant information is present, return an empty array. Return the extracted snippets as a json string array called 'snippets'. ```{article}```"""


def paper_rerank(question: str, numbered_snippets: list[dict]) -> str:
    return f"""Given this question: '{question}' select the top 10 snippets that are most helpfull for answering this question from
                    this list of snippets, rerank them by helpfullness: ```{numbered_snippets}``` return a json array of their ids called 'snippets'"""


# ----------------------------------------------------------------- fixtures


def clean(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> TantivyIndex:
    return TantivyIndex(demo_corpus_path(), tmp_path_factory.mktemp("tantivy"), show_progress=False)


@pytest.fixture(scope="module")
def shot_files(tmp_path_factory) -> dict[str, Path]:
    """Ten-example chat JSONL files shaped like the paper's (a system message first) and a query pool whose
    questions hold a ``/``."""
    folder = tmp_path_factory.mktemp("shots")
    files = {"extract": folder / "extract.jsonl", "rerank": folder / "rerank.jsonl", "query": folder / "pool.json"}
    for stage in ("extract", "rerank"):
        lines = []
        for k in range(10):
            messages = [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": f"{stage} shot {k}: 'Is IL-6/STAT3 signalling {k} pro-inflammatory?'"},
                {
                    "role": "assistant",
                    "content": json.dumps({"snippets": [f"quote {k}"] if stage == "extract" else [k]}),
                },
            ]
            lines.append(json.dumps({"messages": messages}))
        files[stage].write_text("\n".join(lines) + "\n", encoding="utf-8")
    shots = [
        {"question": f"Is the JAK/STAT pathway {k} involved?", "completion": f"Reasoning {k}.\n##\nJAK AND STAT{k}\n##"}
        for k in range(10)
    ]
    files["query"].write_text(json.dumps({"kind": "bioqa.query_shot_pool", "shots": shots}), encoding="utf-8")
    return files


def paper_config(tmp_path: Path, shot_files: dict[str, Path], n: int, **more: str):
    overrides = [
        "task=phase_a",
        "retrieval=tantivy",
        "retrieval/phase_a=paper",
        f"paths.shared_dir={tmp_path}",
        "retrieval.phase_a.show_progress=false",
        "retrieval.phase_a.extract_documents=2",
        *(f"retrieval.phase_a.shots.{stage}={n}" for stage in ("query", "extract", "rerank")),
        *(f"retrieval.phase_a.shot_files.{stage}={path}" for stage, path in shot_files.items()),
        *(f"retrieval.phase_a.{k}={v}" for k, v in more.items()),
    ]
    return instantiate(compose_config("infer", overrides).retrieval.phase_a)


def chat_turns(path: Path, n: int) -> list[dict]:
    examples = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[:n]]
    return [m for e in examples for m in e["messages"] if m["role"] != "system"]


def reply(user: str) -> str:
    if "wrap the final query in ## tags" in user:
        return 'Here is my attempt:\n\n##\n"cystic fibrosis" OR \nCFTR OR mucus\n##\n\nThe query combines synonyms.'
    if "extract relevant sentences" in user:
        article = ast.literal_eval(user.rsplit("```", 2)[1])
        return json.dumps({"snippets": re.findall(r"[A-Z][^.]*\.", article["abstract"])[:2]})
    return '{"snippets": [1, 0]}'


# ----------------------------------------------------------------- the composed messages


@pytest.mark.parametrize("n", [0, 1, 10])
def test_every_stage_sends_the_papers_messages_with_n_shots(n, index, shot_files, tmp_path):
    config = paper_config(tmp_path, shot_files, n)
    question = next(q for q in load_questions(demo_golden_path()) if "cystic fibrosis" in q.body)
    backend = ScriptedBackend(reply)
    [answer], [trace], stats = (lambda r: (r.answers, r.traces, r.stats))(
        run_phase_a([question], backend, index, config)
    )
    query_call, extract_call, rerank_call = backend.calls
    pool = json.loads(shot_files["query"].read_text())["shots"][:n]
    shot_turns = []
    for shot in pool:
        assert "/" in shot["question"]
        shot_turns += [
            {"role": "user", "content": paper_query(shot["question"].replace("/", "\\\\/"), " " * 12)},
            {"role": "assistant", "content": shot["completion"]},
        ]
    expected = [
        {"role": "system", "content": SYSTEM},
        *shot_turns,
        {"role": "user", "content": paper_query(question.body)},
    ]
    assert list(query_call[0].messages) == expected
    assert (
        trace["queries"][0]["query"] == '"cystic fibrosis" OR CFTR OR mucus' and trace["queries"][0]["tagged"] is True
    )
    assert all(r.json_schema is None and r.params.max_new_tokens == 4096 for call in backend.calls for r in call)

    assert len(extract_call) == 2
    for request in extract_call:
        article = ast.literal_eval(request.messages[-1]["content"].rsplit("```", 2)[1])
        doc = CORPUS[article["id"].rsplit("/", 1)[1]]
        assert article == {
            "id": f"http://www.ncbi.nlm.nih.gov/pubmed/{doc['pmid']}",
            "title": clean(doc["title"]),
            "abstract": clean(doc["abstract"]),
        }
        turns = chat_turns(shot_files["extract"], n)
        assert len(turns) == 2 * n
        assert list(request.messages) == [
            {"role": "system", "content": SYSTEM},
            *turns,
            {"role": "user", "content": paper_extract(question.body, article)},
        ]

    [request] = rerank_call
    numbered = ast.literal_eval(request.messages[-1]["content"].rsplit("```", 2)[1])
    assert [s["id"] for s in numbered] == list(range(len(numbered))) and len(numbered) >= 2
    assert list(request.messages) == [
        {"role": "system", "content": SYSTEM},
        *chat_turns(shot_files["rerank"], n),
        {"role": "user", "content": paper_rerank(question.body, numbered)},
    ]
    assert [s.text for s in answer.snippets[:2]] == [numbered[1]["text"], numbered[0]["text"]]
    assert trace["rerank"]["mode"] == "llm" and stats["model_errors"] == 0


def test_broader_prompt_names_the_query_that_found_nothing(index, shot_files, tmp_path):
    config = paper_config(tmp_path, shot_files, 0)
    question = load_questions(demo_golden_path())[0]

    def untagged(user: str) -> str:  # no ## tags: bioqa's reading of the reply takes over
        if "wrap the final query in ## tags" in user:
            return "zzunknownterm AND qqnothing"
        if "broader query" in user:
            return "Step 1: drop terms.\n##qqnothing##"
        return '{"snippets": []}'

    backend = ScriptedBackend(untagged)
    [trace] = run_phase_a([question], backend, index, config).traces
    assert [(q["source"], q["query"], q.get("tagged")) for q in trace["queries"]] == [
        ("llm", "zzunknownterm AND qqnothing", False),
        ("broader", "qqnothing", True),
        ("bag_of_words", trace["queries"][2]["query"], None),
    ]
    broader = backend.calls[1][0].messages
    assert list(broader) == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": paper_broader(question.body, "zzunknownterm AND qqnothing")},
    ]


def paper_wiki_query(wiki_context: str, question: str) -> str:
    return f"""
        {wiki_context}
        Answer this question: '{question}' 
        Think step by step and write an exhaustive answer explaining your reasoning"""


def test_the_wikipedia_grounded_query_searches_documents_like_the_models_answer(index, shot_files, tmp_path):
    config = paper_config(tmp_path, shot_files, 0, query_source="more_like_this", mlt_size=3)
    question = next(q for q in load_questions(demo_golden_path()) if "cystic fibrosis" in q.body)
    context = "SUMMARY: Cystic fibrosis is caused by CFTR mutations."
    answer = "Cystic fibrosis is caused by mutations in the CFTR gene, a chloride channel of epithelial cells."
    backend = ScriptedBackend({"Answer this question": answer})
    [trace] = run_phase_a([question], backend, index, config, wiki_context=[context]).traces
    assert list(backend.calls[0][0].messages) == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": paper_wiki_query(context, question.body)},
    ]
    assert trace["queries"] == [{"query": answer, "source": "more_like_this", "hits": 3}]
    assert index.more_like_this(answer, 3)[0].title.startswith("Cystic fibrosis is caused by mutations")
    with pytest.raises(InstantiationException, match=r"templates missing for \[.wiki_query.\]"):
        paper_config(tmp_path, shot_files, 0, query_source="more_like_this", **{"prompts.wiki_query": "''"})


# ----------------------------------------------------------------- the ## reading


@pytest.mark.parametrize(
    ("reply", "query"),
    [
        (
            'Here is my attempt at a query string:\n\n##\n(losartan AND "brain atrophy")\n##\n\nExplanation: ...',
            '(losartan AND "brain atrophy")',
        ),
        ('##("vitamin d" OR cholecalciferol) AND deficiency##', '("vitamin d" OR cholecalciferol) AND deficiency'),
        ("Step by step...\n##(a OR\nb) AND c##\nand another ##d##", "(a ORb) AND c"),
        ("## ##", None),
        ('"cystic fibrosis" AND CFTR', None),
        ("", None),
    ],
)
def test_tagged_query_reading_on_the_papers_reply_shapes(reply, query):
    assert parse_tagged_query(reply) == query


# ----------------------------------------------------------------- the paper's real shot files


@pytest.mark.parametrize(
    ("name", "n"),
    [
        (name, n)
        for name in ("02_Snippet_Extraction_11B1_250.jsonl", "03_Snippet_Ranking_11B1_75.jsonl")
        for n in (1, 10)
    ],
)
def test_the_papers_shot_files_give_user_and_assistant_turns(name, n, shared_dir):
    path = shared_dir / "fewshot" / name
    turns = read_chat_shots("shot_files", str(path), n)
    first = json.loads(path.read_text(encoding="utf-8").splitlines()[0])["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant"] * n
    assert turns[:2] == [m for m in first if m["role"] != "system"]
    assert all(t["content"] for t in turns)


#: extraction reply, rerank reply → unusable replies counted per stage (the warning names the stage)
UNUSABLE = [
    ("Here are the snippets: the first sentence.", '{"snippets": [1, 0]}', {"extract": 2}),
    (None, "The most helpful snippets are the first two.", {"rerank": 1}),
    (None, '{"snippets": ["x"]}', {"rerank": 1}),
    (None, '{"snippets": [1, 0]}', {}),
]


@pytest.mark.parametrize(("extract", "rerank", "unusable"), UNUSABLE)
def test_replies_holding_nothing_usable_are_counted_and_said(
    extract, rerank, unusable, index, shot_files, tmp_path, caplog
):
    config = paper_config(tmp_path, shot_files, 0)
    question = next(q for q in load_questions(demo_golden_path()) if "cystic fibrosis" in q.body)

    def replies(user: str) -> str:
        if "extract relevant sentences" in user and extract is not None:
            return extract
        return rerank if "select the top 10 snippets" in user else reply(user)

    with caplog.at_level(logging.WARNING, logger="bioqa.pipeline.phase_a"):
        stats = run_phase_a([question], ScriptedBackend(replies), index, config).stats
    assert {s: v["unusable"] for s, v in stats["stages"].items() if v["unusable"]} == unusable
    assert stats["unusable"] == sum(unusable.values())
    said = [r.getMessage() for r in caplog.records if "unusable" in r.getMessage()]
    assert [m.split(":")[0] for m in said] == [f"phase A {s}" for s in unusable]
    metrics = phase_a_metrics(stats)
    assert auxiliary_calls(metrics)[0] == sum(unusable.values())
