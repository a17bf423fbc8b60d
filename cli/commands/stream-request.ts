// A request to the API server whose answer is read as a stream (logs, exec), which the JSON
// request methods would buffer whole; it goes through the session's client, so the token and the
// pinned CA apply, and failures print as `Error from server (Reason): message`.

import type { Dispatcher } from 'undici';
import type { Query } from '../../src/client/api-client.js';
import type { Session } from '../session.js';

export function openStream(session: Session, method: 'GET' | 'POST', path: string, options: { query?: Query; body?: unknown; accept: string }): Promise<Dispatcher.ResponseData> {
  return session.client.stream(method, path, options);
}
