"""Recall's pure arithmetic: reciprocal-rank fusion of the vector and keyword legs, and the token-budget cut."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from memory.longterm.records import estimate_tokens


@dataclass(frozen=True)
class Fused:
    id: int
    # Sum of 1 / (rrf_k + rank) over the legs that found this memory.
    score: float
    # Cosine to the question, if the vector leg found it.
    similarity: float | None
    vector_rank: int | None
    text_rank: int | None


def fuse(
    vector_leg: Sequence[tuple[int, float]],
    keyword_leg: Sequence[int],
    *,
    rrf_k: int,
    k: int,
) -> list[Fused]:
    """The best `k` of both legs by reciprocal rank fusion, best first; ties go to the newer (higher) id.

    `vector_leg` is (id, similarity) best first; `keyword_leg` ids best first, already ordered by the
    rarity-weighted keyword rank. Fusion counts ranks, not scores, so the two legs' scales never meet.
    """
    vector_rank = {mid: rank for rank, (mid, _) in enumerate(vector_leg, start=1)}
    similarity = {mid: float(sim) for mid, sim in vector_leg}
    text_rank = {mid: rank for rank, mid in enumerate(keyword_leg, start=1)}

    def score(mid: int) -> float:
        total = 1 / (rrf_k + vector_rank[mid]) if mid in vector_rank else 0.0
        if mid in text_rank:
            total += 1 / (rrf_k + text_rank[mid])
        return total

    fused = [Fused(id=mid, score=score(mid), similarity=similarity.get(mid), vector_rank=vector_rank.get(mid),
                   text_rank=text_rank.get(mid))
             for mid in {**vector_rank, **text_rank}]
    return sorted(fused, key=lambda f: (-f.score, -f.id))[:k]


def fitting(texts: Sequence[str], token_budget: int | None) -> int:
    """How many of `texts`, taken in order, fit in `token_budget` (all of them if None).

    Stops at the first text that would overflow it: best first, a lower-ranked memory must not take
    the place of a better one that did not fit.
    """
    if token_budget is None:
        return len(texts)
    used = 0
    for n, text in enumerate(texts):
        used += estimate_tokens(text)
        if used > token_budget:
            return n
    return len(texts)
