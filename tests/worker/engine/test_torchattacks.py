"""Cross-check against torchattacks, the reference implementation, at equal budgets."""

import dataclasses

import torch
import torchattacks

from worker.engine.classifier import Classifier
from worker.engine.evaluate import evaluate
from worker.engine.fgsm import FGSM
from worker.engine.suites import PGDParams, ThreatModel, get_suite

from .toys import trained_cnn

LINF = PGDParams(ThreatModel.LINF, eps=8 / 255, step_size=2 / 255, steps=10, targets=1)
L2 = PGDParams(ThreatModel.L2, eps=1.0, step_size=0.2, steps=10, targets=1)


def _accuracy(model, images, labels):
    with torch.no_grad():
        return (model(images).argmax(dim=1) == labels).float().mean().item()


def test_fgsm_gives_the_same_images_as_torchattacks():
    model, images, labels = trained_cnn()
    ours = FGSM(Classifier(model), eps=8 / 255)(images, labels).adversarial
    theirs = torchattacks.FGSM(model, eps=8 / 255)(images, labels)
    assert torch.equal(ours, theirs)


def test_pgd_is_never_weaker_than_torchattacks_at_the_same_budget():
    model, images, labels = trained_cnn()
    suite = dataclasses.replace(get_suite("smoke"), images=None, pgd_linf=LINF, pgd_l2=L2)
    result = evaluate(model, images, labels, suite, seed=0)
    torch.manual_seed(0)
    linf = torchattacks.PGD(model, eps=LINF.eps, alpha=LINF.step_size, steps=LINF.steps)
    l2 = torchattacks.PGDL2(model, eps=L2.eps, alpha=L2.step_size, steps=L2.steps)
    theirs_linf = _accuracy(model, linf(images, labels), labels)
    theirs_l2 = _accuracy(model, l2(images, labels), labels)
    assert 0.1 < theirs_linf < 0.9 and 0.1 < theirs_l2 < 0.9, "budgets should be informative"
    assert result["pgd_linf"]["accuracy"] <= theirs_linf
    assert result["pgd_l2"]["accuracy"] <= theirs_l2
    assert result["fgsm"]["accuracy"] == _accuracy(
        model, torchattacks.FGSM(model, eps=8 / 255)(images, labels), labels
    )
