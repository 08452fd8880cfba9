"""The dev run's ``~/example/my_test_batch/entrypoints.py``: ``compute`` expects ``load``'s
output."""

from f8a_jobs.client.datatailr import dt

__all__ = ['load', 'compute']


@dt.scheduler.batch()
def load():
    return [3, 1, 2]


@dt.scheduler.batch()
def compute(input):
    return sum(input)
