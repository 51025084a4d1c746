"""How fast a network runs on this worker's device: a short timed forward and backward.

A worker times each network the first time it meets it (and a reference network when it
starts), so that the wait estimate of a kind of evaluation never run before is the suite's
count of passes (``worker.engine.cost``) at this measured rate, not a median borrowed from
other networks.
"""

import time
from collections.abc import Callable
from typing import TypedDict

import torch
from torch import nn

#: Timed passes stop after about this many seconds each (after one warm-up pass).
BUDGET_SECONDS = 0.5
MAX_RUNS = 20


def device_label(device: torch.device) -> str:
    """The name the estimates group rates by: "cpu", or "cuda: <GPU name>"."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return device.type


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(step: Callable[[], None], images: int, device: torch.device) -> float:
    """The fastest of a few timed passes: what the device does when it is not shared, as
    other jobs on a busy machine only ever slow a pass down (the estimates' calibration
    against finished evaluations accounts for a busy machine)."""
    step()  # warm-up: allocations, kernel selection
    _synchronize(device)
    runs, fastest, start = 0, float("inf"), time.perf_counter()
    while True:
        began = time.perf_counter()
        step()
        _synchronize(device)
        fastest = min(fastest, time.perf_counter() - began)
        runs += 1
        if time.perf_counter() - start >= BUDGET_SECONDS or runs >= MAX_RUNS:
            return images / fastest


class Rates(TypedDict):
    """The fields of ``worker.protocol.Throughput``."""

    device: str
    forward: float
    backward: float


def measure(model: nn.Module, device: torch.device, *, batch: int | None = None) -> Rates:
    """Images per second through ``model`` on ``device``: ``forward`` without gradients,
    ``backward`` with an input gradient (as an attack step takes it)."""
    batch = batch or (256 if device.type == "cuda" else 32)
    model = model.to(device).eval()
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(batch, 3, 32, 32, generator=generator).to(device)

    def forward() -> None:
        with torch.no_grad():
            model(images)

    def backward() -> None:
        inputs = images.clone().requires_grad_(True)
        torch.autograd.grad(model(inputs).sum(), inputs)

    return {
        "device": device_label(device),
        "forward": _rate(forward, batch, device),
        "backward": _rate(backward, batch, device),
    }


def main(argv: list[str] | None = None) -> int:
    """``python -I -m worker.throughput ARCH DEVICE``: time a zoo network at its initial
    weights (no upload involved) and print the rates as one JSON line."""
    import json
    import sys

    from models.architectures.registry import build_model
    from worker.evaluation import resolve_device

    arch, device = sys.argv[1:] if argv is None else argv
    model = build_model(arch).requires_grad_(False)
    print(json.dumps(measure(model, resolve_device(device))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
