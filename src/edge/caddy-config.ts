// The whole Caddy JSON configuration of an edge node as a pure function of the sites it serves and
// the edge options: one HTTPS server (certificates managed, on demand or internal) and one HTTP
// server (plain-HTTP sites and Caddy's HTTP->HTTPS redirects), each ending in a catch-all 404.
// Equal inputs give byte-equal output, so an unchanged desired state never reloads Caddy.

import { createHash } from 'node:crypto';
import { stableJson } from '../api/stable-json.js';
import type { EdgeSite } from './sites.js';

export interface AcmeOptions {
  /** ACME directory URL. Defaults to Let's Encrypt production. */
  directoryUrl?: string;
  /** Account email given to the CA. Defaults to none. */
  email?: string;
  /** PEM files of roots trusted for the CA's own HTTPS endpoint (e.g. Pebble's). Defaults to the system roots. */
  trustedRootsPemFiles?: string[];
}

/** The edge's settings (manager option `edge`). */
export interface EdgeRenderOptions {
  acme?: AcmeOptions;
  /** Caddy's on-demand TLS `ask` URL: answers 2xx only for hostnames allowed a certificate. Without it Domains get managed certificates. */
  askUrl?: string;
  /** Port of the plain-HTTP server. Defaults to 80. */
  httpPort?: number;
  /** Port of the HTTPS server. Defaults to 443. */
  httpsPort?: number;
  /** Caddy's admin listener on the edge node, loopback only. Defaults to `127.0.0.1:2019`. */
  adminAddress?: string;
}

export const LETS_ENCRYPT = 'https://acme-v02.api.letsencrypt.org/directory';
export const DEFAULT_ADMIN_ADDRESS = '127.0.0.1:2019';
export const STICKY_COOKIE = 'slipway_affinity';

type Json = Record<string, unknown>;

/** Headers every response of a TLS route carries (they replace the app's own). */
const SECURITY_HEADERS: Record<string, string[]> = {
  'Strict-Transport-Security': ['max-age=31536000'],
  'X-Content-Type-Options': ['nosniff'],
  'X-Frame-Options': ['SAMEORIGIN'],
  'Referrer-Policy': ['strict-origin-when-cross-origin'],
};

/** Caddy's stored form of a config (Go re-encodes what it was given), compared by value. */
export function configHash(config: unknown): string {
  return createHash('sha256').update(stableJson(config)).digest('hex').slice(0, 16);
}

export function renderCaddyConfig(sites: readonly EdgeSite[], options: EdgeRenderOptions = {}): Json {
  const httpPort = options.httpPort ?? 80;
  const httpsPort = options.httpsPort ?? 443;
  const tlsSites = sites.filter((s) => s.tls !== 'off');
  const plainSites = sites.filter((s) => s.tls === 'off');
  const http: Json = {
    http_port: httpPort,
    https_port: httpsPort,
    servers: {
      https: server(httpsPort, tlsSites, true),
      http: server(httpPort, plainSites, false),
    },
  };
  const config: Json = { admin: { listen: options.adminAddress ?? DEFAULT_ADMIN_ADDRESS }, apps: { http } };
  const tls = tlsApp(tlsSites, options, httpPort, httpsPort);
  if (tls) (config.apps as Json).tls = tls;
  // Caddy's own CA must never be added to the edge node's system trust store.
  if (tlsSites.some((s) => s.tls === 'internal')) (config.apps as Json).pki = { certificate_authorities: { local: { install_trust: false } } };
  return config;
}

function server(port: number, sites: readonly EdgeSite[], secure: boolean): Json {
  return {
    listen: [`:${port}`],
    routes: [...bodyLimitRoutes(sites), ...sites.map((s) => route(s, secure)), { handle: [{ handler: 'static_response', status_code: 404, body: 'no site is configured for this host\n' }] }],
    metrics: {},
  };
}

/**
 * 413 for a declared Content-Length above the site's limit, one route per distinct limit. Caddy
 * 2.6's request_body handler alone makes the proxy answer 502 for those (it only turns chunked
 * bodies into 413), and one expression per limit rather than per site keeps loads fast.
 */
function bodyLimitRoutes(sites: readonly EdgeSite[]): Json[] {
  const byLimit = new Map<number, string[]>();
  for (const s of sites) byLimit.set(s.maxBodyBytes, [...(byLimit.get(s.maxBodyBytes) ?? []), ...s.hosts]);
  return [...byLimit.entries()]
    .sort(([a], [b]) => a - b)
    .map(([limit, hosts]) => ({
      match: [{ host: hosts.sort(), expression: `{http.request.header.Content-Length} != '' && int({http.request.header.Content-Length}) > ${limit}` }],
      handle: [{ handler: 'static_response', status_code: 413, body: 'request body too large\n' }],
      terminal: true,
    }));
}

function route(site: EdgeSite, secure: boolean): Json {
  const handle: Json[] = [];
  if (secure) handle.push({ handler: 'headers', response: { set: SECURITY_HEADERS, deferred: true } });
  handle.push({ handler: 'request_body', max_size: site.maxBodyBytes });
  if (!site.upstreams.length) {
    handle.push({ handler: 'static_response', status_code: 503, headers: { 'Retry-After': ['5'] }, body: 'no ready replica\n' });
  } else {
    handle.push({
      handler: 'reverse_proxy',
      upstreams: site.upstreams.map((u) => ({ dial: `${u.host.includes(':') ? `[${u.host}]` : u.host}:${u.port}` })),
      load_balancing: {
        selection_policy: site.stickySessions ? { policy: 'cookie', name: STICKY_COOKIE } : { policy: 'round_robin' },
        // A replica that refuses the connection is retried on another one for up to 5 s.
        try_duration: '5s',
        try_interval: '100ms',
      },
      // With several replicas, one that fails a request is skipped for 10 s; a lone replica is
      // never skipped (that would turn one failed request into 10 s of errors).
      ...(site.upstreams.length > 1 ? { health_checks: { passive: { fail_duration: '10s', max_fails: 1 } } } : {}),
    });
  }
  return { '@id': site.id, match: [{ host: site.hosts }], handle, terminal: true };
}

function tlsApp(sites: readonly EdgeSite[], options: EdgeRenderOptions, httpPort: number, httpsPort: number): Json | undefined {
  const acme: Json = {
    module: 'acme',
    ca: options.acme?.directoryUrl ?? LETS_ENCRYPT,
    ...(options.acme?.email ? { email: options.acme.email } : {}),
    ...(options.acme?.trustedRootsPemFiles?.length ? { trusted_roots_pem_files: [...options.acme.trustedRootsPemFiles] } : {}),
    // Challenges are answered by the servers already listening on these ports.
    challenges: { http: { alternate_port: httpPort }, 'tls-alpn': { alternate_port: httpsPort } },
  };
  const hostsWith = (tls: EdgeSite['tls']) => sites.filter((s) => s.tls === tls).flatMap((s) => s.hosts).sort();
  const policies: Json[] = [];
  const managed = hostsWith('acme');
  const internal = hostsWith('internal');
  const onDemand = hostsWith('on-demand');
  if (managed.length) policies.push({ subjects: managed, issuers: [acme] });
  if (internal.length) policies.push({ subjects: internal, issuers: [{ module: 'internal' }] });
  if (onDemand.length) policies.push({ subjects: onDemand, issuers: [acme], on_demand: true });
  if (!policies.length) return undefined;
  return { automation: { policies, ...(onDemand.length && options.askUrl ? { on_demand: { ask: options.askUrl } } : {}) } };
}
