"""From whatever a training script saved to a zoo network with those weights.

Checkpoints in the wild wrap their state_dict (``{"epoch": ..., "state_dict": ...}``), prefix
its keys (``module.`` from DataParallel, ``_orig_mod.`` from torch.compile), store half
precision, or lack the ``num_batches_tracked`` buffers of old PyTorch versions. Each step here
undoes one of those and says so in the notes. Matching is strict: a network is built only when
every key and shape fits (never ``strict=False``); otherwise the error names the first missing,
unexpected and mis-shaped keys and the closest zoo architecture.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from models.architectures.catalog import CATALOG
from models.architectures.registry import build_on_meta, infer_options
from models.checkpoints.errors import CheckpointError
from models.checkpoints.pickle_messages import HOW_TO_SAVE

StateDict = dict[str, torch.Tensor]
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net")
PREFIXES = ("module.", "_orig_mod.")
_OPTIONAL_SUFFIX = "num_batches_tracked"


def is_state_dict(obj: Any) -> bool:
    """A non-empty mapping from string keys to tensors."""
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def unwrap(obj: Any, notes: list[str]) -> StateDict:
    """The state_dict inside ``obj``: itself, or the one held under ``state_dict``,
    ``model_state_dict``, ``model`` or ``net`` (or the only state_dict-valued entry)."""
    for _ in range(4):
        if is_state_dict(obj):
            return dict(obj)
        if not isinstance(obj, Mapping):
            break
        key = next((k for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if key is None:
            candidates = [k for k, v in obj.items() if is_state_dict(v)]
            key = candidates[0] if len(candidates) == 1 else None
        if key is None:
            break
        others = sorted(str(k) for k in obj if k != key)
        ignored = f" (ignored: {', '.join(others[:6])}{', ...' if len(others) > 6 else ''})"
        notes.append(f"took the weights from the {key!r} entry{ignored if others else ''}")
        obj = obj[key]
    raise CheckpointError(_not_a_state_dict(obj))


def _not_a_state_dict(obj: Any) -> str:
    if isinstance(obj, Mapping):
        keys = ", ".join(repr(k) for k in list(obj)[:8]) or "nothing"
        return (
            f"The checkpoint holds a dict ({keys}) but no state_dict: expected tensors keyed by "
            "parameter name, directly or under 'state_dict', 'model_state_dict', 'model' or "
            f"'net'.\n{HOW_TO_SAVE}"
        )
    return f"The checkpoint holds a {type(obj).__name__}, not a state_dict.\n{HOW_TO_SAVE}"


def strip_prefixes(state: StateDict, notes: list[str]) -> StateDict:
    """Remove ``module.`` and ``_orig_mod.`` when every key carries them (in any nesting)."""
    changed = True
    while changed:
        changed = False
        for prefix in PREFIXES:
            if all(key.startswith(prefix) for key in state):
                state = {key[len(prefix) :]: value for key, value in state.items()}
                notes.append(f"stripped the {prefix!r} prefix from every key")
                changed = True
    return state


def to_float32(state: StateDict, notes: list[str]) -> StateDict:
    """Floating-point tensors of other precisions become float32 (integers stay as they are)."""
    converted = sorted(
        {
            str(v.dtype).removeprefix("torch.")
            for v in state.values()
            if v.is_floating_point() and v.dtype != torch.float32
        }
    )
    if converted:
        notes.append(f"converted {', '.join(converted)} weights to float32")
        state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    return state


@dataclass
class Mismatch:
    """How a state_dict differs from an architecture's keys and shapes."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    misshaped: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    matched: int = 0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.misshaped)

    @property
    def score(self) -> float:
        total = self.matched + len(self.missing) + len(self.unexpected) + len(self.misshaped)
        return self.matched / total if total else 0.0

    def describe(self) -> str:
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing key(s), first {self.missing[0]!r}")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected key(s), first {self.unexpected[0]!r}")
        if self.misshaped:
            key, got, want = self.misshaped[0]
            parts.append(
                f"{len(self.misshaped)} mis-shaped key(s), first {key!r}: "
                f"{tuple(got)} in the checkpoint, {tuple(want)} expected"
            )
        return "; ".join(parts)


def expected_shapes(name: str, options: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Keys and shapes of the zoo network ``name``, built on the meta device (no memory)."""
    model = build_on_meta(name, **options)
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def compare(expected: Mapping[str, tuple[int, ...]], state: Mapping[str, torch.Tensor]) -> Mismatch:
    mismatch = Mismatch()
    for key, shape in expected.items():
        if key not in state:
            if not key.endswith(_OPTIONAL_SUFFIX):
                mismatch.missing.append(key)
        elif tuple(state[key].shape) != shape:
            mismatch.misshaped.append((key, tuple(state[key].shape), shape))
        else:
            mismatch.matched += 1
    mismatch.unexpected = [key for key in state if key not in expected]
    return mismatch


def _fit(name: str, state: StateDict) -> tuple[dict[str, Any], Mismatch]:
    options = infer_options(name, state)
    return options, compare(expected_shapes(name, options), state)


def _closest(state: StateDict) -> tuple[str, Mismatch]:
    fits = {name: _fit(name, state)[1] for name in CATALOG}
    name = max(fits, key=lambda n: fits[n].score)
    return name, fits[name]


def resolve_architecture(state: StateDict, arch: str, notes: list[str]) -> tuple[str, dict[str, Any]]:
    """The zoo entry (and builder options) whose keys and shapes ``state`` fits exactly.

    ``arch="auto"`` takes the first catalog entry that fits; a named ``arch`` must fit. Raises
    CheckpointError naming the first missing, unexpected and mis-shaped keys and the closest
    architecture.
    """
    if arch != "auto" and arch not in CATALOG:
        raise CheckpointError(f"Unknown architecture {arch!r}; choose one of: auto, {', '.join(CATALOG)}.")
    if arch == "auto":
        for name in CATALOG:
            options, mismatch = _fit(name, state)
            if mismatch.ok:
                notes.append(f"arch=auto: the keys and shapes match {name}")
                break
        else:
            closest_name, closest = _closest(state)
            raise CheckpointError(
                "No zoo architecture matches the checkpoint's keys and shapes. The closest is "
                f"{closest_name} ({closest.score:.0%} of keys fit): {closest.describe()}. "
                f"{_key_hint(state)}"
            )
    else:
        name = arch
        options, mismatch = _fit(name, state)
        if not mismatch.ok:
            closest_name, closest = _closest(state)
            hint = (
                f" The closest zoo architecture is {closest_name} ({closest.score:.0%} of keys fit)."
                if closest_name != arch
                else " No other zoo architecture fits better."
            )
            raise CheckpointError(
                f"The checkpoint does not fit {arch}: {mismatch.describe()}.{hint} {_key_hint(state)}"
            )
    if options:
        settings = ", ".join(f"{k}={v}" for k, v in options.items())
        notes.append(f"{name} built with {settings}, as the checkpoint's keys and shapes require")
    return name, options


def _key_hint(state: StateDict) -> str:
    keys = list(state)
    return f"The checkpoint's first keys: {', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''}."


def build_with_weights(name: str, options: Mapping[str, Any], state: StateDict) -> nn.Module:
    """Build zoo network ``name`` holding exactly the tensors of ``state`` (strict loading).

    The network is built on the meta device and the checkpoint's tensors are assigned, so no
    memory goes to random weights; missing ``num_batches_tracked`` buffers are set to zero.
    """
    model = build_on_meta(name, **options)
    state = dict(state)
    for key, value in model.state_dict().items():
        if key not in state and key.endswith(_OPTIONAL_SUFFIX):
            state[key] = torch.zeros(value.shape, dtype=value.dtype)
    model.load_state_dict(state, strict=True, assign=True)
    return model
