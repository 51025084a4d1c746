"""Randomized smoothing: CERTIFY and PREDICT of Cohen, Rosenfeld & Kolter (ICML 2019).

The smoothed classifier is g(x) = argmax_c P(f(x + ε) = c) with ε ~ N(0, σ² I) added in
[0, 1] pixel space, so radii are pixel-space ℓ2 distances. Counting is batched over many
images at once: each chunk of noisy copies is classified in one forward pass under
``inference_mode`` and tallied per image with ``torch.bincount`` on the device; the counts
reach the host once per call. Counting passes may feed the network channels-last images
(faster convolutions on the CPU) when ``channels_last_agrees`` finds it gives the same
outputs; the noise itself is drawn the same way either way.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy.stats import binomtest, norm
from torch import Tensor

from worker.engine.protocol import clopper_pearson


class Smooth:
    """A smoothed classifier around ``base_classifier`` (images -> (N, num_classes) scores)."""

    ABSTAIN = -1

    def __init__(
        self,
        base_classifier: Callable[[Tensor], Tensor],
        num_classes: int,
        sigma: float,
        *,
        channels_last: bool = False,
    ) -> None:
        self.base_classifier = base_classifier
        self.num_classes = num_classes
        self.sigma = sigma
        self.channels_last = channels_last

    def certify(self, x: Tensor, n0: int, n: int, alpha: float, batch_size: int) -> tuple[Tensor, Tensor]:
        """CERTIFY each image of ``x`` (B, C, H, W): predictions (B,) and ℓ2 radii (B,).

        With probability at least 1 − α over the noise, for each image independently, a
        prediction other than ABSTAIN equals g(x) and g is constant within the radius.
        Abstentions get radius 0.
        """
        c_a_hat = self._sample_noise(x, n0, batch_size)[0].argmax(dim=1)
        counts = self._sample_noise(x, n, batch_size)[0]
        return self._certificate(c_a_hat, counts, n, alpha)

    def predict(self, x: Tensor, n: int, alpha: float, batch_size: int) -> Tensor:
        """PREDICT each image of ``x``: g(x), or ABSTAIN.

        With probability at least 1 − α, for each image, a prediction other than ABSTAIN
        equals g(x) (two-sided binomial test of the top two counts).
        """
        return self._decide(self._sample_noise(x, n, batch_size)[0], alpha)

    def certify_and_predict(
        self,
        x: Tensor,
        n0: int,
        n: int,
        alpha: float,
        predict_n: int,
        predict_alpha: float,
        batch_size: int,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``certify(x, n0, n, alpha)`` and ``predict(x, predict_n, predict_alpha)`` in one pass.

        PREDICT counts the first ``predict_n`` of CERTIFY's estimation draws (or CERTIFY the
        first ``n`` of PREDICT's, whichever is shorter). Each procedure still sees i.i.d.
        noise that nothing else in it depends on, so both guarantees hold exactly as stated;
        only the two outcomes become correlated, which no reported figure relies on.
        """
        c_a_hat = self._sample_noise(x, n0, batch_size)[0].argmax(dim=1)
        counts, prefix = self._sample_noise(x, max(n, predict_n), batch_size, min(n, predict_n))
        assert prefix is not None  # asked for: min(n, predict_n) copies
        certify_counts, predict_counts = (counts, prefix) if n >= predict_n else (prefix, counts)
        prediction, radius = self._certificate(c_a_hat, certify_counts, n, alpha)
        return prediction, radius, self._decide(predict_counts, predict_alpha)

    def _certificate(self, c_a_hat: Tensor, counts: Tensor, n: int, alpha: float) -> tuple[Tensor, Tensor]:
        n_a = counts.gather(1, c_a_hat[:, None]).squeeze(1)
        p_a_bar = self._lower_confidence_bound(n_a.cpu().numpy(), n, alpha)
        radius = np.where(p_a_bar < 0.5, 0.0, self.sigma * norm.ppf(np.maximum(p_a_bar, 0.5)))
        prediction = torch.where(
            torch.from_numpy(p_a_bar < 0.5).to(c_a_hat.device),
            torch.full_like(c_a_hat, self.ABSTAIN),
            c_a_hat,
        )
        return prediction, torch.from_numpy(radius).float()

    def _decide(self, counts: Tensor, alpha: float) -> Tensor:
        top2 = counts.cpu().topk(2, dim=1)
        prediction = top2.indices[:, 0].clone()
        for i, (count1, count2) in enumerate(top2.values.tolist()):
            if binomtest(count1, count1 + count2, p=0.5).pvalue > alpha:
                prediction[i] = self.ABSTAIN
        return prediction.to(counts.device)

    def _sample_noise(
        self, x: Tensor, num: int, batch_size: int, prefix: int | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """Votes (B, num_classes) of the base classifier on ``num`` noisy copies of each image.

        Also returns the votes of the first ``prefix`` copies when asked (else None). Each
        forward pass classifies ``batch_size`` noisy copies at most, spread over the images.
        """
        if len(x) > batch_size:
            parts = [self._sample_noise(p, num, batch_size, prefix) for p in x.split(batch_size)]
            counts = torch.cat([c for c, _ in parts])
            return counts, None if prefix is None else torch.cat([e for _, e in parts if e is not None])
        images, classes = len(x), self.num_classes
        per_chunk = max(1, min(num, batch_size // max(images, 1)))
        counts = torch.zeros(images * classes, dtype=torch.long, device=x.device)
        early = counts.clone() if prefix == 0 else None
        with torch.inference_mode():
            # Copy-major layout: the first k copies of every image are the first k * B rows.
            repeated = x.repeat(per_chunk, *([1] * (x.dim() - 1)))
            owner = torch.arange(images, device=x.device).repeat(per_chunk) * classes
            noisy = torch.empty_like(repeated)
            done = 0
            while done < num:
                stop = min(prefix, num) if prefix is not None and done < prefix else num
                rows = min(per_chunk, stop - done) * images
                batch = noisy[:rows].normal_(0.0, self.sigma).add_(repeated[:rows])
                if self.channels_last:
                    batch = batch.contiguous(memory_format=torch.channels_last)
                predictions = self.base_classifier(batch).argmax(dim=1)
                counts += torch.bincount(owner[:rows] + predictions, minlength=len(counts))
                done += rows // images
                if done == prefix:
                    early = counts.clone()
        shape = (images, classes)
        return counts.view(shape), None if early is None else early.view(shape)

    def _lower_confidence_bound(self, n_a: np.ndarray, n: int, alpha: float) -> np.ndarray:
        """One-sided (1 − α) Clopper–Pearson lower bound on p_A."""
        return clopper_pearson(n_a, n, tail=alpha)[0]


def channels_last_agrees(base_classifier: Callable[[Tensor], Tensor], images: Tensor, sigma: float) -> bool:
    """Whether channels-last counting passes are safe and worth it for this network.

    Only on the CPU (where they were measured faster), for 4-D images, and only if the
    network accepts channels-last input and gives the same predictions and, within float
    rounding, the same scores on a fixed noisy probe batch; a network that stays random
    between passes never qualifies. The probe uses its own generator, not the global one.
    """
    if images.device.type != "cpu" or images.dim() != 4 or len(images) == 0:
        return False
    generator = torch.Generator(device=images.device).manual_seed(0)
    probe = images[:16].repeat(4, 1, 1, 1)
    noise = torch.randn(probe.shape, generator=generator, device=images.device, dtype=images.dtype)
    probe = probe + sigma * noise
    with torch.inference_mode():
        try:
            plain = base_classifier(probe)
            again = base_classifier(probe.contiguous(memory_format=torch.channels_last))
        except Exception:  # a network may reject non-contiguous input (``view``); stay plain
            return False
    if plain.shape != again.shape or not torch.equal(plain.argmax(dim=1), again.argmax(dim=1)):
        return False
    scale = max(1.0, float(plain.abs().max()))
    return bool(torch.allclose(plain, again, rtol=1e-4, atol=1e-4 * scale))
