#!/usr/bin/env bash
# deploy/env/make-env.sh: create each real env file (postgres.env, mlflow.env, ray.env,
# dino.env) from its *.env.example template, with fresh secrets: one PostgreSQL password shared
# by the server and the two database URLs, and one Ray auth token. Existing env files are kept:
# the secrets are drawn once per run, so delete all four to regenerate a matching set (the
# password of an initialised PostgreSQL volume does not follow postgres.env: see
# deploy/README.md, "Rotate secrets").
set -euo pipefail
cd "$(dirname "$0")"
umask 077

random_hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

pg_password=$(random_hex 24)
ray_token=$(random_hex 32)
for template in *.env.example; do
    target=${template%.example}
    if [ -e "$target" ]; then
        echo "make-env: $target exists, kept"
        continue
    fi
    sed -e "s/__POSTGRES_PASSWORD__/$pg_password/g" -e "s/__RAY_AUTH_TOKEN__/$ray_token/g" \
        "$template" >"$target"
    echo "make-env: wrote $target"
done
