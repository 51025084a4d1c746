"""Our CERTIFY against a straightforward implementation of Cohen et al.'s, side by side.

    .venv/bin/python bench/certify.py [--device cpu|cuda] [--images 16] [--n 5000] [--n0 100]
        [--alpha 0.001] [--sigma 0.12] [--batch 1000] [--model resnet20|robust]

The reference is the algorithm as the paper's code runs it: one image at a time, noise
batches of ``--batch`` copies, predictions moved to the host and counted in Python. Ours is
``worker.engine.smoothing.Smooth.certify`` on all images at once, set up as the engine does
(channels-last counting passes where its probe finds them equivalent). Both use the same
base classifier, σ, N0, N and α, in one process with the same allocator settings.
Reported: noise samples per second for both, the ratio, and the radii: certified accuracy
at several radii, agreement of the predictions, the mean paired difference of the radii,
and the largest per-image difference in units of its sampling error (both runs draw their
own noise, so radii agree statistically, not bit for bit).

CPU defaults are small (16 test images, N = 5 000); on a GPU the defaults are the paper's
scale (500 images, N = 100 000).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.stats import norm
from statsmodels.stats.proportion import proportion_confint
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fixtures import add_device, cifar10, machine, resnet20, table, timed  # noqa: E402
from bench.robust_model import robust_cnn  # noqa: E402
from worker.engine.classifier import Classifier, frozen  # noqa: E402
from worker.engine.memory import retain_freed_memory  # noqa: E402
from worker.engine.smoothing import Smooth, channels_last_agrees  # noqa: E402

ABSTAIN = -1


class ReferenceSmooth:
    """Cohen, Rosenfeld & Kolter's CERTIFY as their ``core.py`` writes it."""

    def __init__(self, base: nn.Module, num_classes: int, sigma: float) -> None:
        self.base, self.num_classes, self.sigma = base, num_classes, sigma

    def certify(self, x: Tensor, n0: int, n: int, alpha: float, batch_size: int) -> tuple[int, float]:
        self.base.eval()
        counts_selection = self._sample_noise(x, n0, batch_size)
        c_a = int(counts_selection.argmax())
        counts_estimation = self._sample_noise(x, n, batch_size)
        n_a = int(counts_estimation[c_a])
        p_a = proportion_confint(n_a, n, alpha=2 * alpha, method="beta")[0]
        if p_a < 0.5:
            return ABSTAIN, 0.0
        return c_a, self.sigma * norm.ppf(p_a)

    def _sample_noise(self, x: Tensor, num: int, batch_size: int) -> np.ndarray:
        with torch.no_grad():
            counts = np.zeros(self.num_classes, dtype=int)
            for _ in range(math.ceil(num / batch_size)):
                this_batch_size = min(batch_size, num)
                num -= this_batch_size
                batch = x.repeat((this_batch_size, 1, 1, 1))
                noise = torch.randn_like(batch) * self.sigma
                predictions = self.base(batch + noise).argmax(1)
                counts += self._count_arr(predictions.cpu().numpy(), self.num_classes)
            return counts

    @staticmethod
    def _count_arr(arr: np.ndarray, length: int) -> np.ndarray:
        counts = np.zeros(length, dtype=int)
        for idx in arr:
            counts[idx] += 1
        return counts


def reference_certify(model: nn.Module, images: Tensor, args: argparse.Namespace) -> tuple[Tensor, Tensor]:
    smooth = ReferenceSmooth(model, 10, args.sigma)
    out = [smooth.certify(x, args.n0, args.n, args.alpha, args.batch) for x in images]
    return torch.tensor([c for c, _ in out]), torch.tensor([r for _, r in out])


def our_certify(model: nn.Module, images: Tensor, args: argparse.Namespace) -> tuple[Tensor, Tensor]:
    """As ``worker.engine.certification.certify_images`` sets it up (its probe included)."""
    logits = Classifier(model).logits
    smooth = Smooth(logits, 10, args.sigma, channels_last=channels_last_agrees(logits, images, args.sigma))
    prediction, radius = smooth.certify(images, args.n0, args.n, args.alpha, args.batch)
    return prediction.cpu(), radius.cpu()


def agreement(
    sigma: float, n: int, ref: tuple[Tensor, Tensor], ours: tuple[Tensor, Tensor]
) -> dict[str, float]:
    """Same predictions, paired radius differences, and the largest one in sampling-error units.

    For an image both runs certify with the same class, a radius σΦ⁻¹(p) moves with the
    estimate of p, whose standard error is √(p(1−p)/N): the difference of two independent
    runs has standard error √2·σ·√(p(1−p)/N)/φ(Φ⁻¹(p)).
    """
    (c_ref, r_ref), (c_ours, r_ours) = ref, ours
    same = c_ref == c_ours
    both = same & (c_ref != ABSTAIN)
    diff = (r_ours - r_ref).double()
    p = torch.from_numpy(norm.cdf(((r_ref + r_ours) / 2 / sigma).double().numpy()))
    se = math.sqrt(2) * sigma * (p * (1 - p) / n).sqrt() / torch.from_numpy(norm.pdf(norm.ppf(p.numpy())))
    z = torch.where(both & (se > 0), diff.abs() / se.clamp_min(1e-12), torch.zeros_like(diff))
    z = torch.where(both & (se == 0) & (diff != 0), torch.full_like(diff, float("inf")), z)
    k = max(1, int(both.sum()))
    return {
        "same": float(same.double().mean()),
        "mean_diff": float(diff.mean()),
        "mean_diff_se": float(diff.std() / math.sqrt(len(diff))) if len(diff) > 1 else 0.0,
        "max_z": float(z.max()) if len(z) else 0.0,
        "z_bound": float(norm.ppf(1 - 0.005 / k)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_device(parser)
    parser.add_argument("--images", type=int, default=None, help="first N test images (CPU 16, GPU 500)")
    parser.add_argument("--n", type=int, default=None, help="estimation draws N (CPU 5000, GPU 100000)")
    parser.add_argument("--n0", type=int, default=100)
    parser.add_argument("--alpha", type=float, default=0.001)
    parser.add_argument("--sigma", type=float, default=0.12)
    parser.add_argument("--batch", type=int, default=1000, help="noisy copies per batch (both sides)")
    parser.add_argument("--model", choices=("resnet20", "robust"), default="resnet20")
    args = parser.parse_args()
    retain_freed_memory()  # as evaluate() does on a CPU; both sides benefit alike
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    args.images = args.images or (500 if gpu else 16)
    args.n = args.n or (100_000 if gpu else 5000)
    images, labels = cifar10("test", args.images)
    images, labels = images.to(device), labels.to(device)
    model = resnet20().to(device).eval() if args.model == "resnet20" else robust_cnn(device)
    samples = args.images * (args.n0 + args.n)
    print(f"machine: {machine(device)}")
    print(
        f"{args.model}, {args.images} test images, σ = {args.sigma}, N0 = {args.n0}, N = {args.n}, "
        f"α = {args.alpha}, batches of {args.batch}: {samples} noisy samples per side\n",
        flush=True,
    )
    results = {}
    with frozen(model):
        for name, run in (("reference", reference_certify), ("ours", our_certify)):
            torch.manual_seed(0)
            seconds, out = timed(lambda run=run: run(model, images, args), device)
            results[name] = (seconds, out)
            print(f"{name}: {seconds:.1f} s", flush=True)
    y = labels.cpu()
    rows = []
    for name, (seconds, (prediction, radius)) in results.items():
        certified = [float(((prediction == y) & (radius >= r)).double().mean()) for r in (0.0, 0.25, 0.5)]
        rows.append(
            [
                name,
                f"{seconds:.1f}",
                f"{samples / seconds:,.0f}",
                *(f"{100 * c:.1f}%" for c in certified),
                f"{float(torch.where(prediction == y, radius, 0.0).mean()):.4f}",
            ]
        )
    ratio = results["reference"][0] / results["ours"][0]
    rows[-1][2] += f" ({ratio:.2f}×)"
    print()
    print(table(["CERTIFY", "seconds", "samples/s", "cert. acc r=0", "r=0.25", "r=0.5", "mean radius"], rows))
    a = agreement(args.sigma, args.n, results["reference"][1], results["ours"][1])
    equivalent = a["max_z"] <= a["z_bound"]
    print(
        f"\nsame prediction (class or abstain) on {100 * a['same']:.1f}% of images; radius "
        f"difference (ours − reference) {a['mean_diff']:+.4f} ± {1.96 * a['mean_diff_se']:.4f} (95%); "
        f"largest per-image difference {a['max_z']:.2f} sampling errors (bound {a['z_bound']:.2f}): "
        f"{'statistically equivalent' if equivalent else 'NOT equivalent'}"
    )


if __name__ == "__main__":
    main()
