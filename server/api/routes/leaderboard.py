"""The ranking and the architecture list, both public."""

from fastapi import APIRouter
from fastapi.responses import Response

from models.architectures.catalog import CATALOG
from server.api.deps import PublishedDep
from server.api.schemas import ArchitecturePublic, Leaderboard

router = APIRouter(prefix="/api", tags=["leaderboard"])


@router.get("/leaderboard", response_model=Leaderboard)
async def read_leaderboard(published: PublishedDep) -> Response:
    """Teams ranked by their best finished submission (``?suite=&track=&radius=``)."""
    return Response(published.json, media_type="application/json")


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
