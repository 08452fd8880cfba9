import os
import subprocess
import sys
from pathlib import Path

import yaml

from f8a_jobs.core.settings import bundled_path
from f8a_jobs.services import jobs
from f8a_jobs.services.jobs.defaults import load_default_jobs
from tests.conftest import ROOT

JOB = {
    "job_id": "nightly",
    "handler": "FlowScheduling",
    "periodically": "1 day",
    "kwargs": {"flow_name": "bayesianFlow", "flow_arguments": [{"name": "serve-static"}]},
}


def write(directory: Path, name: str, data) -> Path:
    path = directory / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def test_shipped_default_jobs_all_load(engine):
    report = load_default_jobs(engine, bundled_path("default_jobs"))
    assert report.errors == []
    assert len(report.created) >= 2
    assert jobs.list_jobs(engine)[1] == len(report.created)


def test_loading_twice_creates_no_duplicate_and_keeps_the_schedule(engine, tmp_path):
    write(tmp_path, "nightly.yaml", JOB)
    assert load_default_jobs(engine, tmp_path).created == ["nightly"]
    before = jobs.get_job(engine, "nightly")
    again = load_default_jobs(engine, tmp_path)
    assert again.unchanged == ["nightly"] and again.created == []
    assert jobs.get_job(engine, "nightly") == before
    assert jobs.list_jobs(engine)[1] == 1


def test_a_changed_file_updates_its_job_but_not_its_state(engine, tmp_path):
    write(tmp_path, "nightly.yaml", JOB)
    load_default_jobs(engine, tmp_path)
    write(tmp_path, "nightly.yaml", {**JOB, "periodically": "12 hours", "state": "paused"})
    assert load_default_jobs(engine, tmp_path).updated == ["nightly"]
    job = jobs.get_job(engine, "nightly")
    assert job["periodically"] == "12 hours" and job["state"] == "running"
    assert job["source"] == "nightly.yaml" and job["next_run_time"] is not None


def test_a_pause_made_through_the_api_survives_a_changed_file(engine, tmp_path):
    write(tmp_path, "nightly.yaml", JOB)
    load_default_jobs(engine, tmp_path)
    jobs.set_job_state(engine, "nightly", "paused")
    write(tmp_path, "nightly.yaml", {**JOB, "periodically": "12 hours"})
    assert load_default_jobs(engine, tmp_path).updated == ["nightly"]
    job = jobs.get_job(engine, "nightly")
    assert job["periodically"] == "12 hours"
    assert job["state"] == "paused" and job["next_run_time"] is None


def test_a_file_never_overwrites_a_job_made_elsewhere(engine, tmp_path):
    api_job = jobs.create_job(engine, jobs.parse_job({**JOB, "periodically": "1 week"}))
    write(tmp_path, "nightly.yaml", JOB)
    other = tmp_path / "other"
    other.mkdir()
    write(other, "copy.yaml", {**JOB, "job_id": "copied"})
    write(other, "nightly-again.yaml", JOB)
    report = load_default_jobs(engine, tmp_path)
    assert report.created == [] and report.errors == [
        "nightly.yaml: job_id: job 'nightly' was created through the API; nightly.yaml does not overwrite it"
    ]
    assert jobs.get_job(engine, "nightly") == api_job
    load_default_jobs(engine, other)
    write(tmp_path / "other", "copy-again.yaml", {**JOB, "job_id": "copied"})
    errors = load_default_jobs(engine, other).errors
    assert "copy-again.yaml: job_id: job 'copied' was created by copy.yaml" in "\n".join(errors)


def test_bad_files_are_reported_by_name_and_key_and_skipped(engine, tmp_path):
    write(tmp_path, "good.yml", JOB)
    write(
        tmp_path,
        "no-handler.yaml",
        {k: v for k, v in JOB.items() if k != "handler"} | {"job_id": "x"},
    )
    write(tmp_path, "bad-period.yaml", {**JOB, "job_id": "y", "periodically": "sometimes"})
    write(tmp_path, "typo.yaml", {**JOB, "job_id": "z", "perodically": "1 day"})
    write(tmp_path, "broken.yaml", "job_id: [unclosed")
    write(tmp_path, "notes.txt", "not a job")
    report = load_default_jobs(engine, tmp_path)
    assert report.created == ["nightly"]
    errors = "\n".join(report.errors)
    assert "no-handler.yaml: handler: required" in errors
    assert "bad-period.yaml: periodically:" in errors
    assert "typo.yaml: perodically: unknown field" in errors
    assert "broken.yaml: yaml: not valid YAML" in errors
    assert len(report.errors) == 4


def run_cli(*args: str, database_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "f8a_jobs.cli", *args],
        env={**os.environ, "PYTHONPATH": str(ROOT), "F8A_JOBS_DATABASE_URL": database_url, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_initjobs_strict_fails_on_a_bad_file_and_lenient_does_not(db_url, engine, tmp_path):
    write(tmp_path, "nightly.yaml", JOB)
    write(tmp_path, "typo.yaml", {**JOB, "job_id": "z", "perodically": "1 day"})
    lenient = run_cli("initjobs", "--dir", str(tmp_path), database_url=db_url)
    assert lenient.returncode == 0, lenient.stderr
    assert "1 created" in lenient.stdout and "typo.yaml: perodically" in lenient.stderr
    strict = run_cli("initjobs", "--dir", str(tmp_path), "--strict", database_url=db_url)
    assert strict.returncode == 1
    assert "1 unchanged" in strict.stdout


def test_migrate_command_is_idempotent(db_url, engine):
    for _ in range(2):
        result = run_cli("migrate", database_url=db_url)
        assert result.returncode == 0, result.stderr
        assert "schema up to date" in result.stdout


def test_a_malformed_setting_names_its_variable(db_url):
    result = run_cli("migrate", database_url=db_url, F8A_JOBS_PORT="http")
    assert result.returncode != 0
    assert "F8A_JOBS_PORT='http' is not a valid int" in result.stderr


def test_a_broker_url_of_no_known_transport_is_refused_at_start(db_url):
    result = run_cli("serve", database_url=db_url, F8A_JOBS_BROKER_URL="carrier-pigeon://loft")
    assert result.returncode == 2
    assert "F8A_JOBS_BROKER_URL: no broker transport" in result.stderr
