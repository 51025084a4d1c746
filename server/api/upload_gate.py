"""Refusing a request with a bad token before reading a byte of its body.

FastAPI reads a body before it runs any dependency, so a token checked by a dependency alone
would let anyone make the server receive and spool 200 MiB. This ASGI middleware looks at
the ``Authorization`` header of every upload (a team's token) and of team and competition
creation (the admin token) first; the routes' own dependencies check it again.
"""

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


#: The check of each (method, path) that takes a body.
#: Guarded routes: how each reads its bearer token (naming the token it wants when it is
#: missing) and how it checks it.
GUARDED = {
    ("POST", "/api/submissions"): (bearer_token, _team),
    ("POST", "/api/teams"): (admin_bearer_token, _admin),
    ("POST", "/api/competitions"): (admin_bearer_token, _admin),
}


class TokenBeforeBody:
    """ASGI middleware: 401/403 for a request whose token is missing, malformed or wrong."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        guard = GUARDED.get((scope["method"], scope["path"].rstrip("/"))) if scope["type"] == "http" else None
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
