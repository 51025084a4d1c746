"""The ranking and the architecture list, both public."""

from fastapi import APIRouter, Query

from models.catalog import CATALOG
from server import leaderboard
from server.deps import SessionDep, SettingsDep
from server.schemas import ArchitecturePublic, Leaderboard

router = APIRouter(prefix="/api", tags=["leaderboard"])


@router.get("/leaderboard", response_model=Leaderboard)
def read_leaderboard(
    session: SessionDep,
    settings: SettingsDep,
    suite: str | None = Query(None, max_length=32, description="Suite; the server's by default."),
) -> Leaderboard:
    """Teams ranked by their best finished submission under the score rule."""
    return leaderboard.leaderboard(
        session=session, suite=suite or settings.suite, weights=settings.score_weights()
    )


@router.get("/architectures", response_model=list[ArchitecturePublic])
def list_architectures() -> list[ArchitecturePublic]:
    """The zoo: every architecture a checkpoint can be loaded into."""
    return [
        ArchitecturePublic(
            name=info.name,
            description=info.description,
            parameters=info.parameters,
            mean=info.mean,
            std=info.std,
            stochastic=info.stochastic,
            surrogate=info.surrogate,
        )
        for info in CATALOG.values()
    ]
