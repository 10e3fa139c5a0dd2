"""Which spaced words: greedy forward selection of Murphy-10 spaced words on one development set.

    python -m benchmarks.word_selection --sets DEVSETS --choose go-function \\
        [--score orthologs go-process] [--weight 4] [--max-span 8] [--steps 9]

Every pattern of ``--weight`` ones that starts and ends with 1 and spans at most ``--max-span``
positions (weight 4, span ≤ 8: 35 patterns) is one candidate word. Each word's row is the
harness's centred spaced-word row (``bench_protein.centred_words``: log-tf-idf, idf and mean
row from the set's corpus); a set of words scores the mean of their cosines, as the harness's
multi-word rows do. Starting from no word, each step adds the word that lifts the chosen set's
mAP most. The chosen set alone chooses; ``--score`` sets are scored along the path afterwards,
so they report on words they did not choose. Prints one JSON line per step.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_protein import DevSet, centred_words
from phyloclr.metrics import retrieval_scores


def patterns(weight: int, max_span: int) -> list[str]:
    """Every spaced pattern of ``weight`` ones (first and last positions 1), by span."""
    out = []
    for span in range(weight, max_span + 1):
        for inner in itertools.combinations(range(1, span - 1), weight - 2):
            word = ["0"] * span
            for i in (0, span - 1, *inner):
                word[i] = "1"
            out.append("".join(word))
    return out


def word_cosines(ds: DevSet, words: list[str]) -> dict[str, np.ndarray]:
    """(N, N) float16 centred cosines of each word on ``ds``."""
    return {w: centred_words(ds, "murphy10", (w,))[0].astype(np.float16) for w in words}


def mean_map(sims: dict[str, np.ndarray], chosen: list[str], labels: list[str]) -> float:
    total = sum(sims[w].astype(np.float32) for w in chosen)
    return retrieval_scores(total / len(chosen), labels)[0]


def greedy(sims: dict[str, np.ndarray], labels: list[str], steps: int) -> list[tuple[str, float]]:
    """[(word added, mAP of the words so far)] for ``steps`` steps of forward selection."""
    chosen: list[str] = []
    path = []
    for _ in range(min(steps, len(sims))):
        scores = {w: mean_map(sims, [*chosen, w], labels) for w in sims if w not in chosen}
        best = max(scores, key=lambda w: (scores[w], -len(w)))
        chosen.append(best)
        path.append((best, scores[best]))
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sets", type=Path, required=True)
    p.add_argument("--choose", default="go-function", help="the set that chooses")
    p.add_argument("--score", nargs="*", default=[], help="sets scored along the path")
    p.add_argument("--weight", type=int, default=4)
    p.add_argument("--max-span", type=int, default=8)
    p.add_argument("--steps", type=int, default=9)
    args = p.parse_args(argv)
    words = patterns(args.weight, args.max_span)
    start = time.time()
    ds = DevSet(args.sets / args.choose)
    path = greedy(word_cosines(ds, words), ds.labels, args.steps)
    chosen = [w for w, _ in path]
    others = {}
    for name in args.score:
        other = DevSet(args.sets / name)
        sims = word_cosines(other, chosen)
        others[name] = [mean_map(sims, chosen[: i + 1], other.labels) for i in range(len(chosen))]
    for i, (word, score) in enumerate(path):
        row = {"step": i + 1, "added": word, "words": chosen[: i + 1], args.choose: round(score, 4)}
        row.update({name: round(maps[i], 4) for name, maps in others.items()})
        print(json.dumps(row))
    print(json.dumps({"candidates": len(words), "wall_s": round(time.time() - start, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
