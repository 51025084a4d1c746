"""Gradient-masking flags fire on clear gaps between attacks, not on noise."""

import torch

from worker.engine.flags import masking_flags


def _codes(flags):
    return {f["code"] for f in flags}


def test_noise_and_surrogate_beating_pgd_are_flagged():
    robust = torch.ones(1000)
    broken = robust.clone()
    broken[:200] = 0
    scores = {"pgd_ce": robust, "noise": broken, "surrogate": broken, "fgsm": broken}
    flags = masking_flags("pgd_linf", scores, direct=robust, margin=0.005)
    assert _codes(flags) == {
        "noise_beats_gradient_attack",
        "surrogate_beats_direct_attack",
        "iterative_weaker_than_single_step",
    }
    assert all(f["message"].startswith("pgd_linf: ") for f in flags)
    noise = next(f for f in flags if f["code"] == "noise_beats_gradient_attack")
    assert "80.0%" in noise["message"] and "100.0%" in noise["message"]


def test_a_gap_of_a_few_images_or_pure_estimation_noise_is_not_flagged():
    direct = torch.ones(1000)
    noise = direct.clone()
    noise[:3] = 0
    assert masking_flags("pgd_l2", {"noise": noise}, direct=direct, margin=0.005) == []
    g = torch.Generator().manual_seed(0)
    estimate = torch.rand(64, generator=g)
    other = (estimate + 0.3 * (torch.rand(64, generator=g) - 0.5)).clamp(0, 1)
    flags = masking_flags("pgd_l2", {"noise": other}, direct=estimate, margin=0.005)
    assert flags == []
