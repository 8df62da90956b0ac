"""The recall half of bench/memory.py: recall@1, recall@5 and MRR@10 of each search mode on
the labelled set of recall_set.py, on the dev half (what the fusion was tuned on) and the
held-out half, and a sweep of the fusion's parameters on the dev half."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from recall_set import build, content_words

MODES = ("vector", "lexical", "hybrid")
DEPTH = 10  # MRR is computed over the first DEPTH hits


def write_archive(path: Path, texts: list[str], start: int) -> None:
    from aipass_git.core import ids

    with open(path, "a", encoding="utf-8") as fh:
        for i, text in enumerate(texts):
            entry = {"id": ids.new_id(), "created": f"2025-06-01T00:{(start + i) // 60 % 60:02d}:{(start + i) % 60:02d}Z",
                     "text": text}
            fh.write(json.dumps({"archived": "2025-07-01T00:00:00Z", "section": "learnings", "entry": entry}) + "\n")


def scores(ranks: list[int | None]) -> dict[str, float]:
    """ranks: the needle's 1-based rank per query, None when not in the first DEPTH."""
    n = len(ranks)
    return {"r@1": sum(r == 1 for r in ranks if r) / n, "r@5": sum(r <= 5 for r in ranks if r) / n,
            "mrr": sum(1 / r for r in ranks if r) / n}


def line(label: str, dev: dict[str, float], held: dict[str, float]) -> str:
    return (f"  {label:<8} dev r@1 {dev['r@1']:.3f} r@5 {dev['r@5']:.3f} MRR {dev['mrr']:.3f}   "
            f"held-out r@1 {held['r@1']:.3f} r@5 {held['r@5']:.3f} MRR {held['mrr']:.3f}")


def rank_of(keys: list[str], texts: dict[str, str], needle: str) -> int | None:
    for position, key in enumerate(keys[:DEPTH], 1):
        if texts.get(key) == needle:
            return position
    return None


def run(repo, repo_path: Path, sizes: list[int], queries: int, sweep: bool) -> None:
    from aipass_git.memory import fusion
    from aipass_git.memory.index import CANDIDATES, MemoryIndex

    needles, labelled, decoys = build(queries)
    shared = [len(content_words(q.text) & content_words(q.needle)) for q in labelled]
    print(f"recall set: {len(needles)} needles, {len(labelled)} queries (dev {sum(q.dev for q in labelled)}, "
          f"held-out {sum(not q.dev for q in labelled)}); content words a query shares with its needle: "
          f"mean {statistics.mean(shared):.2f}, {sum(s == 0 for s in shared)} share none")
    for q in labelled[:3]:
        print(f"  e.g. query {q.text!r}\n       needle {q.needle!r}")
    archive = repo_path / ".aipass/agents/api/archive/2025-06.jsonl"
    archive.parent.mkdir(parents=True, exist_ok=True)
    write_archive(archive, needles, 0)
    written = len(needles)
    index = MemoryIndex(repo)
    for size in sizes:
        write_archive(archive, decoys.take(size - written), written)
        written = size
        t0 = time.perf_counter()
        stats = index.sync()
        seconds = time.perf_counter() - t0
        print(f"\n{size:,} entries (indexed {stats['entries']:,} new in {seconds:.1f} s: "
              f"{stats['entries'] / seconds:.0f} entries/s)")
        texts = {row.key: row.text for row in index.catalog.all_rows()}
        ranks: dict[str, list[int | None]] = {m: [] for m in MODES}
        latencies: dict[str, list[float]] = {m: [] for m in MODES}
        lists: list[dict[str, list[tuple[str, float]]]] = []
        for q in labelled:
            for mode in MODES:
                t0 = time.perf_counter()
                hits = index.search(q.text, ["api"], DEPTH, mode)
                latencies[mode].append((time.perf_counter() - t0) * 1000)
                ranks[mode].append(rank_of([h.key for h in hits], texts, q.needle))
            if sweep:
                lists.append(index.rankings(q.text, ["api"], CANDIDATES, "hybrid"))
        dev = [i for i, q in enumerate(labelled) if q.dev]
        held = [i for i, q in enumerate(labelled) if not q.dev]
        for mode in MODES:
            print(line(mode, scores([ranks[mode][i] for i in dev]), scores([ranks[mode][i] for i in held])))
        for family in ("paraphrase", "identifier"):
            mine = [i for i, q in enumerate(labelled) if q.family == family]
            print(f"  by family, dev and held-out together: {family} ({len(mine)} queries): " + "; ".join(
                f"{mode} r@1 {scores([ranks[mode][i] for i in mine])['r@1']:.3f}" for mode in MODES))
        for mode in MODES:
            print(f"  {mode} search (warm, no change to index): p50 {statistics.median(latencies[mode]):.1f} ms, "
                  f"p95 {sorted(latencies[mode])[int(0.95 * (len(latencies[mode]) - 1))]:.1f} ms")
        if sweep:
            print("  fusion sweep on the dev half (K, lexical weight, names weight): r@1 r@5 MRR; held-out beside")
            results = []
            for k in (1, 2, 5, 10, 20, 60):
                for weight in (0.0, 0.2, 0.35, 0.5, 0.7, 1.0):
                    for names in (0.0, 0.35, 0.5, 0.7, 1.0, 1.5, 2.0):
                        fused_ranks = []
                        for i in range(len(labelled)):
                            ranked = fusion.fuse(lists[i], k=k, weights={"vector": 1.0, "lexical": weight, "names": names})
                            keys = sorted(ranked, key=lambda key: -ranked[key].fused)
                            fused_ranks.append(rank_of(keys, texts, labelled[i].needle))
                        d = scores([fused_ranks[i] for i in dev])
                        results.append(((d["r@1"], d["mrr"]), f"K={k} w={weight} n={names}", d,
                                        scores([fused_ranks[i] for i in held])))
            results.sort(key=lambda r: r[0], reverse=True)
            best_of = {label.split(" n=")[0].split(" ", 1)[1]: (label, d, h) for _, label, d, h in reversed(results)}
            for _, label, d, h in results[:5]:
                print(line(label, d, h))
            print("  the best for each lexical weight:")
            for label, d, h in best_of.values():
                print(line(label, d, h))
            print("  score fusion sweep (cosine + a * BM25 / best BM25 of the query)")
            results = []
            for a in (0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5):
                fused_ranks = []
                for i in range(len(labelled)):
                    total: dict[str, float] = {}
                    for key, cos in lists[i]["vector"]:
                        total[key] = total.get(key, 0.0) + cos
                    lex = lists[i]["lexical"]
                    top = max((b for _, b in lex), default=1.0) or 1.0
                    floor = min((c for _, c in lists[i]["vector"]), default=0.0)
                    for key, b in lex:
                        total[key] = total.get(key, floor) + a * b / top
                    keys = sorted(total, key=lambda key: -total[key])
                    fused_ranks.append(rank_of(keys, texts, labelled[i].needle))
                d = scores([fused_ranks[i] for i in dev])
                results.append(((d["r@1"], d["mrr"]), a, d, scores([fused_ranks[i] for i in held])))
            results.sort(key=lambda r: r[0], reverse=True)
            for _, a, d, h in results[:4]:
                print(line(f"a={a}", d, h))
    index.close()

