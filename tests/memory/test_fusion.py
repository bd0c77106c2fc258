"""Reciprocal-rank fusion of the vector and keyword legs, and the token-budget cut, pure."""
from __future__ import annotations

import pytest

from memory.longterm.fusion import Fused, fitting, fuse

# (id, similarity) best first, as the vector leg returns them.
VECTOR = [(1, 0.9), (2, 0.8), (3, 0.7), (4, 0.6), (9, 0.2)]


@pytest.mark.parametrize(("vector_leg", "keyword_leg", "rrf_k", "k", "order"), [
    pytest.param([], [], 60, 10, [], id="nothing_found"),
    pytest.param(VECTOR, [], 60, 10, [1, 2, 3, 4, 9], id="vector_leg_alone_keeps_its_order"),
    pytest.param([], [9, 3], 60, 10, [9, 3], id="keyword_leg_alone_keeps_its_order"),
    pytest.param(VECTOR, [9], 60, 10, [9, 1, 2, 3, 4],
                 id="the_rare_word_match_the_vector_leg_ranks_last_comes_first"),
    pytest.param(VECTOR, [3, 1], 60, 10, [1, 3, 2, 4, 9], id="found_by_both_beats_found_by_one"),
    pytest.param([(5, 0.5)], [7], 60, 10, [7, 5], id="equal_scores_go_to_the_newer_id"),
    pytest.param(VECTOR, [9], 60, 2, [9, 1], id="k_keeps_the_best"),
    pytest.param([(1, 0.9), (2, 0.8), (3, 0.7), (4, 0.6)], [5, 6, 7, 4], 60, 3, [4, 5, 1],
                 id="agreement_further_down_outvotes_one_leg_top_with_the_usual_k"),
    pytest.param([(1, 0.9), (2, 0.8), (3, 0.7), (4, 0.6)], [5, 6, 7, 4], 1, 3, [5, 1, 4],
                 id="a_small_rrf_k_lets_each_leg_top_outvote_agreement"),
])
def test_fused_order(vector_leg, keyword_leg, rrf_k: int, k: int, order: list[int]) -> None:
    assert [f.id for f in fuse(vector_leg, keyword_leg, rrf_k=rrf_k, k=k)] == order


def test_each_fused_memory_says_which_legs_found_it_and_how_well() -> None:
    fused = {f.id: f for f in fuse([(1, 0.9), (2, 0.8)], [2, 3], rrf_k=60, k=10)}
    assert fused[1] == Fused(id=1, score=1 / 61, similarity=0.9, vector_rank=1, text_rank=None)
    assert fused[2] == Fused(id=2, score=1 / 62 + 1 / 61, similarity=0.8, vector_rank=2, text_rank=1)
    assert fused[3] == Fused(id=3, score=1 / 62, similarity=None, vector_rank=None, text_rank=2)


@pytest.mark.parametrize(("texts", "budget", "kept"), [
    pytest.param(["a" * 40, "b" * 40], None, 2, id="no_budget_keeps_all"),
    pytest.param([], 10, 0, id="nothing_to_fit"),
    pytest.param(["a" * 40, "b" * 40], 20, 2, id="exact_fit"),
    pytest.param(["a" * 40, "b" * 40], 19, 1, id="second_overflows"),
    pytest.param(["a" * 400, "b"], 10, 0, id="stops_at_the_first_too_big_even_if_a_later_one_fits"),
    pytest.param(["a"], 0, 0, id="zero_budget"),
])
def test_fitting(texts: list[str], budget: int | None, kept: int) -> None:
    assert fitting(texts, budget) == kept
