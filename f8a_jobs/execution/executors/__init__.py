"""Executors run what the leader claimed: ``threads`` (in the firing process, the default) and
``celery`` (sent to ``f8a-jobs worker`` processes: ``worker``, ``messages``, ``reports``,
``sending``). Where a handler runs does not change what a run or a try is: both call
``runs.execute_run`` and ``tries.execute_try``."""
