"""A model per Phase A stage (retrieval.phase_a_models): each stage's requests go to its own model (broader queries
to the query model), the others to the run's model, and the run identity records every stage model."""

from __future__ import annotations

import json

from test_query_pool import PAPER, backends  # noqa: F401 (the fixture)
from test_run_identity import run

from bioqa.runs import IDENTITY_FILE


def test_each_stage_asks_its_own_model_and_the_identity_records_it(tmp_path, backends):  # noqa: F811
    run(tmp_path, *PAPER, "+model@retrieval.phase_a_models.extract=gpt-3.5-turbo")
    main, extract = backends.built
    assert (main.model_id, extract.model_id) == ("scripted:tiny-llama-random", "scripted:gpt-3.5-turbo-0125")
    assert extract.requests and all("extract relevant sentences" in r.messages[-1]["content"] for r in extract.requests)
    asked = [r.messages[-1]["content"] for r in main.requests]
    assert asked and not any("extract relevant sentences" in text for text in asked)
    assert any("wrap the final query in ## tags" in text for text in asked)
    identity = json.loads((tmp_path / "run" / IDENTITY_FILE).read_text())["identity"]
    assert identity["retrieval"]["phase_a_backends"] == {
        "extract": {"kind": "scripted", "model_id": "scripted:gpt-3.5-turbo-0125"}
    }
    assert identity["backend"]["model_id"] == "scripted:tiny-llama-random"
