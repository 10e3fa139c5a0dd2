"""FCGR layout and counts by hand; TCL's cluster loss against its closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from phyloclr.dna import fcgr, normalise
from phyloclr.models.fcgr import FCGRNet
from phyloclr.objectives.tcl import ClusterLoss, marginal_entropy


def test_fcgr_k1_corners() -> None:
    img = fcgr(["AACGTTTN"], k=1)[0]
    # rows = y, columns = x: A (0,0), C (x0,y1), G (1,1), T (1,0); N skipped
    assert img.tolist() == [[2, 3], [1, 1]]


def test_fcgr_k2_last_base_most_significant() -> None:
    img = fcgr(["AC"], k=2)[0]
    # first base A → bit 0 (x0,y0); last base C → bit 1 (x0,y1): x = 0, y = 2
    assert img[2, 0] == 1 and img.sum() == 1
    img = fcgr(["CA"], k=2)[0]
    assert img[1, 0] == 1  # C first → y bit 0 = 1, A last → 0: y = 1


@pytest.mark.parametrize("k", [3, 6])
def test_fcgr_counts_every_valid_kmer_once(k: int) -> None:
    rng = np.random.default_rng(0)
    seq = "".join(rng.choice(list("ACGTN"), 500, p=[0.24, 0.24, 0.24, 0.24, 0.04]))
    valid = sum(all(c in "ACGT" for c in seq[i : i + k]) for i in range(len(seq) - k + 1))
    img = fcgr([seq], k)[0]
    assert img.shape == (2**k, 2**k) and img.sum() == valid


def test_normalise_and_net_shapes() -> None:
    x = normalise(fcgr(["ACGT" * 100, "AAAA" * 50], 6))
    assert np.allclose(x.reshape(2, -1).mean(1), 0, atol=1e-5)
    out = FCGRNet(6)(torch.from_numpy(x).unsqueeze(1))
    assert out.shape == (2, 512)


@pytest.mark.parametrize("c", [2, 3, 10])
@pytest.mark.parametrize("tau", [0.5, 1.0])
def test_cluster_loss_uniform_closed_form(c: int, tau: float) -> None:
    p = torch.full((16, c), 1.0 / c)
    loss = ClusterLoss(tau)(p, p.clone())
    assert loss.item() == pytest.approx(math.log(2 * c - 1) - 2 * math.log(c), rel=1e-5)


def test_cluster_loss_prefers_confident_balanced_agreement() -> None:
    c = 4
    labels = torch.arange(32) % c
    sharp = torch.nn.functional.one_hot(labels, c).float() * 0.97 + 0.01
    uniform = torch.full((32, c), 1.0 / c)
    collapsed = torch.zeros(32, c)
    collapsed[:, 0] = 1.0
    loss = ClusterLoss(1.0)
    assert loss(sharp, sharp) < loss(uniform, uniform)
    assert loss(sharp, sharp) < loss(collapsed, collapsed)
    shuffled = sharp[torch.randperm(32, generator=torch.Generator().manual_seed(0))]
    assert loss(sharp, sharp) < loss(sharp, shuffled)


def test_cluster_loss_symmetric_and_entropy() -> None:
    torch.manual_seed(0)
    p1 = torch.softmax(torch.randn(20, 5), 1)
    p2 = torch.softmax(torch.randn(20, 5), 1)
    loss = ClusterLoss(0.7)
    assert loss(p1, p2).item() == pytest.approx(loss(p2, p1).item(), rel=1e-6)
    assert marginal_entropy(torch.full((4, 8), 0.125)).item() == pytest.approx(math.log(8))
