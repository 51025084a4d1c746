"""Adversarial images stay in [0, 1] and within the ε-ball, and fooled means fooled."""

import pytest
import torch

from worker.engine.balls import make_ball
from worker.engine.classifier import Classifier
from worker.engine.fgsm import FGSM
from worker.engine.noise import Noise
from worker.engine.pgd import PGD
from worker.engine.suites import Loss, ThreatModel

from .toys import trained_cnn


def _images():
    model, images, labels = trained_cnn()
    images = images[:32].clone()
    images[:8] = (images[:8] > 0.5).float()  # pixels at exactly 0 and 1
    return model, images, labels[:32]


def _check(result, images, labels, model, ball):
    adv = result.adversarial
    assert adv.min() >= 0 and adv.max() <= 1
    assert (ball.distance(adv, images) <= ball.eps * (1 + 1e-5) + 1e-7).all()
    with torch.no_grad():
        wrong = model(adv).argmax(dim=1) != labels
    assert wrong[result.correct == 0].all(), "an image reported fooled must be misclassified"


@pytest.mark.parametrize(("threat", "eps", "step"), [("linf", 8 / 255, 2 / 255), ("l2", 1.0, 0.2)])
@pytest.mark.parametrize("loss", [Loss.CE, Loss.MARGIN])
def test_pgd_stays_in_the_ball_and_in_the_unit_box(threat, eps, step, loss):
    torch.manual_seed(0)
    model, images, labels = _images()
    ball = make_ball(ThreatModel(threat), eps)
    result = PGD(Classifier(model), ball, steps=10, step_size=step, loss=loss)(images, labels)
    _check(result, images, labels, model, ball)
    assert result.fooled.any()


@pytest.mark.parametrize(("threat", "eps"), [("linf", 8 / 255), ("l2", 0.5)])
def test_noise_and_fgsm_stay_in_the_ball(threat, eps):
    torch.manual_seed(0)
    model, images, labels = _images()
    ball = make_ball(ThreatModel(threat), eps)
    _check(Noise(Classifier(model), ball, draws=20)(images, labels), images, labels, model, ball)
    linf = make_ball(ThreatModel.LINF, 8 / 255)
    fgsm = FGSM(Classifier(model), eps=8 / 255)(images, labels)
    _check(fgsm, images, labels, model, linf)


def test_random_starts_and_surface_draws_respect_the_ball():
    torch.manual_seed(0)
    images = torch.rand(16, 3, 32, 32)
    images[:4] = 0.0
    for ball in (make_ball(ThreatModel.LINF, 8 / 255), make_ball(ThreatModel.L2, 0.5)):
        for point in (ball.random_start(images), ball.surface(images)):
            assert point.min() >= 0 and point.max() <= 1
            assert (ball.distance(point, images) <= ball.eps * (1 + 1e-5)).all()
