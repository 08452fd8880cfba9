"""Schemathesis fuzzes the live service from ``swagger.yaml`` with every check it has, in every
phase (examples, boundary values, fuzzing, stateful sequences): no 5xx, nothing off the spec."""

import subprocess
import sys
from pathlib import Path

import pytest

CONFIG = Path(__file__).with_name("schemathesis.toml")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_live_service_conforms_to_its_spec(backend, db_url, engine, server_factory, tmp_path):
    server = server_factory(db_url, F8A_JOBS_WORKERS="1").start()
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "st"),
            "--config-file",
            str(CONFIG),
            "run",
            f"{server.url}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            "100",
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
