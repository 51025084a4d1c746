"""Geometry of the submission page's two charts, drawn as inline SVG by the templates.

Charts are SVG rendered on the server rather than by a charting library: the figures are
static once a submission finishes, the page then works without JavaScript and without any
download, and the same markup is checked by the fast tests and the browser tests alike.
Coordinates are computed here, in plain Python; ``templates/_charts.html`` only draws them.
"""

from dataclasses import dataclass, field
from typing import Any

from worker.engine.protocol import HEADLINE_RADIUS

ATTACK_LABELS = {
    "fgsm": "FGSM",
    "pgd_ce": "PGD, cross-entropy",
    "pgd_margin": "PGD, margin loss",
    "pgd_targeted": "PGD, targeted",
    "noise": "random noise",
    "surrogate": "PGD via surrogate",
}
#: The attack chart's groups, in the order shown: each metric's title and its headline bar
#: (the certified group's title names the result's own radius).
METRIC_GROUPS = {
    "natural": ("Natural", "clean images"),
    "fgsm": ("FGSM ℓ∞", "single step"),
    "pgd_linf": ("PGD ℓ∞", "worst case"),
    "pgd_l2": ("PGD ℓ2", "worst case"),
    "autoattack": ("AutoAttack", "standard"),
    "smoothing": ("Certified, ℓ2 radius {radius:g}", "smoothed classifier"),
}
# Okabe–Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9")


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    y: float
    width: float
    ci: tuple[float, float] | None = None  # whisker x positions
    headline: bool = False  # the metric's reported figure (worst case over its attacks)


@dataclass(frozen=True)
class Heading:
    label: str
    y: float


@dataclass
class BarChart:
    width: int
    height: int
    left: int
    span: int
    bars: list[Bar] = field(default_factory=list)
    headings: list[Heading] = field(default_factory=list)
    ticks: list[tuple[float, str]] = field(default_factory=list)  # (x, label)


BAR_LEFT, BAR_SPAN, BAR_WIDTH, ROW, HEAD = 190, 370, 640, 20, 26


def attack_bars(results: dict[str, Any]) -> BarChart | None:
    """Accuracy left after each attack (and the ones before it), grouped by threat model, with
    the reported worst case."""
    groups: list[tuple[str, list[tuple[str, float, list[Any] | None, bool]]]] = []

    for key, (title, headline) in METRIC_GROUPS.items():
        entry = results.get(key)
        if not isinstance(entry, dict) or entry.get("accuracy") is None:
            continue
        rows: list[tuple[str, float, list[Any] | None, bool]] = [
            (ATTACK_LABELS.get(name, name.replace("_", " ")), float(value), None, False)
            for name, value in (entry.get("attacks") or {}).items()
            if isinstance(value, int | float)
        ]
        rows.append((headline, float(entry["accuracy"]), entry.get("ci95"), True))
        groups.append((title.format(radius=entry.get("radius", HEADLINE_RADIUS)), rows))
    if not groups:
        return None
    chart = BarChart(width=BAR_WIDTH, height=0, left=BAR_LEFT, span=BAR_SPAN)
    y = 4.0
    for title, rows in groups:
        chart.headings.append(Heading(title, y + 14))
        y += HEAD
        for label, value, ci, reported in rows:
            whisker = None
            if isinstance(ci, list | tuple) and len(ci) == 2:
                whisker = (_x(ci[0]), _x(ci[1]))
            chart.bars.append(Bar(label, value, y, max(0.0, min(1.0, value)) * BAR_SPAN, whisker, reported))
            y += ROW
    chart.height = int(y + 28)
    chart.ticks = [(_x(t), f"{t:.0%}") for t in (0, 0.25, 0.5, 0.75, 1)]
    return chart


def _x(value: float) -> float:
    return BAR_LEFT + max(0.0, min(1.0, float(value))) * BAR_SPAN


@dataclass(frozen=True)
class Curve:
    label: str
    color: str
    points: list[tuple[float, float, float, float]]  # (x, y, radius, accuracy)
    current: bool

    @property
    def path(self) -> str:
        return " ".join(
            f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}" for i, (x, y, _, _) in enumerate(self.points)
        )


@dataclass
class CurveChart:
    width: int
    height: int
    left: int
    top: int
    plot_width: int
    plot_height: int
    curves: list[Curve]
    x_ticks: list[tuple[float, str]]
    y_ticks: list[tuple[float, str]]
    radii: list[float]


def radius_curves(series: list[tuple[str, dict[str, float], bool]]) -> CurveChart | None:
    """Certified accuracy against ℓ2 radius, one curve per (label, {radius: accuracy}, current)."""
    parsed = []
    for label, certified, current in series:
        points = sorted((float(r), float(a)) for r, a in (certified or {}).items() if _number(r))
        if points:
            parsed.append((label, points, current))
    if not parsed:
        return None
    radii = sorted({r for _, points, _ in parsed for r, _ in points})
    top_radius = max(radii[-1], 0.5)
    left, top, width, height = 56, 12, 560, 240
    chart = CurveChart(
        width=left + width + 24,
        height=top + height + 48,
        left=left,
        top=top,
        plot_width=width,
        plot_height=height,
        curves=[],
        x_ticks=[(left + r / top_radius * width, f"{r:g}") for r in radii],
        y_ticks=[(top + (1 - a) * height, f"{a:.0%}") for a in (0, 0.25, 0.5, 0.75, 1)],
        radii=radii,
    )
    for index, (label, points, current) in enumerate(parsed):
        coords = [
            (left + r / top_radius * width, top + (1 - max(0.0, min(1.0, a))) * height, r, a)
            for r, a in points
        ]
        chart.curves.append(Curve(label, PALETTE[index % len(PALETTE)], coords, current))
    return chart


def _number(text: str) -> bool:
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True
