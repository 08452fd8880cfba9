"""Layer 1, the core: plain values and the rules about them, with no database, broker or thread.

Settings and errors, JSON values, the states of runs and tasks, field parsers, schedules and
calendars, run policies and the flow value. Everything above may import it; it imports nothing
of the package but itself.
"""
