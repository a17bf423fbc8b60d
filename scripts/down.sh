#!/usr/bin/env bash
# `make down`: stops what `make up` started, by pid file (never by process name). Data stays.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
stop_pid "$RUN_DIR/controller-manager.pid" "dist/src/controllers/main.js" "controller manager"
stop_pid "$RUN_DIR/apiserver.pid" "dist/src/apiserver/main.js" "API server"
stop_pid "$RUN_DIR/etcd.pid" "etcd --name slipway" "etcd"
stop_pid "$RUN_DIR/caddy.pid" "caddy run --config $CADDY_DIR/boot.json" "Caddy"
echo "Slipway is stopped (data kept in $STATE; remove it to start from scratch)."
echo "Docker and the apps' containers keep running; they are reconciled again by the next make up."
