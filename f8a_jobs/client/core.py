"""``Client``: jobs, runs, logs and flows of an f8a-jobs service, as Python calls.

Every call is one request (a listing, one per page). An answer of 400 or more raises
``ApiError`` with the status and the server's message; a connection that fails is retried for
the calls that are safe to repeat (reads, ``PUT``, ``DELETE``), never for creating or running.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx

Json = dict[str, Any]
FINISHED = ("succeeded", "failed", "missed", "cancelled")
IDEMPOTENT = ("GET", "HEAD", "PUT", "DELETE")
CONNECT_TRIES = 3


class ApiError(Exception):
    """The service refused a request (or could not be reached: ``status`` 0)."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status
        self.message = message
        self.field = field


class Client:
    """The API at ``url`` (default ``F8A_JOBS_URL``, else ``http://127.0.0.1:34000``), as the
    holder of ``token`` (default ``F8A_JOBS_TOKEN``; none: a service without identities)."""

    def __init__(
        self, url: str | None = None, token: str | None = None, timeout: float = 30.0
    ) -> None:
        base = (url or os.environ.get("F8A_JOBS_URL") or "http://127.0.0.1:34000").rstrip("/")
        if not base.endswith("/api/v1"):
            base += "/api/v1"
        token = token if token is not None else os.environ.get("F8A_JOBS_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = base
        self._http = httpx.Client(base_url=base, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- jobs ---------------------------------------------------------------------------------

    def create_job(self, job: Mapping[str, Any], reason: str | None = None) -> Json:
        """Create a job (the fields of ``POST /jobs``); the job as stored."""
        return self._job(self._call("POST", "/jobs", json=_with(job, reason=reason)))

    def apply(
        self,
        jobs: Sequence[Mapping[str, Any]],
        prune: bool = False,
        prune_label: str | None = None,
        dry_run: bool = False,
        reason: str | None = None,
    ) -> Json:
        """Create or update ``jobs`` in one transaction (``POST /jobs/apply``); with ``prune``,
        delete the caller's other jobs (those labelled ``prune_label``). The plan:
        ``created``, ``changed``, ``unchanged``, ``deleted`` (job ids)."""
        body = _with(
            {"jobs": list(jobs), "prune": prune, "dry_run": dry_run},
            prune_label=prune_label,
            reason=reason,
        )
        return self._call("POST", "/jobs/apply", json=body)

    def save_job(self, job: Mapping[str, Any], reason: str | None = None) -> Json:
        """Create the job, or make the stored one match it; the job as stored. An error names
        the job's field (``tasks[0].entrypoint``), as ``create_job``'s would."""
        try:
            self.apply([job], reason=reason)
        except ApiError as error:
            prefix, field = "jobs[0].", error.field or ""
            if not field.startswith(prefix):
                raise
            message = error.message.removeprefix(prefix)
            raise ApiError(error.status, message, field.removeprefix(prefix)) from None
        return self.get_job(str(job["job_id"]))

    def get_job(self, job_id: str) -> Json:
        return self._job(self._call("GET", f"/jobs/{_quoted(job_id)}"))

    def jobs(self, page_size: int = 500, **filters: Any) -> Iterator[Json]:
        """Every job the caller may read (summaries; ``full=True`` for whole jobs), page by
        page: ``state``, ``handler``, ``owner``, ``group``, ``label`` (a list: all of them)."""
        return self._pages("/jobs", "jobs", page_size, filters)

    def update_job(
        self, job_id: str, changes: Mapping[str, Any], revision: int | None = None
    ) -> Json:
        """Change some fields (``PATCH``); with ``revision``, only if nobody changed it since."""
        body = _with(changes, revision=revision)
        return self._job(self._call("PATCH", f"/jobs/{_quoted(job_id)}", json=body))

    def pause(self, job_id: str, reason: str | None = None) -> Json:
        return self._state(job_id, "paused", reason)

    def resume(self, job_id: str, reason: str | None = None) -> Json:
        return self._state(job_id, "running", reason)

    def delete_job(self, job_id: str, reason: str | None = None) -> None:
        self._call("DELETE", f"/jobs/{_quoted(job_id)}", params=_with({}, reason=reason))

    def history(self, job_id: str) -> list[Json]:
        """The job's audit trail, newest first."""
        return list(self._call("GET", f"/jobs/{_quoted(job_id)}/history")["entries"])

    def next_runs(self, job_id: str, count: int = 5) -> list[Json]:
        """The job's next slots: each ``{"utc", "local"}``."""
        answer = self._call("GET", f"/jobs/{_quoted(job_id)}/next-runs", params={"count": count})
        return list(answer["next_runs"])

    def graph(self, job_id: str, run_id: str | None = None) -> Json:
        """A workflow's expanded graph, with a run's states (the last run's by default)."""
        return self._call("GET", f"/jobs/{_quoted(job_id)}/graph", params=_with({}, run_id=run_id))

    def bulk(self, action: str, reason: str | None = None, **selection: Any) -> Json:
        """``pause``, ``resume`` or ``run`` the jobs ``job_ids=[…]`` or ``label``, ``handler``,
        ``state`` select, in one transaction."""
        if action not in ("pause", "resume", "run"):
            raise ValueError(f"bulk action {action!r}: expected pause, resume or run")
        return self._call("POST", f"/jobs/{action}", json=_with(selection, reason=reason))

    # --- runs ---------------------------------------------------------------------------------

    def run_now(self, job_id: str, reason: str | None = None) -> Json:
        """Queue a run of the job now (its schedule unchanged); the run, queued."""
        return self._run(
            self._call("POST", f"/jobs/{_quoted(job_id)}/run", params=_with({}, reason=reason))
        )

    def runs(self, job_id: str, page_size: int = 500, **filters: Any) -> Iterator[Json]:
        """The job's runs, newest first, page by page (``started_by=``)."""
        return self._pages(f"/jobs/{_quoted(job_id)}/runs", "runs", page_size, filters)

    def search_runs(self, page_size: int = 500, **filters: Any) -> Iterator[Json]:
        """Runs across jobs (``GET /runs``: ``status``, ``job_id`` prefix, ``label``…), newest
        first, following the server's cursor."""
        cursor: str | None = None
        while True:
            params = _with({**filters, "limit": page_size}, cursor=cursor)
            page = self._call("GET", "/runs", params=params)
            yield from page["runs"]
            cursor = page.get("next")
            if not cursor:
                return

    def get_run(self, job_id: str, run_id: str) -> Json:
        return self._run(self._call("GET", f"/jobs/{_quoted(job_id)}/runs/{run_id}"))

    def wait(self, run: Mapping[str, Any], timeout: float = 600.0, interval: float = 0.5) -> Json:
        """The run once it has finished (succeeded, failed, missed or cancelled); a
        ``TimeoutError`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            current = self.get_run(run["job_id"], run["run_id"])
            if current["status"] in FINISHED:
                return current
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"run {run['run_id']} still {current['status']} after {timeout:g} s"
                )
            time.sleep(interval)

    def retry(self, job_id: str, run_id: str, definition: str = "snapshot") -> Json:
        path = f"/jobs/{_quoted(job_id)}/runs/{run_id}/retry"
        return self._run(self._call("POST", path, params={"definition": definition}))

    def cancel(self, job_id: str, run_id: str) -> Json:
        return self._run(self._call("POST", f"/jobs/{_quoted(job_id)}/runs/{run_id}/cancel"))

    def backfill(self, job_id: str, start: str, end: str, **options: Any) -> Json:
        body = {"start": start, "end": end, **options}
        return self._call("POST", f"/jobs/{_quoted(job_id)}/backfill", json=body)

    def flows(self, job_id: str | None = None, **filters: Any) -> list[Json]:
        return list(self._call("GET", "/flows", params=_with(filters, job_id=job_id))["flows"])

    # --- logs ---------------------------------------------------------------------------------

    def logs(self, job_id: str, run_id: str, **filters: Any) -> Iterator[Json]:
        """The records logged so far (the latest try's, or ``task=``, ``try_number=``…)."""
        path = f"/jobs/{_quoted(job_id)}/runs/{run_id}/logs"
        after: str | None = None
        while True:
            page = self._call("GET", path, params=_with(filters, after=after))
            yield from page["records"]
            after = page.get("next")
            if not after or not page["records"]:
                return

    def follow_logs(self, job_id: str, run_id: str, **filters: Any) -> Iterator[Json]:
        """Each record as it is logged, until the try ends (server-sent events)."""
        path = f"/jobs/{_quoted(job_id)}/runs/{run_id}/logs"
        params = {**filters, "follow": "true"}
        with self._http.stream("GET", path, params=params, timeout=None) as response:
            if response.status_code >= 400:
                response.read()
                raise _error(response)
            yield from _records(response.iter_lines())

    # --- the request ----------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> Json:
        tries = CONNECT_TRIES if method in IDEMPOTENT else 1
        for attempt in range(1, tries + 1):
            try:
                response = self._http.request(method, path, **kwargs)
                break
            except httpx.TransportError as error:
                if attempt == tries:
                    raise ApiError(0, f"cannot reach {self.url}: {error}") from error
                time.sleep(0.2 * attempt)
        if response.status_code >= 400:
            raise _error(response)
        return response.json() if response.content else {}

    def _pages(
        self, path: str, key: str, page_size: int, filters: Mapping[str, Any]
    ) -> Iterator[Json]:
        """Every item of an ``offset``-paged listing, one request a page."""
        offset = 0
        while True:
            params = {**filters, "limit": page_size, "offset": offset}
            page = self._call("GET", path, params=params)[key]
            yield from page
            if len(page) < page_size:
                return
            offset += len(page)

    def _state(self, job_id: str, state: str, reason: str | None) -> Json:
        params = _with({"state": state}, reason=reason)
        return self._job(self._call("PUT", f"/jobs/{_quoted(job_id)}", params=params))

    @staticmethod
    def _job(answer: Json) -> Json:
        return dict(answer["job"])

    @staticmethod
    def _run(answer: Json) -> Json:
        return dict(answer["run"])


def _quoted(job_id: str) -> str:
    """A job id as one path segment: ids may hold spaces, ``?``, ``#``, ``%``…"""
    return quote(job_id, safe="")


def _with(values: Mapping[str, Any], **optional: Any) -> Json:
    """``values`` and those of ``optional`` that are not None."""
    return {**values, **{key: value for key, value in optional.items() if value is not None}}


def _error(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        return ApiError(response.status_code, response.text[:500] or response.reason_phrase)
    if not isinstance(body, dict):
        return ApiError(response.status_code, str(body)[:500])
    message = body.get("detail") or body.get("error") or body.get("title") or response.reason_phrase
    return ApiError(response.status_code, str(message), body.get("field"))


def _records(lines: Iterator[str]) -> Iterator[Json]:
    """The ``record`` events of a server-sent event stream, until its ``end`` event."""
    event, data = "", ""
    for line in lines:
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line == "" and event:
            if event == "end":
                ended = json.loads(data or "{}")
                if isinstance(ended, dict) and ended.get("error"):
                    raise ApiError(410, str(ended["error"]))
                return
            if event == "record":
                yield json.loads(data)
            event, data = "", ""
