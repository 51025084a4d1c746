"""The normalisation rule: exact McNemar at α = 0.001 and a 5-point gain, on exact toy answers."""

import pytest
import torch
from scipy.stats import binomtest
from torch import Tensor, nn

from worker.engine.normalisation import (
    Candidate,
    Verdict,
    check_normalisation,
    decide,
    exact_mcnemar,
    out_of_reach,
)
from worker.engine.suites import NormalisationParams

PARAMS = NormalisationParams()
NONE = Candidate("none", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
HALF = Candidate("half", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
CIFAR = Candidate("cifar10", (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))


def hits(right: int, n: int) -> Tensor:
    return torch.arange(n) < right


def test_exact_mcnemar_is_the_binomial_test_on_discordant_images():
    reference = torch.tensor([True] * 50 + [False] * 50)
    candidate = torch.tensor([True] * 48 + [False] * 2 + [True] * 20 + [False] * 30)
    gained, lost, p_value = exact_mcnemar(reference, candidate)
    assert (gained, lost) == (20, 2)
    assert p_value == pytest.approx(binomtest(2, 22, 0.5).pvalue)
    assert exact_mcnemar(reference, reference) == (0, 0, 1.0)


def test_exact_mcnemar_agrees_with_statsmodels_on_every_split_of_up_to_120_discordant_images():
    from statsmodels.stats.contingency_tables import mcnemar

    for discordant in range(0, 121, 7):
        for gained in range(discordant + 1):
            lost = discordant - gained
            candidate = torch.tensor([True] * gained + [False] * lost + [True] * 5)
            reference = torch.tensor([False] * gained + [True] * lost + [True] * 5)
            expected = min(1.0, float(mcnemar([[5, lost], [gained, 0]], exact=True).pvalue))
            assert exact_mcnemar(reference, candidate) == pytest.approx((gained, lost, expected), rel=1e-12)


def verdict(base: Tensor, other: Tensor, *, declared: bool = False, insist: bool = False):
    correct = {"half": base, "none": other}
    return decide(correct, [NONE, HALF], "half", declared=declared, insist=insist, params=PARAMS)


def test_with_nothing_declared_a_significantly_better_candidate_is_chosen():
    decision = verdict(hits(100, 1000), hits(600, 1000))
    assert decision.verdict == Verdict.SWITCHED and decision.chosen == NONE
    assert decision.best is not None and decision.best.p_value < 1e-100
    assert decision.accuracy(NONE) == 0.6 and decision.accuracy(HALF) == 0.1


def test_a_declared_normalisation_that_is_beaten_stops_unless_insisted_on():
    base, better = hits(100, 1000), hits(600, 1000)
    assert verdict(base, better, declared=True).verdict == Verdict.STOPPED
    insisted = verdict(base, better, declared=True, insist=True)
    assert insisted.verdict == Verdict.INSISTED and insisted.chosen == HALF


def test_significant_but_under_five_points_keeps_the_one_in_force():
    # 49 images gained, none lost, on 1000: p ≈ 3.6e-15 but only 4.9 points.
    decision = verdict(hits(500, 1000), hits(549, 1000))
    assert decision.best is None and decision.verdict == Verdict.KEPT
    assert decision.comparisons[0].p_value < 1e-10
    assert verdict(hits(500, 1000), hits(550, 1000)).verdict == Verdict.SWITCHED  # exactly 5


def test_five_points_that_are_not_significant_keep_the_one_in_force():
    # 40 images: 3 more right (7.5 points) with 3 gained and 0 lost is p = 0.25.
    decision = verdict(hits(20, 40), hits(23, 40))
    assert decision.verdict == Verdict.KEPT and decision.comparisons[0].p_value == 0.25


def test_near_chance_everywhere_keeps_the_default():
    generator = torch.Generator().manual_seed(0)
    base = torch.rand(1000, generator=generator) < 0.1
    other = torch.rand(1000, generator=generator) < 0.12
    assert verdict(base, other).verdict == Verdict.KEPT


class Brightness(nn.Module):
    """Class k for images of uniform brightness (k + 0.5) / 10, as a network trained with
    ``trained`` normalisation would see them: exact under it, wrong under the others."""

    def __init__(self, trained: Candidate) -> None:
        super().__init__()
        levels = (torch.arange(10) + 0.5) / 10
        self.register_buffer("targets", (levels - trained.mean[0]) / trained.std[0])
        self.calls = 0

    def forward(self, z: Tensor) -> Tensor:
        self.calls += len(z)
        return -((z[:, 0].mean(dim=(1, 2))[:, None] - self.targets) ** 2)


def brightness_images(n: int) -> tuple[Tensor, Tensor]:
    labels = torch.arange(n) % 10
    return ((labels + 0.5) / 10).view(n, 1, 1, 1).expand(n, 3, 32, 32).clone(), labels


def test_check_measures_each_distinct_candidate_once_on_the_first_k_images():
    images, labels = brightness_images(300)
    net, calls = Brightness(CIFAR), []
    default = Candidate("default", HALF.mean, HALF.std)  # lenet's default, the same as "half"
    decision = check_normalisation(
        net,
        images,
        labels,
        [NONE, default, CIFAR, HALF],
        "default",
        declared=False,
        insist=False,
        params=NormalisationParams(images=256),
        batch_size=100,
        progress=lambda stage, done, total: calls.append((stage, done, total)),
    )
    assert decision.verdict == Verdict.SWITCHED and decision.chosen == CIFAR
    assert decision.n == 256 and decision.accuracy(CIFAR) == 1.0
    assert decision.accuracy(default) == decision.accuracy(HALF) < 0.5
    assert net.calls == 3 * 256 + 2 * 16  # and the channels-last probe: two passes of 16
    assert calls[0] == ("normalisation", 0, 768) and calls[-1] == ("normalisation", 768, 768)


def test_check_keeps_a_declaration_that_nothing_beats_and_stops_a_wrong_one():
    images, labels = brightness_images(40)  # fewer than K: the whole set
    net = Brightness(NONE)
    kept = check_normalisation(
        net, images, labels, [NONE, HALF], "none", declared=True, insist=False, params=PARAMS
    )
    assert kept.verdict == Verdict.KEPT and kept.n == 40
    stopped = check_normalisation(
        net, images, labels, [NONE, HALF], "half", declared=True, insist=False, params=PARAMS
    )
    assert stopped.verdict == Verdict.STOPPED and stopped.best.candidate == NONE


def test_a_candidate_is_out_of_reach_exactly_when_it_could_no_longer_gain_five_points():
    # 1000 images, the one in force right on 600: a candidate needs 650 (5 points) to beat it.
    assert not out_of_reach(150, 500, 1000, 600, PARAMS)  # 150 + 500 left = 650: still possible
    assert out_of_reach(149, 500, 1000, 600, PARAMS)
    assert out_of_reach(0, 0, 1000, 951, PARAMS)  # over 95% in force: nothing can beat it
    assert not out_of_reach(0, 0, 1000, 950, PARAMS)


def test_stopping_out_of_reach_candidates_early_decides_as_measuring_everything():
    # Random per-image outcomes of every strength: the check (stopping candidates out of reach
    # after each batch of 50) and the rule on complete measurements agree on every verdict.
    generator = torch.Generator().manual_seed(0)
    names, stopped, verdicts = ["half", "none", "cifar10"], 0, set()
    for _ in range(300):
        rates = torch.rand(3, generator=generator)
        outcomes = {n: torch.rand(400, generator=generator) < r for n, r in zip(names, rates, strict=True)}
        images, labels = scripted_images(400)
        checked = check_normalisation(
            Scripted(outcomes), images, labels, [NONE, HALF, CIFAR], "half",
            declared=False, insist=False, params=PARAMS, batch_size=50,
        )  # fmt: skip
        complete = decide(outcomes, [NONE, HALF, CIFAR], "half", declared=False, insist=False, params=PARAMS)
        assert (checked.verdict, checked.chosen, checked.best) == (
            complete.verdict,
            complete.chosen,
            complete.best,
        )
        verdicts.add(checked.verdict)
        reference = complete.correct(HALF)
        for found in checked.comparisons:
            whole = complete.comparison(found.candidate)
            if found.measured == 400:
                assert found == whole
                continue
            # Measured in whole batches until the first one after which it was out of reach,
            # and indeed never beating the one in force.
            stopped += 1
            script = outcomes[found.candidate.name]
            assert found.measured % 50 == 0 and not whole.beats
            assert found.correct == int(script[: found.measured].sum())
            # Out of reach: right on all 400 - measured images left, it gains under 20 (5 points).
            assert found.correct + (400 - found.measured) - reference < 20
            if found.measured:
                before = found.measured - 50
                assert int(script[:before].sum()) + (400 - before) - reference >= 20
    assert stopped > 100 and verdicts == {Verdict.KEPT, Verdict.SWITCHED}


def test_a_well_trained_network_is_measured_only_under_the_normalisation_in_force():
    images, labels = brightness_images(300)
    net, calls = Brightness(CIFAR), []
    decision = check_normalisation(
        net,
        images,
        labels,
        [NONE, CIFAR, HALF],
        "cifar10",
        declared=True,
        insist=False,
        params=NormalisationParams(images=256),
        batch_size=100,
        progress=lambda stage, done, total: calls.append((stage, done, total)),
    )
    assert decision.verdict == Verdict.KEPT and decision.accuracy(CIFAR) == 1.0
    assert net.calls == 256 + 2 * 16  # the one in force, and the channels-last probe
    assert [decision.comparison(c).measured for c in (NONE, HALF)] == [0, 0]
    assert decision.accuracy(NONE) is None
    assert calls[-1] == ("normalisation", 768, 768)


def test_the_rule_refuses_a_short_measurement_that_could_still_beat():
    with pytest.raises(ValueError, match="within reach"):
        verdict(hits(100, 1000), hits(100, 500))


class Scripted(nn.Module):
    """Right or wrong on image i under each candidate as ``outcomes[name][i]`` says: the
    image's first pixel holds i, and the candidate's mean tells which script to follow."""

    def __init__(self, outcomes: dict[str, Tensor]) -> None:
        super().__init__()
        self.outcomes = outcomes
        self.by_mean = {NONE.mean[0]: "none", HALF.mean[0]: "half", CIFAR.mean[0]: "cifar10"}

    def forward(self, z: Tensor) -> Tensor:
        # z = (x - mean) / std with x[..., 0, 0] = i / 1000: recover i under each candidate.
        out = torch.zeros(len(z), 10)
        for candidate in (NONE, HALF, CIFAR):
            index = torch.round((z[:, 0, 0, 0] * candidate.std[0] + candidate.mean[0]) * 1000).long()
            ok = (
                (index >= 0)
                & (index < 400)
                & (z[:, 0, 1, 1] * candidate.std[0] + candidate.mean[0] - 0.25).abs().lt(1e-4)
            )
            if ok.all():
                right = self.outcomes[self.by_mean[candidate.mean[0]]][index]
                out[torch.arange(len(z)), torch.where(right, 0, 1)] = 1.0
                return out
        raise AssertionError("no candidate fits")


def scripted_images(n: int) -> tuple[Tensor, Tensor]:
    images = torch.full((n, 3, 32, 32), 0.25)
    images[:, 0, 0, 0] = torch.arange(n) / 1000
    return images, torch.zeros(n, dtype=torch.long)
