// Waiting for one object to reach a state (a condition, a JSONPath value, or gone) with a
// watch rather than polling: list it by name, check, then watch from that list's
// resourceVersion, relisting when the stream ends or the version has expired (410).

import { ApiRequestError, type ApiClient } from '../src/client/api-client.js';
import type { KubeObject } from '../src/api/types.js';

export class WaitTimeout extends Error {}

/** Resolves with the object (or null when gone) once `check` holds; rejects with WaitTimeout. */
export async function waitForObject(
  client: ApiClient,
  collection: string,
  name: string,
  check: (obj: KubeObject | null) => boolean,
  timeoutMs: number,
): Promise<KubeObject | null> {
  const signal = AbortSignal.timeout(Math.max(timeoutMs, 1));
  const fieldSelector = `metadata.name=${name}`;
  for (;;) {
    const list = await client.list(collection, { fieldSelector });
    let current: KubeObject | null = list.items[0] ?? null;
    if (check(current)) return current;
    if (signal.aborted) throw new WaitTimeout('timed out waiting for the condition');
    let met = false;
    try {
      await client.watch(
        collection,
        { fieldSelector, resourceVersion: list.metadata.resourceVersion },
        (event) => {
          if (event.type === 'ERROR') return false; // expired: relist below
          if (event.type === 'BOOKMARK') return true;
          current = event.type === 'DELETED' ? null : event.object;
          met = check(current);
          return !met;
        },
        signal,
      );
    } catch (err) {
      if (!(err instanceof ApiRequestError && err.code === 410)) throw err;
    }
    if (met) return current;
    if (signal.aborted) throw new WaitTimeout('timed out waiting for the condition');
    await new Promise((r) => setTimeout(r, 100)); // the stream ended: relist, without spinning
  }
}
