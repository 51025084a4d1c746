"""Randomized smoothing against exact answers (Cohen et al. 2019)."""

import numpy as np
import pytest
import torch
from scipy.stats import norm

from worker.engine.evaluate import evaluate
from worker.engine.smoothing import Smooth
from worker.engine.suites import get_suite

from .toys import trained_cnn

SIGMA = 0.25


def _constant(cls: int):
    def base(x):
        out = torch.zeros(len(x), 10)
        out[:, cls] = 1.0
        return out

    return base


def test_clopper_pearson_radius_matches_the_hand_computed_value():
    smooth = Smooth(_constant(3), num_classes=10, sigma=SIGMA)
    prediction, radius = smooth.certify(torch.zeros(2, 1), n0=100, n=100_000, alpha=0.001, batch_size=50_000)
    # n_A = N: the one-sided bound is alpha ** (1 / N), the radius sigma * Phi^-1 of it.
    expected = SIGMA * norm.ppf(0.001 ** (1 / 100_000))
    assert prediction.tolist() == [3, 3]
    assert radius.tolist() == pytest.approx([expected, expected], abs=1e-6)
    assert expected == pytest.approx(0.953, abs=1e-3)


def _half_space(d: int = 48, seed: int = 0):
    """A base classifier that is class 0 on one side of a hyperplane, class 1 on the other."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(d, generator=g)
    w /= w.norm()

    def base(x):
        s = x.flatten(1) @ w + 0.1
        out = torch.full((len(x), 10), -1e4)
        out[:, 0], out[:, 1] = s, -s
        return out

    def at_distance(signed: torch.Tensor) -> torch.Tensor:
        start = torch.full((len(signed), d), 0.5)
        shift = signed - (start @ w + 0.1)
        return (start + shift[:, None] * w).view(len(signed), 3, 4, 4)

    return base, at_distance


def test_certified_radii_never_exceed_and_nearly_reach_the_distance_to_the_boundary():
    base, at_distance = _half_space()
    # From 0.5 sigma on: closer in, CERTIFY's n0 = 100 selection draws may pick the wrong
    # class (and abstain) with a few percent probability.
    near = torch.cat([torch.linspace(0.5, 2.0, 8), -torch.linspace(0.5, 2.0, 8)]) * SIGMA
    far = torch.tensor([3.0, -3.0, 4.0]) * SIGMA
    distance = torch.cat([near, far])
    torch.manual_seed(0)
    smooth = Smooth(base, num_classes=10, sigma=SIGMA)
    prediction, radius = smooth.certify(
        at_distance(distance), n0=100, n=100_000, alpha=0.001, batch_size=100_000
    )
    truth = torch.where(distance > 0, 0, 1)
    assert torch.equal(prediction, truth)
    assert (radius <= distance.abs()).all()
    within = slice(0, len(near))
    assert (radius[within] >= 0.9 * distance.abs()[within]).all()


def test_predict_abstains_on_the_boundary_and_answers_away_from_it():
    base, at_distance = _half_space()
    torch.manual_seed(0)
    smooth = Smooth(base, num_classes=10, sigma=SIGMA)
    points = at_distance(torch.tensor([0.0, 0.5, -0.5]))
    prediction = smooth.predict(points, n=10_000, alpha=0.001, batch_size=30_000)
    assert prediction.tolist()[1:] == [0, 1]
    certified, radius = smooth.certify(points[:1], n0=100, n=10_000, alpha=0.001, batch_size=10_000)
    assert certified.item() == Smooth.ABSTAIN and radius.item() == 0.0


def test_evaluate_reports_certified_accuracy_at_every_radius():
    model, images, labels = trained_cnn()
    result = evaluate(model, images, labels, get_suite("smoke"), sigma=SIGMA, seed=0)
    smoothing = result["smoothing"]
    params = get_suite("smoke").smoothing
    assert smoothing["n"] == params.images and smoothing["radius"] == 0.5
    assert smoothing["params"]["sigma"] == SIGMA and smoothing["params"]["n"] == params.n
    curve = [smoothing["certified"][str(r)] for r in params.radii]
    assert list(smoothing["certified"]) == ["0.0", "0.25", "0.5", "0.75", "1.0", "1.25", "1.5"]
    assert curve == sorted(curve, reverse=True)
    assert smoothing["accuracy"] == smoothing["certified"]["0.5"]
    assert 0 < smoothing["average_radius"] < 1.5
    assert smoothing["predict"]["n"] == params.images
    assert 0 <= smoothing["predict"]["abstain_rate"] <= 1
    lo, hi = smoothing["ci95"]
    assert lo <= smoothing["accuracy"] <= hi
    assert np.isfinite(smoothing["average_radius"])
