"""Losses and critics against known answers, invariants and hand-built geometry."""

from __future__ import annotations

import math

import pytest
import torch

from phyloclr.models.critics import CRITICS, RBFCritic, build_critic
from phyloclr.objectives.contrastive import NWJ, InfoNCE, SupCon, alignment, uniformity


@pytest.mark.parametrize("n", [2, 5, 32])
@pytest.mark.parametrize("tau", [0.05, 0.1, 0.5, 1.0])
def test_ntxent_uniform_similarity_is_log_2n_minus_1(n: int, tau: float) -> None:
    z = torch.ones(n, 8)  # every cosine similarity equals 1
    out = InfoNCE(build_critic("cosine", 8), tau)(z, z.clone())
    assert out.loss.item() == pytest.approx(math.log(2 * n - 1), rel=1e-5)
    assert out.mi_bound == pytest.approx(0.0, abs=1e-5)
    assert out.candidates == 2 * n - 1


@pytest.mark.parametrize("n", [3, 8])
def test_ntxent_hand_built_orthogonal_geometry(n: int) -> None:
    tau = 0.2
    z = torch.eye(n, 16)[:n]  # positives identical, negatives orthogonal
    out = InfoNCE(build_critic("cosine", 16), tau)(z, z.clone())
    pos = math.exp(1 / tau)
    expected = -math.log(pos / (pos + (2 * n - 2) * math.exp(0.0)))
    assert out.loss.item() == pytest.approx(expected, rel=1e-5)
    assert out.mi_bound == pytest.approx(math.log(2 * n - 1) - expected, rel=1e-5)


@pytest.mark.parametrize("critic", ["cosine", "dot", "bilinear", "rbf"])
def test_ntxent_symmetric_in_the_two_views(critic: str) -> None:
    torch.manual_seed(0)
    z1, z2 = torch.randn(6, 8), torch.randn(6, 8)
    loss = InfoNCE(build_critic(critic, 8), 0.3)
    assert loss(z1, z2).loss.item() == pytest.approx(loss(z2, z1).loss.item(), rel=1e-6)


def test_same_family_pairs_are_masked() -> None:
    n = 4
    z = torch.ones(n, 8)
    groups = torch.tensor([0, 0, 1, 1])
    out = InfoNCE(build_critic("cosine", 8), 0.1)(z, z.clone(), groups)
    # each view loses its same-family pair's two views as negatives: 2N-1-2 candidates
    assert out.candidates == 2 * n - 3
    assert out.loss.item() == pytest.approx(math.log(2 * n - 3), rel=1e-5)


def test_loss_decreases_when_positives_align() -> None:
    torch.manual_seed(1)
    z1 = torch.randn(16, 8)
    far = InfoNCE(build_critic("cosine", 8), 0.1)(z1, torch.randn(16, 8)).loss
    near = InfoNCE(build_critic("cosine", 8), 0.1)(z1, z1 + 0.01 * torch.randn(16, 8)).loss
    assert near < far


def test_nwj_known_answer_at_zero_scores() -> None:
    z = torch.zeros(5, 4)  # dot critic scores are all 0
    out = NWJ(build_critic("dot", 4), 1.0)(z, z.clone())
    assert out.mi_bound == pytest.approx(-math.exp(-1.0), rel=1e-6)
    assert out.loss.item() == pytest.approx(math.exp(-1.0), rel=1e-6)


def test_nwj_rewards_aligned_pairs() -> None:
    z = 3 * torch.eye(6)
    out = NWJ(build_critic("dot", 6), 1.0)(z, z.clone())
    # joint f = 9, marginal f = 0: bound = 9 - e^{-1}
    assert out.mi_bound == pytest.approx(9 - math.exp(-1), rel=1e-6)


def test_supcon_without_labels_is_ntxent() -> None:
    torch.manual_seed(2)
    z1, z2 = torch.randn(7, 8), torch.randn(7, 8)
    critic = build_critic("cosine", 8)
    assert SupCon(critic, 0.2)(z1, z2).loss.item() == pytest.approx(
        InfoNCE(critic, 0.2)(z1, z2).loss.item(), rel=1e-6
    )


def test_supcon_uniform_with_labels() -> None:
    n = 6
    z = torch.ones(n, 4)
    out = SupCon(build_critic("cosine", 4), 0.1)(z, z.clone(), torch.tensor([0, 0, 0, 1, 1, 2]))
    assert out.loss.item() == pytest.approx(math.log(2 * n - 1), rel=1e-5)


@pytest.mark.parametrize("name", CRITICS)
def test_critic_shapes_and_gradients(name: str) -> None:
    critic = build_critic(name, 8)
    x = torch.randn(5, 8, requires_grad=True)
    s = critic(x, torch.randn(3, 8))
    assert s.shape == (5, 3)
    s.sum().backward()
    assert x.grad is not None


def test_bilinear_starts_as_dot_and_rbf_formula() -> None:
    x, y = torch.randn(4, 6), torch.randn(5, 6)
    assert torch.allclose(build_critic("bilinear", 6)(x, y), x @ y.T, atol=1e-6)
    rbf = RBFCritic(init_length_scale=0.5)
    xn, yn = torch.nn.functional.normalize(x, dim=-1), torch.nn.functional.normalize(y, dim=-1)
    expected = -torch.cdist(xn, yn).pow(2) / (2 * 0.25)
    assert torch.allclose(rbf(x, y), expected, atol=1e-5)


def test_invalid_hyperparameters() -> None:
    with pytest.raises(ValueError):
        InfoNCE(build_critic("cosine", 4), 0.0)
    with pytest.raises(ValueError):
        build_critic("bogus", 4)


def test_alignment_and_uniformity() -> None:
    z = torch.eye(4)
    assert alignment(z, z) == pytest.approx(0.0)
    # 4 orthonormal vectors: every squared distance is 2 → log E exp(-2·2) = -4
    assert uniformity(z) == pytest.approx(-4.0, rel=1e-6)
