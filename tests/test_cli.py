"""The command line: settings refused with their names, secure by default, roles."""

import pytest

from tests.conftest import poll
from tests.test_default_jobs import run_cli


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("F8A_JOBS_LOG_LEVEL", "loud", "F8A_JOBS_LOG_LEVEL='loud' is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("F8A_JOBS_PAUSED", "maybe", "F8A_JOBS_PAUSED='maybe' is not a boolean; use one of 1, true, yes, on or 0, false, no, off"),
        ("JOB_SERVICE_PAUSED", "y", "JOB_SERVICE_PAUSED='y' is not a boolean"),
        ("F8A_JOBS_ROLE", "boss", "F8A_JOBS_ROLE='boss' is not one of all, api, scheduler"),
    ],
)
def test_a_malformed_setting_stops_the_service_naming_it_and_what_it_accepts(db_url, variable, value, message):
    result = run_cli("migrate", database_url=db_url, **{variable: value})
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_listening_beyond_loopback_needs_tokens_or_consent(db_url):
    refused = run_cli("serve", "--host", "0.0.0.0", database_url=db_url)  # noqa: S104
    assert refused.returncode == 2
    assert "F8A_JOBS_API_TOKENS is not set" in refused.stderr and "F8A_JOBS_ALLOW_ANONYMOUS" in refused.stderr


def test_roles_api_serves_without_contending_and_scheduler_serves_only_probes(pg_url, pg_engine, server_factory):
    api = server_factory(pg_url, F8A_JOBS_ROLE="api").start()
    scheduler = server_factory(pg_url, F8A_JOBS_ROLE="scheduler").start()
    assert poll(lambda: scheduler.get("/service/state").json()["scheduler"] == "leader")
    assert scheduler.get("/jobs").status_code == 404
    assert {api.get("/service/state", headers={"Connection": "close"}).json()["scheduler"] for _ in range(6)} == {"standby"}
    assert api.post("/jobs", json={"job_id": "via-api", "handler": "Noop"}).status_code == 201
    poll(lambda: [r["status"] for r in api.get("/jobs/via-api/runs").json()["runs"]] == ["succeeded"])
