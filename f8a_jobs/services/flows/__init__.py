"""Flows: the outbox handlers write to (``outbox``, the one writer of flow rows), and the
dispatchers that deliver it to workers (``base``, ``embedded``, ``celery``; ``dispatchers``
picks one). The relay that moves flows from one to the other runs on the leader
(``execution.relay``)."""
