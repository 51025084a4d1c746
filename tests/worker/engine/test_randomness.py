"""Models that stay random in eval mode, and gradients shattered by hard sampling."""

import dataclasses

import torch

from worker.engine.balls import make_ball
from worker.engine.classifier import Classifier
from worker.engine.evaluate import evaluate
from worker.engine.pgd import PGD
from worker.engine.suites import DrawParams, Loss, get_suite

from .toys import Noisy, Shattered, exact_robust_accuracy, linear_problem, trained_cnn


def test_a_stochastic_model_is_flagged_and_eot_attacks_it_harder():
    model, images, labels = trained_cnn()
    noisy = Noisy(model, noise=0.1, keep=0.5)
    smoke = dataclasses.replace(get_suite("smoke"), images=32)
    results = {}
    for draws in (1, 6):
        suite = dataclasses.replace(smoke, draws=DrawParams(gradient=draws, accuracy=8))
        results[draws] = evaluate(noisy, images, labels, suite, seed=0)
    eot = results[6]
    assert eot["model"]["stochastic"] is True
    assert eot["model"]["draws"] == {"gradient": 6, "accuracy": 8}
    stochastic = [f for f in eot["flags"] if f["code"] == "stochastic"]
    assert stochastic and "6 draws" in stochastic[0]["message"]
    for key in ("pgd_linf", "fgsm"):
        assert eot[key]["accuracy"] < results[1][key]["accuracy"] - 0.05


def test_the_ensemble_sees_through_gradients_shattered_by_hard_sampling():
    linear, images, labels = linear_problem(n=160, seed=0, confidence=1.0)
    model = Shattered(linear)
    suite = dataclasses.replace(get_suite("class"), images=None)
    result = evaluate(model, images, labels, suite, surrogate=model.relaxed(), seed=0)
    codes = {f["code"] for f in result["flags"]}
    assert {"zero_gradients", "surrogate_beats_direct_attack"} <= codes
    for key, params, dual in (("pgd_linf", suite.pgd_linf, 1), ("pgd_l2", suite.pgd_l2, 2)):
        truth = exact_robust_accuracy(linear, images, labels, params.eps, dual)
        attacks = result[key]["attacks"]
        assert abs(result[key]["accuracy"] - truth) <= 0.03
        assert attacks["surrogate"] <= truth + 0.03
        for direct in ("pgd_ce", "pgd_margin", "pgd_targeted"):
            assert attacks[direct] > truth + 0.3, f"{key} {direct} should be fooled by the masking"
        # Expectation over Transformation alone does not help either.
        torch.manual_seed(0)
        eot = Classifier(model, stochastic=True, draws=8)
        pgd = PGD(
            eot,
            make_ball(params.threat, params.eps),
            steps=params.steps,
            step_size=params.step_size,
            loss=Loss.MARGIN,
        )
        assert (pgd(images, labels).correct > 0).double().mean() > truth + 0.3
