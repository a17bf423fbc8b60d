// The on-demand TLS "ask" endpoint Caddy calls before obtaining or using a certificate:
// `GET /tls/ask?domain=HOST` answers 200 only for a DNS-verified, non-deleted Domain that is not in
// issuance backoff, else 403 (known but not allowed) or 404 (unknown), with the reason as text.
// It is a separate plain-HTTP listener on a loopback address (`--tls-ask-address`) so Caddy can
// call it without a token and without trusting the API server's CA; it answers from a hostname
// index kept from the API server's object cache, so no request touches etcd.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { KubeObject } from '../api/types.js';
import { askDecision } from '../domains/issuance.js';
import type { ObjectCache } from './object-cache.js';
import { isLoopbackAddress } from './tls.js';

export const ASK_PATH = '/tls/ask';

/** Domains by spec.hostname (several when two claim one; the controller lets only the oldest verify). */
export class DomainHostIndex {
  private readonly byHost = new Map<string, Map<string, KubeObject>>();

  constructor(cache: ObjectCache) {
    cache.onChange((resource, obj, previous) => {
      if (resource.group !== 'slipway.dev' || resource.plural !== 'domains') return;
      if (previous) this.remove(previous);
      if (obj) this.add(obj);
    });
  }

  private static host = (d: KubeObject) => String((d.spec as { hostname?: unknown } | undefined)?.hostname ?? '').toLowerCase();
  private static key = (d: KubeObject) => `${d.metadata.namespace}/${d.metadata.name}`;

  private add(d: KubeObject): void {
    const host = DomainHostIndex.host(d);
    if (!host) return;
    let entries = this.byHost.get(host);
    if (!entries) this.byHost.set(host, (entries = new Map()));
    entries.set(DomainHostIndex.key(d), d);
  }

  private remove(d: KubeObject): void {
    const host = DomainHostIndex.host(d);
    const entries = this.byHost.get(host);
    entries?.delete(DomainHostIndex.key(d));
    if (entries && !entries.size) this.byHost.delete(host);
  }

  /** Whether a certificate for `hostname` may be obtained or used now. */
  decide(hostname: string, now = Date.now()): { allowed: boolean; reason: string; known: boolean } {
    const entries = [...(this.byHost.get(hostname.toLowerCase().replace(/\.$/, ''))?.values() ?? [])];
    if (!entries.length) return { ...askDecision(undefined, now), known: false };
    const decisions = entries.map((d) => askDecision(d as Parameters<typeof askDecision>[0], now));
    return { ...(decisions.find((d) => d.allowed) ?? decisions[0]!), known: true };
  }
}

export interface TlsAskServer {
  readonly url: string;
  close(): Promise<void>;
}

/** Listens on `host:port` (loopback only) and answers asks from the index. */
export async function startTlsAskServer(index: DomainHostIndex, address: string, log: Logger): Promise<TlsAskServer> {
  const m = /^\[?([^\]]*)\]?:(\d+)$/.exec(address);
  if (!m) throw new Error(`invalid --tls-ask-address ${JSON.stringify(address)}: expected host:port, for example 127.0.0.1:6442`);
  const host = m[1]!;
  if (!isLoopbackAddress(host)) throw new Error(`refusing to serve the TLS ask endpoint on ${host}: it answers without a token, so it must be bound to a loopback address`);
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://ask');
    const answer = (code: number, text: string) => {
      res.writeHead(code, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
      res.end(`${text}\n`);
    };
    if (url.pathname !== ASK_PATH) return answer(404, `not found: the ask endpoint is GET ${ASK_PATH}?domain=HOSTNAME`);
    if (req.method !== 'GET' && req.method !== 'HEAD') return answer(405, 'method not allowed');
    const domain = url.searchParams.get('domain');
    if (!domain) return answer(400, 'missing query parameter domain');
    const decision = index.decide(domain);
    log.debug({ domain, allowed: decision.allowed, reason: decision.reason }, 'tls ask');
    answer(decision.allowed ? 200 : decision.known ? 403 : 404, decision.reason);
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(m[2]), host, () => resolve());
  });
  const bound = server.address() as AddressInfo;
  const url = `http://${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}${ASK_PATH}`;
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
