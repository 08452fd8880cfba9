"""The HTTP API: Connexion (OpenAPI 3, ``swagger.yaml``) on Flask, served under ``/api/v1``."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import connexion
import flask
import yaml
from connexion.jsonifier import Jsonifier
from connexion.middleware import MiddlewarePosition
from connexion.options import SwaggerUIOptions
from sqlalchemy import Engine

from f8a_jobs.api import auth, context, errors
from f8a_jobs.api.allow import AllowHeader, allowed_methods
from f8a_jobs.api.collector import PauseCollector
from f8a_jobs.api.limits import LimitBodySize
from f8a_jobs.api.validation import VALIDATORS, RejectControlCharacters
from f8a_jobs.core.settings import Settings, bundled_path, get_settings, use_settings
from f8a_jobs.execution import metrics
from f8a_jobs.execution.leader import Leadership
from f8a_jobs.execution.log_writer import start_capturing
from f8a_jobs.execution.server_mark import ServerMark
from f8a_jobs.services.flows.dispatchers import check_flows_against
from f8a_jobs.storage.db import get_engine

log = logging.getLogger(__name__)


PROBES = ("/liveness", "/readiness", "/service/state")


def create_app(
    settings: Settings | None = None, server: ServerMark | None = None
) -> connexion.FlaskApp:
    """The ASGI app of ``settings.role``: ``all`` serves the API and contends to be the process
    that fires jobs, ``api`` only serves it, ``scheduler`` contends and serves only probes.
    ``server``: what the server's processes share about which of them leads."""
    settings = settings or get_settings()
    use_settings(settings)
    check_flows_against(settings)
    engine = get_engine(settings.database_url)
    leadership = Leadership(engine, settings, server) if settings.role != "api" else None
    context.install(engine, leadership)
    auth.install(auth.Identities(settings))

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        writer = start_capturing(engine, settings) if leadership else None
        if leadership:
            leadership.start()
        yield
        if leadership:
            await asyncio.to_thread(leadership.stop)
        if writer:
            await asyncio.to_thread(writer.stop)

    spec = yaml.safe_load(bundled_path("swagger.yaml").read_text(encoding="utf-8"))
    if settings.role == "scheduler":
        spec["paths"] = {path: item for path, item in spec["paths"].items() if path in PROBES}
    # Compact JSON (Connexion's default indents it): a page of 100 jobs is 40% smaller
    app = connexion.FlaskApp(__name__, lifespan=lifespan, jsonifier=Jsonifier(flask.json))
    app.add_api(
        auth.secure(spec, settings),
        swagger_ui_options=SwaggerUIOptions(swagger_ui_path="/ui"),
        validator_map=VALIDATORS,
        strict_validation=True,  # an unknown query parameter is a 400, not silently ignored
    )
    app.add_middleware(RejectControlCharacters, position=MiddlewarePosition.BEFORE_EXCEPTION)
    app.add_middleware(
        AllowHeader,
        position=MiddlewarePosition.BEFORE_EXCEPTION,
        table=allowed_methods(spec, spec["servers"][0]["url"]),
    )
    apply_path = f"{spec['servers'][0]['url']}/jobs/apply"
    apply_limit = (settings.max_apply_body_bytes, "F8A_JOBS_MAX_APPLY_BODY_BYTES")
    app.add_middleware(
        LimitBodySize,
        position=MiddlewarePosition.BEFORE_EXCEPTION,
        limit=settings.max_body_bytes,
        larger={apply_path: apply_limit},
    )
    app.add_middleware(
        PauseCollector, position=MiddlewarePosition.BEFORE_EXCEPTION, paths=frozenset({apply_path})
    )
    errors.register(app)
    app.app.add_url_rule("/metrics", "metrics", _metrics_view(engine, settings.metrics_token))
    return app


def _metrics_view(engine: Engine, token: str | None) -> Callable[[], Any]:
    """``GET /metrics`` (Prometheus): open, unless ``F8A_JOBS_METRICS_TOKEN`` asks for a token."""

    def view() -> Any:
        given = flask.request.headers.get("Authorization", "")
        if token and not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return flask.Response("a bearer token is needed\n", 401, {"WWW-Authenticate": "Bearer"})
        return flask.Response(
            metrics.exposition(engine), 200, {"Content-Type": metrics.CONTENT_TYPE}
        )

    return view
