#!/usr/bin/env bash
# The whole test suite: environment, PostgreSQL on 127.0.0.1 (when it can be started), pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true RAY_USAGE_STATS_ENABLED=0
pg_dir=""
if [ -z "${DINO_TEST_POSTGRES_URL:-}" ] && [ -f scripts/postgres.sh ]; then
  # our own directory, stopped by name: tests of postgres.sh start and stop servers of their
  # own, so "the last one started" is not necessarily this one
  pg_dir=$(mktemp -d /tmp/dino-pg.XXXXXX)
  if url=$(bash scripts/postgres.sh start "$pg_dir"); then
    export DINO_TEST_POSTGRES_URL="$url"
  else
    echo "test: PostgreSQL could not be started; the database tests run on SQLite only" >&2
    rm -rf "$pg_dir"
    pg_dir=""
  fi
fi
cleanup() { [ -z "$pg_dir" ] || bash scripts/postgres.sh stop "$pg_dir" || true; }
trap cleanup EXIT
# One rerun absorbs timing noise of the integration tests on a loaded 2-core machine; a real
# failure fails twice and is reported. The first attempt's traceback is printed either way, so
# a flaky test's cause is in the CI log, not only its "R".
.venv/bin/python -m pytest -q -p no:cacheprovider --reruns 1 --reruns-delay 2 \
  --rerun-show-tracebacks "$@"
