"""Layer 2, storage: the service's tables and their Alembic migrations, engines, locks, the
leadership fence, bulk writes and wake-ups, on SQLite or PostgreSQL. It knows no job, run or
handler; the services above own the rows."""
