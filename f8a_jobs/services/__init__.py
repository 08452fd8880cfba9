"""Layer 5, the services: the owners of the service's state, one package each, in this order
(a package may use those after it): ``jobs`` (definitions, parsed once into a ``JobSpec``),
``workflows`` (the workflow language, its expansion and its engine), ``runs`` (run and task
rows), ``flows`` (the outbox and its dispatchers); ``service_state`` (whether firing is
paused)."""
