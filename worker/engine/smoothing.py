"""Randomized smoothing: CERTIFY and PREDICT of Cohen, Rosenfeld & Kolter (ICML 2019).

The smoothed classifier is g(x) = argmax_c P(f(x + ε) = c) with ε ~ N(0, σ² I) added in
[0, 1] pixel space, so radii are pixel-space ℓ2 distances. Counting is batched over many
images at once: each chunk of noisy copies is classified in one forward pass and tallied
per image with ``torch.bincount``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy.stats import binomtest, norm
from statsmodels.stats.proportion import proportion_confint
from torch import Tensor


class Smooth:
    """A smoothed classifier around ``base_classifier`` (images -> (N, num_classes) scores)."""

    ABSTAIN = -1

    def __init__(
        self, base_classifier: Callable[[Tensor], Tensor], num_classes: int, sigma: float
    ) -> None:
        self.base_classifier = base_classifier
        self.num_classes = num_classes
        self.sigma = sigma

    def certify(
        self, x: Tensor, n0: int, n: int, alpha: float, batch_size: int
    ) -> tuple[Tensor, Tensor]:
        """CERTIFY each image of ``x`` (B, C, H, W): predictions (B,) and ℓ2 radii (B,).

        With probability at least 1 − α over the noise, for each image independently, a
        prediction other than ABSTAIN equals g(x) and g is constant within the radius.
        Abstentions get radius 0.
        """
        counts0 = self._sample_noise(x, n0, batch_size)
        c_a_hat = counts0.argmax(dim=1)
        counts = self._sample_noise(x, n, batch_size)
        n_a = counts.gather(1, c_a_hat[:, None]).squeeze(1)
        p_a_bar = self._lower_confidence_bound(n_a.cpu().numpy(), n, alpha)
        radius = np.where(p_a_bar < 0.5, 0.0, self.sigma * norm.ppf(np.maximum(p_a_bar, 0.5)))
        prediction = torch.where(
            torch.from_numpy(p_a_bar < 0.5).to(c_a_hat.device),
            torch.full_like(c_a_hat, self.ABSTAIN),
            c_a_hat,
        )
        return prediction, torch.from_numpy(radius).float()

    def predict(self, x: Tensor, n: int, alpha: float, batch_size: int) -> Tensor:
        """PREDICT each image of ``x``: g(x), or ABSTAIN.

        With probability at least 1 − α, for each image, a prediction other than ABSTAIN
        equals g(x) (two-sided binomial test of the top two counts).
        """
        counts = self._sample_noise(x, n, batch_size).cpu()
        top2 = counts.topk(2, dim=1)
        prediction = top2.indices[:, 0].clone()
        for i, (count1, count2) in enumerate(top2.values.tolist()):
            if binomtest(count1, count1 + count2, p=0.5).pvalue > alpha:
                prediction[i] = self.ABSTAIN
        return prediction.to(x.device)

    def _sample_noise(self, x: Tensor, num: int, batch_size: int) -> Tensor:
        """Counts (B, num_classes) of the base classifier's votes on ``num`` noisy copies each."""
        if len(x) > batch_size:
            parts = [self._sample_noise(part, num, batch_size) for part in x.split(batch_size)]
            return torch.cat(parts)
        images = len(x)
        per_chunk = max(1, min(num, batch_size // max(images, 1)))
        counts = torch.zeros(images * self.num_classes, dtype=torch.long, device=x.device)
        with torch.inference_mode():
            repeated = x.repeat_interleave(per_chunk, dim=0)
            owner = torch.arange(images, device=x.device).repeat_interleave(per_chunk)
            owner *= self.num_classes
            remaining = num
            while remaining > 0:
                k = min(per_chunk, remaining)
                if k < per_chunk:
                    keep = (torch.arange(len(owner), device=x.device) % per_chunk) < k
                    repeated, owner = repeated[keep], owner[keep]
                batch = torch.randn_like(repeated).mul_(self.sigma).add_(repeated)
                predictions = self.base_classifier(batch).argmax(dim=1)
                counts += torch.bincount(owner + predictions, minlength=len(counts))
                remaining -= k
        return counts.view(images, self.num_classes)

    def _lower_confidence_bound(self, n_a: np.ndarray, n: int, alpha: float) -> np.ndarray:
        """One-sided (1 − α) Clopper–Pearson lower bound on p_A."""
        lower = proportion_confint(n_a, n, alpha=2 * alpha, method="beta")[0]
        return np.nan_to_num(np.asarray(lower, dtype=float), nan=0.0)
