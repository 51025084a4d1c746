"""What the evaluation's flags mean, in words a team can act on, for badges on the pages.

The engine attaches ``{"code", "message"}`` flags to a result; the message gives the measured
figures, the meaning here says why the flag matters. Unknown codes still show, by their code.
"""

from dataclasses import dataclass
from typing import Any

MASKING = "gradient masking suspected"


@dataclass(frozen=True)
class Badge:
    code: str
    label: str
    kind: str  # "info" (how the model was treated) or "warning" (figures may be optimistic)
    meaning: str


_BADGES = {
    "stochastic": Badge(
        "stochastic",
        "stochastic",
        "info",
        "The model answers differently to the same image in eval mode. Attacks averaged its "
        "gradients over several random draws (EOT) and each accuracy is a mean over draws.",
    ),
    "probability_outputs": Badge(
        "probability_outputs",
        "probability outputs",
        "info",
        "The model returns probabilities instead of logits. It was attacked through their "
        "logarithm, so a saturated softmax cannot hide its gradients.",
    ),
    "normalisation_inferred": Badge(
        "normalisation_inferred",
        "normalisation inferred",
        "info",
        "No input normalisation was declared, and another one than the architecture's default "
        "made the network clearly more accurate (exact McNemar test, at least 5 points), so it "
        "was evaluated with that one.",
    ),
    "zero_gradients": Badge(
        "zero_gradients",
        MASKING,
        "warning",
        "The input gradient is exactly zero on many images, so gradient attacks are blind "
        "there; the noise and surrogate attacks are the figures to trust.",
    ),
    "nonfinite_gradients": Badge(
        "nonfinite_gradients",
        MASKING,
        "warning",
        "The input gradient has NaN or infinite entries; they were treated as zero, which "
        "weakens gradient attacks.",
    ),
    "iterative_weaker_than_single_step": Badge(
        "iterative_weaker_than_single_step",
        MASKING,
        "warning",
        "Many-step PGD did worse than one FGSM step, which only happens when gradients "
        "mislead the attack. The reported figure is the worst case over all attacks.",
    ),
    "noise_beats_gradient_attack": Badge(
        "noise_beats_gradient_attack",
        MASKING,
        "warning",
        "Random noise of the same size broke more images than gradient attacks: the gradients "
        "are masked and the gradient-based figures overstate robustness.",
    ),
    "surrogate_beats_direct_attack": Badge(
        "surrogate_beats_direct_attack",
        MASKING,
        "warning",
        "Attacking through the declared surrogate beat attacking the model itself: the "
        "model's own gradients are obfuscated.",
    ),
    "autoattack_beats_ensemble": Badge(
        "autoattack_beats_ensemble",
        MASKING,
        "warning",
        "AutoAttack found adversarial examples the PGD ensemble missed: the PGD figures "
        "overstate robustness.",
    ),
}


def badge(code: str) -> Badge:
    """The badge of a flag code (a neutral one for codes this page does not know)."""
    return _BADGES.get(code) or Badge(code, code.replace("_", " "), "info", "")


def badges(flags: list[Any]) -> list[tuple[Badge, str]]:
    """(badge, the flag's own message) per flag; ``flags`` holds dicts or objects with code."""
    out = []
    for flag in flags or []:
        code = flag.get("code") if isinstance(flag, dict) else getattr(flag, "code", None)
        message = flag.get("message") if isinstance(flag, dict) else getattr(flag, "message", "")
        if code:
            out.append((badge(str(code)), str(message or "")))
    return out


def distinct_badges(flags: list[Any]) -> list[tuple[Badge, str]]:
    """One badge per label (a row shows "gradient masking suspected" once), messages joined."""
    merged: dict[str, tuple[Badge, list[str]]] = {}
    for item, message in badges(flags):
        entry = merged.setdefault(item.label, (item, []))
        if message:
            entry[1].append(message)
    return [(item, " ".join(messages)) for item, messages in merged.values()]
