"""Hybrid ranking: reciprocal rank fusion of the vector and the lexical rankings.

Each list contributes weight / (K + rank) to an entry it ranks; ranks, not raw scores,
because a cosine similarity and a BM25 score live on scales that vary from query to query.
Entries with equal scores share a rank (the same text archived twice), so that ties reach
the tie-breakers: the newer entry first, then the section.

K and the weights come from the dev half of `bench/memory.py --recall --sweep`: there the
vector ranking carries paraphrases, and the keyword list (rare words only, see lexical.py)
counts about a third as much; the names list (the error codes, files, flags and numbered
things the question names, lexical.names) counts as much as the vectors: an entry that
names the same thing is seldom the wrong one, and the vectors see a name only as a few
word pieces. A small K lets an entry that two lists put first win clearly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

K = 2
WEIGHTS = {"vector": 1.0, "lexical": 0.35, "names": 1.0}


@dataclass
class Ranked:
    key: str
    fused: float = 0.0
    scores: dict[str, float] = field(default_factory=dict)  # method -> its own score
    ranks: dict[str, int] = field(default_factory=dict)  # method -> 1-based rank


def ranks(scored: list[tuple[str, float]]) -> list[tuple[str, float, int]]:
    """(key, score, rank) best first; equal scores share the rank of the first of them."""
    ordered = sorted(scored, key=lambda pair: -pair[1])
    out: list[tuple[str, float, int]] = []
    for position, (key, score) in enumerate(ordered, 1):
        rank = out[-1][2] if out and abs(out[-1][1] - score) < 1e-9 else position
        out.append((key, score, rank))
    return out


def fuse(lists: dict[str, list[tuple[str, float]]], *, k: int = K,
         weights: dict[str, float] | None = None) -> dict[str, Ranked]:
    """key -> Ranked for every key in any of LISTS (method -> [(key, score)])."""
    weights = weights or WEIGHTS
    fused: dict[str, Ranked] = {}
    for method, scored in lists.items():
        for key, score, rank in ranks(scored):
            item = fused.setdefault(key, Ranked(key))
            item.scores[method] = score
            item.ranks[method] = rank
            item.fused += weights.get(method, 1.0) / (k + rank)
    return fused
