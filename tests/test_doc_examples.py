"""Every shell example of the README and of docs/ works on a fresh ``make run``.

The service starts as ``make run`` starts it: the embedded SQLite file, the default jobs of
``default_jobs/`` and the demo analytics tables. Then each page's ``sh`` blocks run in order, as
a reader pastes them, with ``curl`` failing on any answer of 400 or more. Blocks that start
another server (``make run``, ``F8A_JOBS_… make run``) are left out: they are commands, not
requests.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Server

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["README.md", *sorted(path.relative_to(ROOT).as_posix() for path in (ROOT / "docs").glob("*.md"))]
SH_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)
PRELUDE = """set -euo pipefail
curl() { command curl --silent --show-error --fail-with-body "$@"; }
"""


def examples(page: str) -> list[str]:
    """The page's shell blocks that speak to the service and start nothing."""
    blocks = SH_BLOCK.findall((ROOT / page).read_text(encoding="utf-8"))
    return [block for block in blocks if ":34000" in block and not re.search(r"\bmake\b", block)]


@pytest.fixture(scope="module")
def fresh_make_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("make-run")
    url = f"sqlite:///{tmp / 'f8a_jobs.db'}"
    loaded = subprocess.run(
        [sys.executable, "-m", "f8a_jobs.cli", "demo"],
        env={**os.environ, "PYTHONPATH": str(ROOT), "F8A_JOBS_DATABASE_URL": url},
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert loaded.returncode == 0, loaded.stderr
    server = Server(url, ROOT / "default_jobs", tmp / "server.log").start()
    yield server
    server.stop()


def test_every_page_has_its_examples_found():
    assert len(examples("README.md")) >= 5
    assert examples("docs/workflows.md") and examples("docs/jobs-and-schedules.md")


@pytest.mark.parametrize("page", PAGES)
def test_each_example_of_the_page_answers_without_an_error(fresh_make_run, page):
    for block in examples(page):
        script = PRELUDE + block.replace("localhost:34000", f"127.0.0.1:{fresh_make_run.port}")
        script = script.replace("127.0.0.1:34000", f"127.0.0.1:{fresh_make_run.port}")
        done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{page}:\n{block}\n--- answered:\n{done.stdout[-3000:]}{done.stderr[-2000:]}"
    assert "Traceback" not in fresh_make_run.log()


def test_the_readme_tours_filter_run_logged_what_its_rows_made(fresh_make_run):
    """The README's step 6 shows this line (after its step 5 ran, above)."""
    runs = fresh_make_run.client.get("/jobs/tour-filter/runs", params={"limit": 1}).json()["runs"]
    page = fresh_make_run.client.get(f"/jobs/tour-filter/runs/{runs[0]['run_id']}/logs").json()
    assert [record["message"] for record in page["records"]] == [
        "2 bayesianFlow flows emitted for the rows of its $filter"
    ]
    assert page["records"][0]["logger"] == "f8a_jobs.handlers.flow_scheduling.FlowScheduling"
