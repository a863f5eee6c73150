#!/usr/bin/env bash
# A three-node NATS JetStream cluster on loopback, for the scale-out tests and benches
# (docs/deployment.md). Each node runs in the foreground of its own background process so
# that a test can kill -9 one (its pid is in DIR/nN.pid) and start it again.
#
#   scripts/jetstream-cluster.sh start DIR [BASE_PORT]   # clients: BASE, BASE+1, BASE+2
#   scripts/jetstream-cluster.sh node DIR N [BASE_PORT]  # (re)start node N (0, 1 or 2) alone
#   scripts/jetstream-cluster.sh stop DIR
#
# Client ports BASE..BASE+2 (default 14222), cluster ports BASE+100..BASE+102, node names
# n0..n2, data in DIR/nN, logs in DIR/nN.log. `start` waits until the cluster has a
# JetStream meta leader.
set -euo pipefail
NATS_SERVER=${NATS_SERVER:-/usr/sbin/nats-server}
cmd=${1:?start, node or stop}
dir=${2:?a directory for the node data}
mkdir -p "$dir"

routes() {
  local base=$1
  echo "nats://127.0.0.1:$((base + 100)),nats://127.0.0.1:$((base + 101)),nats://127.0.0.1:$((base + 102))"
}

start_node() {
  local n=$1 base=$2
  "$NATS_SERVER" -a 127.0.0.1 -p $((base + n)) -n "n$n" -js -sd "$dir/n$n" \
    --cluster_name kindred-test --cluster "nats://127.0.0.1:$((base + 100 + n))" \
    --routes "$(routes "$base")" >>"$dir/n$n.log" 2>&1 &
  echo $! >"$dir/n$n.pid"
}

up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

case "$cmd" in
  start)
    base=${3:-14222}
    for n in 0 1 2; do start_node "$n" "$base"; done
    for _ in $(seq 1 100); do
      if up "$base" && up $((base + 1)) && up $((base + 2)) \
        && grep -q "JetStream cluster new metadata leader\|Self is new JetStream cluster metadata leader" "$dir"/n*.log; then
        echo "JetStream cluster up: nats://127.0.0.1:$base,nats://127.0.0.1:$((base + 1)),nats://127.0.0.1:$((base + 2))"
        exit 0
      fi
      sleep 0.1
    done
    echo "the JetStream cluster did not come up; see $dir/n*.log" >&2
    exit 1
    ;;
  node)
    n=${3:?node 0, 1 or 2}
    start_node "$n" "${4:-14222}"
    ;;
  stop)
    for pidfile in "$dir"/n*.pid; do
      [ -f "$pidfile" ] || continue
      kill "$(cat "$pidfile")" 2>/dev/null || true
      rm -f "$pidfile"
    done
    ;;
  *)
    echo "usage: $0 start|node|stop DIR ..." >&2
    exit 2
    ;;
esac
