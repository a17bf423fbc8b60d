// Collects the events of a real watch stream so a test can wait for the ones it expects.

import type { KubeObject, WatchEvent } from '../../src/api/types.js';
import type { ApiClient, Query } from '../../src/client/api-client.js';

export interface Recorder {
  events: WatchEvent<KubeObject>[];
  /** Resolves with all events once `predicate` holds, or rejects after `timeoutMs`. */
  waitFor(predicate: (events: WatchEvent<KubeObject>[]) => boolean, timeoutMs?: number): Promise<WatchEvent<KubeObject>[]>;
  /** Settles when the stream ends (rejects with the HTTP error, e.g. 410). */
  done: Promise<void>;
  stop(): void;
}

export function record(client: ApiClient, path: string, query: Query = {}): Recorder {
  const events: WatchEvent<KubeObject>[] = [];
  const controller = new AbortController();
  const waiters = new Set<() => void>();
  const done = client.watch(path, query, (e) => {
    events.push(e);
    for (const w of waiters) w();
  }, controller.signal);
  done.catch(() => {}).finally(() => {
    for (const w of waiters) w();
  });
  return {
    events,
    done,
    stop: () => controller.abort(),
    waitFor(predicate, timeoutMs = 5_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (predicate(events)) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(events);
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out after ${timeoutMs} ms; events so far: ${JSON.stringify(events.map((e) => [e.type, e.object.metadata?.name, e.object.metadata?.resourceVersion]))}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
  };
}

export const names = (events: WatchEvent<KubeObject>[]) => events.map((e) => `${e.type}:${e.object.metadata?.name ?? ''}`);
