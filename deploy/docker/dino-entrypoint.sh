#!/usr/bin/env bash
# The image's entrypoint (run under `tini -g`). The first argument picks what the container is:
#
#   ray-worker [RAY START ARGS...]
#       A Ray worker node joining RAY_HEAD_ADDRESS (host:port). With DINO_WORKER_GPUS=N (default
#       1) it claims N of the host's GPUs that no other ray-worker container of this host holds
#       (an flock per GPU slot in /var/lib/dino-gpu-locks, a volume shared by the replicas of
#       one host) and exposes only those (CUDA_VISIBLE_DEVICES), so that
#       `docker compose up --scale ray-worker=N` gives each replica its own GPUs. The lock is
#       released when the container's process dies. The replica also advertises its share of
#       the host's CPUs (nproc x N / GPUs), so that N replicas do not each claim every CPU;
#       a --num-cpus among the arguments wins. DINO_WORKER_GPUS=all: every visible GPU and
#       CPU. No GPU visible: a CPU-only worker.
#   with-ray COMMAND...
#       Join the Ray cluster at RAY_ADDRESS as a node with no CPUs or GPUs (a Ray driver must run
#       on a node of its cluster), then exec COMMAND (`dino serve`, `python -m orchestrator`).
#       Without RAY_ADDRESS, exec COMMAND as is (it starts an embedded local Ray).
#   anything else
#       exec'd as is (`ray start --head ...`, `mlflow server ...`, `dino ...`, `bash`).
set -euo pipefail

LOCK_DIR=${DINO_GPU_LOCK_DIR:-/var/lib/dino-gpu-locks}
JOIN_TIMEOUT_S=${DINO_RAY_JOIN_TIMEOUT_S:-300}

log() { echo "dino-entrypoint: $*" >&2; }

gpu_count() {
    if command -v nvidia-smi >/dev/null 2>&1; then
        nvidia-smi --list-gpus 2>/dev/null | grep -c '^GPU ' || true
    else
        echo 0
    fi
}

ray_worker() {
    local head=${RAY_HEAD_ADDRESS:?set RAY_HEAD_ADDRESS to the Ray head, e.g. ray-head:6379}
    local want=${DINO_WORKER_GPUS:-1}
    local common=(--address="$head" --labels="dino-role=worker" --block)
    if [ "$want" = all ]; then
        exec ray start "${common[@]}" "$@"
    fi
    if ! [[ "$want" =~ ^[1-9][0-9]*$ ]]; then
        log "DINO_WORKER_GPUS=$want: write a positive whole number of GPUs per worker, or 'all'"
        exit 2
    fi
    local n
    n=$(gpu_count)
    if [ "$n" -eq 0 ]; then
        log "no GPU visible in this container: starting a CPU-only Ray worker"
        exec ray start "${common[@]}" --num-gpus=0 "$@"
    fi
    local slots=$((n / want)) slot first ids rc
    local cpus=$(($(nproc) * want / n))
    [ "$cpus" -ge 1 ] || cpus=1
    mkdir -p "$LOCK_DIR"
    for ((slot = 0; slot < slots; slot++)); do
        first=$((slot * want))
        ids=$(seq -s, "$first" $((first + want - 1)))
        # -E 75: "slot taken" must not be confused with ray's own exit status.
        set +e
        flock --nonblock --conflict-exit-code 75 "$LOCK_DIR/slot-$want-$slot" \
            env CUDA_VISIBLE_DEVICES="$ids" \
            ray start "${common[@]}" --num-gpus="$want" --num-cpus="$cpus" "$@"
        rc=$?
        set -e
        if [ "$rc" -ne 75 ]; then
            exit "$rc"
        fi
    done
    log "all $slots slot(s) of $want GPU(s) among the $n GPU(s) of this host are held by other" \
        "ray-worker containers: scale ray-worker to at most $slots per host"
    exit 1
}

with_ray() {
    if [ $# -eq 0 ]; then
        log "with-ray needs a command to run, e.g. with-ray dino serve"
        exit 2
    fi
    local address=${RAY_ADDRESS:-}
    if [ -n "$address" ] && [ "$address" != auto ] && [ "$address" != local ] \
        && [[ "$address" != ray://* ]]; then
        local deadline=$((SECONDS + JOIN_TIMEOUT_S))
        until ray start --address="$address" --num-cpus=0 --num-gpus=0 \
            --labels="dino-role=driver" >/tmp/ray-join.log 2>&1; do
            if [ "$SECONDS" -ge "$deadline" ]; then
                cat /tmp/ray-join.log >&2
                log "could not join the Ray cluster at RAY_ADDRESS=$address within" \
                    "${JOIN_TIMEOUT_S}s (is the head up, and RAY_AUTH_TOKEN the cluster's?)"
                exit 1
            fi
            log "Ray head at $address not ready yet; retrying in 5 s"
            ray stop --force >/dev/null 2>&1 || true
            sleep 5
        done
        log "joined the Ray cluster at $address as a driver node (0 CPUs, 0 GPUs)"
    fi
    exec "$@"
}

case "${1:-}" in
    ray-worker)
        shift
        ray_worker "$@"
        ;;
    with-ray)
        shift
        with_ray "$@"
        ;;
    "")
        log "no command: pass ray-worker, with-ray COMMAND..., or a command to run"
        exit 2
        ;;
    *)
        exec "$@"
        ;;
esac
