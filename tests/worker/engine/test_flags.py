"""Gradient-masking flags fire on clear gaps between attacks, not on noise."""

import torch

from worker.engine.ensemble import AttackScores
from worker.engine.flags import masking_flags


def _codes(flags):
    return {f["code"] for f in flags}


def _everywhere(scores: dict[str, torch.Tensor]) -> dict[str, AttackScores]:
    return {name: AttackScores.everywhere(s) for name, s in scores.items()}


def test_noise_and_surrogate_beating_pgd_are_flagged():
    robust = torch.ones(1000)
    broken = robust.clone()
    broken[:200] = 0
    scores = _everywhere({"pgd_ce": robust, "noise": broken, "surrogate": broken, "fgsm": broken})
    flags = masking_flags("pgd_linf", scores, direct=robust, margin=0.005)
    assert _codes(flags) == {
        "noise_beats_gradient_attack",
        "surrogate_beats_direct_attack",
        "iterative_weaker_than_single_step",
    }
    assert all(f["message"].startswith("pgd_linf: ") for f in flags)
    noise = next(f for f in flags if f["code"] == "noise_beats_gradient_attack")
    assert "breaks 20.0% of the images" in noise["message"] and "100.0% robust" in noise["message"]


def test_a_gap_of_a_few_images_or_pure_estimation_noise_is_not_flagged():
    direct = torch.ones(1000)
    noise = direct.clone()
    noise[:3] = 0
    assert masking_flags("pgd_l2", _everywhere({"noise": noise}), direct=direct, margin=0.005) == []
    g = torch.Generator().manual_seed(0)
    estimate = torch.rand(64, generator=g)
    other = (estimate + 0.3 * (torch.rand(64, generator=g) - 0.5)).clamp(0, 1)
    flags = masking_flags("pgd_l2", _everywhere({"noise": other}), direct=estimate, margin=0.005)
    assert flags == []


def test_only_the_images_an_attack_ran_on_count_towards_its_gap():
    # The surrogate broke the first half, which PGD on the model left robust; noise, run
    # after it, ran on the second half only and broke nothing there. Its zeros where it did
    # not run are not noise beating the gradient attacks.
    direct = torch.ones(1000)
    ran = torch.arange(1000) >= 500
    spared = AttackScores(ran.float(), ran)
    assert masking_flags("pgd_l2", {"noise": spared}, direct=direct, margin=0.005) == []
    own = ran.float()
    own[500:600] = 0
    flags = masking_flags("pgd_l2", {"noise": AttackScores(own, ran)}, direct=direct, margin=0.005)
    assert _codes(flags) == {"noise_beats_gradient_attack"}
    assert "breaks 10.0% of the images" in flags[0]["message"]
    # A stochastic model's fresh estimates on the images left standing: no gap on average.
    g = torch.Generator().manual_seed(1)
    estimate = 0.2 + 0.6 * torch.rand(1000, generator=g)
    fresh = (estimate + 0.3 * (torch.rand(1000, generator=g) - 0.5)).clamp(0, 1)
    standing = AttackScores(fresh, torch.ones(1000, dtype=torch.bool))
    assert masking_flags("pgd_l2", {"noise": standing}, direct=estimate, margin=0.005) == []
