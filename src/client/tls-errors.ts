// Plain-language messages for TLS failures reaching the API server (untrusted or expired
// certificate, wrong host name, a plain-HTTP server behind an https:// URL), instead of
// OpenSSL codes and stack traces.

const UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
]);

function errorCode(err: unknown): string | undefined {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 4; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'string' && e.code !== 'UND_ERR_SOCKET') return e.code;
  }
  return undefined;
}

/**
 * A `TLS: ...` message for a TLS failure talking to `server`, or null when `err` is not one.
 * `pinned` says whether the client trusts only a configured CA (rather than the system's).
 */
export function describeTlsError(err: unknown, server: string, pinned: boolean): string | null {
  const code = errorCode(err);
  if (!code) return null;
  if (UNTRUSTED.has(code)) {
    return pinned
      ? `TLS: the server's certificate is not signed by the configured certificate authority (${code}; server ${server})`
      : `TLS: the server's certificate is not signed by a certificate authority this machine trusts, and no certificate authority is configured (${code}; server ${server})`;
  }
  if (code === 'CERT_HAS_EXPIRED') return `TLS: the server's certificate has expired (server ${server}); renew it (make up does)`;
  if (code === 'CERT_NOT_YET_VALID') return `TLS: the server's certificate is not valid yet (server ${server}); check the clocks`;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return `TLS: the server's certificate does not name the host in ${server} (${(err as Error).message}); use a host name or address the certificate lists`;
  }
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || (code === 'EPROTO' && /wrong version number|packet length too long/.test(String((err as Error).message)))) {
    return `TLS: the server at ${server} did not answer the TLS handshake (is it serving plain HTTP? then use an http:// URL)`;
  }
  return null;
}
