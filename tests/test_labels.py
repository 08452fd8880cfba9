"""Labels on jobs (Datatailr's ``Labels``): shown, found by ``GET /jobs?label=`` and
``GET /runs?label=`` (all the labels given), kept in step with edits and deletes, and only
among the jobs the caller may read (the users and server of ``test_access``)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from f8a_jobs.core.errors import InvalidInput
from f8a_jobs.core.fields import parse_labels
from f8a_jobs.storage.tables import job_labels
from tests import test_access
from tests.test_access import create

# the users, the server and the keys of test_access, as fixtures of this module
api, users, keys = test_access.api, test_access.users, test_access.keys


def ids(response):
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == len(body["jobs"])
    return [job["job_id"] for job in body["jobs"]]


def test_jobs_are_found_by_all_the_labels_given(users):
    alice = users["alice"]
    create(alice, job_id="etl", labels=["nightly", "finance"])
    create(alice, job_id="report", labels="nightly, marketing")  # Datatailr's text
    create(alice, job_id="plain")
    assert alice.get("/jobs/report").json()["job"]["labels"] == ["nightly", "marketing"]
    assert ids(alice.get("/jobs", params={"label": "nightly"})) == ["etl", "report"]
    assert ids(alice.get("/jobs", params=[("label", "nightly"), ("label", "finance")])) == ["etl"]
    assert ids(alice.get("/jobs", params={"label": "absent"})) == []
    listed = {job["job_id"]: job["labels"] for job in alice.get("/jobs").json()["jobs"]}
    assert listed == {"etl": ["nightly", "finance"], "report": ["nightly", "marketing"], "plain": []}


def test_edits_and_deletes_keep_the_index_in_step(api, users):
    alice = users["alice"]
    create(alice, job_id="etl", labels=["nightly"])
    assert alice.patch("/jobs/etl", json={"labels": ["weekly"]}).status_code == 200
    assert ids(alice.get("/jobs", params={"label": "nightly"})) == []
    assert ids(alice.get("/jobs", params={"label": "weekly"})) == ["etl"]
    [edit] = test_access.history(alice, "etl", action="edit")
    assert edit["details"]["changes"]["labels"] == {"old": ["nightly"], "new": ["weekly"]}
    assert alice.delete("/jobs/etl").status_code == 200
    with api.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(job_labels)).scalar() == 0


def test_label_filters_find_only_what_the_caller_may_read(users):
    create(users["carol"], job_id="c-secret", labels=["nightly"], permissions="rw----")
    create(users["alice"], job_id="a-open", labels=["nightly"])
    assert ids(users["bob"].get("/jobs", params={"label": "nightly"})) == ["a-open"]
    for owner, job_id in (("carol", "c-secret"), ("alice", "a-open")):
        assert users[owner].post(f"/jobs/{job_id}/run").status_code == 202
    runs = users["bob"].get("/runs", params={"label": "nightly"}).json()["runs"]
    assert [run["job_id"] for run in runs] == ["a-open"]
    assert len(users["root"].get("/runs", params={"label": "nightly"}).json()["runs"]) == 2


@pytest.mark.parametrize(
    "labels", [["a,b"], ["x" * 65], [""], [5], {"a": 1}, ["ok", "bad\nline"], [str(n) for n in range(51)]]
)
def test_bad_labels_are_a_400_naming_the_field(users, labels):
    response = users["alice"].post(
        "/jobs", json={"job_id": "bad", "handler": "Noop", "periodically": "1 hour", "labels": labels}
    )
    assert response.status_code == 400, response.text
    assert "labels" in response.json()["detail"]
    assert users["root"].get("/jobs/bad").status_code == 404


def test_datatailrs_comma_separated_labels_are_read_as_a_list():
    assert parse_labels(" nightly, finance ,, nightly ") == ("nightly", "finance")
    assert parse_labels(None) == () and parse_labels([]) == ()
    with pytest.raises(InvalidInput, match="labels"):
        parse_labels(["a,b"])
