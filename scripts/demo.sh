#!/usr/bin/env bash
# The main job on the embedded defaults: local Ray, SQLite job database, MLflow sqlite store.
# Starts `dino serve` (API + orchestrator), submits the Fashion-MNIST ablation grid through
# the API, watches it live, prints the ablation table, where the attention figures are and how
# to open the MLflow UI, then stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true RAY_USAGE_STATS_ENABLED=0
export DINO_HOME="${DINO_HOME:-$PWD/.dino/demo}"
GRID="${1:-configs/grids/fashion_mnist_ablation.yaml}"
PORT="${DINO_DEMO_PORT:-8765}"
export DINO_API_URL="http://127.0.0.1:$PORT"
export COLUMNS="${COLUMNS:-220}"  # full-width tables (14 columns) when the output is a file or a pipe
DINO=.venv/bin/dino
mkdir -p "$DINO_HOME/logs"

echo "== DINO Orchestrator demo: state in $DINO_HOME"
"$DINO" token create demo --admin --save --rotate >/dev/null
echo "== starting the API and orchestrator on $DINO_API_URL (log: $DINO_HOME/logs/serve.log)"
"$DINO" serve --port "$PORT" --no-mlflow-ui >"$DINO_HOME/logs/serve.log" 2>&1 &
SERVE_PID=$!
stop() {
  if kill -0 "$SERVE_PID" 2>/dev/null; then
    kill -TERM "$SERVE_PID" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$SERVE_PID" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$SERVE_PID" 2>/dev/null || true
  fi
}
trap stop EXIT
for i in $(seq 1 240); do
  if curl -fs "$DINO_API_URL/healthz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$SERVE_PID" 2>/dev/null; then
    echo "dino serve exited; its log:" >&2; tail -40 "$DINO_HOME/logs/serve.log" >&2; exit 1
  fi
  sleep 0.5
done

echo "== submitting $GRID"
# --watch exits non-zero when a combination did not succeed (the collapsed ones here, by design):
# keep going to the table as long as the grid was submitted
set +e
"$DINO" submit "$GRID" --watch | tee "$DINO_HOME/logs/submit.log"
watch_rc=${PIPESTATUS[0]}
set -e
if ! grep -q -m1 -E 'grid-[0-9a-f]+' "$DINO_HOME/logs/submit.log"; then
  echo "the grid was not submitted (dino submit exited $watch_rc)" >&2
  exit "$watch_rc"
fi
GRID_ID=$(grep -m1 -oE 'grid-[0-9a-f]+' "$DINO_HOME/logs/submit.log")  # no pipe: under pipefail, head closing early failed the script
echo
echo "== ablation table ($GRID_ID)"
"$DINO" grid show "$GRID_ID"
"$DINO" grid show "$GRID_ID" --format png --output "$DINO_HOME/$GRID_ID-knn.png" >/dev/null
echo
echo "k-NN plot:          $DINO_HOME/$GRID_ID-knn.png"
echo "attention figures:  $(ls -d "$DINO_HOME"/jobs/*/eval* 2>/dev/null | head -1 | xargs -r dirname | xargs -r dirname)/<job>/ (attention*.png), and in MLflow under each run's artifacts"
echo "open the MLflow UI: .venv/bin/mlflow ui --backend-store-uri sqlite:///$DINO_HOME/mlflow.db --host 127.0.0.1 --port 5000"
