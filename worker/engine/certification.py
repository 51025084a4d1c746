"""Certified accuracy of a smoothed model over a fixed subset of the evaluation images."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from worker.engine.classifier import Classifier
from worker.engine.smoothing import Smooth, channels_last_agrees
from worker.engine.statistics import accuracy_metric
from worker.engine.suites import SmoothingParams, params_dict


def certify_images(
    classifier: Classifier,
    images: Tensor,
    labels: Tensor,
    *,
    sigma: float,
    params: SmoothingParams,
    num_classes: int,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """CERTIFY and PREDICT the first ``params.images`` images; the ``smoothing`` result.

    An image counts as certified at radius r when CERTIFY returns its true label with a
    radius of at least r; the average certified radius counts wrong or abstained images
    as 0 (Zhai et al. 2020). PREDICT reuses CERTIFY's estimation draws
    (``Smooth.certify_and_predict``), which leaves both guarantees intact.
    """
    x_all, y = images[: params.images], labels[: params.images]
    channels_last = channels_last_agrees(classifier.logits, x_all, sigma)
    smooth = Smooth(classifier.logits, num_classes, sigma, channels_last=channels_last)
    group = max(1, params.batch_size // params.n0)
    certified, radii, predicted = [], [], []
    for start in range(0, len(x_all), group):
        x = x_all[start : start + group]
        prediction, radius, guess = smooth.certify_and_predict(
            x,
            params.n0,
            params.n,
            params.alpha,
            params.predict_n,
            params.predict_alpha,
            params.batch_size,
        )
        certified.append(prediction.cpu())
        radii.append(radius)
        predicted.append(guess.cpu())
        if progress is not None:
            progress(start + len(x), len(x_all))
    y = y.cpu()
    correct = torch.cat(certified) == y if certified else torch.zeros(0, dtype=torch.bool)
    radius = torch.cat(radii) if radii else torch.zeros(0)
    guesses = torch.cat(predicted) if predicted else torch.zeros(0, dtype=torch.long)
    n = len(y)

    def at(r: float) -> Tensor:
        return (correct & (radius >= r)).float()

    result = accuracy_metric(at(params.radius), {"sigma": sigma, **params_dict(params)})
    result["radius"] = params.radius
    result["certified"] = {str(float(r)): float(at(r).mean()) if n else 0.0 for r in params.radii}
    result["average_radius"] = float(torch.where(correct, radius, 0.0).mean()) if n else 0.0
    result["predict"] = {
        "accuracy": float((guesses == y).float().mean()) if n else 0.0,
        "abstain_rate": float((guesses == Smooth.ABSTAIN).float().mean()) if n else 0.0,
        "n": n,
    }
    return result
