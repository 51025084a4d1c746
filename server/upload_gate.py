"""Refusing an upload with a bad team token before reading a byte of its body.

FastAPI parses a form before it runs any dependency, so a token checked by a dependency
alone would let anyone make the server receive and spool 200 MiB. This ASGI middleware looks
at the ``Authorization`` header of every upload first; the route's own dependency checks it
again.
"""

import anyio
from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from server.deps import INVALID_TOKEN, bearer_token, team_id_of

#: (method, path) of the routes that take a large body from a team.
GUARDED = {("POST", "/api/submissions")}


class TokenBeforeBody:
    """ASGI middleware: 401 for an upload whose token is missing, malformed or unknown."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (scope["method"], scope["path"].rstrip("/")) in GUARDED:
            headers = dict(scope.get("headers") or [])
            authorization = headers.get(b"authorization", b"").decode("latin-1") or None
            try:
                token = bearer_token(authorization)
                if await anyio.to_thread.run_sync(team_id_of, token) is None:
                    raise HTTPException(401, detail=INVALID_TOKEN)
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
