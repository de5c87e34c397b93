"""JSON-schema constrained decoding for transformers ``generate`` with xgrammar (one matcher per sequence)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import torch
import xgrammar as xgr
from transformers import LogitsProcessor, PreTrainedTokenizerBase


class SchemaCompiler:
    """Compiles JSON schemas into xgrammar grammars for one tokenizer (compiled grammars are cached by schema)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, vocab_size: int, stop_token_ids: Sequence[int]):
        self.vocab_size = vocab_size
        info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size, stop_token_ids=list(stop_token_ids))
        self._compiler = xgr.GrammarCompiler(info, max_threads=1)
        self._compiled: dict[str, xgr.CompiledGrammar] = {}

    def compile(self, schema: dict[str, Any]) -> xgr.CompiledGrammar:
        key = json.dumps(schema, sort_keys=True)
        if key not in self._compiled:
            # Compact JSON (no free whitespace): a weak model cannot wander off into endless blanks.
            grammar = json.dumps(without_raw_control_characters(schema), sort_keys=True)
            self._compiled[key] = self._compiler.compile_json_schema(grammar, any_whitespace=False)
        return self._compiled[key]

    def logits_processor(self, schemas: Sequence[dict[str, Any] | None]) -> SchemaLogitsProcessor:
        """A fresh processor for one ``generate`` call; ``schemas[i]`` constrains row i (``None``: free text)."""
        grammars = [None if schema is None else self.compile(schema) for schema in schemas]
        return SchemaLogitsProcessor(grammars, self.vocab_size)


def without_raw_control_characters(schema: Any) -> Any:
    """``schema`` with each length-bounded string given the equivalent ``pattern`` that also refuses raw control
    characters: xgrammar (0.2.9) compiles ``maxLength``/``minLength`` strings to a rule that lets U+0000-U+001F
    through, which is not JSON (``json.loads`` refuses it). Strings without bounds or with a pattern are kept."""
    if isinstance(schema, list):
        return [without_raw_control_characters(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    schema = {key: without_raw_control_characters(value) for key, value in schema.items()}
    bounded = "maxLength" in schema or "minLength" in schema
    if schema.get("type") == "string" and bounded and "pattern" not in schema and "enum" not in schema:
        low, high = schema.pop("minLength", 0), schema.pop("maxLength", "")
        schema["pattern"] = f'^[^\\x00-\\x1f"\\\\]{{{low},{high}}}$'
    return schema


class SchemaLogitsProcessor(LogitsProcessor):
    """Masks, row by row, every token its grammar forbids; rows without a grammar decode freely.

    Single use: ``generate`` does not call processors on the step that samples the stop token, so the matchers
    cannot be reset reliably; build one per call with :meth:`SchemaCompiler.logits_processor`.
    """

    def __init__(self, grammars: Sequence[xgr.CompiledGrammar | None], vocab_size: int):
        self.matchers = [None if grammar is None else xgr.GrammarMatcher(grammar) for grammar in grammars]
        self.rows = [i for i, matcher in enumerate(self.matchers) if matcher is not None]
        self.bitmask = xgr.allocate_token_bitmask(len(self.matchers), vocab_size)
        self.vocab_size = vocab_size
        self._started = False

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if input_ids.shape[0] != len(self.matchers):
            raise RuntimeError(f"batch of {input_ids.shape[0]} rows for {len(self.matchers)} grammar matchers")
        active = []
        for row in self.rows:
            matcher = self.matchers[row]
            if self._started and not matcher.is_terminated():
                token = int(input_ids[row, -1])
                if not matcher.accept_token(token):
                    raise RuntimeError(f"row {row}: the grammar rejected token {token} it had allowed")
            if not matcher.is_terminated():
                matcher.fill_next_token_bitmask(self.bitmask, row)
                active.append(row)
        self._started = True
        if active:
            masked = scores.float() if scores.device.type != "cuda" else scores
            xgr.apply_token_bitmask_inplace(
                masked, self.bitmask.to(scores.device), vocab_size=self.vocab_size, indices=active
            )
            scores = masked.to(scores.dtype)
        return scores
