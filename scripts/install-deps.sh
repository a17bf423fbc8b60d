#!/usr/bin/env bash
# Installs what Slipway needs and is missing: Debian packages (as root) and npm packages
# from the committed lock file. Idempotent and quiet when nothing is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# command (a name on the PATH, or an absolute path) → Debian package
declare -A PACKAGES=(
  [etcd]=etcd-server
  [etcdctl]=etcd-client
  [diff]=diffutils
  [dockerd]=docker.io
  [/usr/sbin/sshd]=openssh-server
  [ip]=iproute2
  [docker-registry]=docker-registry
  [htpasswd]=apache2-utils
  [openssl]=openssl
  [/usr/sbin/mariadbd]=mariadb-server
  [mariadb-dump]=mariadb-client
  [/usr/lib/postgresql/15/bin/pg_dump]=postgresql
  [redis-server]=redis-server
  [redis-cli]=redis-tools
  [zstd]=zstd
  [caddy]=caddy
  [pebble]=pebble
  [dnsmasq]=dnsmasq
  [git]=git
)
missing=()
for cmd in "${!PACKAGES[@]}"; do
  if [[ $cmd == /* ]]; then [ -x "$cmd" ] && continue; else command -v "$cmd" >/dev/null 2>&1 && continue; fi
  missing+=("${PACKAGES[$cmd]}")
done
# Test images and Slipway's volume-backup helper image (slipway/backup-helper) copy /bin/busybox
# into FROM-scratch images, so it must be the static build (busybox-static replaces Debian's
# dynamically linked busybox package).
if [ ! -x /bin/busybox ] || ldd /bin/busybox >/dev/null 2>&1; then
  missing+=(busybox-static)
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || true
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian's etcd package starts a system etcd where systemd runs; Slipway runs its own.
  # Without systemd dockerd is not started by the package: scripts/start-dockerd.sh starts it.
fi

if ! command -v node >/dev/null 2>&1; then
  echo "Node.js 20 or newer is required" >&2
  exit 1
fi

stamp=node_modules/.slipway-installed
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ] || [ package.json -nt "$stamp" ]; then
  echo "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
  touch "$stamp"
fi
