"""Scoring embeddings against labels: retrieval, 1-NN, linear probe, clustering, geometry."""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from phyloclr.errors import InputError
from phyloclr.metrics import embedding_retrieval


@dataclass
class Evaluation:
    """Scores of an embedding file; ``unmatched_*`` name ids and labels that did not pair up."""

    n: int
    n_labels: int
    map: float
    nn1: float
    linear_probe: float
    kmeans_acc: float
    kmeans_nmi: float
    kmeans_ari: float
    alignment: float
    uniformity: float
    unmatched_ids: list[str] = field(default_factory=list)
    unmatched_labels: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def read_labels(path: str | os.PathLike[str]) -> dict[str, str]:
    """``id,label`` CSV (a header row is allowed); duplicate ids are an error."""
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except OSError as exc:
        raise InputError(p, f"cannot open: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise InputError(
            p, f"not UTF-8 text (byte {exc.start}): expected an 'id,label' CSV"
        ) from exc
    except csv.Error as exc:
        raise InputError(p, f"not a readable CSV: {exc}") from exc
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["id", "label"]:
        rows = rows[1:]
    labels: dict[str, str] = {}
    for i, row in enumerate(rows, start=1):
        if not row or not "".join(row).strip():
            continue
        if len(row) < 2:
            raise InputError(p, f"line {i}: expected 'id,label'", row[0])
        if row[0] in labels:
            raise InputError(p, "duplicate id in labels", row[0])
        labels[row[0]] = row[1]
    if not labels:
        raise InputError(p, "no labels found")
    return labels


def hungarian_accuracy(truth: np.ndarray, pred: np.ndarray) -> float:
    """Best one-to-one matching of predicted clusters to labels (Hungarian), as accuracy."""
    from scipy.optimize import linear_sum_assignment

    t_codes, t = np.unique(truth, return_inverse=True)
    p_codes, p = np.unique(pred, return_inverse=True)
    table = np.zeros((len(p_codes), len(t_codes)))
    np.add.at(table, (p, t), 1)
    rows, cols = linear_sum_assignment(-table)
    return float(table[rows, cols].sum() / len(truth))


def evaluate_embeddings(
    ids: list[str], embeddings: np.ndarray, labels: dict[str, str], seed: int = 0
) -> Evaluation:
    """All scores for the embeddings whose id has a label (cosine geometry)."""
    from sklearn.cluster import KMeans
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    keep = [i for i, x in enumerate(ids) if x in labels]
    unmatched_ids = [x for x in ids if x not in labels]
    id_set = set(ids)
    unmatched_labels = [x for x in labels if x not in id_set]
    if len(keep) < 2:
        raise InputError(None, "fewer than two embedded ids have a label")
    x = embeddings[keep].astype(np.float64)
    y = np.array([labels[ids[i]] for i in keep])
    xn = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    m, nn1 = embedding_retrieval(x, y.tolist())
    classes, counts = np.unique(y, return_counts=True)
    # the probe is cross-validated over labels with at least 2 members (singletons cannot be)
    probe_labels = classes[counts >= 2]
    sel = np.isin(y, probe_labels)
    folds = int(min(5, counts[counts >= 2].min())) if len(probe_labels) else 0
    if folds >= 2 and len(probe_labels) >= 2:
        clf = LogisticRegression(max_iter=2000)
        cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
        probe = float(cross_val_score(clf, xn[sel], y[sel], cv=cv).mean())
    else:
        probe = float("nan")
    k = len(classes)
    pred = KMeans(k, n_init=10, random_state=seed).fit_predict(xn) if k >= 2 else np.zeros(len(y))
    align, unif = alignment_uniformity(xn, y)
    return Evaluation(
        n=len(keep),
        n_labels=k,
        map=m,
        nn1=nn1,
        linear_probe=probe,
        kmeans_acc=hungarian_accuracy(y, pred),
        kmeans_nmi=float(normalized_mutual_info_score(y, pred)),
        kmeans_ari=float(adjusted_rand_score(y, pred)),
        alignment=align,
        uniformity=unif,
        unmatched_ids=unmatched_ids,
        unmatched_labels=unmatched_labels,
    )


def alignment_uniformity(xn: np.ndarray, y: np.ndarray, chunk: int = 1024) -> tuple[float, float]:
    """(alignment, uniformity) of unit rows ``xn`` (N, D) with labels ``y`` (N,): the mean
    squared distance of same-label pairs, and log E exp(-2 d²) over all pairs (Wang & Isola),
    summed ``chunk`` rows at a time so the (N, N) matrix is never held."""
    n = len(y)
    same_sum = same_n = 0.0
    exp_sum = 0.0
    for start in range(0, n, chunk):
        rows = np.arange(start, min(n, start + chunk))
        sq = np.clip(2.0 - 2.0 * (xn[rows] @ xn.T), 0.0, None)  # (chunk, N)
        same = y[rows, None] == y[None, :]
        same[np.arange(len(rows)), rows] = False
        same_sum += float(sq[same].sum())
        same_n += float(same.sum())
        upper = np.arange(n)[None, :] > rows[:, None]  # each pair i < j once
        exp_sum += float(np.exp(-2.0 * sq[upper]).sum())
    pairs = n * (n - 1) / 2
    align = same_sum / same_n if same_n else float("nan")
    unif = float(np.log(exp_sum / pairs)) if pairs else float("nan")
    return align, unif


def plot_map(
    embeddings: np.ndarray, labels: list[str], path: str | os.PathLike[str], seed: int = 0
) -> str:
    """A 2-D map coloured by label (UMAP if installed, else t-SNE); returns the method used."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    try:
        import umap

        xy = umap.UMAP(random_state=seed, metric="cosine").fit_transform(x)
        method = "UMAP"
    except ImportError:
        from sklearn.manifold import TSNE

        perplexity = max(2.0, min(30.0, (len(x) - 1) / 3))
        xy = TSNE(2, perplexity=perplexity, random_state=seed, init="pca").fit_transform(x)
        method = "t-SNE"
    names = sorted(set(labels))
    cmap = plt.get_cmap("tab20", max(len(names), 1))
    fig, ax = plt.subplots(figsize=(7, 6))
    for i, name in enumerate(names):
        sel = np.array([lab == name for lab in labels])
        ax.scatter(
            xy[sel, 0],
            xy[sel, 1],
            s=8,
            color=cmap(i % 20),
            label=name if len(names) <= 20 else None,
        )
    if len(names) <= 20:
        ax.legend(fontsize=7, markerscale=2, frameon=False, loc="best")
    ax.set_title(f"{method} of {len(x)} embeddings, {len(names)} labels")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return method


def finite_or_none(value: float) -> float | None:
    return None if isinstance(value, float) and math.isnan(value) else value


@dataclass
class EvaluateJob:
    """What ``phyloclr evaluate`` computed: the scores and, with a plot, its method."""

    result: Evaluation
    plot_method: str | None = None

    def write_json(self, path: str | os.PathLike[str]) -> None:
        """The scores (NaN as null) and the plot's method as JSON, written atomically."""
        import json

        from phyloclr.fsutil import atomic_path

        data = {k: finite_or_none(v) if isinstance(v, float) else v
                for k, v in self.result.as_dict().items()}  # fmt: skip
        data["plot_method"] = self.plot_method
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(data, indent=2) + "\n")


def evaluate_file(
    embeddings: str | os.PathLike[str], labels: str | os.PathLike[str],
    plot: str | os.PathLike[str] | None = None, seed: int = 0,
) -> EvaluateJob:  # fmt: skip
    """What ``phyloclr evaluate`` runs: the embedding file's scores against the labels CSV
    (:func:`evaluate_embeddings`) and, with ``plot``, the 2-D map of its labelled rows. Only
    the labelled rows are read, so a file of millions of rows costs the labelled subset."""
    from phyloclr.io.hdf5 import read_embeddings

    lab = read_labels(labels)
    store = read_embeddings(embeddings, only=lab)  # the labelled rows alone: any file size
    scores = evaluate_embeddings(store.ids, store.embeddings, lab, seed=seed)
    scores.unmatched_ids = [x for x in store.all_ids or [] if x not in lab]
    job = EvaluateJob(scores)
    if plot is not None:
        job.plot_method = plot_map(
            store.embeddings, [lab[x] for x in store.ids], Path(plot), seed=seed
        )
    return job
