#!/usr/bin/env bash
# dino-healthcheck [ROLE]: exit 0 when this container's service answers its health endpoint.
# ROLE (default: $DINO_ROLE, else api):
#   api     GET /healthz of the API on 127.0.0.1:$DINO_HEALTHCHECK_PORT (default 8000)
#   mlflow  GET /health of the MLflow server on 127.0.0.1:5000
#   ray     GET /api/healthz of the Ray dashboard agent on 127.0.0.1:52365 (Ray's default
#           --dashboard-agent-listen-port): the local raylet, and on the head the GCS, are
#           alive; Ray exempts this path from token auth
set -euo pipefail

role=${1:-${DINO_ROLE:-api}}
case "$role" in
    api) url="http://127.0.0.1:${DINO_HEALTHCHECK_PORT:-8000}/healthz" ;;
    mlflow) url="http://127.0.0.1:5000/health" ;;
    ray) url="http://127.0.0.1:52365/api/healthz" ;;
    *)
        echo "dino-healthcheck: unknown role '$role': use api, mlflow or ray" >&2
        exit 2
        ;;
esac
exec curl --fail --silent --show-error --max-time 8 --output /dev/null "$url"
