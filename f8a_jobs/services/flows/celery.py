"""The Celery dispatcher: each outbox row becomes one ``send_task(flow_name, kwargs=…)``.

The task id derives from the flow's key, (run, argument index): ``f8a-jobs-flow-<run>-<n>``,
and the key also travels as a header, so workers can recognise a message they have seen, even
one sent again after a crash. Selective flows carry their ``task_names``/``run_subsequent``/
``follow_subflows`` as headers too, so ``kwargs`` stay the flow's arguments. Sending never
retries by itself: the relay retries with backoff. A message the broker refuses for what it is
(too large for it, say) is reported as refused, not as an outage.
"""

from __future__ import annotations

from typing import Any

from amqp.exceptions import PreconditionFailed
from celery import Celery
from kombu.exceptions import ContentDisallowed, EncodeError

from f8a_jobs.core.errors import ConfigurationError
from f8a_jobs.services.flows.base import DeliveryFailed, Dispatcher
from f8a_jobs.services.flows.outbox import flow_key, task_id

#: Errors about one message, not the broker: sending it again cannot succeed.
REFUSED = (EncodeError, ContentDisallowed, PreconditionFailed)


class CeleryDispatcher(Dispatcher):
    delivered_status = "sent"

    def __init__(self, broker_url: str, queue: str, connect_timeout: float = 5.0) -> None:
        self.queue = queue
        self.app = Celery("f8a_jobs", broker=broker_url, set_as_current=False)
        self.app.conf.update(
            broker_connection_timeout=connect_timeout,
            broker_connection_retry=False,
            broker_transport_options={"confirm_publish": True, "max_retries": 0},
            task_serializer="json",
        )
        try:
            self.app.connection_for_write().transport  # noqa: B018 - resolves the scheme, no I/O
        except (KeyError, ImportError, ValueError) as error:
            raise ConfigurationError(
                f"F8A_JOBS_BROKER_URL: no broker transport for it ({error})"
            ) from None

    def send(self, flows: list[dict[str, Any]]) -> None:
        sent = 0
        try:
            with self.app.producer_or_acquire() as producer:
                for flow in flows:
                    self._send(flow, producer)
                    sent += 1
        except Exception as error:
            raise DeliveryFailed(sent, error, refused=isinstance(error, REFUSED)) from error

    def _send(self, flow: dict[str, Any], producer: Any) -> None:
        key = flow_key(flow)
        self.app.send_task(
            flow["flow_name"],
            kwargs=flow["arguments"],
            task_id=task_id(key),
            queue=self.queue,
            headers=self._headers(flow, key),
            producer=producer,
            retry=False,
        )

    @staticmethod
    def _headers(flow: dict[str, Any], key: str) -> dict[str, Any]:
        """What lets a worker recognise the flow: its key, outbox row, job and run."""
        headers: dict[str, Any] = {
            "f8a_jobs_flow_key": key,
            "f8a_jobs_outbox_id": flow["id"],
            "f8a_jobs_job_id": flow["job_id"],
            "f8a_jobs_run_id": flow["run_id"],
        }
        if flow["task_names"] is not None:
            headers.update(
                f8a_jobs_task_names=flow["task_names"],
                f8a_jobs_run_subsequent=flow["run_subsequent"],
                f8a_jobs_follow_subflows=flow["follow_subflows"],
            )
        return headers

    def close(self) -> None:
        self.app.close()
