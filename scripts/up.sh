#!/usr/bin/env bash
# `make up`: starts Slipway on this machine. etcd (single member, data under .slipway/), the API
# server and the controller manager run in the background with pid files; Docker is started when
# it is not running; the CLI config is written, slipctl is put on the PATH, the example app image
# is built and the example manifests (the local Node among them) are applied. Safe to run again.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
mkdir -p "$RUN_DIR" "$LOG_DIR" "$ETCD_DATA"
chmod 700 "$STATE"

if pid_alive "$RUN_DIR/etcd.pid" "etcd --name slipway"; then
  echo "etcd already running (pid $(cat "$RUN_DIR/etcd.pid"))"
else
  nohup etcd --name slipway --data-dir "$ETCD_DATA" \
    --listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "slipway=http://127.0.0.1:$ETCD_PEER_PORT" \
    --auto-compaction-mode periodic --auto-compaction-retention 1h \
    >>"$LOG_DIR/etcd.log" 2>&1 &
  echo $! > "$RUN_DIR/etcd.pid"
  echo "started etcd (pid $!) on $ETCD_URL"
fi
wait_http "$ETCD_URL/health" 30

"$ROOT/scripts/start-dockerd.sh"

api_main=dist/src/apiserver/main.js
if pid_alive "$RUN_DIR/apiserver.pid" "$api_main" && [ "$RUN_DIR/apiserver.pid" -nt dist/src/apiserver/server.js ]; then
  echo "API server already running (pid $(cat "$RUN_DIR/apiserver.pid"))"
else
  # Not running, or built again since it started: (re)start it.
  stop_pid "$RUN_DIR/apiserver.pid" "$api_main" "API server (older build)"
  nohup node --enable-source-maps "$ROOT/$api_main" --etcd-servers "$ETCD_URL" --port "$API_PORT" --crds-dir "$ROOT/crds" \
    >>"$LOG_DIR/apiserver.log" 2>&1 &
  echo $! > "$RUN_DIR/apiserver.pid"
  echo "started API server (pid $!) on $API_URL"
fi
wait_http "$API_URL/readyz" 60

manager_main=dist/src/controllers/main.js
if pid_alive "$RUN_DIR/controller-manager.pid" "$manager_main" && [ "$RUN_DIR/controller-manager.pid" -nt dist/src/controllers/manager.js ]; then
  echo "controller manager already running (pid $(cat "$RUN_DIR/controller-manager.pid"))"
else
  stop_pid "$RUN_DIR/controller-manager.pid" "$manager_main" "controller manager (older build)"
  nohup node --enable-source-maps "$ROOT/$manager_main" --server "$API_URL" --port "$MANAGER_PORT" \
    >>"$LOG_DIR/controller-manager.log" 2>&1 &
  echo $! > "$RUN_DIR/controller-manager.pid"
  echo "started controller manager (pid $!) on $MANAGER_URL"
fi
wait_http "$MANAGER_URL/healthz" 30

"$ROOT/scripts/build-demo-image.sh"

# CLI config: keep anything the user added, point it at this server.
mkdir -p "$(dirname "$CONFIG")"
chmod 700 "$(dirname "$CONFIG")"
if [ -f "$CONFIG" ] && grep -q '^server:' "$CONFIG"; then
  sed -i "s|^server:.*|server: $API_URL|" "$CONFIG"
else
  printf 'server: %s\n' "$API_URL" >> "$CONFIG"
fi
chmod 600 "$CONFIG"

# slipctl on the PATH (a wrapper, so it follows rebuilds of this checkout).
bin_dir=/usr/local/bin
[ -w "$bin_dir" ] || { bin_dir=$HOME/.local/bin; mkdir -p "$bin_dir"; }
cat > "$bin_dir/slipctl" <<WRAPPER
#!/bin/sh
exec node "$ROOT/dist/cli/main.js" "\$@"
WRAPPER
chmod 755 "$bin_dir/slipctl"

"$bin_dir/slipctl" apply -f "$ROOT/manifests/"

cat <<SUMMARY

Slipway is running:
  etcd        $ETCD_URL    data $ETCD_DATA   log $LOG_DIR/etcd.log
  API server  $API_URL    log $LOG_DIR/apiserver.log
  controllers $MANAGER_URL    log $LOG_DIR/controller-manager.log
  Docker      /var/run/docker.sock (registered as Node local)
  CLI         $bin_dir/slipctl   config $CONFIG

Try:
  slipctl get namespaces
  slipctl get services -A
  slipctl get nodes
  slipctl rollout status service/web -n shop-prod
  slipctl describe service web -n shop-prod
  slipctl logs service/web -n shop-prod
  slipctl api-resources
  slipctl explain service.spec.healthCheck

Stop with: make down
SUMMARY
