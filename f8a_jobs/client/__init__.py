"""A Python client of the f8a-jobs API: ``Client`` and the one error it raises, ``ApiError``.

It imports no server code (only httpx), so ``pip install 'f8a-jobs[client]'`` is all a user
needs beside a running service.
"""

from f8a_jobs.client.core import ApiError, Client, Json

__all__ = ["ApiError", "Client", "Json"]
