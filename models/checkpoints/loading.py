"""Checkpoint intake: from an uploaded file to a model that takes [0, 1] pixels.

``load_model`` never runs code from the file: it inspects the file statically first
(``models.checkpoints.inspection``), reads tensors with ``torch.load(weights_only=True,
map_location="cpu")`` or safetensors, and builds the network from the zoo; a torch.export
archive is audited and loaded weights-only (``models.checkpoints.exported``). ``load_class_project``, which
does run the team's code, is for the local CLI only.
"""

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.architectures.catalog import CATALOG, IDENTITY_MEAN, IDENTITY_STD, Triple
from models.architectures.normalization import Normalized
from models.architectures.registry import build_surrogate
from models.checkpoints.class_project import import_project_net
from models.checkpoints.errors import CheckpointError
from models.checkpoints.exported import load_exported
from models.checkpoints.inspection import CheckpointFormat, inspect_checkpoint
from models.checkpoints.state_dicts import (
    build_with_weights,
    resolve_architecture,
    strip_prefixes,
    to_float32,
    unwrap,
)

_NORMALISATION_NOTE = "input normalisation"
EXPORT_ARCH = "torch-export"
CLASS_PROJECT_ARCH = "class-project"


@dataclass
class LoadedModel:
    """A model ready for evaluation.

    ``model`` (and ``surrogate``, when the architecture declares one) is in eval mode with
    frozen parameters, takes float32 (N, 3, 32, 32) pixels in [0, 1] (normalisation is inside,
    as buffers) and returns logits (N, 10). ``notes`` say what intake did to the file.
    ``declared`` says whether ``mean``/``std`` came with the upload rather than from the
    architecture's default (``default_mean``/``default_std``).
    """

    model: Normalized
    surrogate: Normalized | None
    arch: str
    notes: list[str] = field(default_factory=list)
    mean: Triple = IDENTITY_MEAN
    std: Triple = IDENTITY_STD
    stochastic: bool = False
    format: str = ""
    default_mean: Triple = IDENTITY_MEAN
    default_std: Triple = IDENTITY_STD
    declared: bool = False

    @property
    def network(self) -> nn.Module:
        """The network as trained: it takes normalised inputs."""
        return self.model.net

    def with_normalisation(self, mean: Triple, std: Triple, source: str) -> "LoadedModel":
        """The same network wrapped with another normalisation (``source`` says why)."""
        model = Normalized(self.model.net, mean, std).eval().requires_grad_(False)
        surrogate = None
        if self.surrogate is not None:
            surrogate = Normalized(self.surrogate.net, mean, std).eval().requires_grad_(False)
        notes = [note for note in self.notes if not note.startswith(_NORMALISATION_NOTE)]
        notes.append(f"{_NORMALISATION_NOTE} mean={mean}, std={std} ({source})")
        return replace(self, model=model, surrogate=surrogate, notes=notes, mean=mean, std=std)


def load_model(
    path: Path,
    arch: str = "auto",
    mean: Triple | None = None,
    std: Triple | None = None,
) -> LoadedModel:
    """Load an uploaded checkpoint as it is, or raise CheckpointError saying why not.

    ``arch`` is a zoo name or "auto" (the entry whose keys and shapes match). ``mean`` and
    ``std``, when given, override the architecture's default normalisation.
    """
    path = Path(path)
    checkpoint_format = inspect_checkpoint(path)
    notes: list[str] = []
    if checkpoint_format == CheckpointFormat.TORCH_EXPORT:
        if arch not in ("auto", EXPORT_ARCH):
            raise CheckpointError(
                f"This is a torch.export archive: it brings its own architecture, so arch must "
                f"be 'auto', not {arch!r}."
            )
        exported = load_exported(path)
        notes.append("custom architecture from a torch.export archive")
        return _finish(
            exported,
            None,
            EXPORT_ARCH,
            notes,
            mean,
            std,
            IDENTITY_MEAN,
            IDENTITY_STD,
            exported.stochastic,
            checkpoint_format,
        )
    if checkpoint_format == CheckpointFormat.TORCH_LEGACY:
        notes.append("read the legacy (non-zip) torch.save format")
    state = unwrap(_read_tensors(path, checkpoint_format, notes), notes)
    state = to_float32(strip_prefixes(state, notes), notes)
    name, options = resolve_architecture(state, arch, notes)
    net = build_with_weights(name, options, state)
    info = CATALOG[name]
    return _finish(
        net,
        build_surrogate(name, net),
        name,
        notes,
        mean,
        std,
        info.mean,
        info.std,
        info.stochastic,
        checkpoint_format,
    )


def load_class_project(folder: Path, mean: Triple | None = None, std: Triple | None = None) -> LoadedModel:
    """Load a class-format project folder (``model.py`` with ``Net.load_for_testing``).

    Runs the team's code: for ``arena evaluate`` on the team's machine only. Like the class's
    test script, the network receives [0, 1] pixels unless ``mean``/``std`` are given.
    """
    net = import_project_net(Path(folder))
    notes = [f"class project {Path(folder).name}: ran its model.py and load_for_testing"]
    return _finish(
        net,
        None,
        CLASS_PROJECT_ARCH,
        notes,
        mean,
        std,
        IDENTITY_MEAN,
        IDENTITY_STD,
        False,
        "class-project",
    )


def _read_tensors(path: Path, checkpoint_format: str, notes: list[str]) -> Any:
    if checkpoint_format == CheckpointFormat.SAFETENSORS:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError, RuntimeError) as error:
            raise CheckpointError(f"The safetensors file could not be read: {error}") from None
    locations: set[str] = set()

    def on_cpu(storage: Any, location: str) -> Any:
        locations.add(location)
        return storage

    try:
        with torch.serialization.safe_globals(_numpy_scalars()):
            obj = torch.load(path, map_location=on_cpu, weights_only=True)
    except Exception as error:  # corrupt files raise many types inside torch
        raise CheckpointError(
            f"The checkpoint could not be read with torch.load(weights_only=True): {_reason(error)}"
        ) from None
    devices = sorted(location for location in locations if location != "cpu")
    if devices:
        notes.append(f"moved tensors saved on {', '.join(devices)} to the CPU")
    return obj


def _numpy_scalars() -> list[Any]:
    """numpy scalars and dtypes, which training scripts often save next to the weights."""
    import numpy

    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar  # type: ignore[no-redef]
    dtype_classes = [getattr(numpy.dtypes, name) for name in dir(numpy.dtypes) if name.endswith("DType")]
    return [
        numpy.dtype,
        *dtype_classes,
        (scalar, "numpy.core.multiarray.scalar"),
        (scalar, "numpy._core.multiarray.scalar"),
    ]


def _reason(error: Exception) -> str:
    """The informative line of a torch.load error (the weights-only unpickler's own reason)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    marker = next((i for i, line in enumerate(lines) if "WeightsUnpickler error" in line), None)
    if marker is not None:
        detail = lines[marker].split("WeightsUnpickler error:", 1)[1].strip()
        detail = detail or (lines[marker + 1] if marker + 1 < len(lines) else "")
        if "Unsupported operand" in detail:
            detail += " (save with torch.save's default pickle_protocol)"
        return f"refused by the weights-only unpickler: {detail}"
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


def _finish(  # noqa: PLR0913 - the zoo and export paths differ in each of these
    net: nn.Module,
    surrogate: nn.Module | None,
    arch: str,
    notes: list[str],
    mean: Triple | None,
    std: Triple | None,
    default_mean: Triple,
    default_std: Triple,
    stochastic: bool,
    checkpoint_format: str,
) -> LoadedModel:
    declared = mean is not None or std is not None
    mean = _triple(mean, "mean") if mean is not None else default_mean
    std = _triple(std, "std", positive=True) if std is not None else default_std
    source = "declared by the upload" if declared else f"default for {arch}"
    notes.append(f"{_NORMALISATION_NOTE} mean={mean}, std={std} ({source})")
    model = Normalized(net, mean, std).eval().requires_grad_(False)
    wrapped = None
    if surrogate is not None:
        wrapped = Normalized(surrogate, mean, std).eval().requires_grad_(False)
    return LoadedModel(
        model,
        wrapped,
        arch,
        notes,
        mean,
        std,
        stochastic,
        checkpoint_format,
        default_mean,
        default_std,
        declared,
    )


def _triple(values: Any, what: str, positive: bool = False) -> Triple:
    try:
        triple = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise CheckpointError(f"{what} must be three numbers, got {values!r}.") from None
    if len(triple) != 3 or not all(torch.isfinite(torch.tensor(triple))):
        raise CheckpointError(f"{what} must be three finite numbers, got {values!r}.")
    if positive and min(triple) <= 0:
        raise CheckpointError(f"{what} must be three numbers above zero, got {values!r}.")
    return triple


def probe_model(loaded: LoadedModel, batch_size: int = 4) -> None:
    """Raise CheckpointError unless the model (and surrogate) map a small random batch of
    [0, 1] images to finite float outputs of shape (batch_size, 10)."""
    modules = [("model", loaded.model)]
    if loaded.surrogate is not None:
        modules.append(("surrogate", loaded.surrogate))
    for what, module in modules:
        tensors = [*module.parameters(), *module.buffers()]
        device = tensors[0].device if tensors else torch.device("cpu")
        generator = torch.Generator().manual_seed(0)
        images = torch.rand(batch_size, 3, 32, 32, generator=generator).to(device)
        try:
            with torch.no_grad():
                output = module(images)
        except Exception as error:  # any failure of the network is the team's to fix
            raise CheckpointError(
                f"The {what} failed on a batch of {batch_size} images (N, 3, 32, 32): "
                f"{type(error).__name__}: {error}"
            ) from None
        if not isinstance(output, torch.Tensor) or not output.is_floating_point():
            raise CheckpointError(
                f"The {what} must return a float tensor of logits, got {type(output).__name__}."
            )
        if tuple(output.shape) != (batch_size, 10):
            raise CheckpointError(
                f"The {what} returned shape {tuple(output.shape)} for {batch_size} images; "
                f"expected ({batch_size}, 10)."
            )
        if not torch.isfinite(output).all():
            raise CheckpointError(f"The {what} returned NaN or infinite outputs.")
