"""Fit a prompt into a token budget by dropping whole shots, then whole snippets (never cutting text)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

Messages = Sequence[dict[str, str]]


class PromptTooLongError(ValueError):
    """Even without shots and snippets the prompt exceeds the budget."""


def _largest_fitting(low: int, high: int, fits: Callable[[int], bool]) -> int | None:
    """Largest k in [low, high] with ``fits(k)`` (monotone: fewer items never take more tokens), else None."""
    if high < low or not fits(low):
        return None
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low


def fit_prompt(
    render: Callable[[int, int], Messages],
    n_shots: int,
    n_snippets: int,
    count_tokens: Callable[[Messages], int],
    budget: int,
    name: str = "prompt",
) -> tuple[int, int]:
    """How many shots and snippets to keep (leading ones: later shots and snippets are dropped first).

    ``render(k, m)`` builds the messages with the first ``k`` shots and first ``m`` snippets. Shots go before
    snippets; both counts are found by binary search, so a prompt is tokenized O(log n) times.
    Raises :class:`PromptTooLongError` if the bare question (no shots, no snippets) does not fit.
    """
    counts: dict[tuple[int, int], int] = {}

    def fits(shots: int, snippets: int) -> bool:
        if (shots, snippets) not in counts:
            counts[shots, snippets] = count_tokens(render(shots, snippets))
        return counts[shots, snippets] <= budget

    if fits(n_shots, n_snippets):
        return n_shots, n_snippets
    shots = _largest_fitting(0, n_shots - 1, lambda k: fits(k, n_snippets))
    if shots is not None:
        return shots, n_snippets
    snippets = _largest_fitting(0, n_snippets - 1, lambda m: fits(0, m))
    if snippets is None:
        bare = counts.get((0, 0)) or count_tokens(render(0, 0))
        raise PromptTooLongError(
            f"{name}: {bare} tokens without any shot or snippet, over the budget of {budget} "
            "(context window minus max_new_tokens); use a model with a longer context or fewer new tokens"
        )
    return 0, snippets
