"""The engine's entry point: result shape, reproducibility, progress and model probes."""

import dataclasses
import json

import pytest
import torch
from torch import nn

from worker.engine.evaluate import evaluate
from worker.engine.protocol import NORMALISATION, SUITES, engine_stages, get_suite

from .toys import linear_problem, trained_cnn

METRIC_KEYS = {"accuracy", "ci95", "n", "params"}


def test_results_are_json_with_intervals_and_the_suite_recorded():
    model, images, labels = trained_cnn()
    suite = get_suite("smoke")
    result = evaluate(model, images, labels, suite, seed=0)
    assert json.loads(json.dumps(result)) == result
    assert result["suite"] == suite.to_dict()
    for key in ("natural", "fgsm", "pgd_linf", "pgd_l2"):
        metric = result[key]
        assert set(metric) >= METRIC_KEYS
        lo, hi = metric["ci95"]
        assert 0 <= lo <= metric["accuracy"] <= hi <= 1
        assert metric["n"] == len(images)
    assert result["pgd_linf"]["params"]["eps"] == pytest.approx(8 / 255)
    assert list(result["pgd_linf"]["attacks"]) == ["fgsm", "pgd_ce", "pgd_margin", "pgd_targeted", "noise"]
    for key in ("pgd_linf", "pgd_l2"):  # what is left after each attack and the ones before it
        left = list(result[key]["attacks"].values())
        assert left == sorted(left, reverse=True) and left[-1] == result[key]["accuracy"]
    assert result["pgd_linf"]["accuracy"] <= result["fgsm"]["accuracy"]
    assert result["pgd_l2"]["accuracy"] <= result["natural"]["accuracy"]
    assert "smoothing" not in result and "autoattack" not in result
    assert result["model"] == {
        "stochastic": False,
        "outputs": "logits",
        "draws": {"gradient": 1, "accuracy": 1},
        "num_classes": 10,
        "zero_gradient_fraction": 0.0,
    }


def test_the_same_model_twice_gives_identical_results_and_leaves_no_trace():
    model, images, labels = trained_cnn()
    suite = dataclasses.replace(get_suite("smoke"), images=32)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = evaluate(model, images, labels, suite, sigma=0.25, seed=7)
    assert torch.equal(torch.get_rng_state(), state), "the caller's random state is restored"
    second = evaluate(model, images, labels, suite, sigma=0.25, seed=7)
    assert first == second


def test_progress_moves_stage_by_stage_and_weights_stay_trainable():
    model, images, labels = linear_problem(n=40)
    calls = []
    evaluate(
        model,
        images,
        labels,
        get_suite("smoke"),
        sigma=0.25,
        progress=lambda stage, done, total: calls.append((stage, done, total)),
    )
    stages = list(dict.fromkeys(stage for stage, _, _ in calls))
    assert stages == ["natural", "fgsm", "pgd_linf", "pgd_l2", "smoothing"]
    for stage in stages:
        done = [d for s, d, _ in calls if s == stage]
        assert done == sorted(done) and done[-1] == [t for s, _, t in calls if s == stage][0]
    assert all(p.requires_grad for p in model.parameters())


class _Softmax(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        return torch.softmax(self.model(x), dim=1)


def test_probability_outputs_are_flagged_and_attacked_through_their_logarithm():
    model, images, labels = linear_problem(n=100, confidence=2.0)
    suite = dataclasses.replace(get_suite("smoke"), images=None)
    logits = evaluate(model, images, labels, suite, seed=0)
    probabilities = evaluate(_Softmax(model), images, labels, suite, seed=0)
    assert probabilities["model"]["outputs"] == "probabilities"
    assert "probability_outputs" in {f["code"] for f in probabilities["flags"]}
    for key in ("pgd_linf", "pgd_l2"):
        assert probabilities[key]["accuracy"] == pytest.approx(logits[key]["accuracy"], abs=0.02)
        assert probabilities[key]["accuracy"] < 0.9


class _Quantised(nn.Module):
    """Rounds pixels to 8 bits first: a gradient of exactly zero almost everywhere."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(torch.round(x * 255) / 255)


def test_zero_gradients_are_flagged_and_noise_still_measures_something():
    model, images, labels = trained_cnn()
    result = evaluate(_Quantised(model), images, labels, get_suite("smoke"), seed=0)
    assert result["model"]["zero_gradient_fraction"] == 1.0
    assert "zero_gradients" in {f["code"] for f in result["flags"]}
    assert result["pgd_linf"]["attacks"]["pgd_ce"] == result["natural"]["accuracy"]


def test_robustbench_suite_adds_autoattack_for_both_norms():
    model, images, labels = linear_problem(n=8, confidence=1.0)
    bench = get_suite("robustbench")
    quick = {"steps": 5, "restarts": 1, "targets": 1}
    # Budgets that break every image early keep Square's 5000 queries out of the test.
    suite = dataclasses.replace(
        bench,
        pgd_linf=dataclasses.replace(bench.pgd_linf, **quick),
        pgd_l2=dataclasses.replace(bench.pgd_l2, **quick),
        autoattack=dataclasses.replace(bench.autoattack, linf_eps=32 / 255, l2_eps=4.0),
    )
    calls = []
    result = evaluate(
        model, images, labels, suite, seed=0, progress=lambda stage, done, total: calls.append(stage)
    )
    autoattack = result["autoattack"]
    assert calls[-1] == "autoattack"
    assert set(autoattack["threats"]) == {"linf", "l2"}
    assert autoattack["accuracy"] == autoattack["threats"]["linf"]["accuracy"]
    assert autoattack["params"]["version"] == "standard"
    assert autoattack["params"]["linf_eps"] == 32 / 255
    assert autoattack["accuracy"] == 0.0 and autoattack["threats"]["l2"]["accuracy"] == 0.0
    assert autoattack["n"] == 8
    assert not model.training, "AutoAttack must leave the model in eval mode"


def test_an_empty_batch_or_a_bad_sigma_is_refused():
    model, images, labels = linear_problem(n=4)
    with pytest.raises(ValueError):
        evaluate(model, images[:0], labels[:0], get_suite("smoke"))
    with pytest.raises(ValueError):
        evaluate(model, images, labels, get_suite("smoke"), sigma=0.0)


@pytest.mark.parametrize("suite_name", sorted(SUITES))
@pytest.mark.parametrize("sigma", [None, 0.25])
def test_declared_stage_order_is_the_order_the_engine_reports(suite_name, sigma):
    """The runner announces the protocol's stages before the child starts; the page marks
    earlier stages done from them, so they must be what the engine really runs, in order."""
    from server.state.tables import Evaluation, Submission
    from worker.runner import stages_for

    model, images, labels = linear_problem(n=2, confidence=1.0)
    suite = get_suite(suite_name)
    quick = {"steps": 2, "restarts": 1, "targets": 1}
    suite = dataclasses.replace(  # same stages, small budgets that break every image early
        suite,
        pgd_linf=dataclasses.replace(suite.pgd_linf, **quick),
        pgd_l2=dataclasses.replace(suite.pgd_l2, **quick),
        smoothing=dataclasses.replace(suite.smoothing, n0=16, n=64, predict_n=32, images=2),
    )
    if suite.autoattack is not None:
        suite = dataclasses.replace(
            suite, autoattack=dataclasses.replace(suite.autoattack, linf_eps=32 / 255, l2_eps=4.0)
        )
    seen: list[str] = []

    def progress(stage: str, done: int, total: int) -> None:
        if not seen or seen[-1] != stage:
            seen.append(stage)

    evaluate(model, images, labels, suite, sigma=sigma, seed=0, progress=progress)
    assert seen == engine_stages(suite, certify=sigma is not None)
    evaluation = Evaluation(suite=suite_name, submission=Submission(sigma=sigma))
    assert stages_for(evaluation) == [NORMALISATION, *seen]


def test_the_runner_announces_smoothing_before_autoattack():
    from server.state.tables import Evaluation, Submission
    from worker.runner import stages_for

    evaluation = Evaluation(suite="robustbench", submission=Submission(sigma=0.25))
    assert stages_for(evaluation) == [
        "normalisation",
        "natural",
        "fgsm",
        "pgd_linf",
        "pgd_l2",
        "smoothing",
        "autoattack",
    ]
