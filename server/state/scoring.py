"""Score rules: which figure ranks a board, in SQL and in words, and how sure it is.

The empirical track ranks by a weighted mean of accuracies (``ARENA_SCORE``, a competition's
``score``); the certified one by randomized-smoothing certified accuracy at an ℓ2 radius. A
score's interval is the same weighted mean of the metrics' 95% interval ends; rows whose
intervals overlap are marked tied.
"""

from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Float, SQLColumnExpression, cast, literal

from server.state.tables import Result
from worker.engine.protocol import COLUMN_METRICS, HEADLINE_RADIUS, METRIC_LABELS, RADII  # torch-free


class Track(StrEnum):
    EMPIRICAL = "empirical"
    CERTIFIED = "certified"


#: Each stored metric's column, the leaderboard's columns.
METRICS = {name: getattr(Result, name) for name in COLUMN_METRICS}


def validate_weights(weights: dict[str, float]) -> None:
    unknown = sorted(set(weights) - set(METRICS))
    if unknown or not weights or sum(weights.values()) <= 0:
        raise ValueError(
            f"Invalid score rule {weights}: use metric:weight pairs with metrics among "
            f"{', '.join(METRICS)} and a positive total weight."
        )


def validate_radius(radius: float) -> float:
    for known in RADII:
        if abs(radius - known) < 1e-9:
            return known
    raise ValueError(f"radius must be one of {', '.join(f'{r:g}' for r in RADII)}.")


def score_expression(weights: dict[str, float]) -> ColumnElement[float]:
    validate_weights(weights)
    total = sum(weights.values())
    expr: ColumnElement[float] = literal(0.0)
    for name, weight in weights.items():
        expr = expr + METRICS[name] * weight
    return expr / total


def certified_expression(radius: float) -> SQLColumnExpression[float | None]:
    """Certified accuracy at ``radius``: the column at 0.5, else the stored curve's point."""
    radius = validate_radius(radius)
    if radius == HEADLINE_RADIUS:
        return Result.smoothing
    return cast(Result.metrics[("smoothing", "certified", str(radius))].as_float(), Float)


TIES = "Ranks whose 95% intervals overlap are marked ≈: the evaluation set cannot separate them."


def describe_rule(weights: dict[str, float]) -> str:
    """The score rule in words, as shown on the leaderboard."""
    validate_weights(weights)
    if len(weights) == 1:
        (name,) = weights
        rule = f"Score = {METRIC_LABELS[name]}"
    elif len(set(weights.values())) == 1:
        parts = ", ".join(METRIC_LABELS[name] for name in weights)
        rule = f"Score = mean of {parts}"
    else:
        parts = " + ".join(f"{w:g}×{METRIC_LABELS[name]}" for name, w in weights.items())
        rule = f"Score = ({parts}) / {sum(weights.values()):g}"
    return rule + ". Each team is ranked by its best finished submission; ties go to the earlier one."


def describe_certified(radius: float) -> str:
    return (
        f"Score = certified accuracy at ℓ2 radius {radius:g}: the share of images the smoothed "
        "classifier (randomized smoothing, Cohen et al. 2019) labels correctly with a certified "
        f"radius of at least {radius:g}. Only submissions with a declared σ take part. Each team "
        "is ranked by its best certified submission; ties go to the earlier one."
    )


def combined_interval(
    intervals: dict[str, tuple[float, float]], weights: dict[str, float]
) -> tuple[float, float] | None:
    """The score's interval: the same weighted mean of the metrics' interval ends."""
    if any(name not in intervals for name in weights):
        return None
    total = sum(weights.values())
    low = sum(w * intervals[name][0] for name, w in weights.items()) / total
    high = sum(w * intervals[name][1] for name, w in weights.items()) / total
    return (low, high)


def ties(intervals: list[tuple[float, float] | None]) -> list[bool]:
    """For each row, whether its interval overlaps the one of the row placed just above."""
    marks = [False] * len(intervals)
    for index in range(1, len(intervals)):
        above, here = intervals[index - 1], intervals[index]
        marks[index] = above is not None and here is not None and here[1] >= above[0]
    return marks


def score_of(results: dict[str, Any], weights: dict[str, float]) -> float | None:
    """The score of one submission's results under the rule; None if a metric is missing."""
    validate_weights(weights)
    total = 0.0
    for name, weight in weights.items():
        accuracy = (results.get(name) or {}).get("accuracy")
        if accuracy is None:
            return None
        total += weight * accuracy
    return total / sum(weights.values())
