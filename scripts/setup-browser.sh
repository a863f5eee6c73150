#!/usr/bin/env bash
# What the browser tests (tests/e2e/test_web_sdk.py) need: Debian's Chromium, Node's npm, and
# the pinned mParticle web SDK in tests/e2e/web/node_modules. Idempotent; quick when done.
# Playwright (a dev dependency in requirements-dev.lock) drives /usr/bin/chromium; no browser
# is ever downloaded by Playwright itself.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "setup-browser: ${missing[*]} missing and cannot apt-get install as $(id -un)" >&2
    exit 1
  fi
  echo "setup-browser: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
web=tests/e2e/web
stamp=$web/node_modules/.kindred-lock.sha256
want=$(sha256sum "$web/package.json" "$web/package-lock.json" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  (cd "$web" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" > "$stamp"
fi
