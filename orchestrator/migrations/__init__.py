"""Alembic migrations of the job database, applied by :func:`orchestrator.db.migrate`."""
