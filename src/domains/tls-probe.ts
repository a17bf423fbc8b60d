// Probes the edge the way a browser would: a TLS handshake to the edge's HTTPS listener with
// SNI = the hostname, reading the certificate it serves, and (for route checks) one HTTP request
// with that Host. With on-demand TLS the handshake is also what makes Caddy obtain the certificate.

import { request } from 'node:https';
import { checkServerIdentity, connect, type PeerCertificate, type TLSSocket } from 'node:tls';

export interface ServedCertificate {
  issuer: string;
  notBefore: string;
  notAfter: string;
  serialNumber: string;
  dnsNames: string[];
}

export type ProbeOutcome =
  /** The served certificate is valid for the hostname and chains to the trusted roots. */
  | { kind: 'valid'; certificate: ServedCertificate }
  /** A certificate was served but is not acceptable (wrong name, untrusted, expired). */
  | { kind: 'invalid'; certificate: ServedCertificate; error: string }
  /** The edge answered but refused the handshake (no certificate for the name, issuance failed). */
  | { kind: 'refused'; error: string }
  /** The edge could not be reached at all (down, wrong address, timeout while connecting). */
  | { kind: 'unreachable'; error: string };

export interface ProbeTarget {
  /** `host:port` of the edge's HTTPS listener. */
  address: string;
  hostname: string;
  /** PEM roots the certificate must chain to; the system's roots when unset. */
  trustedRootsPem?: string;
  timeoutMs: number;
}

export function splitAddress(address: string): { host: string; port: number } {
  const m = /^\[?([^\]]*)\]?:(\d+)$/.exec(address);
  if (!m) throw new Error(`invalid edge address ${JSON.stringify(address)}: expected host:port`);
  return { host: m[1]!, port: Number(m[2]) };
}

const dn = (name: PeerCertificate['issuer']) =>
  Object.entries(name ?? {})
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('+') : v}`)
    .join(', ');

export function describeCertificate(cert: PeerCertificate): ServedCertificate {
  const dnsNames = (cert.subjectaltname ?? '')
    .split(/,\s*/)
    .filter((s) => s.startsWith('DNS:'))
    .map((s) => s.slice(4));
  return {
    issuer: dn(cert.issuer),
    notBefore: new Date(cert.valid_from).toISOString(),
    notAfter: new Date(cert.valid_to).toISOString(),
    serialNumber: cert.serialNumber.toLowerCase(),
    dnsNames,
  };
}

/** One TLS handshake with SNI = hostname; never throws. */
export function probeCertificate(t: ProbeTarget): Promise<ProbeOutcome> {
  const { host, port } = splitAddress(t.address);
  return new Promise((resolve) => {
    let connected = false;
    const socket: TLSSocket = connect({ host, port, servername: t.hostname, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'], ...(t.trustedRootsPem ? { ca: t.trustedRootsPem } : {}) });
    const finish = (outcome: ProbeOutcome) => {
      socket.destroy();
      resolve(outcome);
    };
    socket.setTimeout(t.timeoutMs, () => finish(connected ? { kind: 'refused', error: `no TLS handshake for ${t.hostname} within ${t.timeoutMs} ms` } : { kind: 'unreachable', error: `connecting to the edge at ${t.address} timed out` }));
    socket.once('connect', () => (connected = true));
    socket.once('error', (err: NodeJS.ErrnoException) => {
      if (!connected) return finish({ kind: 'unreachable', error: `cannot connect to the edge at ${t.address}: ${err.code ?? err.message}` });
      finish({ kind: 'refused', error: `the edge refused the TLS handshake for ${t.hostname}: ${err.message}` });
    });
    socket.once('secureConnect', () => {
      const peer = socket.getPeerCertificate();
      if (!peer || !peer.raw) return finish({ kind: 'refused', error: `the edge served no certificate for ${t.hostname}` });
      const certificate = describeCertificate(peer);
      const nameError = checkServerIdentity(t.hostname, peer);
      if (nameError) return finish({ kind: 'invalid', certificate, error: `the served certificate is not valid for ${t.hostname}: ${nameError.message}` });
      if (!socket.authorized) return finish({ kind: 'invalid', certificate, error: `the served certificate for ${t.hostname} is not trusted: ${String(socket.authorizationError)}` });
      finish({ kind: 'valid', certificate });
    });
  });
}

/**
 * The HTTP status the edge answers for `GET /` with this Host over TLS, or the failure; `gone`
 * when the failure means the edge does not serve the host (handshake refused, edge not listening)
 * rather than "could not tell" (timeout).
 */
export function probeRoute(t: ProbeTarget): Promise<{ status: number } | { error: string; gone: boolean }> {
  const { host, port } = splitAddress(t.address);
  return new Promise((resolve) => {
    const req = request({ host, port, servername: t.hostname, path: '/', method: 'GET', headers: { host: t.hostname, 'user-agent': 'slipway-domain-probe' }, rejectUnauthorized: false, agent: false, timeout: t.timeoutMs }, (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0 });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${t.timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.message, gone: !/within/.test(err.message) }));
    req.end();
  });
}
