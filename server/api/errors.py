"""Errors returned to clients: JSON ``{"detail": message}``, plus the form field concerned.

A browser opening a page (not ``/api`` or ``/export``) gets the same message as an HTML page
instead, through the renderer the app installs (``server/web/pages.py``).
"""

from collections.abc import Callable, Mapping

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

#: Renders (request, status code, message) as an HTML page.
HtmlRenderer = Callable[[Request, int, str], Response]


class FieldError(Exception):
    """A rejected request whose message belongs next to one field of the upload form."""

    def __init__(
        self,
        status_code: int,
        detail: str,
        field: str | None = None,
        extra: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.field = field
        self.extra = extra or {}  # more keys of the JSON answer (e.g. a phase's dates)


def field_error_response(exc: FieldError) -> JSONResponse:
    body: dict[str, object] = {"detail": exc.detail}
    if exc.field:
        body["field"] = exc.field
    body.update(exc.extra)
    return JSONResponse(body, status_code=exc.status_code)


def validation_error_body(exc: RequestValidationError) -> dict[str, object]:
    """Pydantic's error list as one readable sentence (the list stays under ``errors``)."""
    parts = []
    for error in exc.errors():
        location = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query"))
        parts.append(f"{location}: {error.get('msg')}" if location else str(error.get("msg")))
    errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
    body: dict[str, object] = {"detail": "; ".join(parts) or "Invalid request.", "errors": errors}
    fields = {str(e["loc"][-1]) for e in exc.errors() if e.get("loc")}
    if len(fields) == 1:
        body["field"] = fields.pop()
    return body


def wants_html(request: Request) -> bool:
    """A browser navigating to a page, rather than a script calling the API."""
    path = request.url.path
    return not path.startswith(("/api/", "/export/", "/static/")) and "text/html" in (
        request.headers.get("accept") or ""
    )


def install_error_handlers(app: FastAPI, html: HtmlRenderer) -> None:
    """JSON errors for the API, HTML ones for people browsing the pages."""

    async def on_field_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, FieldError)
        if wants_html(request):
            return html(request, exc.status_code, exc.detail)
        return field_error_response(exc)

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        body = validation_error_body(exc)
        if wants_html(request):
            return html(request, 422, str(body["detail"]))
        return JSONResponse(body, status_code=422)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if wants_html(request):
            return html(request, exc.status_code, str(exc.detail))
        return await http_exception_handler(request, exc)

    app.add_exception_handler(FieldError, on_field_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(HTTPException, on_http_error)
