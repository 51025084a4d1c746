"""An accuracy as every stage reports it: with its 95% interval on the finite evaluation set."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from worker.engine.protocol import clopper_pearson


def accuracy_metric(scores: Tensor, params: dict[str, Any]) -> dict[str, Any]:
    """``accuracy``, its 95% Clopper–Pearson interval, ``n`` and the parameters used.

    ``scores`` are per-image fractions of correct draws; for a stochastic model the
    interval treats their sum (rounded) as the count of successes.
    """
    n = len(scores)
    total = float(scores.double().sum()) if n else 0.0
    return {
        "accuracy": total / n if n else 0.0,
        "ci95": list(clopper_pearson(round(total), n)),
        "n": n,
        "params": params,
    }
