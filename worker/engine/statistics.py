"""Confidence intervals for accuracies measured on a finite evaluation set."""

from __future__ import annotations

from typing import Any

from statsmodels.stats.proportion import proportion_confint
from torch import Tensor


def clopper_pearson(successes: int, n: int, level: float = 0.95) -> list[float]:
    """Exact two-sided binomial interval [lo, hi] for ``successes`` out of ``n``."""
    if n == 0:
        return [0.0, 1.0]
    lo, hi = proportion_confint(successes, n, alpha=1 - level, method="beta")
    return [float(lo) if lo == lo else 0.0, float(hi) if hi == hi else 1.0]


def accuracy_metric(scores: Tensor, params: dict[str, Any]) -> dict[str, Any]:
    """``accuracy``, its 95% Clopper–Pearson interval, ``n`` and the parameters used.

    ``scores`` are per-image fractions of correct draws; for a stochastic model the
    interval treats their sum (rounded) as the count of successes.
    """
    n = len(scores)
    total = float(scores.double().sum()) if n else 0.0
    return {
        "accuracy": total / n if n else 0.0,
        "ci95": clopper_pearson(round(total), n),
        "n": n,
        "params": params,
    }
