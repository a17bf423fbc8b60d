#!/usr/bin/env bash
# Makes sure a Docker Engine answers on /var/run/docker.sock: when none does (no systemd to start
# the docker.io service, as in containers and CI), starts dockerd in the background with its log in
# $STATE/logs/dockerd.log and its pid in $STATE/run/dockerd.pid, and waits up to 30 s for it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
SOCKET=/var/run/docker.sock

docker_answers() {
  [ -S "$SOCKET" ] && timeout 5 docker -H "unix://$SOCKET" version >/dev/null 2>&1
}

if docker_answers; then
  echo "Docker Engine already answers on $SOCKET"
  exit 0
fi
command -v dockerd >/dev/null 2>&1 || { echo "dockerd is not installed (run scripts/install-deps.sh)" >&2; exit 1; }
if [ "$(id -u)" -ne 0 ]; then
  echo "no Docker Engine answers on $SOCKET and starting dockerd needs root" >&2
  exit 1
fi

mkdir -p "$RUN_DIR" "$LOG_DIR"
# dockerd refuses to start over a pid file naming a live process, even an unrelated one.
remove_stale_pid /var/run/docker.pid dockerd
remove_stale_pid /var/run/docker/containerd/containerd.pid containerd
if pid_alive "$RUN_DIR/dockerd.pid" "dockerd"; then
  echo "dockerd (pid $(cat "$RUN_DIR/dockerd.pid")) is starting; waiting for it"
else
  nohup dockerd >>"$LOG_DIR/dockerd.log" 2>&1 &
  echo $! > "$RUN_DIR/dockerd.pid"
  echo "started dockerd (pid $!), log $LOG_DIR/dockerd.log"
fi

pid=$(cat "$RUN_DIR/dockerd.pid")
for _ in $(seq 1 150); do
  docker_answers && { echo "Docker Engine answers on $SOCKET"; exit 0; }
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.2
done
echo "dockerd did not answer on $SOCKET within 30 s; last lines of $LOG_DIR/dockerd.log:" >&2
tail -n 20 "$LOG_DIR/dockerd.log" >&2
exit 1
