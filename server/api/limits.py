"""Refusing oversized uploads while they stream in, before they fill the disk or memory."""

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.state.config import get_settings

# Room for the multipart envelope and the other form fields around the file.
ENVELOPE_BYTES = 64 * 1024


class BodyTooLarge(Exception):
    pass


class UploadSizeLimit:
    """ASGI middleware: answer 413 as soon as a request body passes the upload limit."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        settings = get_settings()
        limit = int(settings.max_upload_mb * 1024 * 1024) + ENVELOPE_BYTES
        message = f"The file is larger than the limit of {settings.max_upload_mb:g} MiB."
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _reject(send, message)
            return
        received = 0
        started = False
        refused = False

        async def limited_receive() -> Message:
            # A chunked body declares no length: count it as it comes. The 413 goes out at
            # once, because the framework turns any error raised while it parses the form
            # into its own 400, which is then dropped below.
            nonlocal received, refused
            msg = await receive()
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                if received > limit:
                    if not started and not refused:
                        refused = True
                        await _reject(send, message)
                    raise BodyTooLarge
            return msg

        async def tracking_send(msg: Message) -> None:
            nonlocal started
            if refused:
                return
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started and not refused:
                await _reject(send, message)


async def _reject(send: Send, message: str) -> None:
    body = json.dumps({"detail": message, "field": "checkpoint"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})
