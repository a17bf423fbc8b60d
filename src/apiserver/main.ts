// `slipway-apiserver`: the API server process. Options come from flags or environment.

import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';
import { option, parseFlags } from '../util/flags.js';
import { createApiServer } from './server.js';

const USAGE = `Usage: slipway-apiserver [options]
  --etcd-servers URLS     comma-separated etcd endpoints (SLIPWAY_ETCD_SERVERS, default http://127.0.0.1:2379)
  --bind-address ADDR     address to listen on (SLIPWAY_BIND_ADDRESS, default 127.0.0.1)
  --port PORT             port to listen on (SLIPWAY_PORT, default 6440)
  --crds-dir DIR          bundled CRDs to install at start (SLIPWAY_CRDS_DIR, default <checkout>/crds)
  --log-level LEVEL       pino log level (SLIPWAY_LOG_LEVEL, default info)
  --token-auth-file FILE  static bearer tokens, "token,user,role" per line, mode 0600 (SLIPWAY_TOKEN_AUTH_FILE)
  --audit-dir DIR         write the audit log (JSON lines, rotated at 10 MiB, 10 kept) here (SLIPWAY_AUDIT_DIR; off when unset)
  --encryption-key-file FILE  JSON keys (mode 0600) encrypting Secrets at rest (SLIPWAY_ENCRYPTION_KEY_FILE);
                          re-read on SIGHUP and by slipctl secrets rekey
  --tls-cert-file FILE    PEM serving certificate: serve HTTPS (SLIPWAY_TLS_CERT_FILE; needs --tls-key-file)
  --tls-key-file FILE     PEM private key of --tls-cert-file (SLIPWAY_TLS_KEY_FILE)
                          Without TLS, plain HTTP is only served on a loopback --bind-address.
  --tls-ask-address HOST:PORT  serve Caddy's on-demand TLS ask endpoint (GET /tls/ask?domain=HOST, plain HTTP,
                          no token, loopback only) here (SLIPWAY_TLS_ASK_ADDRESS; off when unset)`;

/** `{ [key]: path }` for a given path (an empty value counts as not given). */
const optionalFile = (value: string, key: 'tlsCertFile' | 'tlsKeyFile' | 'encryptionKeyFile' | 'tokenFile') => (value ? { [key]: resolve(value) } : {});

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2));
  if (flags.has('help')) {
    console.log(USAGE);
    return;
  }
  const checkout = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
  const bind = option(flags, 'bind-address', 'SLIPWAY_BIND_ADDRESS', '127.0.0.1');
  const port = Number(option(flags, 'port', 'SLIPWAY_PORT', '6440'));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid --port ${port}`);
  const server = createApiServer({
    etcdEndpoints: option(flags, 'etcd-servers', 'SLIPWAY_ETCD_SERVERS', 'http://127.0.0.1:2379').split(','),
    crdsDir: option(flags, 'crds-dir', 'SLIPWAY_CRDS_DIR', resolve(checkout, 'crds')),
    logLevel: option(flags, 'log-level', 'SLIPWAY_LOG_LEVEL', 'info'),
    ...(option(flags, 'audit-dir', 'SLIPWAY_AUDIT_DIR', '') ? { auditDir: resolve(option(flags, 'audit-dir', 'SLIPWAY_AUDIT_DIR', '')) } : {}),
    ...optionalFile(option(flags, 'encryption-key-file', 'SLIPWAY_ENCRYPTION_KEY_FILE', ''), 'encryptionKeyFile'),
    ...optionalFile(option(flags, 'token-auth-file', 'SLIPWAY_TOKEN_AUTH_FILE', ''), 'tokenFile'),
    ...optionalFile(option(flags, 'tls-cert-file', 'SLIPWAY_TLS_CERT_FILE', ''), 'tlsCertFile'),
    ...optionalFile(option(flags, 'tls-key-file', 'SLIPWAY_TLS_KEY_FILE', ''), 'tlsKeyFile'),
    ...(option(flags, 'tls-ask-address', 'SLIPWAY_TLS_ASK_ADDRESS', '') ? { tlsAskAddress: option(flags, 'tls-ask-address', 'SLIPWAY_TLS_ASK_ADDRESS', '') } : {}),
  });
  const shutdown = async (signal: string) => {
    server.log.info({ signal }, 'shutting down');
    await server.close().catch(() => {});
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGHUP', () => server.reloadEncryptionKeys());
  await server.listen(port, bind);
}

main().catch((err) => {
  console.error(`slipway-apiserver: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
