// The edge's pure parts, by exact comparison: which Services and Domains become sites, and the
// Caddy config rendered from them (deterministic whatever the input order, also for 1,000 routes).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Domain, Service } from '../src/api/generated/crd-types.js';
import { configHash, LETS_ENCRYPT, renderCaddyConfig } from '../src/edge/caddy-config.js';
import { edgeSites, routedHosts, type EdgeSite } from '../src/edge/sites.js';
import type { Stored } from '../src/controllers/runtime/informer.js';

function service(ns: string, name: string, edge: Service['spec'] extends infer S ? (S extends { edge?: infer E } ? E : never) : never, status: Service['status'] = { activeRelease: `${name}-1`, endpoints: [{ node: 'local', containerName: `${ns}.${name}-1-0`, host: '10.0.0.5', port: 32001, ready: true }] }): Service {
  return { apiVersion: 'slipway.dev/v1alpha1', kind: 'Service', metadata: { name, namespace: ns, uid: `${ns}-${name}`, creationTimestamp: name === 'thief' ? '2026-02-01T00:00:00Z' : '2026-01-01T00:00:00Z' }, spec: { image: 'x', edge }, status } as Service;
}

function domain(ns: string, name: string, hostname: string, svc: string, verified: boolean, deleting = false): Stored<Domain> {
  return {
    apiVersion: 'slipway.dev/v1alpha1',
    kind: 'Domain',
    metadata: { name, namespace: ns, uid: name, ...(deleting ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}) },
    spec: { hostname, service: svc },
    status: { conditions: [{ type: 'DNSVerified', status: verified ? 'True' : 'False' }] },
  } as Stored<Domain>;
}

test('sites: hosts with an active release, verified Domains only, ready endpoints only, the oldest claim keeps a host', () => {
  const services = [
    service('shop', 'web', { hosts: ['Shop.example.com', 'www.shop.example.com'], tls: 'acme', stickySessions: true, maxBodySize: '1Mi' }, {
      activeRelease: 'web-2',
      endpoints: [
        { node: 'b', containerName: 'shop.web-2-1', host: '10.0.0.6', port: 32002, ready: true },
        { node: 'a', containerName: 'shop.web-2-0', host: '10.0.0.5', port: 32001, ready: true },
        { node: 'a', containerName: 'shop.web-2-2', host: '10.0.0.5', port: 32003, ready: false },
      ],
    }),
    service('shop', 'pending', { hosts: ['pending.example.com'] }, {}),
    service('other', 'thief', { hosts: ['shop.example.com', 'thief.example.com'], tls: 'off' }),
  ];
  const domains = [
    domain('shop', 'customer', 'shop.customer.test', 'web', true),
    domain('shop', 'unverified', 'new.customer.test', 'web', false),
    domain('shop', 'leaving', 'old.customer.test', 'web', true, true),
  ];
  const sites = edgeSites(services, domains, { onDemand: true });
  assert.deepEqual(sites, [
    { id: 'domain:shop/customer', hosts: ['shop.customer.test'], tls: 'on-demand', upstreams: [{ host: '10.0.0.5', port: 32001 }, { host: '10.0.0.6', port: 32002 }], stickySessions: true, maxBodyBytes: 1024 * 1024 },
    { id: 'service:other/thief', hosts: ['thief.example.com'], tls: 'off', upstreams: [{ host: '10.0.0.5', port: 32001 }], stickySessions: false, maxBodyBytes: 100 * 1024 * 1024 },
    { id: 'service:shop/web', hosts: ['shop.example.com', 'www.shop.example.com'], tls: 'acme', upstreams: [{ host: '10.0.0.5', port: 32001 }, { host: '10.0.0.6', port: 32002 }], stickySessions: true, maxBodyBytes: 1024 * 1024 },
  ]);
  assert.deepEqual([...routedHosts(sites)].sort(), ['shop.customer.test', 'shop.example.com', 'thief.example.com', 'www.shop.example.com']);
  assert.equal(edgeSites(services, domains, { onDemand: false })[0]!.tls, 'acme', 'without an ask URL Domains get managed certificates');
});

test('config: one site renders exactly this', () => {
  const site: EdgeSite = { id: 'service:shop/web', hosts: ['shop.example.com'], tls: 'acme', upstreams: [{ host: '10.0.0.5', port: 32001 }, { host: 'fd00::1', port: 32002 }], stickySessions: true, maxBodyBytes: 1048576 };
  const config = renderCaddyConfig([site, { ...site, id: 'domain:shop/c', hosts: ['c.test'], tls: 'on-demand', upstreams: [] }], { httpPort: 8080, httpsPort: 8443, askUrl: 'http://127.0.0.1:6440/ask', acme: { email: 'ops@example.com' } });
  const acme = { module: 'acme', ca: LETS_ENCRYPT, email: 'ops@example.com', challenges: { http: { alternate_port: 8080 }, 'tls-alpn': { alternate_port: 8443 } } };
  const headers = { handler: 'headers', response: { set: { 'Strict-Transport-Security': ['max-age=31536000'], 'X-Content-Type-Options': ['nosniff'], 'X-Frame-Options': ['SAMEORIGIN'], 'Referrer-Policy': ['strict-origin-when-cross-origin'] }, deferred: true } };
  const notFound = { handle: [{ handler: 'static_response', status_code: 404, body: 'no site is configured for this host\n' }] };
  assert.deepEqual(config, {
    admin: { listen: '127.0.0.1:2019' },
    apps: {
      http: {
        http_port: 8080,
        https_port: 8443,
        servers: {
          https: {
            listen: [':8443'],
            routes: [
              {
                match: [{ host: ['c.test', 'shop.example.com'], expression: "{http.request.header.Content-Length} != '' && int({http.request.header.Content-Length}) > 1048576" }],
                handle: [{ handler: 'static_response', status_code: 413, body: 'request body too large\n' }],
                terminal: true,
              },
              {
                '@id': 'service:shop/web',
                match: [{ host: ['shop.example.com'] }],
                handle: [
                  headers,
                  { handler: 'request_body', max_size: 1048576 },
                  {
                    handler: 'reverse_proxy',
                    upstreams: [{ dial: '10.0.0.5:32001' }, { dial: '[fd00::1]:32002' }],
                    load_balancing: { selection_policy: { policy: 'cookie', name: 'slipway_affinity' }, try_duration: '5s', try_interval: '100ms' },
                    health_checks: { passive: { fail_duration: '10s', max_fails: 1 } },
                  },
                ],
                terminal: true,
              },
              {
                '@id': 'domain:shop/c',
                match: [{ host: ['c.test'] }],
                handle: [headers, { handler: 'request_body', max_size: 1048576 }, { handler: 'static_response', status_code: 503, headers: { 'Retry-After': ['5'] }, body: 'no ready replica\n' }],
                terminal: true,
              },
              notFound,
            ],
            metrics: {},
          },
          http: { listen: [':8080'], routes: [notFound], metrics: {} },
        },
      },
      tls: {
        automation: {
          policies: [
            { subjects: ['shop.example.com'], issuers: [acme] },
            { subjects: ['c.test'], issuers: [acme], on_demand: true },
          ],
          on_demand: { ask: 'http://127.0.0.1:6440/ask' },
        },
      },
    },
  });
});

test('config: 1,000 routes render the same whatever the input order', () => {
  const services = Array.from({ length: 1000 }, (_, i) =>
    service(`ns${i % 10}`, `app${i}`, { hosts: [`app${i}.example.com`], tls: (['acme', 'internal', 'off'] as const)[i % 3], stickySessions: i % 2 === 0 }),
  );
  const render = (list: Service[]) => JSON.stringify(renderCaddyConfig(edgeSites(list, [], { onDemand: false }), { httpPort: 80, httpsPort: 443 }));
  const a = render(services);
  const b = render([...services].reverse());
  assert.equal(a, b);
  const config = JSON.parse(a) as { apps: { http: { servers: Record<string, { routes: unknown[] }> }; pki?: unknown } };
  assert.equal(config.apps.http.servers.https!.routes.length + config.apps.http.servers.http!.routes.length, 1000 + 2 + 2, '1,000 sites, a 404 and a 413 route per server');
  assert.deepEqual(config.apps.pki, { certificate_authorities: { local: { install_trust: false } } });
  assert.equal(configHash(JSON.parse(a)), configHash(JSON.parse(b)));
});
