"""The architecture zoo as data: what the upload form and ``GET /api/architectures`` list.

Pure data on the standard library, so the web server can import it without torch. The
parameter counts and forward FLOPs per image are literals; a test builds every network and
checks them.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

Triple = tuple[float, float, float]

IDENTITY_MEAN: Triple = (0.0, 0.0, 0.0)
IDENTITY_STD: Triple = (1.0, 1.0, 1.0)
IMAGENET_MEAN: Triple = (0.485, 0.456, 0.406)
IMAGENET_STD: Triple = (0.229, 0.224, 0.225)
CIFAR10_MEAN: Triple = (0.4914, 0.4822, 0.4465)
CIFAR10_STD: Triple = (0.2470, 0.2435, 0.2616)
CIFAR10_STD_KUANGLIU: Triple = (0.2023, 0.1994, 0.2010)
HALF: Triple = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class Normalisation:
    """An input normalisation ``(x - mean) / std`` that a network may have been trained with."""

    name: str
    label: str
    mean: Triple
    std: Triple

    def same_as(self, other: "Normalisation") -> bool:
        return (self.mean, self.std) == (other.mean, other.std)


class NormalisationMode(StrEnum):
    """``auto``: the evaluation checks the normalisation first (it may switch an undeclared one
    or stop on a beaten declaration); ``as-declared``: it keeps the one given, whatever."""

    AUTO = "auto"
    AS_DECLARED = "as-declared"


# The normalisations found in CIFAR-10 training code, which the evaluation tries on every
# upload (besides the architecture's own default): defined once for the engine and the form.
NORMALISATIONS: dict[str, Normalisation] = {
    n.name: n
    for n in (
        Normalisation("none", "no normalisation", IDENTITY_MEAN, IDENTITY_STD),
        Normalisation("cifar10", "CIFAR-10 statistics", CIFAR10_MEAN, CIFAR10_STD),
        Normalisation(
            "cifar10-kuangliu",
            "CIFAR-10 statistics of kuangliu/pytorch-cifar",
            CIFAR10_MEAN,
            CIFAR10_STD_KUANGLIU,
        ),
        Normalisation("imagenet", "ImageNet statistics", IMAGENET_MEAN, IMAGENET_STD),
        Normalisation("half", "the PyTorch tutorial's 0.5", HALF, HALF),
    )
}


@dataclass(frozen=True)
class ArchitectureInfo:
    """One zoo entry.

    ``mean`` and ``std`` are the default input normalisation (the one the reference code trains
    with); an upload may declare its own. ``surrogate`` describes the differentiable stand-in
    the engine may attack instead of a stochastic network, or is None.
    """

    name: str
    description: str
    parameters: int
    mean: Triple
    std: Triple
    stochastic: bool = False
    surrogate: str | None = None
    reference: str = ""
    #: Floating-point operations of one forward pass on one 32x32 image (torch's flop counter):
    #: what the wait estimate scales by before a worker has timed this network itself.
    flops: int = 0


_AKAMASTER = "akamaster/pytorch_resnet_cifar10 (models/resnet.py)"


def _cifar_resnet(depth: int, parameters: int, flops: int) -> ArchitectureInfo:
    blocks = (depth - 2) // 6
    return ArchitectureInfo(
        name=f"resnet{depth}",
        description=(
            f"He et al. CIFAR ResNet-{depth}: 3 stages x {blocks} basic blocks, 16/32/64 channels, "
            "option-A shortcuts (stride-2 subsampling, zero-padded channels)."
        ),
        parameters=parameters,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        reference=_AKAMASTER,
        flops=flops,
    )


CATALOG: dict[str, ArchitectureInfo] = {
    info.name: info
    for info in (
        ArchitectureInfo(
            name="lenet",
            description="The class's basic CNN: conv 3->6->16 (5x5, max-pool), fc 120->84->10.",
            parameters=62_006,
            flops=1_303_440,
            mean=HALF,
            std=HALF,
            reference="PyTorch CIFAR-10 tutorial (Net)",
        ),
        _cifar_resnet(20, 269_722, 81_102_080),
        _cifar_resnet(32, 464_154, 137_725_184),
        _cifar_resnet(44, 658_586, 194_348_288),
        _cifar_resnet(56, 853_018, 250_971_392),
        ArchitectureInfo(
            name="resnet18",
            description="ResNet-18 for CIFAR: 3x3 stem, no max-pool, 64-512 channels.",
            parameters=11_173_962,
            flops=1_110_845_440,
            mean=CIFAR10_MEAN,
            std=CIFAR10_STD_KUANGLIU,
            reference="kuangliu/pytorch-cifar (models/resnet.py)",
        ),
        ArchitectureInfo(
            name="preact_resnet18",
            description=(
                "Pre-activation ResNet-18 for CIFAR as used in adversarial training, with the "
                "final 'bn' (a checkpoint without it, kuangliu's layout, also loads)."
            ),
            parameters=11_172_170,
            flops=1_110_845_440,
            mean=CIFAR10_MEAN,
            std=(0.2471, 0.2435, 0.2616),
            reference="locuslab/robust_overfitting (preactresnet.py), kuangliu/pytorch-cifar",
        ),
        ArchitectureInfo(
            name="wrn-28-10",
            description=(
                "WideResNet-28-10 in the TRADES / Madry-style layout (conv1, block1-3, "
                "sub_block1, bn1, fc); [0, 1] inputs. Checkpoints without sub_block1 also load."
            ),
            parameters=38_119_866,
            flops=10_486_657_536,
            mean=IDENTITY_MEAN,
            std=IDENTITY_STD,
            reference="yaodongyu/TRADES (models/wideresnet.py)",
        ),
        ArchitectureInfo(
            name="wrn-34-10",
            description=(
                "WideResNet-34-10 in the TRADES / Madry-style layout (conv1, block1-3, "
                "sub_block1, bn1, fc); [0, 1] inputs. Checkpoints without sub_block1 also load."
            ),
            parameters=48_262_586,
            flops=13_317_812_736,
            mean=IDENTITY_MEAN,
            std=IDENTITY_STD,
            reference="yaodongyu/TRADES (models/wideresnet.py)",
        ),
        ArchitectureInfo(
            name="lwta-wrn-34-1",
            description=(
                "Stochastic Local Winner-Takes-All WideResNet-34 (Panousis et al. 2021), width 1 "
                "by default; other widths are read from the checkpoint. [0, 1] inputs."
            ),
            parameters=490_115,
            flops=138_249_472,
            mean=IDENTITY_MEAN,
            std=IDENTITY_STD,
            stochastic=True,
            surrogate=(
                "Same weights with soft winner selection: the Gumbel-softmax test temperature "
                "raised from 0.01 to 1."
            ),
            reference=(
                "konpanousis/Adversarial-LWTA-AutoAttack (models/wideresnet_lwta.py, models/layers/layers.py)"
            ),
        ),
        ArchitectureInfo(
            name="torchvision-resnet18",
            description="torchvision's ImageNet ResNet-18 with a 10-class fc, for fine-tuning.",
            parameters=11_181_642,
            flops=74_033_152,
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            reference="torchvision.models.resnet18",
        ),
    )
}


def architecture_names() -> list[str]:
    """Zoo names in catalog order (the order of the upload form)."""
    return list(CATALOG)


def as_triple(values: Sequence[float]) -> Triple:
    """Three numbers kept as a list (a JSON column, a parsed form field) as a ``Triple``."""
    first, second, third = values
    return first, second, third


def parse_triple(text: str, *, positive: bool = False) -> Triple:
    """Parse three comma-separated numbers, as an upload declares ``mean`` or ``std``.

    Raises ValueError with a message fit for the team when the text is not three finite
    numbers (or, with ``positive``, not three numbers above zero).
    """
    parts = [part.strip() for part in text.split(",")]
    try:
        values = tuple(float(part) for part in parts)
    except ValueError:
        raise ValueError(f"expected three comma-separated numbers, got {text!r}") from None
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise ValueError(f"expected three comma-separated finite numbers, got {text!r}")
    if positive and min(values) <= 0:
        raise ValueError(f"expected three numbers above zero, got {text!r}")
    return values
