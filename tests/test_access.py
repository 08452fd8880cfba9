"""Users, groups, owners and permissions, who started each run, and the audit trail, over HTTP
against a real server: users from a users file (alice and bob in group data, carol in ops, root
an admin) and JWTs signed by a test RSA key, checked against a JWKS a real HTTP server serves."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from f8a_jobs.api.auth import Identities
from f8a_jobs.api.users_file import token_digest
from f8a_jobs.core.clock import utcnow
from f8a_jobs.core.errors import ConfigurationError, InvalidInput
from f8a_jobs.core.settings import Settings
from tests.conftest import free_port, module_server, poll, wipe
from tests.test_run_logs import _events as sse_events

ISSUER, AUDIENCE = "https://idp.test", "f8a-jobs"
USERS = {
    "alice": {"groups": ["data"]},
    "bob": {"groups": ["data"]},
    "carol": {"groups": ["ops"]},
    "root": {"groups": ["ops"], "admin": True},
}
ENDED = ("succeeded", "failed", "cancelled")


def token(user: str) -> str:
    return f"{user}-secret-token"


def users_yaml(users: dict[str, Any], groups: list[str] | None = None) -> str:
    entries = {
        name: {**entry, "tokens": [token_digest(token(name))]} for name, entry in users.items()
    }
    return yaml.safe_dump({"groups": groups or ["data", "ops"], "users": entries})


class Keys:
    """An RSA key pair the JWKS server publishes, and one it does not (a forger's)."""

    def __init__(self) -> None:
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = self.private.public_key()
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public))
        self.jwks = {"keys": [{**jwk, "kid": "test-key", "use": "sig", "alg": "RS256"}]}

    def sign(self, claims: dict[str, Any], forged: bool = False) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300, **claims}
        body = {key: value for key, value in body.items() if value is not None}
        key = self.forger if forged else self.private
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return jwt.encode(body, pem, algorithm="RS256", headers={"kid": "test-key"})


def serve_jwks(jwks: dict[str, Any]) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = json.dumps(jwks).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}/.well-known/jwks.json"


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request, tmp_path_factory, pytestconfig, keys):
    tmp = tmp_path_factory.mktemp(f"access-{request.param}")
    users_file = tmp / "users.yaml"
    users_file.write_text(users_yaml(USERS))
    jwks_server, jwks_url = serve_jwks(keys.jwks)
    env = {
        "F8A_JOBS_USERS_FILE": str(users_file),
        "F8A_JOBS_JWT_JWKS_URL": jwks_url,
        "F8A_JOBS_JWT_ISSUER": ISSUER,
        "F8A_JOBS_JWT_AUDIENCE": AUDIENCE,
    }
    try:
        with module_server(request.param, tmp, pytestconfig, **env) as server:
            server.users_file = users_file
            yield server
    finally:
        jwks_server.shutdown()


class As:
    """The API as one user sees it."""

    def __init__(self, server: Any, bearer: str) -> None:
        self.server, self.headers = server, {"Authorization": f"Bearer {bearer}"}

    def __getattr__(self, method: str) -> Any:
        call = getattr(self.server.client, method)
        return lambda url, **kw: call(url, headers={**self.headers, **kw.pop("headers", {})}, **kw)


@pytest.fixture
def users(api) -> dict[str, As]:
    wipe(api.engine)
    api.users_file.write_text(users_yaml(USERS))
    return {name: As(api, token(name)) for name in USERS}


def create(client: As, **job: Any) -> dict[str, Any]:
    body = {"handler": "Noop", "periodically": "1 hour", "state": "paused", **job}
    body = {key: value for key, value in body.items() if value is not None}
    response = client.post("/jobs", json=body)
    assert response.status_code == 201, response.text
    return response.json()["job"]


def finished(client: As, job_id: str, run_id: str) -> dict[str, Any]:
    def check():
        run = client.get(f"/jobs/{job_id}/runs/{run_id}").json()["run"]
        return run if run["status"] in ENDED else None

    return poll(check, timeout=60)


def history(client: As, job_id: str, **params: Any) -> list[dict[str, Any]]:
    response = client.get(f"/jobs/{job_id}/history", params=params)
    assert response.status_code == 200, response.text
    return response.json()["entries"]


# --- identities -----------------------------------------------------------------------------


def test_whoami_for_users_of_the_file_and_a_jwt(api, users, keys):
    assert users["alice"].get("/whoami").json() == {
        "user": "alice",
        "groups": ["data"],
        "admin": False,
    }
    assert users["root"].get("/whoami").json()["admin"] is True
    jwt_user = As(api, keys.sign({"sub": "dana", "groups": ["data", "ml"]}))
    assert jwt_user.get("/whoami").json() == {
        "user": "dana",
        "groups": ["data", "ml"],
        "admin": False,
    }
    assert api.client.get("/whoami").status_code == 401


@pytest.mark.parametrize(
    "claims, forged, reason",
    [
        ({"sub": "dana", "exp": int(time.time()) - 60}, False, "expired"),
        ({"sub": "dana"}, True, "signature"),
        ({"sub": "dana", "aud": "another-service"}, False, "audience"),
        ({"sub": "dana", "iss": "https://elsewhere.test"}, False, "issuer"),
        ({"sub": None}, False, "'sub'"),
        ({"sub": "system"}, False, "not a user name"),  # the owner of the default jobs
        ({"sub": "token-1"}, False, "not a user name"),
    ],
)
def test_refused_jwts_are_a_401_naming_the_reason(api, users, keys, claims, forged, reason):
    response = As(api, keys.sign(claims, forged)).get("/jobs")
    assert response.status_code == 401
    assert reason in response.json()["detail"]


def test_an_unknown_token_is_a_401(api, users):
    response = As(api, "nobody-knows-me").get("/jobs")
    assert response.status_code == 401
    assert "not known" in response.json()["detail"]


def test_the_users_file_is_read_again_when_it_changes(api, users):
    dave = As(api, token("dave"))
    assert dave.get("/whoami").status_code == 401
    api.users_file.write_text(users_yaml({**USERS, "dave": {"groups": ["ops"]}}))
    poll(lambda: dave.get("/whoami").status_code == 200)
    assert dave.get("/whoami").json()["groups"] == ["ops"]

    # a file that does not parse, then one naming an unknown group: refused, the last good stays
    refused = (
        ("users: [alice", "not valid YAML"),
        (_with_unknown_group(), "unknown group"),
        ("users: {dave: {tokens: 5}}", "expected a list of digests"),
        ("users: {system: {tokens: []}}", "reserved"),
    )
    for bad, why in refused:
        api.users_file.write_text(bad)
        poll(lambda why=why: why in api.client.get("/readiness").json().get("users_file", ""))
        readiness = api.client.get("/readiness")
        assert readiness.status_code == 200 and readiness.json()["ready"] is True
        assert dave.get("/whoami").status_code == 200  # the users read before stay in force
        assert why in api.log()

    api.users_file.write_text(users_yaml(USERS))  # dave is gone, and so is the problem
    poll(lambda: dave.get("/whoami").status_code == 401)
    assert "users_file" not in api.client.get("/readiness").json()


def _with_unknown_group() -> str:
    return users_yaml({**USERS, "dave": {"groups": ["finance"]}})


# --- owners and permissions -----------------------------------------------------------------


def test_a_job_belongs_to_its_creator_and_their_first_group(users):
    job = create(users["alice"], job_id="mine")
    assert (job["owner"], job["group"], job["permissions"]) == ("alice", "data", "rwrwr-")
    listed = users["alice"].get("/jobs").json()["jobs"][0]
    assert (listed["owner"], listed["group"], listed["permissions"]) == ("alice", "data", "rwrwr-")


# (permissions, what alice (owner), bob (group data) and carol (others) may do): r, rw or none
MATRIX = [
    ("rwrwr-", "rw", "rw", "r"),
    ("rw----", "rw", "", ""),
    ("rwr---", "rw", "r", ""),
    ("r-r-r-", "r", "r", "r"),
    ("--rwrw", "", "rw", "rw"),  # the first class that applies decides, as with Unix modes
    ("rw--rw", "rw", "", "rw"),
    ("------", "", "", ""),
]


@pytest.mark.parametrize("permissions, owner, group, others", MATRIX)
def test_each_permission_letter(users, permissions, owner, group, others):
    job_id = f"perm-{permissions.replace('-', '_')}"
    create(users["root"], job_id=job_id, owner="alice", group="data", permissions=permissions)
    for name, rights in (("alice", owner), ("bob", group), ("carol", others), ("root", "rw")):
        client = users[name]
        seen = client.get(f"/jobs/{job_id}")
        assert seen.status_code == (200 if "r" in rights else 404), (name, seen.text)
        paused = client.put(f"/jobs/{job_id}", params={"state": "paused"})
        expected = 200 if "w" in rights else 403 if "r" in rights else 404
        assert paused.status_code == expected, (name, paused.text)
        if expected == 403:
            assert "write" in paused.json()["detail"]
        listed = {job["job_id"] for job in client.get("/jobs").json()["jobs"]}
        assert (job_id in listed) == ("r" in rights), name


def test_no_read_is_a_404_everywhere_and_read_without_write_a_403(users):
    create(users["alice"], job_id="secret", permissions="rw----")
    run = users["alice"].post("/jobs/secret/run").json()["run"]
    carol = users["carol"]
    for path in (
        "/jobs/secret",
        "/jobs/secret/runs",
        f"/jobs/secret/runs/{run['run_id']}",
        f"/jobs/secret/runs/{run['run_id']}/logs",
        "/jobs/secret/next-runs",
        "/jobs/secret/history",
        "/jobs/secret/graph",
    ):
        response = carol.get(path)
        assert response.status_code == 404, (path, response.text)
        assert "no job with id 'secret'" in response.json()["detail"]
    for method, path in (
        ("post", "/jobs/secret/run"),
        ("patch", "/jobs/secret"),
        ("delete", "/jobs/secret"),
        ("post", f"/jobs/secret/runs/{run['run_id']}/cancel"),
        ("post", f"/jobs/secret/runs/{run['run_id']}/retry"),
        ("post", "/jobs/secret/backfill"),
    ):
        kwargs = {"json": {}} if method in ("patch", "post") and "backfill" in path else {}
        if method == "patch":
            kwargs = {"json": {"periodically": "2 hours"}}
        if "backfill" in path:
            kwargs = {"json": {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"}}
        assert getattr(carol, method)(path, **kwargs).status_code == 404, (method, path)

    create(users["alice"], job_id="readable", permissions="rwr-r-")
    bob = users["bob"]
    assert bob.get("/jobs/readable").status_code == 200
    refused = bob.patch("/jobs/readable", json={"periodically": "2 hours"})
    assert refused.status_code == 403
    assert refused.json()["detail"].startswith("job_id: 'bob' may read job 'readable'")
    assert "write" in refused.json()["detail"]
    assert bob.post("/jobs/readable/run").status_code == 403
    assert bob.post("/jobs/readable/run", params={"dry_run": "true"}).status_code == 403
    assert bob.delete("/jobs/readable").status_code == 403
    assert users["alice"].get("/jobs/readable").json()["job"]["periodically"] == "1 hour"


def test_a_log_follower_who_loses_the_read_right_is_cut_off(api, users, tmp_path):
    go = tmp_path / "go"
    create(users["alice"], job_id="watched", handler="Chatty",
           kwargs={"tag": "W", "wait_for": str(go)})
    run = users["alice"].post("/jobs/watched/run").json()["run"]
    bob = users["bob"]
    events = []
    with api.client.stream("GET", f"/jobs/watched/runs/{run['run_id']}/logs",
                           params={"follow": "true"}, headers=bob.headers,
                           timeout=httpx.Timeout(60)) as stream:
        for event in sse_events(stream):
            events.append(event)
            if event.get("data", {}).get("message") == "W line 2" and len(events) == 3:
                private = users["alice"].patch("/jobs/watched", json={"permissions": "rw----"})
                assert private.status_code == 200
            if event["event"] == "end":
                break
    go.touch()
    assert events[-1]["event"] == "end"
    assert "no job with id 'watched'" in events[-1]["data"]["error"]


def test_lists_and_counts_show_only_what_the_caller_may_read(users):
    create(users["alice"], job_id="a-open")
    create(users["alice"], job_id="a-team", permissions="rwrw--")
    create(users["carol"], job_id="c-open")
    create(users["carol"], job_id="c-private", permissions="rw----")
    seen = {
        name: users[name].get("/jobs").json() for name in ("alice", "bob", "carol", "root")
    }
    assert [j["job_id"] for j in seen["alice"]["jobs"]] == ["a-open", "a-team", "c-open"]
    assert [j["job_id"] for j in seen["bob"]["jobs"]] == ["a-open", "a-team", "c-open"]
    assert [j["job_id"] for j in seen["carol"]["jobs"]] == ["a-open", "c-open", "c-private"]
    assert seen["root"]["total"] == 4
    assert {name: page["total"] for name, page in seen.items()} == {
        "alice": 3,
        "bob": 3,
        "carol": 3,
        "root": 4,
    }
    by_owner = users["bob"].get("/jobs", params={"owner": "carol"}).json()
    assert [j["job_id"] for j in by_owner["jobs"]] == ["c-open"] and by_owner["total"] == 1
    by_group = users["root"].get("/jobs", params={"group": "ops"}).json()
    assert {j["job_id"] for j in by_group["jobs"]} == {"c-open", "c-private"}


def test_failed_runs_and_flows_list_only_readable_jobs(users):
    create(users["carol"], job_id="c-fails", handler="Fail", kwargs={"message": "boom"},
           permissions="rw----")
    create(users["alice"], job_id="a-fails", handler="Fail", kwargs={"message": "boom"})
    for owner, job_id in (("carol", "c-fails"), ("alice", "a-fails")):
        run = users[owner].post(f"/jobs/{job_id}/run").json()["run"]
        assert finished(users[owner], job_id, run["run_id"])["status"] == "failed"
    failed = users["alice"].get("/jobs", params={"job_type": "failed"}).json()
    assert [run["job_id"] for run in failed["jobs"]] == ["a-fails"] and failed["total"] == 1
    assert users["root"].get("/jobs", params={"job_type": "failed"}).json()["total"] == 2
    # clean-failed forgets only what the caller may change
    assert users["bob"].delete("/jobs/clean-failed").json() == {"removed": 1}
    assert users["root"].get("/jobs", params={"job_type": "failed"}).json()["total"] == 1
    [row] = users["root"].get("/audit", params={"action": "clean_failed"}).json()["entries"]
    assert (row["user"], row["job_id"], row["details"]) == ("bob", None, {"removed": 1})


def test_owner_group_and_permissions_are_changed_only_by_the_owner_or_an_admin(users):
    create(users["alice"], job_id="shared")
    bob = users["bob"]  # may write (group data), may not change who may
    refused = bob.patch("/jobs/shared", json={"permissions": "rwrwrw"})
    assert refused.status_code == 403 and "owner" in refused.json()["detail"]
    assert bob.patch("/jobs/shared", json={"periodically": "2 hours"}).status_code == 200

    alice = users["alice"]
    assert alice.patch("/jobs/shared", json={"owner": "bob"}).status_code == 403
    assert alice.patch("/jobs/shared", json={"group": "ops"}).status_code == 403  # not hers
    changed = alice.patch("/jobs/shared", json={"permissions": "rw----", "reason": "private"})
    assert changed.status_code == 200 and changed.json()["job"]["permissions"] == "rw----"
    assert bob.get("/jobs/shared").status_code == 404

    given = users["root"].patch("/jobs/shared", json={"owner": "carol", "group": "ops"})
    assert given.status_code == 200
    assert users["carol"].get("/jobs/shared").json()["job"]["owner"] == "carol"
    assert alice.get("/jobs/shared").status_code == 404


@pytest.mark.parametrize(
    "fields, status, field",
    [
        ({"permissions": "rwx---"}, 400, "permissions"),
        ({"permissions": "rw"}, 400, "permissions"),
        ({"permissions": 644}, 400, "permissions"),
        ({"group": "finance"}, 403, "group"),  # JWTs may bring any group: she is not in it
        ({"group": "ops"}, 403, "group"),  # alice is not in ops
        ({"owner": "bob"}, 403, "owner"),
        ({"owner": ""}, 400, "owner"),
    ],
)
def test_bad_ownership_is_refused_naming_the_field(users, fields, status, field):
    response = users["alice"].post(
        "/jobs", json={"job_id": "bad", "handler": "Noop", "periodically": "1 hour", **fields}
    )
    assert response.status_code == status, response.text
    assert response.json()["detail"].startswith(field) or field in response.json()["detail"]
    assert users["root"].get("/jobs/bad").status_code == 404  # nothing half-made


def test_with_only_a_users_file_a_job_group_must_be_one_it_knows(tmp_path):
    users_file = tmp_path / "users.yaml"
    users_file.write_text(users_yaml(USERS))
    identities = Identities(Settings(users_file=users_file))
    identities.check_group("ops")
    with pytest.raises(InvalidInput, match="unknown group 'finance'"):
        identities.check_group("finance")
    users_file.write_text("users: {x: {groups: [nope]}}\ngroups: [data]\n")
    with pytest.raises(ConfigurationError, match=r"users\.x\.groups: unknown group 'nope'"):
        Identities(Settings(users_file=users_file))


def test_references_need_read_on_the_jobs_they_name(users):
    create(users["alice"], job_id="a-private", permissions="rw----")
    create(users["alice"], job_id="a-open")
    carol = users["carol"]
    after = {"job_id": "c-after", "handler": "Noop", "after": {"job_id": "a-private"}}
    refused = carol.post("/jobs", json=after)
    assert refused.status_code == 400 and "unknown job 'a-private'" in refused.json()["detail"]
    assert carol.post("/jobs", json={**after, "after": {"job_id": "a-open"}}).status_code == 201
    workflow = {"job_id": "c-flow", "periodically": "1 hour", "state": "paused",
                "tasks": [{"name": "inner", "job": "a-private"}]}
    refused = carol.post("/jobs", json=workflow)
    assert refused.status_code == 400 and "a-private" in refused.json()["detail"]
    workflow["tasks"] = [{"name": "inner", "job": "a-open", "kwargs": {}}]
    assert carol.post("/jobs", json=workflow).status_code == 201
    # running alice's job with kwargs of carol's own is running it as she chose: write needed
    workflow.update(job_id="c-flow-2", tasks=[{"name": "inner", "job": "a-open", "kwargs": {"x": 1}}])
    refused = carol.post("/jobs", json=workflow)
    assert refused.status_code == 403 and "write" in refused.json()["detail"]


def test_a_job_in_use_names_only_the_users_the_caller_may_see(users):
    create(users["alice"], job_id="base", permissions="rwrwrw")
    create(users["carol"], job_id="hidden-follower", after={"job_id": "base"}, periodically=None,
           permissions="rw----")
    refused = users["alice"].delete("/jobs/base")
    assert refused.status_code == 409
    assert "hidden-follower" not in refused.text and "1 more you cannot see" in refused.text


# --- started by -----------------------------------------------------------------------------


def test_every_run_records_who_or_what_started_it(users):
    alice = users["alice"]
    create(alice, job_id="leader", state="running", periodically="1 hour",
           when=(utcnow() + timedelta(seconds=1)).isoformat())
    create(alice, job_id="follower", state="running", after={"job_id": "leader"}, periodically=None)

    def runs(job_id, **params):
        return alice.get(f"/jobs/{job_id}/runs", params=params).json()["runs"]

    scheduled = poll(lambda: [r for r in runs("leader") if r["status"] in ENDED])
    assert scheduled[0]["started_by"] == "schedule"
    followed = poll(lambda: [r for r in runs("follower") if r["status"] in ENDED])
    assert followed[0]["started_by"] == "after:leader"

    assert [r["started_by"] for r in runs("leader", started_by="schedule")] == ["schedule"]

    create(alice, job_id="hourly", cron="0 * * * *", periodically=None)
    manual = alice.post("/jobs/hourly/run").json()["run"]
    assert manual["started_by"] == "user:alice"
    backfilled = alice.post("/jobs/hourly/backfill",
                            json={"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T02:30:00Z"})
    assert backfilled.status_code == 202, backfilled.text
    assert len(runs("hourly", started_by="user:alice")) == 1 + 3
    assert {r["trigger"] for r in runs("hourly", started_by="user")} == {"manual", "backfill"}
    assert runs("hourly", started_by="user:bob") == [] and runs("hourly", started_by="after") == []


def test_a_retried_workflow_run_is_started_by_the_retrying_user(users):
    create(users["alice"], job_id="wf", handler=None, tasks=[
        {"name": "breaks", "handler": "Fail", "kwargs": {"message": "no"}}])
    run = users["alice"].post("/jobs/wf/run").json()["run"]
    assert finished(users["alice"], "wf", run["run_id"])["status"] == "failed"
    retried = users["bob"].post(f"/jobs/wf/runs/{run['run_id']}/retry", params={"reason": "try"})
    assert retried.status_code == 202, retried.text
    again = retried.json()["run"]
    assert again["started_by"] == "user:bob"
    assert again["attempts"][0]["started_by"] == "user:alice"
    [row] = history(users["alice"], "wf", action="retry")
    assert (row["user"], row["reason"], row["details"]["run_id"]) == ("bob", "try", run["run_id"])


# --- audit ----------------------------------------------------------------------------------


def test_each_action_leaves_an_audit_row_with_who_what_and_why(users):
    alice = users["alice"]
    create(alice, job_id="audited", kwargs={"value": 1, "token": "hunter2"}, handler="Record",
           secret_kwargs=["token"])
    alice.patch("/jobs/audited", json={"periodically": "2 hours",
                                       "kwargs": {"value": 1, "token": "new-one"}},
                params={"reason": "slower"})
    alice.patch("/jobs/audited", json={"permissions": "rwr---"})
    alice.put("/jobs/audited", params={"state": "running", "reason": "go"})
    alice.put("/jobs/audited", params={"state": "paused", "reason": "incident 42"})
    run = alice.post("/jobs/audited/run", params={"reason": "by hand"}).json()["run"]
    alice.post("/jobs/audited/backfill", json={"start": "2026-01-01T00:00:00Z",
                                                "end": "2026-01-01T01:00:00Z", "reason": "gap"})
    entries = history(alice, "audited")
    assert [e["action"] for e in entries] == [
        "backfill", "run", "pause", "resume", "permissions", "edit", "create"
    ]
    assert all(e["user"] == "alice" and e["job_id"] == "audited" for e in entries)
    by_action = {e["action"]: e for e in entries}
    edit = by_action["edit"]
    assert edit["reason"] == "slower"
    assert edit["details"]["changes"]["periodically"] == {"old": "1 hour", "new": "2 hours"}
    masked = {"value": 1, "token": "***"}
    assert edit["details"]["changes"]["kwargs"] == {"old": masked, "new": masked}
    assert "hunter2" not in json.dumps(entries) and "new-one" not in json.dumps(entries)
    assert by_action["permissions"]["details"]["changes"] == {
        "permissions": {"old": "rwrwr-", "new": "rwr---"}
    }
    assert by_action["pause"]["reason"] == "incident 42"
    assert by_action["run"]["details"]["run_id"] == run["run_id"]
    assert by_action["run"]["reason"] == "by hand"
    assert by_action["backfill"]["reason"] == "gap"

    create(alice, job_id="slow", handler=None,
           tasks=[{"name": "nap", "handler": "Sleep", "kwargs": {"seconds": 30}}])
    slow = alice.post("/jobs/slow/run").json()["run"]
    cancelled = alice.post(f"/jobs/slow/runs/{slow['run_id']}/cancel", params={"reason": "stop"})
    assert cancelled.status_code == 202, cancelled.text
    [cancel] = history(alice, "slow", action="cancel")
    assert (cancel["details"]["run_id"], cancel["reason"]) == (slow["run_id"], "stop")

    users["root"].delete("/jobs/audited", params={"reason": "retired"})
    deleted = users["root"].get("/audit", params={"job_id": "audited", "action": "delete"})
    [row] = deleted.json()["entries"]
    assert (row["user"], row["reason"]) == ("root", "retired")
    assert row["details"]["job"]["kwargs"] == masked


def test_a_pause_on_failure_is_audited_as_the_services_own(users):
    create(users["alice"], job_id="fragile", handler="Fail", kwargs={"message": "x"},
           pause_on_failure=True)
    run = users["alice"].post("/jobs/fragile/run").json()["run"]
    assert finished(users["alice"], "fragile", run["run_id"])["status"] == "failed"
    row = poll(lambda: history(users["alice"], "fragile", action="pause"))[0]
    assert (row["user"], row["details"]) == ("system", {"cause": "pause_on_failure"})


def test_history_starts_with_the_job_not_with_an_earlier_one_of_its_id(users):
    create(users["alice"], job_id="reused", permissions="rw----")
    users["alice"].put("/jobs/reused", params={"state": "running", "reason": "private matter"})
    users["alice"].delete("/jobs/reused")
    create(users["bob"], job_id="reused")
    assert [(e["user"], e["action"]) for e in history(users["bob"], "reused")] == [("bob", "create")]


def test_a_refused_change_leaves_no_row_and_no_change(users):
    create(users["alice"], job_id="kept", permissions="rwr-r-")
    assert users["bob"].put("/jobs/kept", params={"state": "running"}).status_code == 403
    assert [e["action"] for e in history(users["alice"], "kept")] == ["create"]


def test_the_whole_trail_is_for_admins_with_filters_and_pages(users):
    alice, root = users["alice"], users["root"]
    for n in range(5):
        create(alice, job_id=f"t{n}")
    assert root.put("/service/state", params={"state": "paused", "reason": "upgrade"}).status_code == 200
    assert root.put("/service/state", params={"state": "running"}).status_code == 200
    assert alice.put("/service/state", params={"state": "paused"}).status_code == 403
    assert alice.get("/audit").status_code == 403

    service = root.get("/audit", params={"action": "service_pause"}).json()["entries"]
    assert [(e["user"], e["reason"], e["job_id"]) for e in service] == [("root", "upgrade", None)]
    pages, cursor = [], None
    while True:
        params = {"user": "alice", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = root.get("/audit", params=params).json()
        pages.append([e["job_id"] for e in page["entries"]])
        cursor = page["next"]
        if cursor is None:
            break
    assert pages == [["t4", "t3"], ["t2", "t1"], ["t0"]]
    since = root.get("/audit", params={"since": (utcnow() + timedelta(hours=1)).isoformat()})
    assert since.json()["entries"] == []
    assert root.get("/audit", params={"action": "dance"}).status_code == 400
    assert root.get("/audit", params={"since": "yesterday"}).status_code == 400


def test_default_jobs_belong_to_the_system_owner(tmp_path, pytestconfig):
    defaults = tmp_path / "defaults-src"
    defaults.mkdir()
    (defaults / "nightly.yaml").write_text(
        "job_id: nightly\nhandler: Noop\nkwargs: {}\nperiodically: 1 day\n"
    )
    (defaults / "owned.yaml").write_text(
        "job_id: owned\nhandler: Noop\nkwargs: {}\nperiodically: 1 day\nowner: alice\n"
        "group: data\npermissions: rw----\n"
    )
    with module_server("sqlite", tmp_path, pytestconfig, F8A_JOBS_SYSTEM_OWNER="ops-bot",
                       F8A_JOBS_DEFAULT_JOBS_DIR=str(defaults)) as server:
        nightly = server.get("/jobs/nightly").json()["job"]
        owned = server.get("/jobs/owned").json()["job"]
        whoami = server.get("/whoami").json()
    assert (nightly["owner"], nightly["group"], nightly["permissions"]) == ("ops-bot", None, "rwrwr-")
    assert (owned["owner"], owned["group"], owned["permissions"]) == ("alice", "data", "rw----")
    assert whoami == {"user": "anonymous", "groups": [], "admin": True}  # none configured


def test_hash_token_prints_the_digest_a_users_file_keeps(tmp_path):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "f8a_jobs.cli", "hash-token"],
        input="s3cret\n", capture_output=True, text=True, check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert result.stdout.strip() == token_digest("s3cret")
    assert len(result.stdout.strip()) == 64
