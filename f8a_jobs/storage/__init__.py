"""Tables, migrations, locks and the APScheduler job store, on SQLite or PostgreSQL."""
