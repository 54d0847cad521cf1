#!/usr/bin/env bash
# Create .venv and install everything the project needs; safe to run again (it skips what is
# already there). As root on Debian it also installs the system packages: the Fashion-MNIST
# data set (dataset-fashion-mnist) and PostgreSQL (for the database tests).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(dataset-fashion-mnist postgresql chromium)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "bootstrap: installing Debian packages: ${missing[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.dino-installed
want=$(cat pyproject.toml $([ -f constraints.txt ] && echo constraints.txt) | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "bootstrap: installing Python packages (first time: a few minutes, ~5 GB)"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  cons=()
  [ -f constraints.txt ] && cons=(-c constraints.txt)
  .venv/bin/python -m pip install -q "${cons[@]}" "torch==2.14.1" "torchvision==0.29.1"
  .venv/bin/python -m pip install -q "${cons[@]}" -e '.[dev]'
  echo "$want" > "$stamp"
fi
