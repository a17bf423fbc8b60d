# Shared helpers for the make up/down/status scripts: state locations, pid files and
# process checks. Processes are identified by their pid file AND their command line, so a
# reused pid never gets a signal meant for a Slipway process.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${SLIPWAY_STATE_DIR:-$ROOT/.slipway}
RUN_DIR=$STATE/run
LOG_DIR=$STATE/logs
ETCD_DATA=$STATE/etcd
ETCD_PORT=${SLIPWAY_ETCD_PORT:-23790}
ETCD_PEER_PORT=${SLIPWAY_ETCD_PEER_PORT:-23800}
API_PORT=${SLIPWAY_API_PORT:-6440}
ETCD_URL=http://127.0.0.1:$ETCD_PORT
API_URL=https://127.0.0.1:$API_PORT
# TLS material made by scripts/gen-certs.sh: the CA clients pin and the API server's certificate.
PKI_DIR=$STATE/pki
CA_FILE=$PKI_DIR/ca.crt
MANAGER_PORT=${SLIPWAY_MANAGER_PORT:-6441}
MANAGER_URL=http://127.0.0.1:$MANAGER_PORT
CONFIG=${SLIPWAY_CONFIG:-$HOME/.slipway/config}
# Keys encrypting Secrets at rest (JSON, mode 0600; created by make up, rotated by scripts/new-encryption-key.sh).
ENCRYPTION_KEY_FILE=$STATE/encryption-key.json
# The local edge node's Caddy: admin API on loopback only, HTTP and HTTPS ports, state (certificates, Caddy's CA).
EDGE_ADMIN_ADDRESS=${SLIPWAY_EDGE_ADMIN_ADDRESS:-127.0.0.1:2019}
EDGE_HTTP_PORT=${SLIPWAY_EDGE_HTTP_PORT:-80}
EDGE_HTTPS_PORT=${SLIPWAY_EDGE_HTTPS_PORT:-443}
# Caddy's on-demand TLS ask endpoint, served by the API server on loopback (plain HTTP, no token).
TLS_ASK_ADDRESS=${SLIPWAY_TLS_ASK_ADDRESS:-127.0.0.1:6442}
CADDY_DIR=$STATE/caddy

# pid_alive PIDFILE PATTERN: true if the pid file names a live process whose command line matches.
pid_alive() {
  local file=$1 pattern=$2 pid
  [ -f "$file" ] || return 1
  pid=$(cat "$file" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pattern"
}

# remove_stale_pid PIDFILE PATTERN: removes a pid file unless it names a live process matching PATTERN
# (a machine restored from a snapshot keeps /var/run, and an old pid may belong to another process).
remove_stale_pid() {
  pid_alive "$1" "$2" || rm -f "$1"
}

# node_trusting_ca ARGS...: node, also trusting the Slipway CA (for https:// URLs of the API server).
node_trusting_ca() {
  if [ -s "$CA_FILE" ]; then NODE_EXTRA_CA_CERTS=$CA_FILE node "$@"; else node "$@"; fi
}

# wait_http URL SECONDS: waits until URL answers 200 (https:// URLs may be signed by the Slipway CA).
wait_http() {
  node_trusting_ca -e '
    const [url, seconds] = process.argv.slice(1);
    const deadline = Date.now() + Number(seconds) * 1000;
    (async () => {
      for (;;) {
        try { const r = await fetch(url); if (r.status === 200) process.exit(0); } catch {}
        if (Date.now() > deadline) { console.error(`timed out waiting for ${url}`); process.exit(1); }
        await new Promise((r) => setTimeout(r, 200));
      }
    })();' "$1" "$2"
}

# stop_pid PIDFILE PATTERN NAME: SIGTERM, then SIGKILL after 10 s; removes the pid file.
stop_pid() {
  local file=$1 pattern=$2 name=$3 pid
  if pid_alive "$file" "$pattern"; then
    pid=$(cat "$file")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    echo "stopped $name (pid $pid)"
  fi
  rm -f "$file"
}
