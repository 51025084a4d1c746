"""Name -> network builder for every catalog entry, plus the declared attack surrogates.

Like RobustBench's model registry, the zoo is data: a dict from name to constructor. Builders
return the raw architecture, which expects normalised input (``models.architectures.normalization`` adds the
normalisation). Some entries take options that a checkpoint determines (the LWTA width, whether
``sub_block1`` is present); ``infer_options`` reads them from a state_dict's keys and shapes.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from models.architectures.catalog import CATALOG
from models.architectures.cifar_resnet import CifarResNet
from models.architectures.lenet import LeNet
from models.architectures.lwta import LWTAWideResNet, SoftWinnerSurrogate
from models.architectures.resnet18 import PreActResNet18, ResNet18
from models.architectures.torchvision_resnet import torchvision_resnet18
from models.architectures.wide_resnet import WideResNet

StateDict = Mapping[str, torch.Tensor]


def _without(prefix: str, option: str) -> Callable[[StateDict], dict[str, Any]]:
    """``{option: False}`` when no key starts with ``prefix`` (the default builds it)."""

    def infer(state: StateDict) -> dict[str, Any]:
        return {} if any(key.startswith(prefix) for key in state) else {option: False}

    return infer


def _lwta_options(state: StateDict) -> dict[str, Any]:
    options = _without("sub_block1.", "sub_block1")(state)
    fc = state.get("fc.weight")
    if fc is not None and fc.dim() == 2 and fc.shape[1] % 64 == 0 and fc.shape[1] > 64:
        options["width"] = fc.shape[1] // 64
    return options


@dataclass(frozen=True)
class ZooEntry:
    """How to build one catalog entry; ``surrogate`` wraps a built network, sharing weights."""

    build: Callable[..., nn.Module]
    surrogate: Callable[[nn.Module], nn.Module] | None = None
    infer_options: Callable[[StateDict], dict[str, Any]] = field(default=lambda state: {})


ZOO: dict[str, ZooEntry] = {
    "lenet": ZooEntry(LeNet),
    "resnet20": ZooEntry(lambda **o: CifarResNet(depth=20, **o)),
    "resnet32": ZooEntry(lambda **o: CifarResNet(depth=32, **o)),
    "resnet44": ZooEntry(lambda **o: CifarResNet(depth=44, **o)),
    "resnet56": ZooEntry(lambda **o: CifarResNet(depth=56, **o)),
    "resnet18": ZooEntry(ResNet18),
    "preact_resnet18": ZooEntry(PreActResNet18, infer_options=_without("bn.", "final_bn")),
    "wrn-28-10": ZooEntry(
        lambda **o: WideResNet(depth=28, widen_factor=10, **o),
        infer_options=_without("sub_block1.", "sub_block1"),
    ),
    "wrn-34-10": ZooEntry(
        lambda **o: WideResNet(depth=34, widen_factor=10, **o),
        infer_options=_without("sub_block1.", "sub_block1"),
    ),
    "lwta-wrn-34-1": ZooEntry(
        lambda **o: LWTAWideResNet(depth=34, **o),
        surrogate=SoftWinnerSurrogate,
        infer_options=_lwta_options,
    ),
    "torchvision-resnet18": ZooEntry(torchvision_resnet18),
}

if set(ZOO) != set(CATALOG):  # pragma: no cover - guards edits of either table
    raise RuntimeError("registry.ZOO and catalog.CATALOG list different names")


def _entry(name: str) -> ZooEntry:
    try:
        return ZOO[name]
    except KeyError:
        known = ", ".join(ZOO)
        raise ValueError(f"unknown architecture {name!r}; known: {known}") from None


def build_model(name: str, **options: Any) -> nn.Module:
    """Build the raw network ``name`` (random weights, train mode, normalised input)."""
    return _entry(name).build(**options)


def build_surrogate(name: str, model: nn.Module) -> nn.Module | None:
    """The declared attack surrogate of ``model`` (built by ``build_model(name)``), or None."""
    entry = _entry(name)
    return entry.surrogate(model) if entry.surrogate is not None else None


_INITIALISERS = frozenset(
    "normal_ uniform_ fill_ zero_ constant_ ones_ zeros_ trunc_normal_ kaiming_normal_ "
    "kaiming_uniform_ xavier_normal_ xavier_uniform_ orthogonal_".split()
)


class _ShapesOnly(TorchFunctionMode):
    """Skips weight initialisers: on the meta device only shapes exist, and random
    initialisation there would pull in torch's compiler stack (seconds of start-up)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", None) in _INITIALISERS:
            return args[0] if args else kwargs["tensor"]
        return func(*args, **kwargs)


def build_on_meta(name: str, **options: Any) -> nn.Module:
    """``build_model`` on the meta device: the keys and shapes, no memory, no initialisation."""
    with torch.device("meta"), _ShapesOnly():
        return build_model(name, **options)


def infer_options(name: str, state: StateDict) -> dict[str, Any]:
    """Builder options, other than the defaults, that ``state`` determines (the LWTA width)."""
    return _entry(name).infer_options(state)
