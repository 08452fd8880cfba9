"""``GET /runs``: runs across jobs, filtered, newest first, in keyset pages, and only those of
the jobs the caller may read (the users and server of ``test_access``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from f8a_jobs.services.runs import run_row
from f8a_jobs.storage.tables import job_runs
from tests import test_access
from tests.test_access import create

# the users, the server and the keys of test_access, as fixtures of this module
api, users, keys = test_access.api, test_access.users, test_access.keys

T0 = datetime(2026, 11, 1, tzinfo=UTC)
KINDS = [  # status, trigger, started_by
    ("succeeded", "schedule", "schedule"),
    ("failed", "manual", "user:alice"),
    ("succeeded", "backfill", "user:bob"),
    ("missed", "schedule", "schedule"),
    ("succeeded", "after", "after:a-etl"),
]


@pytest.fixture
def runs(api, users):
    create(users["alice"], job_id="a-etl")
    create(users["alice"], job_id="a-report", handler="Echo", kwargs={"value": 1})
    create(users["carol"], job_id="c-private", permissions="rw----")
    rows = []
    for n in range(30):
        job_id = ("a-etl", "a-report", "c-private")[n % 3]
        status, trigger, started_by = KINDS[n % len(KINDS)]
        slot = T0 + timedelta(hours=n // 2)  # two runs share each slot: the run id orders them
        row = run_row(job_id, slot, status, trigger=trigger, started_by=started_by)
        row["finished_at"] = slot + timedelta(minutes=5) if status != "missed" else None
        rows.append(row)
    with api.engine.begin() as connection:
        connection.execute(insert(job_runs), rows)
    return sorted(rows, key=lambda row: (row["scheduled_for"], row["run_id"]), reverse=True)


def search(client, **params):
    response = client.get("/runs", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def every_page(client, limit, **params):
    pages, cursor = [], None
    while True:
        page = search(client, limit=limit, **params, **({"cursor": cursor} if cursor else {}))
        pages.append([run["run_id"] for run in page["runs"]])
        cursor = page["next"]
        if cursor is None:
            return pages


def test_pages_walk_every_run_newest_first_once(users, runs):
    pages = every_page(users["root"], 7)
    assert [len(page) for page in pages] == [7, 7, 7, 7, 2]
    assert [run_id for page in pages for run_id in page] == [row["run_id"] for row in runs]


def test_only_runs_of_jobs_the_caller_may_read(users, runs):
    seen = {run_id for page in every_page(users["bob"], 10) for run_id in page}
    assert seen == {row["run_id"] for row in runs if row["job_id"] != "c-private"}
    carol = {run["job_id"] for run in search(users["carol"], limit=100)["runs"]}
    assert carol == {"a-etl", "a-report", "c-private"}


@pytest.mark.parametrize(
    "params, keep",
    [
        ({"status": "failed"}, lambda r: r["status"] == "failed"),
        ({"trigger": "backfill"}, lambda r: r["trigger"] == "backfill"),
        ({"job_id": "a-"}, lambda r: r["job_id"].startswith("a-")),
        ({"started_by": "user"}, lambda r: r["started_by"].startswith("user:")),
        ({"started_by": "after:a-etl"}, lambda r: r["started_by"] == "after:a-etl"),
        ({"handler": "Echo"}, lambda r: r["job_id"] == "a-report"),
        (
            {"scheduled_from": "2026-11-01T03:00:00Z", "scheduled_until": "2026-11-01T05:00:00"},
            lambda r: T0 + timedelta(hours=3) <= r["scheduled_for"] < T0 + timedelta(hours=5),
        ),
        (
            {"finished_from": "2026-11-01T10:00:00Z"},
            lambda r: r["finished_at"] is not None and r["finished_at"] >= T0 + timedelta(hours=10),
        ),
        ({"status": "succeeded", "job_id": "c-"}, lambda r: r["status"] == "succeeded" and r["job_id"] == "c-private"),
    ],
)
def test_filters(users, runs, params, keep):
    found = [run_id for page in every_page(users["root"], 4, **params) for run_id in page]
    assert found == [row["run_id"] for row in runs if keep(row)]
    assert found  # each filter finds something, so the check above can fail


@pytest.mark.parametrize(
    "params, field",
    [
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "99999999999999999999.abc"}, "cursor"),
        ({"status": "sleeping"}, "status"),
        ({"scheduled_from": "yesterday"}, "scheduled_from"),
        ({"trigger": "cron"}, "trigger"),
    ],
)
def test_bad_parameters_are_a_400_naming_them(users, runs, params, field):
    response = users["root"].get("/runs", params=params)
    assert response.status_code == 400
    assert field in response.json()["detail"]
