// A small typed client for the Slipway API (undici): JSON requests that fail with the server's
// Status, and newline-delimited watch streams. Used by slipctl, the controllers, tests and benches.

import { Agent, request, type Dispatcher } from 'undici';
import type { KubeList, KubeObject, Status, WatchEvent } from '../api/types.js';
import { describeTlsError } from './tls-errors.js';

export class ApiRequestError extends Error {
  constructor(
    readonly code: number,
    readonly status: Status | null,
    message: string,
  ) {
    super(message);
    this.name = 'ApiRequestError';
  }

  get reason(): string | undefined {
    return this.status?.reason;
  }
}

export interface ClientOptions {
  server: string;
  token?: string;
  /** PEM CA bundle to trust for https servers: the only CAs trusted (the system's are not). */
  ca?: string;
  userAgent?: string;
  /** Per-request timeout (not for watches). Defaults to 30 s. */
  timeoutMs?: number;
  dispatcher?: Dispatcher;
}

export type Query = Record<string, string | number | boolean | undefined>;

export interface RequestOptions {
  query?: Query;
  body?: unknown;
  contentType?: string;
  signal?: AbortSignal;
  headers?: Record<string, string>;
}

export interface Response<T> {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: T;
}

export function buildQuery(query?: Query): string {
  if (!query) return '';
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== '') params.set(k, String(v));
  const text = params.toString();
  return text ? `?${text}` : '';
}

export class ApiClient {
  readonly server: string;
  private readonly dispatcher: Dispatcher;
  private readonly headers: Record<string, string>;
  private readonly timeoutMs: number;
  private readonly pinnedCa: boolean;

  constructor(options: ClientOptions) {
    this.server = options.server.replace(/\/+$/, '');
    this.pinnedCa = !!options.ca;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.dispatcher =
      options.dispatcher ??
      new Agent({
        keepAliveTimeout: 30_000,
        connections: 128,
        ...(options.ca ? { connect: { ca: options.ca } } : {}),
      });
    this.headers = {
      'user-agent': options.userAgent ?? 'slipway-client/0.1',
      accept: 'application/json',
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
    };
  }

  /** Sends one request; non-2xx answers throw ApiRequestError carrying the server's Status. */
  async request<T = any>(method: string, path: string, options: RequestOptions = {}): Promise<Response<T>> {
    const body = options.body === undefined ? undefined : typeof options.body === 'string' || Buffer.isBuffer(options.body) ? options.body : JSON.stringify(options.body);
    const signal = options.signal ?? AbortSignal.timeout(this.timeoutMs);
    let res: Dispatcher.ResponseData;
    try {
      res = await request(`${this.server}${path}${buildQuery(options.query)}`, {
        method: method as Dispatcher.HttpMethod,
        dispatcher: this.dispatcher,
        headers: {
          ...this.headers,
          ...(body !== undefined ? { 'content-type': options.contentType ?? 'application/json' } : {}),
          ...options.headers,
        },
        ...(body !== undefined ? { body } : {}),
        signal,
      });
    } catch (err) {
      const e = err as Error & { code?: string };
      const tls = describeTlsError(err, this.server, this.pinnedCa);
      throw new ApiRequestError(0, null, tls ?? `cannot reach the Slipway API at ${this.server}: ${e.code ?? e.name}: ${e.message}`);
    }
    const text = await res.body.text();
    let parsed: any = text;
    if (text && (res.headers['content-type'] ?? '').toString().includes('json')) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    }
    if (res.statusCode >= 400) {
      const status: Status | null = parsed && typeof parsed === 'object' && parsed.kind === 'Status' ? parsed : null;
      throw new ApiRequestError(res.statusCode, status, status?.message ?? `the server answered ${res.statusCode}: ${String(text).slice(0, 200)}`);
    }
    return { status: res.statusCode, headers: res.headers, body: parsed as T };
  }

  /**
   * Sends one request and hands back the answer's body as a stream (logs, exec), with this
   * client's credentials and trusted CA; a non-2xx answer throws like `request`.
   */
  async stream(method: 'GET' | 'POST', path: string, options: { query?: Query; body?: unknown; accept: string; signal?: AbortSignal }): Promise<Dispatcher.ResponseData> {
    let res: Dispatcher.ResponseData;
    try {
      res = await request(`${this.server}${path}${buildQuery(options.query)}`, {
        method,
        dispatcher: this.dispatcher,
        headers: { ...this.headers, accept: options.accept, ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
        headersTimeout: 60_000,
        bodyTimeout: 0,
      });
    } catch (err) {
      const e = err as Error & { code?: string };
      const tls = describeTlsError(err, this.server, this.pinnedCa);
      throw new ApiRequestError(0, null, tls ?? `cannot reach the Slipway API at ${this.server}: ${e.code ?? e.name}: ${e.message}`);
    }
    if (res.statusCode >= 400) {
      const text = await res.body.text();
      let status: Status | null = null;
      try {
        const parsed = JSON.parse(text);
        if (parsed?.kind === 'Status') status = parsed;
      } catch {
        /* not a Status */
      }
      throw new ApiRequestError(res.statusCode, status, status?.message ?? `the server answered ${res.statusCode}: ${text.slice(0, 200)}`);
    }
    return res;
  }

  async get<T extends KubeObject = KubeObject>(path: string, query?: Query): Promise<T> {
    return (await this.request<T>('GET', path, query ? { query } : {})).body;
  }

  async list<T extends KubeObject = KubeObject>(path: string, query?: Query): Promise<KubeList<T>> {
    return (await this.request<KubeList<T>>('GET', path, query ? { query } : {})).body;
  }

  async create<T extends KubeObject = KubeObject>(path: string, obj: unknown, query?: Query): Promise<T> {
    return (await this.request<T>('POST', path, { body: obj, ...(query ? { query } : {}) })).body;
  }

  async replace<T extends KubeObject = KubeObject>(path: string, obj: unknown, query?: Query): Promise<T> {
    return (await this.request<T>('PUT', path, { body: obj, ...(query ? { query } : {}) })).body;
  }

  async patch<T extends KubeObject = KubeObject>(path: string, patch: unknown, type: 'merge' | 'json' = 'merge', query?: Query): Promise<T> {
    const contentType = type === 'merge' ? 'application/merge-patch+json' : 'application/json-patch+json';
    return (await this.request<T>('PATCH', path, { body: patch, contentType, ...(query ? { query } : {}) })).body;
  }

  async delete<T extends KubeObject = KubeObject>(path: string, options?: { propagationPolicy?: string; preconditions?: { uid?: string; resourceVersion?: string } }, query?: Query): Promise<Response<T>> {
    return this.request<T>('DELETE', path, {
      ...(options ? { body: { kind: 'DeleteOptions', apiVersion: 'v1', ...options } } : {}),
      ...(query ? { query } : {}),
    });
  }

  /**
   * Streams watch events until the server ends the stream, `signal` aborts, or `onEvent` returns
   * false. Resolves normally in all three cases; an HTTP error (e.g. 410) rejects.
   */
  async watch<T = KubeObject>(path: string, query: Query, onEvent: (event: WatchEvent<T>) => boolean | void, signal?: AbortSignal): Promise<void> {
    const controller = new AbortController();
    const onAbort = () => controller.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) return;
    try {
      const res = await request(`${this.server}${path}${buildQuery({ ...query, watch: 'true' })}`, {
        method: 'GET',
        dispatcher: this.dispatcher,
        headers: this.headers,
        signal: controller.signal,
        bodyTimeout: 0,
      });
      if (res.statusCode >= 400) {
        const text = await res.body.text();
        let status: Status | null = null;
        try {
          status = JSON.parse(text);
        } catch {
          /* not a Status */
        }
        throw new ApiRequestError(res.statusCode, status, status?.message ?? `watch failed with ${res.statusCode}`);
      }
      let buffered = '';
      for await (const chunk of res.body) {
        buffered += chunk.toString();
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          if (!line.trim()) continue;
          if (onEvent(JSON.parse(line) as WatchEvent<T>) === false) {
            controller.abort();
            return;
          }
        }
      }
    } catch (err) {
      if (controller.signal.aborted) return;
      if (err instanceof ApiRequestError) throw err;
      throw new ApiRequestError(0, null, `watch of ${path} failed: ${describeTlsError(err, this.server, this.pinnedCa) ?? (err as Error).message}`);
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}
