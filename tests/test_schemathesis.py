"""Schemathesis fuzzes the live service from ``swagger.yaml``: no 5xx, nothing off the spec."""

import subprocess
import sys
from pathlib import Path

import pytest

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
        "negative_data_rejection",
    ]
)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_live_service_conforms_to_its_spec(backend, db_url, engine, server_factory, tmp_path):
    server = server_factory(db_url, F8A_JOBS_WORKERS="1").start()
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "st"),
            "run",
            f"{server.url}/openapi.json",
            "--checks",
            CHECKS,
            "--max-examples",
            "40",
            "--seed",
            "20261121",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "Traceback" not in server.log()
    assert "passed" in result.stdout
