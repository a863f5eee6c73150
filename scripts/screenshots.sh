#!/usr/bin/env bash
# Regenerate docs/screenshots/*.png: each web UI page, from the demo data, in Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev
scripts/setup-browser.sh
exec .venv/bin/python scripts/screenshots.py "$@"
