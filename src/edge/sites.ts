// What the edge serves, derived from desired state: one EdgeSite per routed Service or Domain with
// its hostnames, TLS mode and the active release's ready endpoints. Pure functions of the objects,
// shared by the edge controller (to render Caddy's config) and the domain controller (to know
// which hostnames are routed).

import type { Domain, Service } from '../api/generated/crd-types.js';
import { parseBytes } from '../api/quantity.js';
import { objectKey, type DeepReadonly, type Stored } from '../controllers/runtime/informer.js';

/** Label that makes a Node run Caddy and receive the whole edge configuration. */
export const EDGE_LABEL = 'slipway.dev/edge';

/** How a site's certificates are obtained: `acme` (managed), `on-demand` (ACME at first handshake, gated by the ask URL), `internal` (Caddy's CA) or `off` (plain HTTP). */
export type EdgeTls = 'acme' | 'on-demand' | 'internal' | 'off';

export interface EdgeUpstream {
  host: string;
  port: number;
}

export interface EdgeSite {
  /** `service:<ns>/<name>` or `domain:<ns>/<name>`: the Caddy route's `@id`. */
  id: string;
  /** Lowercase hostnames, sorted. */
  hosts: string[];
  tls: EdgeTls;
  /** Ready endpoints of the active release, sorted; empty means the site answers 503. */
  upstreams: EdgeUpstream[];
  stickySessions: boolean;
  maxBodyBytes: number;
}

const DEFAULT_MAX_BODY = '100Mi';

type RO<T> = DeepReadonly<T>;

/** A Domain is routed only once its DNS is verified and while it is not being deleted (the contract with the domain controller). */
export function isDomainRoutable(domain: RO<Domain>): boolean {
  if (domain.metadata.deletionTimestamp) return false;
  return (domain.status?.conditions ?? []).some((c) => c.type === 'DNSVerified' && c.status === 'True');
}

/** Ready endpoints of the Service's active release (the service controller lists only those in status.endpoints). */
export function readyUpstreams(svc: RO<Service> | undefined): EdgeUpstream[] {
  if (!svc?.status?.activeRelease) return [];
  const seen = new Set<string>();
  const out: EdgeUpstream[] = [];
  for (const e of svc.status.endpoints ?? []) {
    const key = `${e.host}:${e.port}`;
    if (!e.ready || seen.has(key)) continue;
    seen.add(key);
    out.push({ host: e.host, port: e.port });
  }
  return out.sort((a, b) => (a.host === b.host ? a.port - b.port : a.host < b.host ? -1 : 1));
}

/** The parts of a Service the edge reads; equal projections render equal routes. */
export function edgeProjection(svc: RO<Service> | undefined): string {
  if (!svc) return '';
  return JSON.stringify({ edge: svc.spec?.edge ?? null, active: svc.status?.activeRelease ?? null, upstreams: readyUpstreams(svc), deleting: !!svc.metadata.deletionTimestamp });
}

function siteOptions(svc: RO<Service> | undefined): Pick<EdgeSite, 'upstreams' | 'stickySessions' | 'maxBodyBytes'> {
  return {
    upstreams: readyUpstreams(svc),
    stickySessions: svc?.spec?.edge?.stickySessions ?? false,
    maxBodyBytes: parseBytes((svc?.spec?.edge?.maxBodySize as string | number | undefined) ?? DEFAULT_MAX_BODY),
  };
}

export interface SiteOptions {
  /** When false (no ask URL configured), Domains get managed ACME certificates instead of on-demand ones. */
  onDemand: boolean;
}

/**
 * Every site the edge serves, sorted by id. A Service is routed once it has an active release; a
 * Domain once DNS-verified and its Service has one. A hostname claimed twice goes to the first
 * claimant (oldest first, Services before Domains); the others lose it.
 */
export function edgeSites(services: ReadonlyArray<RO<Service>>, domains: ReadonlyArray<RO<Stored<Domain>>>, options: SiteOptions): EdgeSite[] {
  const sites: EdgeSite[] = [];
  const byKey = new Map(services.map((s) => [objectKey(s), s]));
  const claimed = new Set<string>();
  const claim = (hosts: readonly string[]) => [...new Set(hosts.map((h) => h.toLowerCase()))].filter((h) => !claimed.has(h) && claimed.add(h)).sort();

  // The oldest claim keeps a hostname: a new Service cannot take over another's traffic.
  const age = (o: { metadata: { creationTimestamp?: string } }) => o.metadata.creationTimestamp ?? '';
  for (const svc of [...services].sort(byId((s) => `${age(s)} ${objectKey(s)}`))) {
    const edge = svc.spec?.edge;
    if (!edge?.hosts?.length || !svc.status?.activeRelease || svc.metadata.deletionTimestamp) continue;
    const hosts = claim(edge.hosts);
    if (hosts.length) sites.push({ id: `service:${objectKey(svc)}`, hosts, tls: edge.tls ?? 'acme', ...siteOptions(svc) });
  }
  for (const domain of [...domains].sort(byId((d) => `${age(d)} ${objectKey(d)}`))) {
    if (!isDomainRoutable(domain)) continue;
    const svc = byKey.get(`${domain.metadata.namespace}/${domain.spec.service}`);
    if (!svc?.status?.activeRelease || svc.metadata.deletionTimestamp) continue;
    const hosts = claim([domain.spec.hostname]);
    if (hosts.length) sites.push({ id: `domain:${objectKey(domain)}`, hosts, tls: options.onDemand ? 'on-demand' : 'acme', ...siteOptions(svc) });
  }
  return sites.sort(byId((s) => s.id));
}

/** Hostnames the edge routes (for the domain controller and the ask endpoint). */
export function routedHosts(sites: readonly EdgeSite[]): Set<string> {
  return new Set(sites.flatMap((s) => s.hosts));
}

function byId<T>(id: (t: T) => string): (a: T, b: T) => number {
  return (a, b) => (id(a) < id(b) ? -1 : id(a) > id(b) ? 1 : 0);
}
