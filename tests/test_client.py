"""``f8a_jobs.client.Client`` against a real server on PostgreSQL, with an API token: jobs and
runs round trips, paging, logs (and following them), bulk actions, and each kind of error."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading

import pytest

from f8a_jobs.client import ApiError, Client, commands
from tests.conftest import ROOT, free_port, module_server, wipe

TOKEN = "client-test-token"


@pytest.fixture(scope="module")
def server(tmp_path_factory, pytestconfig):
    tmp = tmp_path_factory.mktemp("client")
    with module_server("postgresql", tmp, pytestconfig, F8A_JOBS_API_TOKENS=TOKEN) as server:
        yield server


@pytest.fixture
def client(server):
    wipe(server.engine)
    with Client(server.url, TOKEN) as client:
        yield client


def job(job_id, **fields):
    return {"job_id": job_id, "handler": "Chatty", "when": "2099-01-01T00:00:00Z", **fields}


def test_jobs_round_trip(client):
    created = client.create_job(job("nightly", labels=["n"]), reason="a test")
    assert created["job_id"] == "nightly" and created["labels"] == ["n"]
    assert client.get_job("nightly")["revision"] == created["revision"]
    changed = client.update_job("nightly", {"kwargs": {"lines": 1}}, revision=created["revision"])
    assert changed["kwargs"] == {"lines": 1}
    assert client.pause("nightly")["state"] == "paused"
    assert client.resume("nightly")["state"] == "running"
    assert client.next_runs("nightly", 1)[0]["utc"].startswith("2099-01-01")
    actions = [entry["action"] for entry in client.history("nightly")]
    assert actions == ["resume", "pause", "edit", "create"]
    client.delete_job("nightly")
    with pytest.raises(ApiError) as missing:
        client.get_job("nightly")
    assert missing.value.status == 404 and "nightly" in missing.value.message


def test_listings_follow_every_page(client):
    for n in range(5):
        client.create_job(job(f"job-{n}", labels=["even"] if n % 2 == 0 else []))
    assert [j["job_id"] for j in client.jobs(page_size=2)] == [f"job-{n}" for n in range(5)]
    assert [j["job_id"] for j in client.jobs(page_size=2, label="even")] == ["job-0", "job-2", "job-4"]
    runs = [client.run_now(f"job-{n}") for n in range(3)]
    found = {run["run_id"] for run in client.search_runs(page_size=1, job_id="job-")}
    assert found == {run["run_id"] for run in runs}  # three pages by the server's cursor


def test_a_run_waited_for_its_logs_and_its_retry(client):
    client.create_job(job("chatty", kwargs={"lines": 3}))
    ended = client.wait(client.run_now("chatty"), timeout=60, interval=0.1)
    assert ended["status"] == "succeeded"
    assert [run["run_id"] for run in client.runs("chatty")] == [ended["run_id"]]
    messages = [record["message"] for record in client.logs("chatty", ended["run_id"])]
    assert "chatty line 2" in messages
    followed = [r["message"] for r in client.follow_logs("chatty", ended["run_id"])]
    assert followed == messages  # an ended try: every record, then the end


def test_bulk_actions(client):
    for name in ("a", "b"):
        client.create_job(job(name, labels=["batch"]))
    paused = client.bulk("pause", label="batch", reason="maintenance")
    assert paused == {"selected": 2, "changed": 2, "job_ids": ["a", "b"]}
    with pytest.raises(ValueError, match="bulk action"):
        client.bulk("explode", label="batch")


@pytest.mark.parametrize(
    ("call", "status", "field"),
    [
        (lambda c: c.create_job(job("x", colour="red")), 400, "colour"),
        (lambda c: c.create_job(job("dup")) and c.create_job(job("dup")), 409, None),
        (lambda c: c.get_run("nobody", "0" * 32), 404, None),
    ],
)
def test_errors_carry_the_status_and_the_servers_message(client, call, status, field):
    with pytest.raises(ApiError) as caught:
        call(client)
    assert caught.value.status == status and caught.value.message
    if field:
        assert field in (caught.value.field or "") + caught.value.message


def test_a_bad_token_and_a_server_that_is_down(server):
    with Client(server.url, "wrong") as client, pytest.raises(ApiError) as refused:
        client.get_job("any")
    assert refused.value.status == 401
    with Client(f"http://127.0.0.1:{free_port()}", TOKEN) as client:
        with pytest.raises(ApiError) as down:
            client.get_job("any")
    assert down.value.status == 0 and "cannot reach" in down.value.message


def test_only_calls_safe_to_repeat_are_retried_on_a_broken_connection():
    """A server that accepts each connection and closes it at once, counting them."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted = []

    def serve():
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            accepted.append(1)
            connection.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        with Client(f"http://127.0.0.1:{listener.getsockname()[1]}", TOKEN) as client:
            with pytest.raises(ApiError):
                client.get_job("any")
            reads = len(accepted)
            with pytest.raises(ApiError):
                client.run_now("any")  # never sent twice: it would queue two runs
            assert (reads, len(accepted) - reads) == (3, 1)
    finally:
        listener.close()


def test_the_client_imports_no_server_code():
    code = (
        "import sys, f8a_jobs.client; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'connexion', 'celery')"
        " or m.startswith(('f8a_jobs.core', 'f8a_jobs.services', 'f8a_jobs.storage'))]; "
        "assert not bad, bad"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def cli(server, *args, token=TOKEN):
    env = {**os.environ, "F8A_JOBS_URL": server.url, "F8A_JOBS_TOKEN": token}
    command = [sys.executable, "-m", "f8a_jobs.cli", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_the_cli_round_trip(client, server, tmp_path):
    spec = tmp_path / "nightly.yaml"
    spec.write_text("job_id: nightly\nhandler: Chatty\nwhen: '2099-01-01T00:00:00Z'\nlabels: [n]\n")
    created = cli(server, "--json", "jobs", "create", "-f", str(spec), "--reason", "from git")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["labels"] == ["n"]
    listed = cli(server, "jobs", "list", "--label", "n")
    assert listed.stdout.splitlines()[0].split() == list(commands.JOB_COLUMNS)
    assert listed.stdout.splitlines()[1].split()[:2] == ["nightly", "running"]
    assert cli(server, "jobs", "pause", "nightly").returncode == 0
    ran = cli(server, "--json", "jobs", "run", "nightly")
    [run] = json.loads(ran.stdout)
    waited = cli(server, "runs", "wait", "nightly", run["run_id"], "--timeout", "60")
    assert waited.returncode == 0 and "succeeded" in waited.stdout, waited.stderr
    logs = cli(server, "runs", "logs", "nightly", run["run_id"], "--follow")
    assert "chatty line 2" in logs.stdout
    history = cli(server, "--json", "jobs", "history", "nightly")
    assert [entry["action"] for entry in json.loads(history.stdout)] == ["run", "pause", "create"]


def test_the_cli_exits_non_zero_with_the_servers_message(server):
    missing = cli(server, "jobs", "get", "nobody")
    assert missing.returncode == 1 and "404" in missing.stderr and "nobody" in missing.stderr
    assert "Traceback" not in missing.stderr
    refused = cli(server, "jobs", "list", token="wrong")
    assert refused.returncode == 1 and "401" in refused.stderr


def test_apply_makes_the_service_match_a_folder(client, server, tmp_path):
    folder = tmp_path / "jobs"
    (folder / "team").mkdir(parents=True)
    (folder / "a.yaml").write_text("job_id: a\nhandler: Chatty\nperiodically: 1 hour\nlabels: [git]\n")
    (folder / "team" / "more.yaml").write_text(
        "- {job_id: b, handler: Chatty, when: '2099-01-01T00:00:00Z', labels: [git]}\n"
        "---\n"
        "job_id: c\nhandler: Chatty\ncron: '0 3 * * *'\nlabels: [git]\n"
    )
    (folder / "notes.txt").write_text("not a job file")
    client.create_job(job("by-hand"))  # no label: --prune-label git keeps it
    client.create_job(job("old", labels=["git"]))

    dry = cli(server, "apply", "-f", str(folder), "--prune", "-l", "git", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "+ a  (create)" in dry.stdout and "- old  (delete)" in dry.stdout
    assert "plan: 3 created, 0 changed, 0 unchanged, 1 deleted (dry run: nothing changed)" in dry.stdout
    assert sorted(j["job_id"] for j in client.jobs()) == ["by-hand", "old"]  # nothing changed

    done = cli(server, "apply", "-f", str(folder), "--prune", "-l", "git", "--reason", "from git")
    assert done.returncode == 0, done.stderr
    assert "applied: 3 created, 0 changed, 0 unchanged, 1 deleted" in done.stdout
    assert sorted(j["job_id"] for j in client.jobs()) == ["a", "b", "by-hand", "c"]
    assert client.history("a")[0]["reason"] == "from git"

    (folder / "a.yaml").write_text("job_id: a\nhandler: Chatty\nperiodically: 2 hours\nlabels: [git]\n")
    again = cli(server, "--json", "apply", "-f", str(folder))
    assert again.returncode == 0, again.stderr
    plan = json.loads(again.stdout[: again.stdout.index("\n}\n") + 2])
    assert plan["changed"] == ["a"] and sorted(plan["unchanged"]) == ["b", "c"]
    assert client.get_job("a")["periodically"] == "2 hours"

    unchanged = cli(server, "apply", "-f", str(folder))
    assert unchanged.returncode == 0 and "plan: 0 created, 0 changed, 3 unchanged, 0 deleted" in unchanged.stdout
    assert "applied" not in unchanged.stdout  # nothing to do: no second request


def test_apply_errors_name_the_file_and_change_nothing(client, server, tmp_path):
    (tmp_path / "good.yaml").write_text("job_id: good\nhandler: Chatty\nperiodically: 1 hour\n")
    (tmp_path / "bad.yaml").write_text("job_id: bad\nhandler: Chatty\nperiodically: often\n")
    failed = cli(server, "apply", "-f", str(tmp_path))
    assert failed.returncode == 1
    assert f"{tmp_path / 'bad.yaml'}:" in failed.stderr and "periodically" in failed.stderr
    assert list(client.jobs()) == []
    (tmp_path / "bad.yaml").write_text("job_id: [unclosed\n")
    broken = cli(server, "apply", "-f", str(tmp_path))
    assert broken.returncode == 1 and "bad.yaml" in broken.stderr
    (tmp_path / "bad.yaml").unlink()
    forbidden = cli(server, "apply", "-f", str(tmp_path), token="wrong")
    assert forbidden.returncode == 1 and "401" in forbidden.stderr
    down = subprocess.run(
        [sys.executable, "-m", "f8a_jobs.cli", "--url", f"http://127.0.0.1:{free_port()}", "apply", "-f", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert down.returncode == 1 and "cannot reach" in down.stderr
