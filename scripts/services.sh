#!/usr/bin/env bash
# Start the local services the tests use when they are not running (PostgreSQL, NATS with
# JetStream).
set -uo pipefail
pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
fi
pg_up || { echo "PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1; }

# NATS: the JetStream output's tests publish to 127.0.0.1:4222.
nats_up() { (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; }
if ! nats_up; then
  if [ -x /usr/sbin/nats-server ]; then
    mkdir -p /var/lib/nats-server /var/log
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
      -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log || true
  fi
  for _ in $(seq 1 30); do nats_up && break; sleep 1; done
fi
nats_up || { echo "NATS is not reachable on 127.0.0.1:4222" >&2; exit 1; }
