"""Confidence intervals for accuracies measured on a finite evaluation set."""

from __future__ import annotations

from typing import Any

from scipy.special import betainccinv, betaincinv
from torch import Tensor


def clopper_pearson(successes: int, n: int, level: float = 0.95) -> list[float]:
    """Exact two-sided binomial interval [lo, hi] for ``successes`` out of ``n``.

    The beta quantiles straight from ``scipy.special`` (the same values, bit for bit, as
    statsmodels' ``proportion_confint(method="beta")``), which spares every evaluation the
    import of ``scipy.stats`` and statsmodels (about a second of start-up).
    """
    if n == 0:
        return [0.0, 1.0]
    tail = (1 - level) / 2
    lo = float(betaincinv(successes, n - successes + 1, tail)) if successes > 0 else 0.0
    hi = float(betainccinv(successes + 1, n - successes, tail)) if successes < n else 1.0
    return [lo, hi]


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
