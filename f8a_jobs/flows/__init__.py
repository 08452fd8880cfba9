"""Flows: the outbox handlers write to, and the dispatchers that deliver it to workers."""
