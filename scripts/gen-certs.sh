#!/usr/bin/env bash
# TLS material for the API server (called by `make up`): under DIR (default $STATE/pki) a
# self-signed CA (ca.crt/ca.key, EC P-256, 10 years) and a serving certificate signed by it
# (apiserver.crt/apiserver.key, EC P-256, 1 year, SANs localhost, 127.0.0.1, ::1, this machine's
# hostname and any in SLIPWAY_API_SANS, e.g. "DNS:api.example.com,IP:10.0.0.5"). Keys are 0600.
# Idempotent: existing files are kept unless they expire within 30 days, the SANs changed, the key
# does not match or the CA no longer signs the serving certificate.
# Usage: gen-certs.sh [DIR]
set -euo pipefail

dir=${1:-}
if [ -z "$dir" ]; then
  source "$(dirname "$0")/lib.sh"
  dir=$STATE/pki
fi
if ! command -v openssl >/dev/null 2>&1; then
  echo "gen-certs.sh: openssl is required (Debian package openssl; scripts/install-deps.sh installs it)" >&2
  exit 1
fi

umask 077
mkdir -p "$dir"
chmod 700 "$dir"
renew_seconds=$((30 * 24 * 3600))

sans="DNS:localhost,IP:127.0.0.1,IP:::1"
host=$(hostname 2>/dev/null || true)
if [ -n "$host" ] && [ "$host" != localhost ] && [[ $host =~ ^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]]; then
  sans="$sans,DNS:$host"
fi
if [ -n "${SLIPWAY_API_SANS:-}" ]; then sans="$sans,$SLIPWAY_API_SANS"; fi

# fresh CERT: the file exists and does not expire within 30 days.
fresh() { [ -s "$1" ] && openssl x509 -in "$1" -noout -checkend "$renew_seconds" >/dev/null 2>&1; }
# matches CERT KEY: the key is the certificate's.
matches() {
  [ -s "$2" ] && [ "$(openssl x509 -in "$1" -noout -pubkey 2>/dev/null)" = "$(openssl pkey -in "$2" -pubout 2>/dev/null)" ]
}
# new_key FILE: an EC P-256 private key, mode 0600.
new_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; chmod 600 "$1"; }

tmp=$(mktemp -d "$dir/.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

if ! fresh "$dir/ca.crt" || ! matches "$dir/ca.crt" "$dir/ca.key"; then
  new_key "$tmp/ca.key"
  openssl req -x509 -new -key "$tmp/ca.key" -sha256 -days 3650 -subj "/CN=Slipway CA" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" \
    -out "$tmp/ca.crt"
  chmod 644 "$tmp/ca.crt"
  mv -f "$tmp/ca.key" "$dir/ca.key"
  mv -f "$tmp/ca.crt" "$dir/ca.crt"
  echo "created the Slipway CA $dir/ca.crt (valid 10 years)"
fi

if ! fresh "$dir/apiserver.crt" || ! matches "$dir/apiserver.crt" "$dir/apiserver.key" \
  || [ "$(cat "$dir/apiserver.sans" 2>/dev/null)" != "$sans" ] \
  || ! openssl verify -CAfile "$dir/ca.crt" "$dir/apiserver.crt" >/dev/null 2>&1; then
  new_key "$tmp/apiserver.key"
  openssl req -new -key "$tmp/apiserver.key" -subj "/CN=slipway-apiserver" -out "$tmp/apiserver.csr"
  cat > "$tmp/ext.cnf" <<EXT
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = $sans
EXT
  openssl x509 -req -in "$tmp/apiserver.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days 365 -sha256 -extfile "$tmp/ext.cnf" \
    -out "$tmp/apiserver.crt" 2>/dev/null
  chmod 644 "$tmp/apiserver.crt"
  printf '%s\n' "$sans" > "$tmp/apiserver.sans"
  mv -f "$tmp/apiserver.key" "$dir/apiserver.key"
  mv -f "$tmp/apiserver.crt" "$dir/apiserver.crt"
  mv -f "$tmp/apiserver.sans" "$dir/apiserver.sans"
  echo "created the API server certificate $dir/apiserver.crt (valid 1 year; $sans)"
fi
