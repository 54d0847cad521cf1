"""orchestrator: jobs and grids in a database (the source of truth), run on Ray.

* :mod:`orchestrator.service` — what the api calls (users, jobs, grids, summaries, stats).
* :mod:`orchestrator.db` — ``open_database()``: SQLite by default, PostgreSQL via
  ``DINO_DATABASE_URL``; migrations run on open.
* :mod:`orchestrator.loop` — ``run_orchestrator(stop_event, settings)``, the scheduling loop
  (also ``python -m orchestrator``).

Importing this package imports neither Ray nor MLflow.
"""
