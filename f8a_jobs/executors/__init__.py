"""Executors run claimed runs: ``threads`` (in the firing process). ``base`` runs one run's
handler the way every executor must."""
