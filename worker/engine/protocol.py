"""The evaluation protocol as the platform sees it: stages, metrics, radii, intervals, suites.

The one module of the engine the platform's state layer and pages import, and torch-free
(a test keeps it so): the names below are defined once here, and the suites
(``worker.engine.suites``) and their cost (``worker.engine.cost``) are re-exported from here.
Adding a metric means adding it here, a migration for its column if it has one, and its
labels on the pages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, overload

from worker.engine.cost import Passes, suite_passes
from worker.engine.suites import (
    SUITES,
    AutoAttackParams,
    NormalisationParams,
    SmoothingParams,
    Suite,
    get_suite,
)

if TYPE_CHECKING:  # numpy itself only when an interval is computed: the server rarely needs it
    import numpy as np
    from numpy.typing import NDArray

__all__ = [
    "CI95_TAIL",
    "COLUMN_METRICS",
    "ENGINE_STAGES",
    "HEADLINE_RADIUS",
    "METRICS",
    "METRIC_LABELS",
    "NORMALISATION",
    "RADII",
    "STAGES",
    "STAGE_LABELS",
    "SUITES",
    "AutoAttackParams",
    "NormalisationParams",
    "Passes",
    "SmoothingParams",
    "Suite",
    "clopper_pearson",
    "engine_stages",
    "get_suite",
    "stages",
    "suite_passes",
]

#: The first stage of every evaluation, before the engine's: which input normalisation the
#: network was trained with (``worker.normalisation``).
NORMALISATION: Final = "normalisation"
#: The engine's stages in the order ``worker.engine.evaluate`` runs them; each reports the
#: metric of its name. ``smoothing`` runs only with a declared σ, ``autoattack`` only in
#: suites that have it.
ENGINE_STAGES: Final = ("natural", "fgsm", "pgd_linf", "pgd_l2", "smoothing", "autoattack")
#: Every stage a child reports progress for, in order.
STAGES: Final = (NORMALISATION, *ENGINE_STAGES)
#: The metrics of a result, in stage order.
METRICS: Final = ENGINE_STAGES
#: The metrics stored in a column of their own (``results``): ranked, shown and exported by
#: the leaderboard.
COLUMN_METRICS: Final = ("natural", "fgsm", "pgd_linf", "pgd_l2", "smoothing")

_SMOOTHING = SmoothingParams()
#: The ℓ2 radii at which certified accuracy is stored (``smoothing.certified`` keys).
RADII: Final = _SMOOTHING.radii
#: The radius of the ``smoothing`` metric and column (the headline certified accuracy).
HEADLINE_RADIUS: Final = _SMOOTHING.radius

#: Each metric as a sentence names it ("Score = mean of natural accuracy, ...").
METRIC_LABELS: Final = {
    "natural": "natural accuracy",
    "fgsm": "FGSM accuracy",
    "pgd_linf": "PGD ℓ∞ robust accuracy",
    "pgd_l2": "PGD ℓ2 robust accuracy",
    "smoothing": f"certified accuracy at ℓ2 radius {HEADLINE_RADIUS:g}",
    "autoattack": "AutoAttack robust accuracy",
}
#: Each stage as the progress of a submission names it.
STAGE_LABELS: Final = {
    NORMALISATION: "Normalisation",
    "natural": "Natural",
    "fgsm": "FGSM",
    "pgd_linf": "PGD ℓ∞",
    "pgd_l2": "PGD ℓ2",
    "smoothing": "Certification",
    "autoattack": "AutoAttack",
}


def engine_stages(suite: Suite, *, certify: bool) -> list[str]:
    """The stages the engine runs and reports progress for, in order."""
    runs = {"smoothing": certify, "autoattack": suite.autoattack is not None}
    return [stage for stage in ENGINE_STAGES if runs.get(stage, True)]


def stages(suite: Suite, *, certify: bool) -> list[str]:
    """Every stage an evaluation reports, in order: the normalisation check, then the engine's."""
    return [NORMALISATION, *engine_stages(suite, certify=certify)]


#: The tail of each bound of a 95% interval, computed as it always was (``(1 - 0.95) / 2``
#: is not the float 0.025), so that stored intervals stay the same bit for bit.
CI95_TAIL: Final = (1 - 0.95) / 2


@overload
def clopper_pearson(successes: int, n: int, tail: float = CI95_TAIL) -> tuple[float, float]: ...
@overload
def clopper_pearson(
    successes: Sequence[int] | NDArray[np.integer], n: int, tail: float = CI95_TAIL
) -> tuple[NDArray[np.float64], NDArray[np.float64]]: ...
def clopper_pearson(
    successes: int | Sequence[int] | NDArray[np.integer], n: int, tail: float = CI95_TAIL
) -> tuple[float, float] | tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Exact (Clopper–Pearson) binomial bounds (low, high) for ``successes`` out of ``n``.

    Each bound holds with probability at least 1 − ``tail``, so [low, high] is a
    (1 − 2·tail) interval; the default gives the 95% interval every accuracy reports, and
    ``low`` alone at ``tail=α`` is the one-sided bound on p_A that certification uses.
    Elementwise over an array of ``successes``. Beta quantiles straight from
    ``scipy.special``: the same values, bit for bit, as statsmodels'
    ``proportion_confint(count, n, alpha=2 * tail, method="beta")`` and, at the default
    tail, as ``scipy.stats.beta.ppf`` (tests check), without importing either (about a
    second of start-up).
    """
    import numpy as np
    from scipy.special import betainccinv, betaincinv  # here: most importers never need it

    k = np.asarray(successes)  # n = 0 gives [0, 1]: no quantile is used then
    with np.errstate(invalid="ignore"):  # nor at k = 0 (low) and k = n (high)
        low = np.where(k > 0, betaincinv(k, n - k + 1, tail), 0.0)
        high = np.where(k < n, betainccinv(k + 1, n - k, tail), 1.0)
    if low.ndim == 0:
        return float(low), float(high)
    return low, high
