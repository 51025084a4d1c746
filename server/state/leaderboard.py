"""Ranking: each team's best finished evaluation in one phase under the configured score rule
(the phase asked for; by default the default competition's development phase).

The score is computed in SQL from the stored accuracies at read time, so changing the rule
(``ARENA_SCORE``) re-ranks every past submission consistently. Two tracks exist: the
empirical one ranks by the score rule; the certified one ranks by randomized-smoothing
certified accuracy at a chosen ℓ2 radius.

One query ranks the submissions and loads the winners' stored metrics (their 95% intervals
and flags). Only rankable submissions take part (``rankable``): the organiser's hidden ones
and disqualified teams' are left out; disqualified teams are listed apart, with the reason.

Boards are cached per process, with their JSON, and reused while the database's version
(newest result id, newest submission id, total of the teams' submission counters) is
unchanged: a read then costs one small query on indexes and the teams table, however many
submissions there are, and no serialisation.
"""

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Select, SQLColumnExpression, func, select, true
from sqlalchemy.orm import Session

from server.state.scoring import (
    METRICS,
    TIES,
    Track,
    certified_expression,
    combined_interval,
    describe_certified,
    describe_rule,
    score_expression,
    ties,
    validate_radius,
)
from server.state.tables import (
    ACTIVE_STATUSES,
    Competition,
    Evaluation,
    Phase,
    PhaseKind,
    Result,
    Submission,
    Team,
)
from server.state.views import DisqualifiedTeam, Flag, Leaderboard, LeaderboardRow
from worker.engine.protocol import (  # torch-free
    HEADLINE_RADIUS,
    SUITES,
    clopper_pearson,
)


@dataclass(frozen=True)
class Published:
    """A computed board and its JSON body, shared by every reader until the data changes.

    ``renderings`` keeps other forms of the same board (the HTML page), made once by the
    first reader who needs them: they change only when the board does.
    """

    board: Leaderboard
    json: bytes
    renderings: dict[str, bytes] = field(default_factory=dict)


def known_suites(session: Session, server_suite: str) -> list[str]:
    """Suites a board can be asked for: the engine's, the server's, and any with results."""
    present = set(session.scalars(select(Result.suite).distinct()))
    return sorted({*SUITES, server_suite, *present})


def published(
    *,
    session: Session,
    suite: str,
    weights: dict[str, float],
    track: Track = Track.EMPIRICAL,
    radius: float = HEADLINE_RADIUS,
    phase_id: int | None = None,
    public_phase_id: int | None = None,
) -> Published:
    """Every team's best evaluation in ``suite`` in the phase ``phase_id`` (the default
    competition's development phase when None), best first, baselines placed among them,
    with the board's JSON; from the cache while the data it shows is unchanged.

    With ``public_phase_id`` (a final board: ``phase_id`` is the final phase) each row also
    gives the team's rank on that phase's board and the shake-up. Whether the caller may see
    a final board is not checked here (``server.state.visibility``).
    """
    track = Track(track)
    radius = validate_radius(radius)
    if phase_id is None:
        phase_id = default_development_phase(session)
    key = (
        str(session.get_bind().engine.url),
        phase_id,
        public_phase_id,
        suite,
        track,
        radius,
        tuple(sorted(weights.items())),
    )
    version = tuple(session.execute(_VERSION).one())
    cached = _CACHE.get(key, version)
    if cached is not None:
        return cached
    with _CACHE.computing(key):  # concurrent readers of a changed board compute it once
        cached = _CACHE.get(key, version)
        if cached is None:
            board = _compute(session, phase_id, suite, weights, track, radius)
            if public_phase_id is not None:
                public = published(
                    session=session,
                    suite=suite,
                    weights=weights,
                    track=track,
                    radius=radius,
                    phase_id=public_phase_id,
                )
                board = shake_up(board, public.board)
            cached = Published(board, board.model_dump_json().encode())
            _CACHE.put(key, version, cached)
    return cached


def default_development_phase(session: Session) -> int | None:
    """The id of the default competition's development phase (None before it exists)."""
    from server.state.competition_spec import DEFAULT_SLUG  # it imports this module

    return session.scalar(
        select(Phase.id)
        .join(Competition, Competition.id == Phase.competition_id)
        .where(Competition.slug == DEFAULT_SLUG, Phase.kind == PhaseKind.DEVELOPMENT)
    )


def _compute(
    session: Session, phase_id: int | None, suite: str, weights: dict[str, float], track: Track, radius: float
) -> Leaderboard:
    certified = track == Track.CERTIFIED
    score: SQLColumnExpression[float | None]
    if certified:
        score, rule = certified_expression(radius), describe_certified(radius)
        conditions = [Result.suite == suite, current_version(suite), Result.smoothing.is_not(None)]
    else:
        score, rule = score_expression(weights), describe_rule(weights)
        conditions = [Result.suite == suite, current_version(suite)]
    fetched = list(session.execute(_ranking(score, phase_id, [*conditions, *rankable()])))
    intervals = [_intervals(row.metrics or {}) for row in fetched]
    score_intervals = [
        _certified_interval(row.metrics or {}, radius, row.score)
        if certified
        else combined_interval(metric_intervals, weights)
        for row, metric_intervals in zip(fetched, intervals, strict=True)
    ]
    rows, team_rank = [], 0
    for position, (row, metric_intervals, score_interval, tied) in enumerate(
        zip(fetched, intervals, score_intervals, ties(score_intervals), strict=True), start=1
    ):
        team_rank += not row.is_baseline
        rows.append(
            LeaderboardRow(
                rank=None if row.is_baseline else team_rank,
                position=position,
                team=row.name,
                baseline=row.is_baseline,
                submission_id=row.submission_id,
                score=row.score,
                score_ci95=score_interval,
                tied=tied,
                **{name: getattr(row, name) for name in METRICS},
                ci95=metric_intervals,
                sigma=row.sigma,
                submissions=row.submissions,
                submitted_at=row.created_at,
                flags=_flags(row.metrics or {}),
            )
        )
    return Leaderboard(
        suite=suite,
        track=track,
        radius=radius if certified else None,
        score_rule=rule,
        ties_rule=TIES,
        teams=team_rank,
        rows=rows,
        disqualified=_disqualified(session, score, phase_id, conditions),
        rejudging=rejudging_count(session, phase_id, suite),
    )


def shake_up(final: Leaderboard, public: Leaderboard) -> Leaderboard:
    """The final board with each team's public rank and its change (public minus final:
    positive, the team moved up); null for baselines and teams the public board did not rank."""
    public_ranks = {row.team: row.rank for row in public.rows if row.rank is not None}
    rows = []
    for row in final.rows:
        public_rank = None if row.rank is None else public_ranks.get(row.team)
        change = None if public_rank is None or row.rank is None else public_rank - row.rank
        rows.append(row.model_copy(update={"public_rank": public_rank, "rank_change": change}))
    return final.model_copy(update={"rows": rows, "final": True})


def rankable() -> list[ColumnElement[bool]]:
    """The conditions a submission meets to count on any board: the organiser has not
    hidden it, nor disqualified its team (server/state/moderation.py)."""
    disqualified = select(Team.id).where(Team.disqualified_reason.is_not(None))
    return [Submission.hidden_reason.is_(None), Submission.team_id.not_in(disqualified)]


def current_version(suite: str) -> ColumnElement[bool]:
    """The condition a result meets to be ranked: computed under the engine's current version
    of ``suite`` (results of older versions stay stored, and are rejudged). A suite the engine
    no longer defines has no current version: its boards rank what they hold."""
    known = SUITES.get(suite)
    return Result.suite_version == known.version if known is not None else true()


def rejudging_count(session: Session, phase_id: int | None, suite: str) -> int:
    """How many submissions are being re-evaluated in the phase: an evaluation of theirs
    waits or runs there while they hold a result of an older version of ``suite``."""
    known = SUITES.get(suite)
    if known is None or phase_id is None:
        return 0
    older = (
        select(Result.submission_id)
        .join(Evaluation, Evaluation.id == Result.evaluation_id)
        .where(Evaluation.phase_id == phase_id, Result.suite == suite, Result.suite_version != known.version)
    )
    return (
        session.scalar(
            select(func.count(func.distinct(Evaluation.submission_id))).where(
                Evaluation.phase_id == phase_id,
                Evaluation.suite == suite,
                Evaluation.status.in_(ACTIVE_STATUSES),
                Evaluation.submission_id.in_(older),
            )
        )
        or 0
    )


def _disqualified(
    session: Session,
    score: SQLColumnExpression[float | None],
    phase_id: int | None,
    conditions: list[ColumnElement[bool]],
) -> list[DisqualifiedTeam]:
    """The disqualified teams this board would rank otherwise (a result it counts, not
    hidden), by name, with the organiser's reason."""
    on_board = (
        select(Submission.id)
        .join(Result, Result.submission_id == Submission.id)
        .join(Evaluation, Evaluation.id == Result.evaluation_id)
        .where(
            Submission.team_id == Team.id,
            Evaluation.phase_id == phase_id,
            Submission.hidden_reason.is_(None),
            *conditions,
            score.is_not(None),
        )
        .exists()
    )
    listed = session.execute(
        select(Team.name, Team.disqualified_reason, Team.moderated_at)
        .where(Team.disqualified_reason.is_not(None), on_board)
        .order_by(Team.name)
    )
    return [
        DisqualifiedTeam(team=name, reason=reason, disqualified_at=moderated_at)
        for name, reason, moderated_at in listed
    ]


def _ranking(
    score: SQLColumnExpression[float | None], phase_id: int | None, conditions: list[ColumnElement[bool]]
) -> Select[*tuple[Any, ...]]:
    """Each team's best result in the phase by ``score`` (ties to the earlier submission),
    best first, with the team, its number of submissions in the phase's competition and the
    stored metrics of that result."""
    competition = select(Phase.competition_id).where(Phase.id == phase_id).scalar_subquery()
    best = (
        select(
            Submission.id.label("submission_id"),
            Submission.team_id,
            Submission.created_at,
            Submission.sigma,
            Result.id.label("result_id"),
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
        .join(Evaluation, Evaluation.id == Result.evaluation_id)
        .where(Evaluation.phase_id == phase_id, *conditions, score.is_not(None))
        .subquery()
    )
    counts = (
        select(Submission.team_id, func.count(Submission.id).label("submissions"))
        .where(Submission.competition_id == competition)
        .group_by(Submission.team_id)
        .subquery()
    )
    return (
        select(best, Team.name, Team.is_baseline, counts.c.submissions, Result.metrics)
        .join(Team, Team.id == best.c.team_id)
        .join(counts, counts.c.team_id == best.c.team_id)
        .join(Result, Result.id == best.c.result_id)
        .where(best.c.position == 1)
        .order_by(best.c.score.desc(), best.c.created_at.asc(), best.c.submission_id.asc())
    )


def _flags(metrics: dict[str, Any]) -> list[Flag]:
    return [
        Flag(code=str(flag.get("code")), message=str(flag.get("message", "")))
        for flag in metrics.get("flags") or []
        if isinstance(flag, dict)
    ]


def _intervals(metrics: dict[str, Any]) -> dict[str, tuple[float, float]]:
    out = {}
    for name in METRICS:
        ci = (metrics.get(name) or {}).get("ci95")
        if isinstance(ci, list | tuple) and len(ci) == 2:
            out[name] = (float(ci[0]), float(ci[1]))
    return out


def _certified_interval(
    metrics: dict[str, Any], radius: float, accuracy: float
) -> tuple[float, float] | None:
    smoothing = metrics.get("smoothing") or {}
    if radius == HEADLINE_RADIUS and "smoothing" in _intervals(metrics):
        return _intervals(metrics)["smoothing"]
    n = smoothing.get("n")
    if not isinstance(n, int) or n <= 0:
        return None
    return clopper_pearson(round(accuracy * n), n)


# Every change a board shows moves one of these: results are only ever added, and every
# upload, discarded upload or moderation bumps its team's counter — no count over submissions.
_VERSION = select(
    select(func.max(Result.id)).scalar_subquery(),
    select(func.max(Submission.id)).scalar_subquery(),
    select(func.coalesce(func.sum(Team.submission_counter), 0)).scalar_subquery(),
)


class _BoardCache:
    """Recently computed boards, each valid for the database version it was computed at.

    Results are written once and never change; a board changes only when a result is added,
    a submission is added or removed, or the organiser hides or disqualifies (or undoes it),
    which moves the version. Boards are frozen models,
    shared by every reader with their JSON.
    """

    def __init__(self, size: int = 64) -> None:
        self._entries: OrderedDict[tuple[Any, ...], tuple[tuple[Any, ...], Published]] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()
        self._computing: dict[tuple[Any, ...], threading.Lock] = {}

    def computing(self, key: tuple[Any, ...]) -> threading.Lock:
        with self._lock:
            return self._computing.setdefault(key, threading.Lock())

    def get(self, key: tuple[Any, ...], version: tuple[Any, ...]) -> Published | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != version:
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, key: tuple[Any, ...], version: tuple[Any, ...], board: Published) -> None:
        with self._lock:
            self._entries[key] = (version, board)
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                old, _ = self._entries.popitem(last=False)
                self._computing.pop(old, None)


_CACHE = _BoardCache()
