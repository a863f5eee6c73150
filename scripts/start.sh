#!/usr/bin/env bash
# Install what Kindred needs at run time (into ./.venv, or $KINDRED_VENV), then start it on
# 127.0.0.1:8080 with the embedded SQLite store in ./data and the demo config and demo data
# loaded. Extra arguments go to `kindred serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec "${KINDRED_VENV:-.venv}/bin/kindred" serve --demo-data --data-dir "${KINDRED_DATA_DIR:-data}" "$@"
