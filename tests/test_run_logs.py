"""Run logs (issue 20) through a real server: every try's records kept with its run, apart from
other runs', bounded, escaped, masked, readable live; on both backends."""

import json
import threading

import httpx
import pytest
from sqlalchemy import func, select

from f8a_jobs.storage.tables import run_logs
from tests.conftest import module_server, poll, wipe

TOKEN = "a-service-token-0123"
MAX_BYTES = 64 * 1024
ENDED = ("succeeded", "failed", "cancelled")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request, tmp_path_factory, pytestconfig):
    tmp = tmp_path_factory.mktemp(f"run-logs-{request.param}")
    env = {"F8A_JOBS_API_TOKENS": TOKEN, "F8A_JOBS_LOG_MAX_BYTES": str(MAX_BYTES)}
    with module_server(request.param, tmp, pytestconfig, **env) as server:
        yield server


@pytest.fixture
def client(api):
    wipe(api.engine)
    return api


def create(client, **job):
    response = client.post("/jobs", json={"state": "paused", "periodically": "1 hour", **job})
    assert response.status_code == 201, response.text


def run_now(client, job_id):
    response = client.post(f"/jobs/{job_id}/run")
    assert response.status_code == 202, response.text
    return response.json()["run"]["run_id"]


def finished(client, job_id, run_id):
    def check():
        run = client.get(f"/jobs/{job_id}/runs/{run_id}").json()["run"]
        return run if run["status"] in ENDED else None

    return poll(check, timeout=60)


def records(client, job_id, run_id, **params):
    response = client.get(f"/jobs/{job_id}/runs/{run_id}/logs", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def messages(page):
    return [record["message"] for record in page["records"]]


def test_a_run_that_logs_and_fails_shows_its_lines_and_the_exception(client):
    create(client, job_id="chat", handler="Chatty", kwargs={"tag": "T", "fail": True})
    run_id = run_now(client, "chat")
    run = finished(client, "chat", run_id)
    assert run["status"] == "failed"
    page = records(client, "chat", run_id)
    assert page["next"] is None  # the try ended: nothing more will come
    shown = messages(page)
    assert shown[:4] == ["T line 0", "T line 1", "T line 2", "T from a library"]
    assert page["records"][0]["logger"] == "tests.handlers.Chatty"  # self.log
    assert page["records"][3] == {**page["records"][3], "logger": "some.library", "level": "WARNING"}
    failure = page["records"][-1]
    assert failure["level"] == "ERROR" and "Traceback" in failure["message"]
    assert "RuntimeError: T failed" in failure["message"]
    assert {(record["task"], record["try"]) for record in page["records"]} == {(None, 1)}


def test_text_and_level_and_paging(client):
    create(client, job_id="chat", handler="Chatty", kwargs={"tag": "T", "lines": 5, "fail": True})
    run_id = run_now(client, "chat")
    finished(client, "chat", run_id)
    text = client.get(f"/jobs/chat/runs/{run_id}/logs", params={"format": "text"})
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain")
    assert "INFO [try 1] tests.handlers.Chatty: T line 4\n" in text.text
    accepted = client.get(f"/jobs/chat/runs/{run_id}/logs", headers={"Accept": "text/plain"})
    assert accepted.text == text.text
    warnings = records(client, "chat", run_id, level="warning")
    assert [record["message"] for record in warnings["records"]][:2] == ["T from a library", "T on stderr"]
    assert [record["level"] for record in warnings["records"]] == ["WARNING", "WARNING", "ERROR"]
    first = records(client, "chat", run_id, limit=2)
    assert messages(first) == ["T line 0", "T line 1"] and first["next"]
    rest, cursor = [], first["next"]
    while cursor:
        page = records(client, "chat", run_id, limit=2, after=cursor)
        rest += messages(page)
        cursor = page["next"]
    assert rest[:6] == ["T line 2", "T line 3", "T line 4", "T from a library", "T printed", "T on stderr"]
    assert len(rest) == 7  # and the exception


@pytest.mark.parametrize(
    ("params", "field"),
    [({"after": "x1"}, "after"), ({"level": "LOUD"}, "level"), ({"limit": 0}, "limit"), ({"try": 0}, "try")],
)
def test_bad_parameters_are_a_400_naming_them(client, params, field):
    create(client, job_id="chat", handler="Chatty")
    run_id = run_now(client, "chat")
    response = client.get(f"/jobs/chat/runs/{run_id}/logs", params=params)
    assert response.status_code == 400 and field in response.json()["detail"], response.text


def test_an_unknown_run_or_task_is_a_404(client):
    create(client, job_id="chat", handler="Chatty")
    run_id = run_now(client, "chat")
    assert client.get("/jobs/chat/runs/0123456789abcdef/logs").status_code == 404
    assert client.get("/jobs/other/runs/{run_id}/logs").status_code == 404
    task = client.get(f"/jobs/chat/runs/{run_id}/logs", params={"task": "nope"})
    assert task.status_code == 404 and task.json()["field"] == "task"


def test_two_runs_at_once_keep_their_lines_apart(client, tmp_path):
    go = tmp_path / "go"
    for tag in ("left", "right"):
        create(client, job_id=tag, handler="Chatty", kwargs={"tag": tag, "lines": 50, "wait_for": str(go)})
    left, right = run_now(client, "left"), run_now(client, "right")
    for job_id, run_id in (("left", left), ("right", right)):  # both run, their threads at once
        poll(lambda job_id=job_id, run_id=run_id: len(records(client, job_id, run_id)["records"]) >= 51)
    go.touch()
    for job_id, run_id in (("left", left), ("right", right)):
        finished(client, job_id, run_id)
        shown = messages(records(client, job_id, run_id))
        assert len(shown) == 54 and all(message.startswith(job_id) for message in shown), shown[48:]


def test_a_workflows_tasks_have_their_own_logs_and_a_retried_task_one_per_try(client, tmp_path):
    counter = tmp_path / "tries"
    create(
        client,
        job_id="flow",
        tasks=[
            {"name": "a", "handler": "Chatty", "kwargs": {"tag": "A"}},
            {"name": "b", "handler": "Chatty", "kwargs": {"tag": "B", "fail_first": 1, "counter": str(counter)},
             "depends_on": ["a"], "tries": 2, "retry_delay": 0},
            {"name": "c", "handler": "Chatty", "kwargs": {"tag": "C"}, "depends_on": ["b"]},
        ],
    )
    run_id = run_now(client, "flow")
    assert finished(client, "flow", run_id)["status"] == "succeeded"
    for task, tag in (("a", "A"), ("c", "C")):
        page = records(client, "flow", run_id, task=task)
        assert {record["task"] for record in page["records"]} == {task}
        assert messages(page)[0] == f"{tag} line 0" and all(tag in m for m in messages(page))
    latest = records(client, "flow", run_id, task="b")
    assert {record["try"] for record in latest["records"]} == {2}
    assert not any("fails" in message for message in messages(latest))
    first = records(client, "flow", run_id, task="b", **{"try": 1})
    assert {record["try"] for record in first["records"]} == {1}
    assert "B try 1 fails" in messages(first)[-1]  # the exception of the failed try, in its log
    assert first["records"][-1]["level"] == "ERROR"
    everything = records(client, "flow", run_id)  # every task, each at its latest try
    assert {(r["task"], r["try"]) for r in everything["records"]} == {("a", 1), ("b", 2), ("c", 1)}


def test_nul_and_bytes_that_are_not_utf8_are_escaped_not_lost(client):
    create(client, job_id="odd", handler="Chatty", kwargs={"tag": "O", "odd": True})
    run_id = run_now(client, "odd")
    assert finished(client, "odd", run_id)["status"] == "succeeded"
    shown = messages(records(client, "odd", run_id))
    assert "O nul\\x00here, bad \\udcff byte" in shown
    assert shown[-1] == "O from a library" or "O line 2" in shown  # the lines around it stay


def test_a_hundred_thousand_lines_keep_the_head_and_the_tail_within_the_bound(client):
    create(client, job_id="loud", handler="Chatty", kwargs={"tag": "L", "lines": 100_000})
    run_id = run_now(client, "loud")
    assert finished(client, "loud", run_id)["status"] == "succeeded"
    shown, cursor = [], None
    while True:
        page = records(client, "loud", run_id, limit=10_000, **({"after": cursor} if cursor else {}))
        shown += page["records"]
        cursor = page["next"]
        if not cursor:
            break
    texts = [record["message"] for record in shown]
    assert texts[0] == "L line 0" and texts[-3:] == ["L from a library", "L printed", "L on stderr"]
    cut = [text for text in texts if "cut here" in text]
    assert len(cut) == 1
    kept = [text for text in texts if text.startswith("L line")]
    cut_count = int(cut[0].split()[0].strip("[").replace(",", ""))
    assert cut_count + len(kept) == 100_000  # every line is kept or counted as cut
    head = texts.index(cut[0])
    assert texts[head - 1] == f"L line {head - 1}"  # the head runs unbroken up to the cut
    assert "L line 99999" in texts[head:]
    size = sum(len(text) + len(record["logger"]) + 40 for text, record in zip(texts, shown, strict=True))
    assert size <= MAX_BYTES + 1000
    with client.engine.connect() as connection:
        stored = connection.execute(select(func.count()).select_from(run_logs)).scalar_one()
    assert stored == len(shown)  # the tail's older records were deleted, not just hidden


def test_follow_streams_records_before_the_run_ends(client, tmp_path):
    go = tmp_path / "go"
    create(client, job_id="slow", handler="Chatty", kwargs={"tag": "S", "wait_for": str(go)})
    run_id = run_now(client, "slow")
    events, seen_before_end = [], threading.Event()
    with client.client.stream("GET", f"/jobs/slow/runs/{run_id}/logs", params={"follow": "true"},
                              timeout=httpx.Timeout(60)) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for event in _events(stream):
            events.append(event)
            if event.get("data", {}).get("message") == "S line 2" and not seen_before_end.is_set():
                run = client.get(f"/jobs/slow/runs/{run_id}").json()["run"]
                assert run["status"] == "running"  # streamed while the try runs
                seen_before_end.set()
                go.touch()
            if event["event"] == "end":
                break
    assert seen_before_end.is_set()
    shown = [event["data"]["message"] for event in events if event["event"] == "record"]
    assert shown[:3] == ["S line 0", "S line 1", "S line 2"] and "S went on" in shown
    assert events[-1]["event"] == "end"
    assert [event["id"] for event in events[:2]] == sorted(event["id"] for event in events[:2])


def _events(stream):
    event = {}
    for line in stream.iter_lines():
        if not line:
            if event:
                yield event
            event = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            event[name] = json.loads(value) if name == "data" else value
    if event:
        yield event


def test_secrets_are_masked_in_logs_and_errors(client):
    create(client, job_id="leaky", handler="Chatty", secret_kwargs=["say"],
           kwargs={"tag": "K", "fail": True, "password": "hunter2-pw", "say": "classified-words"})
    create(client, job_id="token", handler="Chatty", kwargs={"tag": "Q", "say": TOKEN})
    leaky, token = run_now(client, "leaky"), run_now(client, "token")
    run = finished(client, "leaky", leaky)
    assert "hunter2-pw" not in run["error"] and "***" in run["error"]
    assert "hunter2-pw" not in run["traceback"]
    shown = "\n".join(messages(records(client, "leaky", leaky)))
    assert "K says ***" in shown and "classified-words" not in shown and "hunter2-pw" not in shown
    finished(client, "token", token)
    assert "Q says ***" in messages(records(client, "token", token))


def test_a_runs_log_goes_with_its_job(client):
    create(client, job_id="chat", handler="Chatty")
    run_id = run_now(client, "chat")
    finished(client, "chat", run_id)
    assert records(client, "chat", run_id)["records"]
    assert client.delete("/jobs/chat").status_code in (200, 204)
    with client.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(run_logs)).scalar_one() == 0


def test_forgotten_failed_runs_take_their_logs(client):
    create(client, job_id="bad", handler="Chatty", kwargs={"tag": "B", "fail": True})
    create(client, job_id="good", handler="Chatty", kwargs={"tag": "G"})
    bad, good = run_now(client, "bad"), run_now(client, "good")
    finished(client, "bad", bad), finished(client, "good", good)
    assert client.delete("/jobs/clean-failed").status_code == 200
    with client.engine.connect() as connection:
        logged = set(connection.execute(select(run_logs.c.run_id)).scalars())
    assert logged == {good}
