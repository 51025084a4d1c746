"""Teams, their tokens and their submission quota."""

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.state.names import name_key
from server.state.security import hash_token, new_token
from server.state.tables import ACTIVE_STATUSES, Evaluation, Submission, Team, utcnow


def create_team(*, session: Session, name: str, baseline: bool = False) -> tuple[Team, str]:
    """Create a team and return it with its token, which is never stored in clear.

    ``name`` is already cleaned (server/state/names.py); a look-alike of an existing name fails
    with IntegrityError on the unique key.
    """
    token = new_token()
    team = Team(name=name, name_key=name_key(name), token_hash=hash_token(token), is_baseline=baseline)
    session.add(team)
    session.commit()
    return team, token


def team_by_token(*, session: Session, token: str) -> Team | None:
    team = session.scalar(select(Team).where(Team.token_hash == hash_token(token)))
    return None if team is None or team.revoked else team


def team_by_name(*, session: Session, name: str) -> Team | None:
    return session.scalar(select(Team).where(Team.name == name))


def team_like(*, session: Session, name: str) -> Team | None:
    """The team whose name differs from ``name`` at most by case or Unicode form."""
    exact = team_by_name(session=session, name=name)
    return exact or session.scalar(select(Team).where(Team.name_key == name_key(name)))


def look_alike_teams(*, session: Session) -> list[tuple[str, str]]:
    """(name, the earlier team's name) of teams created before names had to differ by more
    than case or Unicode form; they are kept as they are."""
    keyed = select(Team.name_key, Team.name).where(Team.name_key.is_not(None))
    owners: dict[str, str] = {key: name for key, name in session.execute(keyed) if key is not None}
    unkeyed = select(Team.name).where(Team.name_key.is_(None)).order_by(Team.id)
    return [(name, owners.get(name_key(name), "?")) for name in session.scalars(unkeyed)]


def rotate_token(*, session: Session, team: Team) -> str:
    """Revoke the team's current token and issue a new one."""
    token = new_token()
    team.token_hash = hash_token(token)
    team.revoked = False
    session.commit()
    return token


def revoke_team(*, session: Session, team: Team) -> None:
    team.revoked = True
    session.commit()


# --- quota -------------------------------------------------------------------------------


class QuotaExceeded(Exception):
    """The team may not submit now; the message says why and when it may."""


def _day_start(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def quota_usage(*, session: Session, team_id: int, competition_id: int | None = None) -> tuple[int, int]:
    """(counted uploads since midnight UTC, uploads with an evaluation validating, queued or
    running now), in one competition, or in all of them when ``competition_id`` is None."""
    now = utcnow()
    where = [Submission.team_id == team_id]
    if competition_id is not None:
        where.append(Submission.competition_id == competition_id)
    used = session.scalar(
        select(func.count(Submission.id)).where(
            *where, Submission.charged.is_(True), Submission.created_at >= _day_start(now)
        )
    )
    active = session.scalar(
        select(func.count(func.distinct(Submission.id)))
        .join(Evaluation, Evaluation.submission_id == Submission.id)
        .where(*where, Evaluation.status.in_(ACTIVE_STATUSES))
    )
    return int(used or 0), int(active or 0)


def check_quota(
    *, session: Session, team_id: int, competition_id: int | None, per_day: int, max_active: int
) -> None:
    """Raise QuotaExceeded with a message a team can act on (the competition's quota)."""
    used, active = quota_usage(session=session, team_id=team_id, competition_id=competition_id)
    if active >= max_active:
        raise QuotaExceeded(
            f"You already have {active} submission(s) queued or running (at most {max_active}); "
            "wait until it finishes."
        )
    if used >= per_day:
        raise QuotaExceeded(
            f"Daily quota reached: {used} of {per_day} submissions used today (UTC); "
            "it resets at midnight UTC."
        )
