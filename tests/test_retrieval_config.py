"""Every retrieval option composes with Hydra and builds working objects (real index in tmp_path)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import compose_config
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from bioqa.data import load_questions
from bioqa.errors import describe
from bioqa.pipeline.phase_a import PhaseAConfig, run_phase_a
from bioqa.resources import demo_golden_path
from bioqa.retrieval import SearchIndex, TantivyIndex
from bioqa.retrieval.dense import DenseIndex, HybridIndex
from bioqa.retrieval.elasticsearch import ElasticsearchIndex
from bioqa.retrieval.wikipedia import WikipediaContext

CONF = Path(__file__).resolve().parent.parent / "conf"


def retrieval(option: str, tmp_path: Path):
    cfg = compose_config(
        overrides=[
            f"+retrieval={option}",
            "+paths=default",
            "+task_name=test",
            f"paths.root_dir={CONF.parent}",
            f"paths.cache_dir={tmp_path}",
        ],
    )
    return cfg.retrieval


@pytest.mark.parametrize(
    ("option", "strategy", "index_type"),
    [
        ("tantivy", "llm", TantivyIndex),
        ("bm25", "bm25", TantivyIndex),
        ("elasticsearch", "llm", ElasticsearchIndex),
        ("opensearch", "llm", ElasticsearchIndex),
    ],
)
def test_options_build_index_phase_a_config_and_wikipedia(option, strategy, index_type, tmp_path):
    cfg = retrieval(option, tmp_path)
    config = instantiate(cfg.phase_a)
    assert isinstance(config, PhaseAConfig) and config.strategy == strategy
    index = instantiate(cfg.index, **({"show_progress": False} if index_type is TantivyIndex else {}))
    assert isinstance(index, index_type) and isinstance(index, SearchIndex)
    wiki = instantiate(cfg.wikipedia)
    assert isinstance(wiki, WikipediaContext) and wiki.max_articles == 0
    assert wiki.prompts["system"] == config.prompts["system"]


def test_bm25_option_runs_phase_a_without_a_model(tmp_path):
    cfg = retrieval("bm25", tmp_path)
    index = instantiate(cfg.index, show_progress=False)
    assert Path(index.path).parent == tmp_path / "tantivy"
    result = run_phase_a(load_questions(demo_golden_path())[:2], None, index, instantiate(cfg.phase_a))
    assert all(a.documents and a.snippets for a in result.answers)


def test_none_option_has_no_retrieval(tmp_path):
    cfg = retrieval("none", tmp_path)
    assert cfg.index is None and cfg.phase_a is None and cfg.wikipedia.max_articles == 0  # off, overridable


@pytest.mark.slow  # loads all-MiniLM-L6-v2
@pytest.mark.parametrize(("option", "index_type"), [("dense", DenseIndex), ("hybrid", HybridIndex)])
def test_dense_and_hybrid_options_build_working_indexes(option, index_type, tmp_path):
    cfg = retrieval(option, tmp_path)
    index = instantiate(cfg.index)
    assert isinstance(index, index_type) and isinstance(index, SearchIndex) and index.num_docs == 41
    assert instantiate(cfg.phase_a).strategy == "llm"
    assert index.search("cystic fibrosis chloride channel", 1)[0].pmid == "90000005"


def test_tantivy_option_finds_the_demo_corpus_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = retrieval("tantivy", tmp_path)
    assert cfg.index.corpus_path is None and cfg.index.index_dir is None
    assert instantiate(cfg.index, show_progress=False).num_docs == 41


@pytest.mark.parametrize(
    ("option", "node", "key"),
    [("dense", (), "retrieval.index"), ("hybrid", ("dense",), "retrieval.index.dense")],
)
def test_a_bad_dense_search_is_named_by_the_key_it_was_given_under(option, node, key, tmp_path):
    """The index refuses the value; the entry layer names the key, which differs under retrieval=hybrid."""
    cfg = retrieval(option, tmp_path)
    target = cfg.index
    for name in node:
        target = target[name]
    target.search = "fuzzy"
    with pytest.raises(InstantiationException) as raised:
        instantiate(cfg.index)
    assert describe(raised.value) == f"{key}: search='fuzzy': expected 'exact' or 'hnsw'"
