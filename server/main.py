"""The FastAPI application: routers, error handlers, static files."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.staticfiles import StaticFiles

from server.api.errors import install_error_handlers
from server.api.head import HeadAsGet
from server.api.limits import UploadSizeLimit
from server.api.routes import competitions, exports, leaderboard, moderation, submissions, teams
from server.api.upload_gate import TokenBeforeBody
from server.state.config import get_settings
from server.web import competition_pages, final_selection, pages

STATIC = Path(__file__).parent / "web" / "static"


@asynccontextmanager
async def _lifespan(_app: FastAPI) -> AsyncIterator[None]:
    """Say once which isolation layers the pre-queue probe's children get on this host."""
    from worker.isolation import log_layers

    await run_in_threadpool(log_layers, get_settings().sandbox_user, "The API's probe")
    yield


def create_app() -> FastAPI:
    app = FastAPI(
        lifespan=_lifespan,
        title="Robustness Arena",
        description="Upload CIFAR-10 checkpoints; they are evaluated under adversarial attacks "
        "and randomized-smoothing certification, and ranked on a leaderboard.",
        version="0.1.0",
    )
    install_error_handlers(app, html=pages.error_page)
    app.add_middleware(UploadSizeLimit)
    app.add_middleware(TokenBeforeBody)  # the token before any byte of the body
    app.add_middleware(HeadAsGet)
    app.include_router(teams.router)
    app.include_router(submissions.router)
    app.include_router(leaderboard.router)
    app.include_router(exports.router)
    app.include_router(competitions.router)
    app.include_router(moderation.router)
    app.include_router(pages.router)
    app.include_router(competition_pages.router)
    app.include_router(final_selection.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


app = create_app()
