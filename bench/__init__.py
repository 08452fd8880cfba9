"""`make bench`: the hot paths of f8a-jobs beside plain APScheduler 3, on PostgreSQL."""
