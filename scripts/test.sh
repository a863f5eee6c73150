#!/usr/bin/env bash
# Install Kindred with its test dependencies, make sure PostgreSQL is up, install what the
# browser tests need (scripts/setup-browser.sh), run every test.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev
scripts/services.sh
scripts/setup-browser.sh
exec .venv/bin/python -m pytest -n "${KINDRED_TEST_WORKERS:-2}" "$@"
