"""The database backends the ``db_url`` fixture runs a test on (tests/orchestrator/conftest.py)."""

from __future__ import annotations

import pytest

BACKENDS = ["sqlite", "postgres"]

# Scheduling logic over Ray (retries, cancels, kept actors) reaches the database only through
# the service functions that the two-backend tests (test_db, test_service_*, test_reconcile,
# test_orchestrator_process, test_early_stopping and the grid test of test_scheduler) run on
# PostgreSQL too: a second backend there adds a minute to the suite, not coverage.
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
