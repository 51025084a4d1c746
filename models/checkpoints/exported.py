"""Custom architectures as ``torch.export`` archives (.pt2).

Call only on a file that ``models.checkpoints.inspection.inspect_checkpoint`` accepted as "torch-export":
the audit refuses pickled payloads, custom objects, compiled code and unsafe expressions, and
loading here additionally forces every ``torch.load`` inside ``torch.export.load`` to
weights-only (``TORCH_FORCE_WEIGHTS_ONLY_LOAD=1``). The worker also runs it in its sandboxed
child process.

How a team exports (also in ``models/checkpoints/EXPORT.md``)::

    model.eval()
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(model, (torch.rand(2, 3, 32, 32),),
                                  dynamic_shapes={"x": {0: batch}})  # "x": forward's argument
    torch.export.save(program, "model.pt2")

The program must take (N, 3, 32, 32) images and return (N, 10) logits, hold plain tensors only
(no tensor subclasses, custom or opaque objects) and have a dynamic batch dimension.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from models.checkpoints.errors import CheckpointError

_RANDOM_OPS = (
    "rand",
    "bernoulli",
    "normal",
    "uniform",
    "multinomial",
    "exponential",
    "poisson",
    "dropout",
    "geometric",
    "cauchy",
    "log_normal",
)


@contextmanager
def weights_only_loading() -> Iterator[None]:
    """Force ``torch.load`` to weights-only for the duration, whatever its callers ask for."""
    previous = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        yield
    finally:
        if previous is None:
            del os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"]
        else:
            os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = previous


class ExportedNet(nn.Module):
    """An exported program as a module. Its train/eval behaviour was fixed at export time, so
    ``train()``/``eval()`` only set this wrapper's flag (the program itself refuses them)."""

    def __init__(self, program: nn.Module, stochastic: bool) -> None:
        super().__init__()
        self.program = program
        self.stochastic = stochastic

    def train(self, mode: bool = True) -> "ExportedNet":
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.program(x)


def load_exported(path: Path) -> ExportedNet:
    """Load an audited .pt2 archive; the result takes the (N, 3, 32, 32) batch it was exported
    for, keeps any random operators (a stochastic network stays stochastic) and gradients."""
    with weights_only_loading():
        try:
            program = torch.export.load(str(path))
            module = program.module()
        except Exception as error:  # torch raises many types for a bad archive
            raise CheckpointError(
                f"The torch.export archive could not be loaded: {type(error).__name__}: {error}"
            ) from None
    targets = [str(node.target) for node in module.graph.nodes if node.op == "call_function"]
    stochastic = any(op in target for target in targets for op in _RANDOM_OPS)
    return ExportedNet(module, stochastic)
