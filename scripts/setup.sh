#!/usr/bin/env bash
# Install Kindred and its pinned dependencies into a venv (./.venv, or $KINDRED_VENV);
# idempotent and fast when done.
#   scripts/setup.sh         what the server needs at run time (requirements.lock)
#   scripts/setup.sh --dev   that and the development tools: tests, linters, browser driver
#                            (requirements-dev.lock, which pins the same run-time versions)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${KINDRED_VENV:-.venv}
mode=run
[ "${1:-}" = "--dev" ] && mode=dev
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
digest() { sha256sum "$@" | sha256sum | cut -d' ' -f1; }
want_run="run $(digest requirements.lock pyproject.toml)"
want_dev="dev $(digest requirements.lock requirements-dev.lock pyproject.toml)"
stamp="$VENV/.kindred-lock.sha256"
have=$(cat "$stamp" 2>/dev/null || true)
# A development install holds every run-time package at the same pins.
if [ "$have" = "$want_dev" ] || { [ $mode = run ] && [ "$have" = "$want_run" ]; }; then
  exit 0
fi
lock=requirements.lock want=$want_run
[ $mode = dev ] && lock=requirements-dev.lock want=$want_dev
if [ ! -x "$VENV/bin/uv" ]; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "uv==0.13.8"
fi
"$VENV/bin/uv" pip sync --quiet --python "$VENV/bin/python" "$lock"
"$VENV/bin/uv" pip install --quiet --python "$VENV/bin/python" --no-deps -e .
echo "$want" > "$stamp"
