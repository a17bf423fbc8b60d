// Storage failures, independent of HTTP: the API server maps each code to one Status.

import type { KubeObject } from '../api/types.js';

/** `Unreadable`: a stored value that cannot be turned back into an object (e.g. it fails to decrypt). */
export type StoreErrorCode = 'NotFound' | 'AlreadyExists' | 'Conflict' | 'Compacted' | 'FutureRevision' | 'TooLarge' | 'Unavailable' | 'Unreadable';

export class StoreError extends Error {
  constructor(
    readonly code: StoreErrorCode,
    message: string,
    /** For `Conflict`: the object as it is now. */
    readonly current?: KubeObject,
  ) {
    super(message);
    this.name = 'StoreError';
  }

  /** Classifies anything the etcd client throws. Unknown failures count as etcd being unavailable. */
  static from(err: unknown): StoreError {
    if (err instanceof StoreError) return err;
    const message = err instanceof Error ? err.message : String(err);
    if (/compacted/i.test(message)) return new StoreError('Compacted', message);
    // Caller errors etcd reports, not outages: a revision newer than etcd's, a value over its request limit.
    if (/future revision/i.test(message)) return new StoreError('FutureRevision', message);
    if (/request is too large/i.test(message)) return new StoreError('TooLarge', message);
    return new StoreError('Unavailable', `etcd: ${message}`);
  }
}
