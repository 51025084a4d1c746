"""The ranking and the architecture list, both public."""

import threading
from collections import OrderedDict

from fastapi import APIRouter
from fastapi.responses import Response

from models.catalog import CATALOG
from server.routes.exports import BoardDep
from server.schemas import ArchitecturePublic, Leaderboard

router = APIRouter(prefix="/api", tags=["leaderboard"])

# Boards are cached and shared until the database changes (server.leaderboard); their JSON is
# kept beside them so a busy night's readers cost one small query each, not a serialisation.
_JSON: OrderedDict[int, tuple[Leaderboard, bytes]] = OrderedDict()
_JSON_LOCK = threading.Lock()


def board_json(board: Leaderboard) -> bytes:
    with _JSON_LOCK:
        entry = _JSON.get(id(board))
        if entry is not None and entry[0] is board:
            return entry[1]
    body = board.model_dump_json().encode()
    with _JSON_LOCK:
        _JSON[id(board)] = (board, body)
        while len(_JSON) > 32:
            _JSON.popitem(last=False)
    return body


@router.get("/leaderboard", response_model=Leaderboard)
def read_leaderboard(board: BoardDep) -> Response:
    """Teams ranked by their best finished submission (``?suite=&track=&radius=``)."""
    return Response(board_json(board), media_type="application/json")


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
