"""Shortcuts in counting and ranking give the same answers as the plain computations."""

import torch
from torch import nn

from worker.engine.classifier import Classifier
from worker.engine.smoothing import Smooth, channels_last_agrees
from worker.engine.suites import Loss, ThreatModel
from worker.engine.targets import nearest_classes

from .toys import Noisy, small_cnn, trained_cnn

SIGMA = 0.25


def _certify(model: nn.Module, images: torch.Tensor, **options) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return Smooth(model, 10, SIGMA, **options).certify(images, 100, 1000, 0.001, 1000)


def test_channels_last_counting_leaves_predictions_and_radii_unchanged():
    model, images, _ = trained_cnn()
    assert channels_last_agrees(model, images, SIGMA)
    plain = _certify(model, images[:12])
    fast = _certify(model, images[:12], channels_last=True)
    assert torch.equal(plain[0], fast[0])
    assert torch.equal(plain[1], fast[1])
    assert (plain[1] > 0).sum() >= 4, "some images should be certified for the check to mean something"


class _Viewing(nn.Module):
    """A network whose ``view`` only works on contiguous activations, as old code often does."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.linear = nn.Linear(4 * 32 * 32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        return self.linear(h.view(len(h), -1))


def test_channels_last_is_not_used_where_the_network_rejects_it_or_is_random():
    _, images, _ = trained_cnn()
    assert not channels_last_agrees(_Viewing().eval(), images, SIGMA)
    assert not channels_last_agrees(Noisy(small_cnn()).eval(), images, SIGMA)


def test_predict_sharing_certify_draws_leaves_certify_unchanged():
    model, images, labels = trained_cnn()
    x = images[:8]
    alone = _certify(model, x)
    for predict_n in (400, 1500):
        torch.manual_seed(0)
        prediction, radius, guess = Smooth(model, 10, SIGMA).certify_and_predict(
            x, 100, 1000, 0.001, predict_n, 0.001, 1000
        )
        assert torch.equal(prediction, alone[0]) and torch.equal(radius, alone[1])
        answered = guess != Smooth.ABSTAIN
        assert answered.sum() >= 4
        assert (guess[answered] == prediction[answered]).float().mean() >= 0.9


def test_prefix_counts_are_the_first_draws_of_the_full_count():
    model, images, _ = trained_cnn()
    smooth = Smooth(model, 10, SIGMA)
    torch.manual_seed(0)
    counts, prefix = smooth._sample_noise(images[:5], 700, 256, 300)
    torch.manual_seed(0)
    alone, _ = smooth._sample_noise(images[:5], 300, 256)
    assert prefix is not None
    assert counts.sum(dim=1).tolist() == [700] * 5
    assert torch.equal(prefix, alone)
    assert (prefix <= counts).all()


def test_ranking_from_one_forward_pass_matches_one_pass_per_class():
    model, images, labels = trained_cnn()
    judge = Classifier(model)
    for threat, dual in ((ThreatModel.LINF, 1.0), (ThreatModel.L2, 2.0)):
        ranked = nearest_classes(judge, images, labels, 9, threat)
        logits = model(images).detach()
        distances = []
        for shift in range(1, 10):
            t = (labels + shift) % 10
            grad, _ = judge.gradient(images, labels, Loss.TARGETED, t)
            gap = logits.gather(1, labels[:, None]) - logits.gather(1, t[:, None])
            distances.append(gap.squeeze(1) / grad.flatten(1).norm(p=dual, dim=1).clamp_min(1e-12))
        order = torch.stack(distances).argsort(dim=0, stable=True)
        expected = (labels[None, :] + 1 + order) % 10
        assert (ranked == expected).float().mean() > 0.99
