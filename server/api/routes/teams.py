"""Creating teams (admin) and reading one's own team."""

from fastapi import APIRouter
from sqlalchemy.exc import IntegrityError

from server.api.deps import AdminDep, CurrentTeam, SessionDep, SettingsDep, WriteSessionDep
from server.api.errors import FieldError
from server.api.presenters import quota_of
from server.api.schemas import Quota, TeamCreate, TeamCreated
from server.state import teams
from server.state.names import clean_team_name

router = APIRouter(prefix="/api/teams", tags=["teams"])


@router.post("", status_code=201, response_model=TeamCreated)
def create_team(body: TeamCreate, session: WriteSessionDep, _admin: AdminDep) -> TeamCreated:
    """Create a team (admin token required). The token in the answer is shown only once."""
    try:
        name = clean_team_name(body.name)
    except ValueError as error:
        raise FieldError(422, str(error), "name") from None
    taken = teams.team_like(session=session, name=name)
    if taken is not None:
        raise FieldError(409, _taken(name, taken.name), "name")
    try:
        team, token = teams.create_team(session=session, name=name, baseline=body.baseline)
    except IntegrityError:
        session.rollback()
        raise FieldError(409, _taken(name, name), "name") from None
    return TeamCreated(id=team.id, name=team.name, token=token)


def _taken(name: str, existing: str) -> str:
    if name == existing:
        return f"A team named {name!r} already exists."
    return f"A team named {existing!r} already exists; {name!r} differs only by case or form."


@router.get("/me/quota", response_model=Quota)
def my_quota(session: SessionDep, settings: SettingsDep, team: CurrentTeam) -> Quota:
    """How many submissions the calling team has left today."""
    return quota_of(session, settings, team)
