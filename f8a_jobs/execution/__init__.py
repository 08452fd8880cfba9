"""Layer 6, execution: what runs on the leader and on workers. ``leader`` (the lock and terms)
starts a ``scheduler`` per term: APScheduler over our ``jobstore``, ``firing`` (a pass's due
runs as rows), an executor (``executors``), the workflow ``runner``, the flow ``relay``, and
``recording`` (finished runs in grouped commits). ``loop`` is every background thread's
skeleton; ``metrics`` counts what happens."""
