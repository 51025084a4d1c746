"""One evaluation from files: load the checkpoint and the evaluation set, settle the input
normalisation, run the engine.

The sandboxed child of a worker and ``arena evaluate`` both call ``evaluate_loaded``, so a
team's local numbers are the leaderboard's numbers.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from models.architectures.catalog import NormalisationMode
from models.checkpoints.loading import LoadedModel
from worker.data import load_eval_set
from worker.engine.evaluate import evaluate
from worker.engine.suites import get_suite
from worker.normalisation import flags, settle_normalisation

Progress = Callable[[str, int, int], None]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def evaluate_loaded(  # noqa: PLR0913 - the loaded model, then `arena evaluate`'s options, by keyword
    loaded: LoadedModel,
    *,
    eval_set: Path,
    suite: str,
    sigma: float | None = None,
    limit: int | None = None,
    device: str = "auto",
    progress: Progress | None = None,
    normalisation: str = NormalisationMode.AUTO,
) -> dict[str, Any]:
    """Results as the API shows them; raises ``NormalisationRejected`` (nothing attacked)
    when another normalisation beats the declared one and ``normalisation`` is ``auto``."""
    images, labels = load_eval_set(eval_set, limit)
    target = resolve_device(device)
    protocol = get_suite(suite)
    loaded, record = settle_normalisation(
        loaded, images, labels, protocol, mode=normalisation, device=target, progress=progress
    )
    results = evaluate(
        loaded.model.to(target),
        images,
        labels,
        protocol,
        sigma=sigma,
        surrogate=loaded.surrogate.to(target) if loaded.surrogate is not None else None,
        device=target,
        seed=0,
        progress=progress,
    )
    results.setdefault("model", {})
    results["model"].update({"arch": loaded.arch, "notes": list(loaded.notes)})
    results["eval_set"] = {"file": Path(eval_set).name, "n": int(labels.shape[0])}
    results["normalisation"] = record
    results["flags"] = [*flags(record), *results.get("flags", [])]
    return results
