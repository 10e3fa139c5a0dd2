"""The k-NN benchmark's recall over neighbours above the noise (benchmarks/bench_knn.py)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from benchmarks.bench_knn import _background, _strong_recall, _tie_recall, main


def test_background_is_each_rows_noise_without_itself() -> None:
    """Rows of random directions: each one's cosines to the others centre on 0 with s.d.
    1/√D; its cosine to itself (1) is left out."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 256)).astype(np.float32)
    sample = np.arange(0, 3000, 100)
    mu, sd = _background(x, sample, 2999, rng)
    assert mu.shape == sd.shape == (30,)
    assert np.abs(mu).max() < 0.01
    assert np.allclose(sd, 1 / np.sqrt(256), rtol=0.1)


def test_recall_over_neighbours_above_a_floor_per_query() -> None:
    exact = np.array([[1, 2, 3], [4, 5, 6]])
    scores = np.array([[0.9, 0.5, 0.1], [0.8, 0.2, 0.1]])
    found = np.array([[1, 7, 8], [9, 5, 6]])
    assert _strong_recall(found, exact, scores, 0.3) == pytest.approx(1 / 3)  # 1, 2, 4 wanted
    floors = np.array([0.95, 0.15])  # none of row 0's; 4 and 5 of row 1's
    assert _strong_recall(found, exact, scores, floors) == pytest.approx(1 / 2)
    assert _strong_recall(found, exact, scores, 0.99) == 1.0  # nothing to find: nothing missed


def test_tie_recall_counts_either_of_identical_rows() -> None:
    """Rows 1 and 2 are twins: exact search lists 1, a method that returns 2 still has the
    top 1 (plain recall counts it a miss); a row further away is a miss either way."""
    x = np.array([[1, 0, 0], [1, 0.1, 0], [1, 0.1, 0], [0, 1, 0], [0, 0, 1]], np.float32)
    sample = np.array([0])
    exact_s = np.array([[x[1] @ x[0] / np.linalg.norm(x[1])]], np.float32)
    assert _tie_recall(x, sample, np.array([[2]]), exact_s, 1) == 1.0
    assert _tie_recall(x, sample, np.array([[3]]), exact_s, 1) == 0.0
    assert _tie_recall(x, sample, np.array([[-1]]), exact_s, 1) == 0.0  # nothing found


def test_run_on_drawn_rows(tmp_path: Path) -> None:
    """``run --draw`` scores rows drawn from the file: exact search against itself recalls all."""
    rng = np.random.default_rng(1)
    emb = tmp_path / "e.h5"
    with h5py.File(emb, "w") as f:
        f["embeddings"] = rng.normal(size=(600, 32)).astype(np.float16)
    out = tmp_path / "rows.jsonl"
    argv = ["run", "--emb", str(emb), "--draw", "400", "--method", "exact", "--k", "5"]
    main([*argv, "--sample", "50", "--background", "200", "--threads", "1", "--out", str(out)])
    row = json.loads(out.read_text())
    assert row["n"] == 400 and row["drawn_from"] == 600
    assert row["recall"] == row["recall_z6"] == row["recall_ties"] == 1.0
    assert row["exact_z6_per_query"] == 0  # random rows: no neighbour stands out of the noise
    assert 0.1 < row["background_sd"] < 0.25  # 1/√32 ≈ 0.18
