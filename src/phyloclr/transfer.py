"""Annotation transfer from search hits (as EAT/ProtTucker): each query gets the label of its
nearest labelled hit, the number of its hits that share that label (support), and a
reliability: the share of correct transfers at that cosine, fitted (isotonic regression) on the
labelled database rows queried with their own group present (leave-one-out) and absent; with
``hubness`` those rows' hits are ranked as the search ranked the queries'."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from phyloclr.errors import ConfigError
from phyloclr.fsutil import atomic_path
from phyloclr.neighbours import knn
from phyloclr.search import PathArg, SearchConfig, SearchResult, header, rank_by_hubness


@dataclass(frozen=True)
class Transfer:
    query: str
    label: str | None  # None: no labelled hit
    score: float  # cosine of the nearest labelled hit
    support: int  # hits (of the query's top) that carry the label
    reliability: float  # estimated chance that the label is right (NaN: no labelled hit)


def transfer_labels(
    result: SearchResult, labels: dict[str, str], cfg: SearchConfig
) -> list[Transfer]:
    """Each query's label from its nearest labelled hit, with a reliability fitted on the
    database (see :func:`_calibrate`)."""
    assert result.db_embeddings is not None
    lab = np.array([labels.get(i, "") for i in result.db_ids], dtype=object)
    if not (lab != "").any():
        raise ConfigError("no database id has a label: check the labels file's ids")
    fit = _calibrate(result.db_embeddings, lab, cfg, result.density)
    votes = [_vote(result.index[qi], result.scores[qi], lab) for qi in range(len(result.index))]
    reliability = fit(np.array([score for _, score, _ in votes]))  # NaN where no labelled hit
    return [Transfer(qid, label, score, support, float(rel))
            for qid, (label, score, support), rel
            in zip(result.query_ids, votes, reliability, strict=True)]  # fmt: skip


def _vote(index: np.ndarray, scores: np.ndarray, lab: np.ndarray) -> tuple[str | None, float, int]:
    for j, t in enumerate(index):
        if t >= 0 and lab[t] != "":
            label = str(lab[t])
            support = int(sum(1 for u in index if u >= 0 and lab[u] == label))
            return label, float(scores[j]), support
    return None, float("nan"), 0


def _calibrate(
    db: np.ndarray, lab: np.ndarray, cfg: SearchConfig, density: np.ndarray | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """scores (Q,) → (Q,) shares of correct transfers (NaN for NaN scores), fitted on labelled
    database rows queried twice: with their own group present (leave-one-out: right or wrong)
    and with it absent (the nearest hit of another group: always wrong). So a query unlike
    every group, as most of a new proteome is, gets the low reliability its score has between
    unrelated groups."""
    from sklearn.isotonic import IsotonicRegression

    rows = np.flatnonzero(lab != "")
    rng = np.random.default_rng(cfg.seed)
    if len(rows) > cfg.calibration:
        rows = np.sort(rng.choice(rows, cfg.calibration, replace=False))
    scores, index = knn(db[rows], db, 4 * cfg.top, cfg.neighbours, exclude=rows)
    if density is not None:  # the order the search gave its queries' hits
        scores, index = rank_by_hubness(scores, index, density, cfg.hubness_weight, 4 * cfg.top)
    xs, ys = [], []
    for r, idx, sc in zip(rows, index, scores, strict=True):
        label, score, _ = _vote(idx[: cfg.top], sc[: cfg.top], lab)
        if label is not None:
            xs.append(score)
            ys.append(float(label == lab[r]))
        other = [j for j, t in enumerate(idx) if t >= 0 and lab[t] not in ("", lab[r])]
        if other:
            xs.append(float(sc[other[0]]))
        elif len(sc):  # every hit shares its group: the other groups lie below the last one
            xs.append(float(sc[-1]))
        else:
            continue
        ys.append(0.0)
    if len(set(ys)) < 2:
        const = float(np.mean(ys)) if ys else float("nan")
        return lambda s: np.where(np.isnan(s), np.nan, const)
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(xs, ys)

    def fit(s: np.ndarray) -> np.ndarray:
        out = np.full(len(s), np.nan)
        ok = ~np.isnan(s)
        if ok.any():
            out[ok] = iso.predict(s[ok])
        return out

    return fit


def write_transfers(
    path: PathArg, transfers: Sequence[Transfer], cfg: SearchConfig, result: SearchResult,
    db: PathArg,
) -> None:  # fmt: skip
    """``query predicted_label score support reliability`` TSV, written atomically."""
    with atomic_path(path) as tmp, tmp.open("w") as fh:
        fh.write(header("transfer", cfg, result, db))
        fh.write("query\tpredicted_label\tscore\tsupport\treliability\n")
        for t in transfers:
            if t.label is None:
                fh.write(f"{t.query}\tNA\tNA\t0\tNA\n")
            else:
                fh.write(f"{t.query}\t{t.label}\t{t.score:.6f}\t{t.support}\t"
                         f"{t.reliability:.3f}\n")  # fmt: skip
