"""Ranking: each team's best finished submission under the configured score rule.

The score is computed in SQL from the stored accuracies at read time, so changing the rule
(``ARENA_SCORE``) re-ranks every past submission consistently.
"""

from sqlalchemy import ColumnElement, func, literal, select
from sqlalchemy.orm import Session

from server.schemas import Leaderboard, LeaderboardRow
from server.tables import Result, Submission, Team

METRICS = {
    "natural": Result.natural,
    "fgsm": Result.fgsm,
    "pgd_linf": Result.pgd_linf,
    "pgd_l2": Result.pgd_l2,
    "smoothing": Result.smoothing,
}

METRIC_LABELS = {
    "natural": "natural accuracy",
    "fgsm": "FGSM accuracy",
    "pgd_linf": "PGD ℓ∞ robust accuracy",
    "pgd_l2": "PGD ℓ2 robust accuracy",
    "smoothing": "certified accuracy at ℓ2 radius 0.5",
}


def validate_weights(weights: dict[str, float]) -> None:
    unknown = sorted(set(weights) - set(METRICS))
    if unknown or not weights or sum(weights.values()) <= 0:
        raise ValueError(
            f"Invalid score rule {weights}: use metric:weight pairs with metrics among "
            f"{', '.join(METRICS)} and a positive total weight."
        )


def score_expression(weights: dict[str, float]) -> ColumnElement[float]:
    validate_weights(weights)
    total = sum(weights.values())
    expr: ColumnElement[float] = literal(0.0)
    for name, weight in weights.items():
        expr = expr + METRICS[name] * weight
    return expr / total


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


def leaderboard(*, session: Session, suite: str, weights: dict[str, float]) -> Leaderboard:
    score = score_expression(weights)
    best = (
        select(
            Submission.id.label("submission_id"),
            Submission.team_id,
            Submission.created_at,
            score.label("score"),
            *[column.label(name) for name, column in METRICS.items()],
            func.row_number()
            .over(
                partition_by=Submission.team_id,
                order_by=(score.desc(), Submission.created_at.asc(), Submission.id.asc()),
            )
            .label("position"),
        )
        .join(Result, Result.submission_id == Submission.id)
        .where(Result.suite == suite, score.is_not(None))
        .subquery()
    )
    counts = (
        select(Submission.team_id, func.count(Submission.id).label("submissions"))
        .group_by(Submission.team_id)
        .subquery()
    )
    query = (
        select(best, Team.name, Team.is_baseline, counts.c.submissions)
        .join(Team, Team.id == best.c.team_id)
        .join(counts, counts.c.team_id == best.c.team_id)
        .where(best.c.position == 1)
        .order_by(best.c.score.desc(), best.c.created_at.asc(), best.c.submission_id.asc())
    )
    rows = [
        LeaderboardRow(
            rank=rank,
            team=row.name,
            baseline=row.is_baseline,
            submission_id=row.submission_id,
            score=row.score,
            natural=row.natural,
            fgsm=row.fgsm,
            pgd_linf=row.pgd_linf,
            pgd_l2=row.pgd_l2,
            smoothing=row.smoothing,
            submissions=row.submissions,
            submitted_at=row.created_at,
        )
        for rank, row in enumerate(session.execute(query), start=1)
    ]
    return Leaderboard(suite=suite, score_rule=describe_rule(weights), rows=rows)


def score_of(results: dict, weights: dict[str, float]) -> float | None:
    """The score of one submission's results under the rule; None if a metric is missing."""
    validate_weights(weights)
    total = 0.0
    for name, weight in weights.items():
        accuracy = (results.get(name) or {}).get("accuracy")
        if accuracy is None:
            return None
        total += weight * accuracy
    return total / sum(weights.values())
