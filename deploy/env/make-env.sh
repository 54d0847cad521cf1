#!/usr/bin/env bash
# deploy/env/make-env.sh: create each real env file (postgres.env, mlflow.env, ray.env,
# dino.env, minio.env, s3.env) from its *.env.example template, with fresh secrets: one
# PostgreSQL password shared by the server and the two database URLs, one Ray auth token, and
# one MinIO secret shared by MinIO and the S3 clients. Existing env files are kept: the
# secrets are drawn once per run, so delete them all to regenerate a matching set (the
# password of an initialised PostgreSQL volume does not follow postgres.env: see
# deploy/README.md, "Rotate secrets").
set -euo pipefail
cd "$(dirname "$0")"
umask 077

random_hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

pg_password=$(random_hex 24)
ray_token=$(random_hex 32)
s3_secret=$(random_hex 24)
for template in *.env.example; do
    target=${template%.example}
    if [ -e "$target" ]; then
        echo "make-env: $target exists, kept"
        continue
    fi
    sed -e "s/__POSTGRES_PASSWORD__/$pg_password/g" -e "s/__RAY_AUTH_TOKEN__/$ray_token/g" \
        -e "s/__S3_SECRET_KEY__/$s3_secret/g" "$template" >"$target"
    echo "make-env: wrote $target"
done
