"""Errors returned to clients: always JSON ``{"detail": message}``, plus the form field concerned."""

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


class FieldError(Exception):
    """A rejected request whose message belongs next to one field of the upload form."""

    def __init__(self, status_code: int, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.field = field


async def field_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FieldError)
    body: dict[str, str] = {"detail": exc.detail}
    if exc.field:
        body["field"] = exc.field
    return JSONResponse(body, status_code=exc.status_code)


async def validation_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    """Turn pydantic's error list into one readable sentence (the list stays under ``errors``)."""
    assert isinstance(exc, RequestValidationError)
    parts = []
    for error in exc.errors():
        location = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query"))
        parts.append(f"{location}: {error.get('msg')}" if location else str(error.get("msg")))
    errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
    body: dict[str, object] = {"detail": "; ".join(parts) or "Invalid request.", "errors": errors}
    fields = {str(e["loc"][-1]) for e in exc.errors() if e.get("loc")}
    if len(fields) == 1:
        body["field"] = fields.pop()
    return JSONResponse(body, status_code=422)
