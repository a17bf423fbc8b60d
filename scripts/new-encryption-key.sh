#!/usr/bin/env bash
# Rotates the key encrypting Secrets at rest: appends a new random AES-256 key to
# .slipway/encryption-key.json and makes it the active one (the file stays mode 0600), then
# tells a running API server to reload it (SIGHUP). New writes use the new key at once; run
# `slipctl secrets rekey` to re-encrypt the existing Secrets, after which older keys may be
# removed from the file.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
file=${1:-$ENCRYPTION_KEY_FILE}
[ -f "$file" ] || { echo "error: no key file $file (make up creates it)" >&2; exit 1; }
tmp=$(mktemp "$file.XXXXXX")
trap 'rm -f "$tmp"' EXIT
chmod 600 "$tmp"
id=$(node -e '
  const fs = require("node:fs");
  const [file, out] = process.argv.slice(1);
  let doc;
  try { doc = JSON.parse(fs.readFileSync(file, "utf8")); } catch (e) { console.error(`error: ${file} is not valid JSON: ${e.message}`); process.exit(1); }
  if (!doc || !Array.isArray(doc.keys)) { console.error(`error: ${file} has no "keys" array`); process.exit(1); }
  const ids = new Set(doc.keys.map((k) => k && k.id));
  let n = doc.keys.length + 1;
  while (ids.has(`k${n}`)) n++;
  const id = `k${n}`;
  doc.keys.push({ id, secret: require("node:crypto").randomBytes(32).toString("base64") });
  doc.active = id;
  fs.writeFileSync(out, JSON.stringify(doc, null, 2) + "\n");
  process.stdout.write(id);' "$file" "$tmp")
mv "$tmp" "$file"
trap - EXIT
chmod 600 "$file"
echo "added key $id to $file and made it active"
if pid_alive "$RUN_DIR/apiserver.pid" "dist/src/apiserver/main.js"; then
  kill -HUP "$(cat "$RUN_DIR/apiserver.pid")"
  echo "the API server reloads the key file: new Secrets are encrypted with $id"
fi
echo "next: slipctl secrets rekey   (re-encrypts the existing Secrets with $id)"
