#!/usr/bin/env bash
# The whole test suite: environment, PostgreSQL on 127.0.0.1 (when it can be started), pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true RAY_USAGE_STATS_ENABLED=0
pg_started=""
if [ -z "${DINO_TEST_POSTGRES_URL:-}" ] && [ -f scripts/postgres.sh ]; then
  if url=$(bash scripts/postgres.sh start); then
    export DINO_TEST_POSTGRES_URL="$url"
    pg_started=1
  else
    echo "test: PostgreSQL could not be started; the database tests run on SQLite only" >&2
  fi
fi
cleanup() { [ -n "$pg_started" ] && bash scripts/postgres.sh stop || true; }
trap cleanup EXIT
# One rerun absorbs timing noise of the integration tests on a loaded 2-core machine; a real
# failure fails twice and is reported.
.venv/bin/python -m pytest -q -p no:cacheprovider --reruns 1 --reruns-delay 2 "$@"
