"""The engine's entry point: one model, the evaluation images and a suite in; results out.

Stages run in a fixed order (``worker.engine.protocol.ENGINE_STAGES``), each
reseeded from ``seed`` so a stage's numbers do not depend on which stages ran before it, and
the caller's random state is restored afterwards. The same deterministic model with the same
images, suite and seed gives identical results.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from worker.engine.autoattack import autoattack, autoattack_version
from worker.engine.classifier import Classifier, frozen
from worker.engine.diagnosis import Diagnosis, Outputs, diagnose
from worker.engine.ensemble import Attack, AttackScores, Ensemble, direct_worst, left_after, worst_case
from worker.engine.fgsm import FGSM
from worker.engine.flags import autoattack_flag, masking_flags, model_flags
from worker.engine.memory import retain_freed_memory
from worker.engine.statistics import accuracy_metric
from worker.engine.suites import Loss, PGDParams, Suite, ThreatModel, params_dict

Progress = Callable[[str, int, int], None]
_SEED_OFFSETS = {
    "probe": 0,
    "natural": 1,
    "fgsm": 2,
    "pgd_linf": 3,
    "pgd_l2": 4,
    "smoothing": 5,
    "autoattack_linf": 6,
    "autoattack_l2": 7,
}


def evaluate(  # noqa: PLR0913 - the engine's entry: the data, then options by keyword
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    suite: Suite,
    *,
    sigma: float | None = None,
    surrogate: nn.Module | None = None,
    device: torch.device | str = "cpu",
    seed: int = 0,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Evaluate ``model`` on [0, 1] ``images`` (N, 3, H, W) with int64 ``labels`` (N,).

    The model (and surrogate) are moved to ``device`` and put in eval mode; their weights
    are frozen during the evaluation and restored after. On the CPU the process keeps freed
    memory for reuse (``worker.engine.memory``). Returns a JSON-serialisable dict
    (see the README's "Evaluation protocol"). Robust accuracies never exceed what the attacks failed to break:
    an image counts only if it was correct on the clean image and on every candidate tried.
    """
    if len(images) == 0 or len(images) != len(labels):
        raise ValueError("evaluate needs a non-empty batch of images with one label each")
    if sigma is not None and sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    device = torch.device(device)
    if device.type == "cpu":
        retain_freed_memory()
    if suite.images is not None:
        images, labels = images[: suite.images], labels[: suite.images]
    model = model.to(device).eval()
    if surrogate is not None:
        surrogate = surrogate.to(device).eval()
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), frozen(model, surrogate), _deterministic():
        run = _Evaluation(model, images, labels, suite, surrogate, device, seed, progress)
        return run.results(sigma)


@contextmanager
def _deterministic() -> Iterator[None]:
    """Deterministic cuDNN kernels for the evaluation's duration (same model, same numbers)."""
    cudnn = torch.backends.cudnn
    saved = cudnn.deterministic, cudnn.benchmark
    cudnn.deterministic, cudnn.benchmark = True, False
    try:
        yield
    finally:
        cudnn.deterministic, cudnn.benchmark = saved


class _Evaluation:
    """State shared by the stages of one evaluation."""

    def __init__(  # noqa: PLR0913 - evaluate()'s arguments, kept for every stage
        self,
        model: nn.Module,
        images: Tensor,
        labels: Tensor,
        suite: Suite,
        surrogate: nn.Module | None,
        device: torch.device,
        seed: int,
        progress: Progress | None,
    ) -> None:
        self.images, self.labels = images, labels
        self.suite, self.device, self.seed = suite, device, seed
        self.progress = progress or (lambda stage, done, total: None)
        self.batch = suite.batch_size or max(1, len(images))
        self._reseed("probe")
        self.diagnosis = self._diagnose(model)
        self.judge = self._classifier(model, self.diagnosis)
        self.surrogate = None
        if surrogate is not None:
            self.surrogate = self._classifier(surrogate, self._diagnose(surrogate))
        self.accuracy_draws = suite.draws.accuracy if self.diagnosis.stochastic else 1
        self.worst: dict[str, Tensor] = {}

    def results(self, sigma: float | None) -> dict[str, Any]:
        suite, flags = self.suite, self._model_flags()
        out: dict[str, Any] = {"suite": suite.to_dict()}
        clean = self._natural()
        out["natural"] = accuracy_metric(clean, {"draws": self.accuracy_draws})
        fgsm = self._fgsm(clean)
        out["fgsm"] = accuracy_metric(fgsm, params_dict(suite.fgsm))
        for key, params in (("pgd_linf", suite.pgd_linf), ("pgd_l2", suite.pgd_l2)):
            extra = {}
            if params.threat == ThreatModel.LINF and suite.fgsm.eps <= params.eps:
                extra[str(Attack.FGSM)] = fgsm
            out[key], found = self._threat(key, params, clean, extra)
            flags += found
        if sigma is not None:
            out["smoothing"] = self._smoothing(sigma)
        if suite.autoattack is not None:
            out["autoattack"], linf = self._autoattack(clean)
            if linf is not None:
                flags += autoattack_flag(linf, self.worst["pgd_linf"], margin=suite.checks.masking_margin)
        out["flags"] = flags
        out["model"] = self._model_report()
        return out

    def _natural(self) -> Tensor:
        self._reseed("natural")
        scores = [self.judge.correct(x, y, self.accuracy_draws).cpu() for x, y in self._batches("natural")]
        return torch.cat(scores)

    def _fgsm(self, clean: Tensor) -> Tensor:
        """FGSM on the clean-correct images: one gradient pass, then scored with the accuracy draws."""
        self._reseed("fgsm")
        attack, parts = FGSM(self.judge, eps=self.suite.fgsm.eps), []
        for (x, y), c in zip(self._batches("fgsm"), clean.split(self.batch), strict=True):
            c = c.to(self.device)
            scores = torch.zeros_like(c)
            index = (c > 0).nonzero().squeeze(1)
            if len(index):
                xs, ys = (x, y) if len(index) == len(c) else (x[index], y[index])
                gradient, _ = self.judge.gradient(xs, ys, Loss.CE)
                robust = self.judge.correct(attack.perturb(xs, gradient), ys, self.accuracy_draws)
                scores[index] = torch.minimum(c[index], robust)
            parts.append(scores.cpu())
        return torch.cat(parts)

    def _threat(
        self, key: str, params: PGDParams, clean: Tensor, extra: dict[str, Tensor]
    ) -> tuple[dict[str, Any], list[dict[str, str]]]:
        self._reseed(key)
        ensemble = Ensemble(self.judge, params, surrogate=self.surrogate, accuracy_draws=self.accuracy_draws)
        parts: dict[str, list[AttackScores]] = {}
        for (x, y), c in zip(self._batches(key), clean.split(self.batch), strict=True):
            for name, batch_scores in ensemble(x, y, c.to(self.device)).items():
                parts.setdefault(name, []).append(
                    AttackScores(batch_scores.own.cpu(), batch_scores.ran.cpu())
                )
        scores = {name: AttackScores.everywhere(s) for name, s in extra.items()}
        scores |= {name: AttackScores.cat(p) for name, p in parts.items()}
        worst = worst_case(scores)
        metric = accuracy_metric(worst, params_dict(params))
        metric["attacks"] = left_after(scores)
        flags = masking_flags(
            key, scores, direct=direct_worst(scores), margin=self.suite.checks.masking_margin
        )
        self.worst[key] = worst
        return metric, flags

    def _smoothing(self, sigma: float) -> dict[str, Any]:
        from worker.engine.certification import certify_images  # scipy.stats: only with σ

        self._reseed("smoothing")
        params = self.suite.smoothing
        total = min(params.images, len(self.images))
        self.progress("smoothing", 0, total)
        return certify_images(
            self.judge,
            self.images[:total].to(self.device),
            self.labels[:total].to(self.device),
            sigma=sigma,
            params=params,
            num_classes=self.diagnosis.num_classes,
            progress=lambda done, total: self.progress("smoothing", done, total),
        )

    def _autoattack(self, clean: Tensor) -> tuple[dict[str, Any], Tensor | None]:
        """The ``autoattack`` metric (headline: the first norm) and per-image ℓ∞ scores."""
        params = self.suite.autoattack
        assert params is not None
        threats = [
            (t, e)
            for t, e in ((ThreatModel.LINF, params.linf_eps), (ThreatModel.L2, params.l2_eps))
            if e is not None
        ]
        total, done, results, scores = len(self.images) * len(threats), 0, {}, {}
        self.progress("autoattack", 0, total)
        for threat, eps in threats:
            self._reseed(f"autoattack_{threat}")
            parts = []
            for start in range(0, len(self.images), self.batch):
                part = slice(start, start + self.batch)
                parts.append(
                    autoattack(
                        self.judge,
                        self.images[part].to(self.device),
                        self.labels[part].to(self.device),
                        clean[part].to(self.device),
                        threat=threat,
                        eps=eps,
                        version=params.version,
                        num_classes=self.diagnosis.num_classes,
                        seed=self.seed,
                        accuracy_draws=self.accuracy_draws,
                    ).cpu()
                )
                done += len(parts[-1])
                self.progress("autoattack", done, total)
            scores[threat] = torch.cat(parts)
            results[str(threat)] = accuracy_metric(scores[threat], {"eps": eps})
        version = autoattack_version(self.judge, params.version)
        headline = next(iter(results.values()))
        metric = {
            **headline,
            "params": {**params_dict(params), "version": version},
            "threats": results,
        }
        return metric, scores.get(ThreatModel.LINF)

    def _batches(self, stage: str) -> Iterator[tuple[Tensor, Tensor]]:
        total = len(self.images)
        self.progress(stage, 0, total)
        for start in range(0, total, self.batch):
            x = self.images[start : start + self.batch].to(self.device)
            y = self.labels[start : start + self.batch].to(self.device)
            yield x, y
            self.progress(stage, min(start + self.batch, total), total)

    def _diagnose(self, model: nn.Module) -> Diagnosis:
        count = min(self.suite.checks.probe_images, len(self.images))
        x = self.images[:count].to(self.device)
        return diagnose(model, x, self.labels[:count].to(self.device))

    def _classifier(self, model: nn.Module, diagnosis: Diagnosis) -> Classifier:
        return Classifier(
            model,
            log_probabilities=diagnosis.outputs == Outputs.PROBABILITIES,
            stochastic=diagnosis.stochastic,
            draws=self.suite.draws.gradient if diagnosis.stochastic else 1,
            channels_last=diagnosis.channels_last,
        )

    def _model_flags(self) -> list[dict[str, str]]:
        return model_flags(
            self.diagnosis,
            gradient_draws=self.judge.draws,
            accuracy_draws=self.accuracy_draws,
            zero_fraction=self.suite.checks.zero_gradient_fraction,
        )

    def _model_report(self) -> dict[str, Any]:
        d = self.diagnosis
        return {
            "stochastic": d.stochastic,
            "outputs": str(d.outputs),
            "draws": {"gradient": self.judge.draws, "accuracy": self.accuracy_draws},
            "num_classes": d.num_classes,
            "zero_gradient_fraction": d.zero_gradient_fraction,
        }

    def _reseed(self, stage: str) -> None:
        torch.manual_seed(self.seed * 1009 + _SEED_OFFSETS[stage])
