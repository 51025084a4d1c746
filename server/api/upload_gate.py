"""Refusing a request with a bad token before reading a byte of its body.

FastAPI reads a body before it runs any dependency, so a token checked by a dependency alone
would let anyone make the server receive and spool 200 MiB. This ASGI middleware looks at
the ``Authorization`` header of every upload (a team's token) and of team and competition
creation and moderation (the admin token) first; the routes' own dependencies check it again.
"""

import re
from collections.abc import Awaitable, Callable

import anyio
from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from server.api.deps import (
    INVALID_TOKEN,
    admin_bearer_token,
    bearer_token,
    require_admin,
    team_id_of,
)
from server.state.config import get_settings


async def _team(token: str) -> None:
    if await anyio.to_thread.run_sync(team_id_of, token) is None:
        raise HTTPException(401, detail=INVALID_TOKEN)


async def _admin(token: str) -> None:
    require_admin(token, get_settings())


#: How a guarded route reads its bearer token (naming the token it wants when it is missing)
#: and how it checks it.
Guard = tuple[Callable[[str | None], str], Callable[[str], Awaitable[None]]]

#: The check of each (method, path) that takes a body.
GUARDED: dict[tuple[str, str], Guard] = {
    ("POST", "/api/submissions"): (bearer_token, _team),
    ("POST", "/api/teams"): (admin_bearer_token, _admin),
    ("POST", "/api/competitions"): (admin_bearer_token, _admin),
}
#: Guarded routes whose path holds a submission id or a team name.
GUARDED_PATTERNS: list[tuple[str, re.Pattern[str], Guard]] = [
    ("POST", re.compile(r"/api/submissions/[^/]+/hide"), (admin_bearer_token, _admin)),
    ("POST", re.compile(r"/api/teams/.+/disqualify"), (admin_bearer_token, _admin)),
    ("POST", re.compile(r"/api/competitions/[^/]+/(publish|rerun)"), (admin_bearer_token, _admin)),
]


def guard_of(method: str, path: str) -> Guard | None:
    """The (token reader, check) of a guarded route, or None."""
    path = path.rstrip("/")
    guard = GUARDED.get((method, path))
    for verb, pattern, check in GUARDED_PATTERNS if guard is None else ():
        if verb == method and pattern.fullmatch(path):
            return check
    return guard


class TokenBeforeBody:
    """ASGI middleware: 401/403 for a request whose token is missing, malformed or wrong."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        guard = guard_of(scope["method"], scope["path"]) if scope["type"] == "http" else None
        if guard is not None:
            read_token, check = guard
            headers = dict(scope.get("headers") or [])
            authorization = headers.get(b"authorization", b"").decode("latin-1") or None
            try:
                await check(read_token(authorization))
            except HTTPException as error:
                response = JSONResponse(
                    {"detail": error.detail},
                    status_code=error.status_code,
                    # The body stays unread: the connection cannot be reused.
                    headers={**(error.headers or {}), "Connection": "close"},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
