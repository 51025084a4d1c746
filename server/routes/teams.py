"""Creating teams (admin) and reading one's own team."""

from fastapi import APIRouter
from sqlalchemy.exc import IntegrityError

from server import crud
from server.deps import AdminDep, CurrentTeam, SessionDep, SettingsDep, WriteSessionDep
from server.errors import FieldError
from server.presenters import quota_of
from server.schemas import Quota, TeamCreate, TeamCreated

router = APIRouter(prefix="/api/teams", tags=["teams"])


@router.post("", status_code=201, response_model=TeamCreated)
def create_team(body: TeamCreate, session: WriteSessionDep, _admin: AdminDep) -> TeamCreated:
    """Create a team (admin token required). The token in the answer is shown only once."""
    name = body.name.strip()
    if not name or not name.isprintable():
        raise FieldError(422, "Team names must be non-empty printable text.", "name")
    if crud.team_by_name(session=session, name=name) is not None:
        raise FieldError(409, f"A team named {name!r} already exists.", "name")
    try:
        team, token = crud.create_team(session=session, name=name, baseline=body.baseline)
    except IntegrityError:
        session.rollback()
        raise FieldError(409, f"A team named {name!r} already exists.", "name") from None
    return TeamCreated(id=team.id, name=team.name, token=token)


@router.get("/me/quota", response_model=Quota)
def my_quota(session: SessionDep, settings: SettingsDep, team: CurrentTeam) -> Quota:
    """How many submissions the calling team has left today."""
    return quota_of(session, settings, team)
