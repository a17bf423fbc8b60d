#!/usr/bin/env bash
# `make status`: what `make up` started and whether it answers.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
show() {
  local name=$1 file=$2 pattern=$3 url=$4
  if pid_alive "$file" "$pattern"; then
    if node_trusting_ca -e 'fetch(process.argv[1]).then((r) => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1))' "$url"; then
      echo "$name: running (pid $(cat "$file")), healthy at $url"
    else
      echo "$name: running (pid $(cat "$file")), NOT answering at $url"
    fi
  else
    echo "$name: stopped"
  fi
}
show etcd "$RUN_DIR/etcd.pid" "etcd --name slipway" "$ETCD_URL/health"
show "API server" "$RUN_DIR/apiserver.pid" "dist/src/apiserver/main.js" "$API_URL/readyz"
show "controller manager" "$RUN_DIR/controller-manager.pid" "dist/src/controllers/main.js" "$MANAGER_URL/healthz"
show Caddy "$RUN_DIR/caddy.pid" "caddy run --config $CADDY_DIR/boot.json" "http://$EDGE_ADMIN_ADDRESS/config/"
