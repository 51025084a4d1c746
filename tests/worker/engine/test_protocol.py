"""The protocol's names and its one binomial interval, against statsmodels' exact answers."""

import typing

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from scipy.stats import beta, norm
from statsmodels.stats.proportion import proportion_confint

from worker.engine.protocol import (
    CI95_TAIL,
    COLUMN_METRICS,
    ENGINE_STAGES,
    HEADLINE_RADIUS,
    METRIC_LABELS,
    METRICS,
    NORMALISATION,
    RADII,
    STAGE_LABELS,
    STAGES,
    SUITES,
    clopper_pearson,
)
from worker.engine.smoothing import Smooth
from worker.protocol import Progress, Stage


def _cases(seed: int = 0) -> list[tuple[int, int]]:
    """(successes, n): every edge, and random counts from one image to the largest n used."""
    rng = np.random.default_rng(seed)
    cases = []
    for n in (1, 2, 3, 7, 16, 64, 100, 500, 1000, 1024, 10_000, 100_000):
        counts = {0, 1, 2, n // 2, n - 2, n - 1, n, *rng.integers(0, n + 1, 40).tolist()}
        cases += [(int(k), n) for k in sorted(counts) if 0 <= k <= n]
    return cases


@pytest.mark.parametrize("tail", [CI95_TAIL, 0.025, 0.001, 0.0005])
def test_clopper_pearson_equals_statsmodels_bit_for_bit(tail):
    for k, n in _cases():
        low, high = proportion_confint(k, n, alpha=2 * tail, method="beta")
        assert clopper_pearson(k, n, tail) == (float(low), float(high)), (k, n)


def test_clopper_pearson_over_an_array_equals_statsmodels_bit_for_bit():
    """As certification calls it: the lower bounds of many counts out of one n at once."""
    for n in (1000, 100_000):
        counts = np.concatenate([[0, 1, n - 1, n], np.random.default_rng(n).integers(0, n + 1, 2000)])
        for alpha in (0.001, 0.01):
            low, high = clopper_pearson(counts, n, tail=alpha)
            expected = proportion_confint(counts, n, alpha=2 * alpha, method="beta")
            assert np.array_equal(low, np.nan_to_num(np.asarray(expected[0], dtype=float), nan=0.0))
            assert np.array_equal(high, np.asarray(expected[1], dtype=float))


def test_the_95_interval_equals_the_beta_quantiles_the_leaderboard_once_used():
    for k, n in _cases(seed=1):
        low = 0.0 if k == 0 else float(beta.ppf(CI95_TAIL, k, n - k + 1))
        high = 1.0 if k == n else float(beta.ppf(1 - CI95_TAIL, k + 1, n - k))
        assert clopper_pearson(k, n) == (low, high), (k, n)


def test_no_images_give_the_whole_interval():
    assert clopper_pearson(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize("n", [100, 1000, 100_000])
@pytest.mark.parametrize("alpha", [0.001, 0.01, 0.05])
def test_certified_radii_equal_those_from_statsmodels_bit_for_bit(n, alpha):
    """CERTIFY's radii for a few dozen counts, as computed when statsmodels gave the bound."""
    sigma = 0.25
    n_a = np.unique(np.concatenate([[0, 1, n // 2, n // 2 + 1, n - 1, n], np.linspace(0, n, 30).astype(int)]))
    counts = torch.zeros(len(n_a), 10, dtype=torch.long)
    counts[:, 3] = torch.from_numpy(n_a)
    counts[:, 5] = n - counts[:, 3]
    smooth = Smooth(lambda x: x, num_classes=10, sigma=sigma)
    prediction, radius = smooth._certificate(torch.full((len(n_a),), 3), counts, n, alpha)
    lower = proportion_confint(n_a, n, alpha=2 * alpha, method="beta")[0]
    lower = np.nan_to_num(np.asarray(lower, dtype=float), nan=0.0)
    expected = np.where(lower < 0.5, 0.0, sigma * norm.ppf(np.maximum(lower, 0.5)))
    assert torch.equal(radius, torch.from_numpy(expected).float())
    assert prediction.tolist() == [3 if p >= 0.5 else Smooth.ABSTAIN for p in lower]


def test_stages_metrics_and_labels_agree():
    assert (NORMALISATION, *ENGINE_STAGES) == STAGES
    assert METRICS == ENGINE_STAGES  # each engine stage reports the metric of its name
    assert set(COLUMN_METRICS) <= set(METRICS)
    assert set(METRIC_LABELS) == set(METRICS)
    assert set(STAGE_LABELS) == set(STAGES)
    assert HEADLINE_RADIUS in RADII
    assert all(suite.smoothing.radius == HEADLINE_RADIUS for suite in SUITES.values())
    assert all(suite.smoothing.radii == RADII for suite in SUITES.values())
    assert METRIC_LABELS["smoothing"] == "certified accuracy at ℓ2 radius 0.5"


def test_the_child_messages_accept_exactly_the_protocol_stages():
    assert typing.get_args(Stage) == STAGES
    for stage in STAGES:
        Progress(stage=stage, done=0, total=1)
    with pytest.raises(ValidationError):
        Progress(stage="certify", done=0, total=1)
