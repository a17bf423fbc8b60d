// A request to the API server whose answer is read as a stream (logs, exec), which the JSON
// ApiClient would buffer whole. Failures become the same ApiRequestError the client throws, so
// they print as `Error from server (Reason): message`.

import { request, type Dispatcher } from 'undici';
import { ApiRequestError, buildQuery, type Query } from '../../src/client/api-client.js';
import type { Status } from '../../src/api/types.js';
import type { Session } from '../session.js';

export async function openStream(session: Session, method: 'GET' | 'POST', path: string, options: { query?: Query; body?: unknown; accept: string }): Promise<Dispatcher.ResponseData> {
  const { server, token } = session.config;
  const base = server.replace(/\/+$/, '');
  let res: Dispatcher.ResponseData;
  try {
    res = await request(`${base}${path}${buildQuery(options.query)}`, {
      method,
      headers: {
        'user-agent': 'slipctl/0.1',
        accept: options.accept,
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
      headersTimeout: 60_000,
      bodyTimeout: 0,
    });
  } catch (err) {
    const e = err as Error & { code?: string };
    throw new ApiRequestError(0, null, `cannot reach the Slipway API at ${base}: ${e.code ?? e.name}: ${e.message}`);
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
