"""The leader's workflow runner: ``runner`` (the loop that drives every workflow run of a
term), ``batch`` (what one step writes, in one transaction), ``opening`` (runs started,
resumed or adopted), ``orphans`` (tries whose process is gone) and ``cleanup`` (handlers'
cleanups after a run)."""
