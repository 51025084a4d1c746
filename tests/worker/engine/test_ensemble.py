"""The ensemble's cascade: each attack runs only on the images the attacks before it left
standing, and the worst case is what an image-by-image minimum over all of them gives."""

import torch

from worker.engine.classifier import Classifier, frozen
from worker.engine.ensemble import Ensemble, left_after, worst_case
from worker.engine.suites import PGDParams, ThreatModel, get_suite

from .toys import exact_robust_accuracy, linear_problem


def test_each_attack_runs_on_what_the_ones_before_it_left_standing():
    model, images, labels = linear_problem(n=300, seed=1)
    params = get_suite("class").pgd_linf
    judge = Classifier(model)
    torch.manual_seed(0)
    with frozen(model):
        clean = judge.correct(images, labels)
        scores = Ensemble(judge, params)(images, labels, clean)
    assert list(scores) == ["pgd_ce", "pgd_margin", "pgd_targeted", "noise"]
    left = clean.clone()
    for name, s in scores.items():
        assert torch.equal(s.ran, left > 0), f"{name} ran on other images than those left standing"
        assert (s.own[~s.ran] == 0).all()
        left = torch.minimum(left, s.own)
    assert scores["pgd_ce"].ran.all()  # the first attack sees every clean-correct image
    assert 0 < scores["noise"].ran.sum() < len(images)
    exact = exact_robust_accuracy(model, images, labels, params.eps, 1)
    worst = worst_case(scores)
    assert torch.equal(worst, left)
    assert exact - 1e-9 <= float(worst.double().mean()) <= exact + 0.01
    figures = list(left_after(scores).values())
    assert figures == sorted(figures, reverse=True) and figures[-1] == float(worst.double().mean())


def test_a_model_broken_by_the_first_attack_costs_the_others_nothing():
    model, images, labels = linear_problem(n=64, seed=2, confidence=1.0)
    huge = PGDParams(ThreatModel.LINF, eps=0.5, step_size=0.1, steps=20)
    judge = Classifier(model)
    attacks = Ensemble(judge, huge)
    first = attacks._attacks
    images_seen, seen_before = [0], {}
    model.register_forward_hook(
        lambda module, args, out: images_seen.__setitem__(0, images_seen[0] + len(args[0]))
    )

    def counted(*args):
        for name, runs in first(*args):
            seen_before[name] = images_seen[0]
            yield name, runs

    attacks._attacks = counted
    with frozen(model):
        scores = attacks(images, labels, judge.correct(images, labels))
    assert scores["pgd_ce"].ran.all() and (scores["pgd_ce"].own == 0).all()
    for name in ("pgd_margin", "pgd_targeted", "noise"):
        assert not scores[name].ran.any(), name
    # No forward pass after the first attack's.
    assert seen_before["pgd_margin"] == seen_before["noise"] == images_seen[0] > 0
