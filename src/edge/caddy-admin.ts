// A small client of Caddy's admin API (undici): read the current config with its ETag and replace
// the whole config guarded by If-Match, so a config changed by someone else in between is never
// overwritten blindly. Caddy 2.6 honours If-Match on `/config/` but ignores it on `/load`, so the
// whole config is replaced with `POST /config/` (the same full reload as `/load`).

import { Client } from 'undici';
import { deepEqual } from '../api/deep-equal.js';

/** What the edge controller needs from an edge node's Caddy. */
export interface CaddyAdminApi {
  /** The running config (null when Caddy runs without one) and the ETag to replace it with. */
  getConfig(): Promise<{ config: unknown; etag: string | undefined }>;
  /** Replaces the whole config; rejects with ConfigChangedError when `etag` is no longer current. */
  replaceConfig(config: unknown, etag: string | undefined): Promise<void>;
  close(): Promise<void>;
}

export class CaddyAdminError extends Error {
  override name = 'CaddyAdminError';
}

/** The config changed since it was read (HTTP 412): read it again and retry. */
export class ConfigChangedError extends CaddyAdminError {
  override name = 'ConfigChangedError';
}

const TIMEOUTS = { headersTimeout: 10_000, bodyTimeout: 30_000 };
/** Whole-request deadline: also covers a connection (e.g. an SSH channel) that never answers. */
const DEADLINE_MS = 30_000;

export class CaddyAdmin implements CaddyAdminApi {
  private readonly client: Client;
  /** A connection per request when forwarded: a channel to a restarted Caddy is never reused. */
  private readonly reset: boolean;
  private readonly host: Record<string, string>;

  /**
   * `address` is the admin listener as Caddy sees it (`127.0.0.1:2019`), also the Host header
   * Caddy checks; `dial` is where to connect when that differs (a local end of an SSH forward).
   */
  constructor(
    readonly address: string,
    dial?: string,
  ) {
    this.client = new Client(`http://${dial ?? address}`, { keepAliveTimeout: 2_000 });
    this.reset = dial !== undefined;
    this.host = dial !== undefined ? { host: address } : {};
  }

  async getConfig(): Promise<{ config: unknown; etag: string | undefined }> {
    const res = await this.call(() => this.client.request({ method: 'GET', path: '/config/', headers: this.host, reset: this.reset, signal: AbortSignal.timeout(DEADLINE_MS), ...TIMEOUTS }), true);
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new CaddyAdminError(`Caddy admin API at ${this.address}: GET /config/ answered ${res.statusCode}: ${caddyMessage(text)}`);
    // Caddy 2.6 sends the ETag as a trailer (the body is streamed before the hash is known).
    const etag = header(res.headers.etag) ?? header(res.trailers?.etag);
    return { config: text.trim() ? JSON.parse(text) : null, etag };
  }

  async replaceConfig(config: unknown, etag: string | undefined): Promise<void> {
    const res = await this.call(() =>
      this.client.request({
        method: 'POST',
        path: '/config/',
        headers: { 'content-type': 'application/json', ...(etag ? { 'if-match': etag } : {}), ...this.host },
        body: JSON.stringify(config),
        reset: this.reset,
        signal: AbortSignal.timeout(DEADLINE_MS),
        ...TIMEOUTS,
      }),
    );
    const text = await res.body.text();
    if (res.statusCode === 412) throw new ConfigChangedError(`Caddy's config at ${this.address} changed while it was being replaced`);
    if (res.statusCode >= 300) throw new CaddyAdminError(`Caddy at ${this.address} refused the config (${res.statusCode}): ${caddyMessage(text)}`);
  }

  /** Drops the connections at once (a request still running fails). */
  close(): Promise<void> {
    return this.client.destroy();
  }

  /** Runs a request; an idempotent one is sent once more when its kept-alive connection had been closed (Caddy restarts its admin server on each load). */
  private async call<T>(request: () => Promise<T>, idempotent = false): Promise<T> {
    try {
      try {
        return await request();
      } catch (err) {
        if (!idempotent || !['UND_ERR_SOCKET', 'ECONNRESET'].includes((err as { code?: string }).code ?? '')) throw err;
        return await request();
      }
    } catch (err) {
      const e = err as Error & { code?: string; cause?: { code?: string } };
      throw new CaddyAdminError(`Caddy admin API at ${this.address} does not answer: ${e.code ?? e.cause?.code ?? e.message}`, { cause: err });
    }
  }
}

/**
 * Makes Caddy run `config`: reads the running config and replaces it only when it differs by value
 * (Caddy re-encodes what it was given, so the comparison ignores key order). `loaded` says whether
 * a load was sent; `wasEmpty` whether Caddy had no config (restarted, or never configured).
 */
export async function ensureConfig(admin: CaddyAdminApi, config: unknown): Promise<{ loaded: boolean; wasEmpty: boolean }> {
  const current = await admin.getConfig();
  const wasEmpty = !current.config || !(current.config as { apps?: unknown }).apps;
  if (deepEqual(current.config, config)) return { loaded: false, wasEmpty };
  await admin.replaceConfig(config, current.etag);
  return { loaded: true, wasEmpty };
}

function header(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** Caddy's errors are `{"error": "..."}`; keep them short for status fields. */
function caddyMessage(text: string): string {
  try {
    return String((JSON.parse(text) as { error?: unknown }).error ?? text).slice(0, 1000);
  } catch {
    return text.slice(0, 1000);
  }
}
