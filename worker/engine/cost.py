"""What a suite costs: how many images go through the network, forward only or forward and
backward, when nothing stops early.

Torch-free, so the web server can turn it into a wait estimate with a worker's measured
throughput. Attacks stop on an image once it is fooled, so for a model that is not robust
they cost far less than this bound; certification draws all its noisy copies whatever the
model, so its count is exact.
"""

from dataclasses import dataclass

from worker.engine.suites import PGDParams, Suite

#: AutoAttack (standard) per image and norm, as RobustBench runs it: APGD-CE and APGD-T
#: (9 targets) at 100 iterations, FAB-T (9 targets, 100 iterations), Square (5000 queries).
AUTOATTACK_BACKWARD = 100 + 9 * 100 + 9 * 100
AUTOATTACK_FORWARD = 5000


@dataclass(frozen=True)
class Passes:
    """Images through the network: ``forward`` without gradients, ``backward`` with an input
    gradient (one forward and one backward pass each)."""

    forward: int
    backward: int

    def __add__(self, other: "Passes") -> "Passes":
        return Passes(self.forward + other.forward, self.backward + other.backward)


def _pgd(params: PGDParams) -> Passes:
    """One image through a threat model's whole ensemble (every restart, loss and target)."""
    runs = params.restarts * len(params.losses) + params.targets
    # Each iterate is judged on the model (forward), each step takes a gradient; the nearest
    # targets come from one gradient per class.
    return Passes(forward=runs * params.steps + params.noise_draws, backward=runs * params.steps + 10)


def suite_passes(suite: Suite, images: int, *, certified: bool) -> Passes:
    """The most a ``suite`` evaluation of ``images`` images can cost (see the module's note)."""
    n = min(images, suite.images) if suite.images else images
    total = Passes(forward=n, backward=0)  # natural accuracy
    total += Passes(forward=n, backward=n)  # FGSM
    for params in (suite.pgd_linf, suite.pgd_l2):
        per_image = _pgd(params)
        total += Passes(per_image.forward * n, per_image.backward * n)
    if suite.autoattack is not None:
        norms = (suite.autoattack.linf_eps is not None) + (suite.autoattack.l2_eps is not None)
        total += Passes(AUTOATTACK_FORWARD * n * norms, AUTOATTACK_BACKWARD * n * norms)
    if certified:
        smoothing = suite.smoothing
        total += Passes(forward=min(n, smoothing.images) * (smoothing.n0 + smoothing.n), backward=0)
    return total
