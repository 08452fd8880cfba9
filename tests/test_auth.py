"""Bearer tokens over HTTP: required everywhere but the probes, the UI and the spec."""

import pytest

from f8a_jobs.api.auth import Identities, secure
from f8a_jobs.api.jwt_tokens import TokenRefused
from f8a_jobs.core.access import Caller
from f8a_jobs.core.settings import Settings


def test_tokens_are_compared_with_every_configured_one():
    identities = Identities(Settings(api_tokens=("first", "second")))
    assert identities.caller("second") == Caller("token-2", (), admin=True)
    for wrong in ("secon", ""):
        with pytest.raises(TokenRefused, match="not known"):
            identities.caller(wrong)


def test_without_tokens_the_spec_asks_for_none():
    spec = {"security": [{"bearerAuth": []}], "paths": {}}
    assert "security" not in secure(spec, Settings())
    assert secure(spec, Settings(api_tokens=("t",))) is spec


def test_the_api_needs_a_configured_token(db_url, engine, server_factory):
    server = server_factory(db_url, F8A_JOBS_WORKERS="1", F8A_JOBS_API_TOKENS="s3cret, other").start()
    assert server.get("/jobs").status_code == 401
    assert server.get("/jobs", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert server.get("/jobs", headers={"Authorization": "Basic s3cret"}).status_code == 401
    assert server.get("/jobs", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    created = server.post("/jobs", json={"handler": "Noop"}, headers={"Authorization": "Bearer other"})
    assert created.status_code == 201
    assert server.post("/jobs", json={"handler": "Noop"}).status_code == 401
    assert server.get("/liveness").status_code == 200 and server.get("/readiness").status_code == 200
    assert server.get("/ui/").status_code == 200
    spec = server.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_without_tokens_the_service_warns_and_serves(db_url, engine, server_factory):
    server = server_factory(db_url, F8A_JOBS_WORKERS="1").start()
    assert server.get("/jobs").status_code == 200
    assert "no F8A_JOBS_API_TOKENS, users file or JWT keys" in server.log()
