"""The command line: settings refused with their names, secure by default, roles."""

import dataclasses

import pytest

from f8a_jobs.core.clock import utcnow
from f8a_jobs.services import jobs
from f8a_jobs.services.jobs import store
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


def test_initjobs_from_a_directory_that_does_not_exist_fails(db_url, tmp_path):
    result = run_cli("initjobs", "--dir", str(tmp_path / "nowhere"), database_url=db_url)
    assert result.returncode == 2
    assert "nowhere: no such directory" in result.stderr


def test_a_job_whose_id_no_url_reaches_is_named_at_start_and_can_be_deleted(db_url, engine, server_factory):
    """Ids with '/' were accepted before ids were checked: such a row has a way out."""
    spec = dataclasses.replace(jobs.parse_job({"job_id": "x", "handler": "Noop", "state": "paused"}), job_id="a/b")
    with engine.begin() as connection:
        store.add(connection, spec, utcnow())
    server = server_factory(db_url).start()
    assert server.get("/jobs/a%2Fb").status_code == 404  # what made it unreachable
    assert "f8a-jobs delete-job a/b" in server.log()
    deleted = run_cli("delete-job", "a/b", database_url=db_url)
    assert deleted.returncode == 0, deleted.stderr
    assert server.get("/jobs").json()["total"] == 0
    assert run_cli("delete-job", "a/b", database_url=db_url).returncode == 1  # no such job now
