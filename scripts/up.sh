#!/usr/bin/env bash
# `make up`: starts Slipway on this machine. etcd (single member, data under .slipway/), the API
# server and the controller manager run in the background with pid files; Docker is started when
# it is not running; the CLI config is written, slipctl is put on the PATH, the example app image
# is built and the example manifests (the local Node among them) are applied. The API server
# serves HTTPS with a certificate from the local CA (scripts/gen-certs.sh, under .slipway/pki);
# the CLI config and the controller manager pin that CA. Safe to run again.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
mkdir -p "$RUN_DIR" "$LOG_DIR" "$ETCD_DATA"
chmod 700 "$STATE"
mkdir -p "$STATE/audit" && chmod 700 "$STATE/audit"

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

bash "$ROOT/scripts/gen-certs.sh" "$PKI_DIR"

# The key encrypting Secrets in etcd: one random AES-256 key, readable by its owner only.
if [ ! -f "$ENCRYPTION_KEY_FILE" ]; then
  (umask 077 && node -e 'const id = "k1"; const secret = require("node:crypto").randomBytes(32).toString("base64");
    process.stdout.write(JSON.stringify({ keys: [{ id, secret }], active: id }, null, 2) + "\n");' > "$ENCRYPTION_KEY_FILE")
  echo "created the Secret encryption key file $ENCRYPTION_KEY_FILE"
fi
chmod 600 "$ENCRYPTION_KEY_FILE"

# Static bearer tokens: the admin's (written into the CLI config) and the controller manager's.
TOKEN_FILE=$STATE/tokens.csv
MANAGER_TOKEN_FILE=$STATE/controller-manager.token
if [ ! -f "$TOKEN_FILE" ]; then
  (umask 077
    admin=$(node -e 'process.stdout.write("slw_admin_" + require("node:crypto").randomBytes(32).toString("base64url"))')
    manager=$(node -e 'process.stdout.write("slw_manager_" + require("node:crypto").randomBytes(32).toString("base64url"))')
    printf '# token,user,role (read by the API server; keep it secret)\n%s,admin,admin\n%s,system:controller-manager,controller-manager\n' "$admin" "$manager" > "$TOKEN_FILE"
    printf '%s\n' "$manager" > "$MANAGER_TOKEN_FILE")
  echo "created the admin and controller-manager tokens in $TOKEN_FILE"
fi
chmod 600 "$TOKEN_FILE" "$MANAGER_TOKEN_FILE"
ADMIN_TOKEN=$(awk -F, '$2 == "admin" { print $1; exit }' "$TOKEN_FILE")

api_main=dist/src/apiserver/main.js
if pid_alive "$RUN_DIR/apiserver.pid" "$api_main" && [ "$RUN_DIR/apiserver.pid" -nt dist/src/apiserver/server.js ] \
  && [ "$RUN_DIR/apiserver.pid" -nt "$PKI_DIR/apiserver.crt" ] && [ "$RUN_DIR/apiserver.pid" -nt "$TOKEN_FILE" ] \
  && pid_alive "$RUN_DIR/apiserver.pid" "--token-auth-file" && pid_alive "$RUN_DIR/apiserver.pid" "--tls-ask-address"; then
  echo "API server already running (pid $(cat "$RUN_DIR/apiserver.pid"))"
else
  # Not running, or built again or given a new certificate since it started: (re)start it.
  stop_pid "$RUN_DIR/apiserver.pid" "$api_main" "API server (older build)"
  nohup node --enable-source-maps "$ROOT/$api_main" --etcd-servers "$ETCD_URL" --port "$API_PORT" --crds-dir "$ROOT/crds" --audit-dir "$STATE/audit" \
    --tls-cert-file "$PKI_DIR/apiserver.crt" --tls-key-file "$PKI_DIR/apiserver.key" \
    --encryption-key-file "$ENCRYPTION_KEY_FILE" --token-auth-file "$TOKEN_FILE" --tls-ask-address "$TLS_ASK_ADDRESS" \
    >>"$LOG_DIR/apiserver.log" 2>&1 &
  echo $! > "$RUN_DIR/apiserver.pid"
  echo "started API server (pid $!) on $API_URL"
fi
wait_http "$API_URL/readyz" 60

# Caddy for the local edge node: started with only its admin listener; the controller manager loads
# the routes. A Caddy already answering on the admin address (e.g. Debian's caddy.service) is used as is.
mkdir -p "$CADDY_DIR"
# Caddy 2.6 on Linux gives each config its own SO_REUSEPORT listener and closes the old one after a
# load, which resets connections still queued on it; with tcp_migrate_req (Linux 5.14+) the kernel
# hands them to the new listener, so config loads during rollouts drop no connection.
if [ -w /proc/sys/net/ipv4/tcp_migrate_req ]; then
  echo 1 > /proc/sys/net/ipv4/tcp_migrate_req && echo "net.ipv4.tcp_migrate_req = 1 (no connection reset on Caddy config loads)"
else
  echo "warning: cannot set net.ipv4.tcp_migrate_req (needs root and Linux 5.14+): Caddy config loads may reset a few new connections" >&2
fi
if pid_alive "$RUN_DIR/caddy.pid" "caddy run --config $CADDY_DIR/boot.json"; then
  echo "Caddy already running (pid $(cat "$RUN_DIR/caddy.pid"))"
elif node -e 'fetch(`http://${process.argv[1]}/config/`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' "$EDGE_ADMIN_ADDRESS"; then
  echo "a Caddy already answers on $EDGE_ADMIN_ADDRESS; the controller manager will configure it"
else
  printf '{"admin":{"listen":"%s"}}\n' "$EDGE_ADMIN_ADDRESS" > "$CADDY_DIR/boot.json"
  HOME=$CADDY_DIR XDG_DATA_HOME=$CADDY_DIR/data XDG_CONFIG_HOME=$CADDY_DIR/config \
    nohup caddy run --config "$CADDY_DIR/boot.json" >>"$LOG_DIR/caddy.log" 2>&1 &
  echo $! > "$RUN_DIR/caddy.pid"
  echo "started Caddy (pid $!), admin on $EDGE_ADMIN_ADDRESS, serving :$EDGE_HTTP_PORT and :$EDGE_HTTPS_PORT"
  wait_http "http://$EDGE_ADMIN_ADDRESS/config/" 30
fi

manager_main=dist/src/controllers/main.js
if pid_alive "$RUN_DIR/controller-manager.pid" "$manager_main" && [ "$RUN_DIR/controller-manager.pid" -nt dist/src/controllers/manager.js ] \
  && [ "$RUN_DIR/controller-manager.pid" -nt "$CA_FILE" ] && pid_alive "$RUN_DIR/controller-manager.pid" "--token-file"; then
  echo "controller manager already running (pid $(cat "$RUN_DIR/controller-manager.pid"))"
else
  stop_pid "$RUN_DIR/controller-manager.pid" "$manager_main" "controller manager (older build)"
  nohup node --enable-source-maps "$ROOT/$manager_main" --server "$API_URL" --ca-file "$CA_FILE" --token-file "$MANAGER_TOKEN_FILE" --port "$MANAGER_PORT" \
    --data-dir "$STATE/controller-manager" \
    --edge-admin-address "$EDGE_ADMIN_ADDRESS" --edge-http-port "$EDGE_HTTP_PORT" --edge-https-port "$EDGE_HTTPS_PORT" \
    --edge-ask-url "http://$TLS_ASK_ADDRESS/tls/ask" \
    >>"$LOG_DIR/controller-manager.log" 2>&1 &
  echo $! > "$RUN_DIR/controller-manager.pid"
  echo "started controller manager (pid $!) on $MANAGER_URL"
fi
wait_http "$MANAGER_URL/healthz" 30

"$ROOT/scripts/build-demo-image.sh"

# The example app built from git: manifests/apps/hello-git committed into a local repository
# (a new commit only when the sources changed).
HELLO_GIT=$STATE/repos/hello-git
mkdir -p "$HELLO_GIT"
[ -d "$HELLO_GIT/.git" ] || git -C "$HELLO_GIT" init -q -b main
cp "$ROOT/manifests/apps/hello-git/Dockerfile" "$ROOT/manifests/apps/hello-git/server.js" "$HELLO_GIT/"
git -C "$HELLO_GIT" add -A
git -C "$HELLO_GIT" diff --cached --quiet || git -C "$HELLO_GIT" -c user.name=slipway -c user.email=slipway@localhost commit -q -m "hello-git from manifests/apps/hello-git"

# CLI config: keep anything the user added, point it at this server and pin its CA.
mkdir -p "$(dirname "$CONFIG")"
chmod 700 "$(dirname "$CONFIG")"
if [ -f "$CONFIG" ] && grep -q '^server:' "$CONFIG"; then
  sed -i "s|^server:.*|server: $API_URL|" "$CONFIG"
else
  printf 'server: %s\n' "$API_URL" >> "$CONFIG"
fi
if grep -q '^certificate-authority:' "$CONFIG"; then
  sed -i "s|^certificate-authority:.*|certificate-authority: $CA_FILE|" "$CONFIG"
else
  printf 'certificate-authority: %s\n' "$CA_FILE" >> "$CONFIG"
fi
# The admin token; written with the file already 0600 (a token never sits in a readable file).
chmod 600 "$CONFIG"
if grep -q '^token:' "$CONFIG"; then
  sed -i "s|^token:.*|token: $ADMIN_TOKEN|" "$CONFIG"
else
  printf 'token: %s\n' "$ADMIN_TOKEN" >> "$CONFIG"
fi

# slipctl on the PATH (a wrapper, so it follows rebuilds of this checkout).
bin_dir=/usr/local/bin
[ -w "$bin_dir" ] || { bin_dir=$HOME/.local/bin; mkdir -p "$bin_dir"; }
cat > "$bin_dir/slipctl" <<WRAPPER
#!/bin/sh
exec node "$ROOT/dist/cli/main.js" "\$@"
WRAPPER
chmod 755 "$bin_dir/slipctl"

"$bin_dir/slipctl" apply -f "$ROOT/manifests/"
sed "s|@REPO@|$HELLO_GIT|" "$ROOT/manifests/apps/hello-git/service.yaml" | "$bin_dir/slipctl" apply -f -

cat <<SUMMARY

Slipway is running:
  etcd        $ETCD_URL    data $ETCD_DATA   log $LOG_DIR/etcd.log
  API server  $API_URL    log $LOG_DIR/apiserver.log   CA $CA_FILE
  controllers $MANAGER_URL    log $LOG_DIR/controller-manager.log
  Docker      /var/run/docker.sock (registered as Node local)
  Caddy       edge on :$EDGE_HTTP_PORT/:$EDGE_HTTPS_PORT, admin $EDGE_ADMIN_ADDRESS, log $LOG_DIR/caddy.log, CA $CADDY_DIR/data/caddy/pki/authorities/local/root.crt
  CLI         $bin_dir/slipctl   config $CONFIG
  Tokens      admin token in $CONFIG (mode 0600); more with: slipctl token create --role deployer -n NS
  Audit log   $STATE/audit (slipctl audit --since 1h)
  Secrets     encrypted in etcd with $ENCRYPTION_KEY_FILE (rotate: scripts/new-encryption-key.sh, then slipctl secrets rekey)

Try:
  slipctl get namespaces
  slipctl get services -A
  slipctl get nodes
  slipctl rollout status service/web -n shop-prod
  slipctl describe service web -n shop-prod
  slipctl logs service/web -n shop-prod
  slipctl get releases -n shop-prod -l slipway.dev/service=hello-git   (built from $HELLO_GIT)
  slipctl api-resources
  slipctl explain service.spec.healthCheck
  slipctl auth whoami
  curl --resolve shop.example.test:$EDGE_HTTPS_PORT:127.0.0.1 --cacert $CADDY_DIR/data/caddy/pki/authorities/local/root.crt https://shop.example.test:$EDGE_HTTPS_PORT/

Stop with: make down
SUMMARY
