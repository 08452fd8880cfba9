"""The one place where errors become HTTP responses (problem+json naming the field)."""

from __future__ import annotations

import logging

import connexion
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from connexion.problem import problem
from sqlalchemy.exc import DataError
from starlette.responses import JSONResponse

from f8a_jobs.core.errors import F8aJobsError

log = logging.getLogger(__name__)
TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    413: "Content Too Large",
    503: "Service Unavailable",
}


def domain_error(_request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    error = exc if isinstance(exc, F8aJobsError) else F8aJobsError(str(exc))
    status = error.status if error.status in TITLES else 500
    return problem(
        status,
        TITLES.get(status, "Internal Server Error"),
        error.detail,
        ext={"error": error.detail, "field": error.field},
        headers={"Retry-After": "5"} if status == 503 else None,
    )


def data_error(_request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    """A value the database refused (an out-of-range number, say): the client's input."""
    detail = f"a value could not be stored: {str(getattr(exc, 'orig', exc)).splitlines()[0]}"
    return problem(400, "Bad Request", detail, ext={"error": detail})


def unexpected_error(_request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    log.exception("unexpected error", exc_info=exc)
    detail = "internal error; the service log has the details"
    return problem(500, "Internal Server Error", detail, ext={"error": detail})


def problem_response(status: int, field: str, detail: str) -> JSONResponse:
    """The same problem+json, sent by ASGI middleware, which runs outside Connexion's error
    handlers."""
    body = {
        "type": "about:blank",
        "title": TITLES[status],
        "status": status,
        "detail": f"{field}: {detail}",
        "error": f"{field}: {detail}",
        "field": field,
    }
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def register(app: connexion.FlaskApp) -> None:
    app.add_error_handler(F8aJobsError, domain_error)
    app.add_error_handler(DataError, data_error)
    app.add_error_handler(Exception, unexpected_error)
