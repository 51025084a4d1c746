"""From a loaded checkpoint to the normalisation it is evaluated with, its evidence, or a stop."""

import pytest
import torch

from models.architectures.catalog import CIFAR10_MEAN, CIFAR10_STD, HALF, IDENTITY_MEAN, IDENTITY_STD
from models.architectures.normalization import Normalized
from models.checkpoints.loading import LoadedModel
from tests.worker.engine.test_normalisation import CIFAR, NONE, Brightness, brightness_images
from worker.engine.suites import get_suite
from worker.normalisation import (
    NormalisationRejected,
    candidates,
    flags,
    settle_normalisation,
)

SUITE = get_suite("smoke")


def loaded(net, mean=HALF, std=HALF, declared=False) -> LoadedModel:
    """A ``lenet``-like entry whose default is (0.5, 0.5, 0.5), as intake builds it."""
    notes = [f"input normalisation mean={mean}, std={std} (default for lenet)"]
    return LoadedModel(
        Normalized(net, mean, std),
        None,
        "lenet",
        notes,
        mean,
        std,
        default_mean=HALF,
        default_std=HALF,
        declared=declared,
    )


def names(found):
    return [c.name for c in found[0]], found[1]


def test_candidates_and_the_one_in_force():
    net = Brightness(NONE)
    everything = ["none", "default", "cifar10", "cifar10-kuangliu", "imagenet", "half"]
    assert names(candidates(loaded(net))) == (everything, "default")
    declared = loaded(net, CIFAR10_MEAN, CIFAR10_STD, declared=True)
    assert names(candidates(declared)) == (everything, "cifar10")
    custom = loaded(net, (0.1, 0.2, 0.3), (0.3, 0.3, 0.3), declared=True)
    assert names(candidates(custom)) == ([*everything, "declared"], "declared")


def test_an_undeclared_network_is_switched_to_the_normalisation_it_was_trained_with():
    images, labels = brightness_images(300)
    before = loaded(Brightness(CIFAR))
    after, record = settle_normalisation(before, images, labels, SUITE, device=torch.device("cpu"))
    assert (after.mean, after.std) == (CIFAR10_MEAN, CIFAR10_STD)
    assert after.notes[-1].endswith("(inferred from natural accuracy: CIFAR-10 statistics)")
    assert len([n for n in after.notes if n.startswith("input normalisation")]) == 1
    with torch.inference_mode():
        assert (after.model(images).argmax(1) == labels).all()
    assert record["inferred"] and record["chosen"] == "cifar10" and record["n"] == 300
    assert record["verdict"] == "switched" and record["test"]["alpha"] == 0.001
    assert (
        "CIFAR-10 statistics (mean 0.4914, 0.4822, 0.4465, std 0.247, 0.2435, 0.2616) is "
        "100.0% accurate on the first 300 images" in record["summary"]
    )
    assert flags(record) == [{"code": "normalisation_inferred", "message": record["summary"]}]


def test_a_beaten_declaration_stops_with_both_accuracies_unless_insisted_on():
    images, labels = brightness_images(300)
    wrong = loaded(Brightness(NONE), HALF, HALF, declared=True)
    with pytest.raises(NormalisationRejected) as stop:
        settle_normalisation(wrong, images, labels, SUITE, device=torch.device("cpu"))
    message = str(stop.value)
    assert "declared input normalisation (mean 0.5, 0.5, 0.5, std 0.5, 0.5, 0.5) gives" in message
    assert "while no normalisation (mean 0, 0, 0, std 1, 1, 1) gives 100.0%" in message
    assert "Resubmit with mean=0,0,0 and std=1,1,1, or with normalisation=as-declared" in message
    kept, record = settle_normalisation(
        wrong, images, labels, SUITE, mode="as-declared", device=torch.device("cpu")
    )
    assert kept is wrong and record["verdict"] == "insisted" and not record["inferred"]
    assert flags(record) == [] and "as the upload insisted" in record["summary"]


def test_a_right_default_is_kept():
    images, labels = brightness_images(300)
    model = loaded(Brightness(NONE), IDENTITY_MEAN, IDENTITY_STD)
    model.default_mean, model.default_std = IDENTITY_MEAN, IDENTITY_STD
    kept, record = settle_normalisation(model, images, labels, SUITE, device=torch.device("cpu"))
    assert kept is model and record["verdict"] == "kept" and record["chosen"] == "default"
