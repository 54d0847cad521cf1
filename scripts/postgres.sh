#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests and CI, listening on 127.0.0.1 on a free port.
#
#   scripts/postgres.sh start [DIR]   start a cluster in DIR (default: a new temp dir);
#                                     prints only the URL on stdout:
#                                     postgresql+psycopg://dino@127.0.0.1:PORT/dino
#                                     DIR/postgres.pid holds the server PID, DIR/url the URL.
#   scripts/postgres.sh stop DIR      fast shutdown of the server in DIR, then remove DIR
#   scripts/postgres.sh stop PID      fast shutdown of the server with that PID (files kept)
#   scripts/postgres.sh stop          the server of the last `start` by this user (its DIR
#                                     is remembered in $DINO_PG_LAST, default
#                                     /tmp/dino-postgres-<uid>.last)
#
# Installs Debian's `postgresql` with apt-get when no server binaries are found (needs root).
# PostgreSQL refuses to run as root: as root the cluster belongs to the `postgres` system
# user (created by the package) and every server command runs through `runuser`.
# Authentication is `trust` and durability is off (fsync=off): for tests only.
set -euo pipefail

LAST=${DINO_PG_LAST:-/tmp/dino-postgres-$(id -u).last}

die() { echo "postgres.sh: $*" >&2; exit 1; }
log() { echo "postgres.sh: $*" >&2; }

pg_bindir() {
  local d best=""
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && best="$d"
  done
  echo "$best"
}

ensure_installed() {
  if [ -z "$(pg_bindir)" ]; then
    [ "$(id -u)" -eq 0 ] || die "PostgreSQL is not installed; run as root to apt-get install it"
    log "installing Debian's postgresql package"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends postgresql >&2
  fi
  [ -n "$(pg_bindir)" ] || die "no initdb under /usr/lib/postgresql/*/bin after installing"
}

run_pg() {  # run a server command as the cluster's owner
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

port_free() {  # true when nothing accepts connections on 127.0.0.1:$1
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start() {
  ensure_installed
  local bin dir port url tries
  bin=$(pg_bindir)
  dir=${1:-$(mktemp -d /tmp/dino-pg.XXXXXX)}
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [ ! -e "$dir/data" ] || die "$dir/data already exists: pass an empty directory or stop it first"
  touch "$dir/.dino-postgres"
  if [ "$(id -u)" -eq 0 ]; then
    chown -R postgres: "$dir"
    run_pg test -w "$dir" || die "user postgres cannot write $dir: choose a directory under /tmp"
  fi
  run_pg "$bin/initdb" -D "$dir/data" -U dino -A trust -E UTF8 >"$dir/initdb.log" 2>&1 \
    || die "initdb failed, see $dir/initdb.log"
  for tries in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 40000))
    port_free "$port" || continue
    if run_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
      start >&2; then
      break
    fi
    log "start on port $port failed (attempt $tries), see $dir/postgres.log"
    port=""
  done
  [ -n "$port" ] || die "could not start PostgreSQL on a free port; see $dir/postgres.log"
  run_pg "$bin/createdb" -h 127.0.0.1 -p "$port" -U dino dino
  head -n 1 "$dir/data/postmaster.pid" >"$dir/postgres.pid"
  url="postgresql+psycopg://dino@127.0.0.1:$port/dino"
  echo "$url" >"$dir/url"
  echo "$dir" >"$LAST"
  log "server PID $(cat "$dir/postgres.pid") in $dir; stop with: $0 stop $dir"
  echo "$url"
}

stop() {
  local target=${1:-} pid dir=""
  if [ -z "$target" ]; then
    [ -f "$LAST" ] || die "nothing to stop: no DIR or PID given and no $LAST"
    target=$(cat "$LAST")
    [ -d "$target" ] || { rm -f "$LAST"; return 0; }  # already stopped and removed
  fi
  if [ -d "$target" ]; then
    dir=$target
    [ -f "$dir/.dino-postgres" ] || die "$dir was not made by $0 start: refusing to touch it"
    pid=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null || cat "$dir/postgres.pid" 2>/dev/null || true)
  else
    pid=$target
  fi
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -INT "$pid"  # PostgreSQL's "fast" shutdown
    for _ in $(seq 1 300); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "PID $pid still running after 30 s; sending SIGKILL"
      kill -KILL "$pid"
    fi
  fi
  if [ -n "$dir" ]; then
    rm -rf "$dir"
    if [ -f "$LAST" ] && [ "$(cat "$LAST")" = "$dir" ]; then
      rm -f "$LAST"
    fi
  fi
}

case "${1:-}" in
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  *) die "usage: $0 start [DIR] | stop [DIR|PID]" ;;
esac
