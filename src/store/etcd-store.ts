// The storage layer: API objects as JSON values in etcd, optimistic concurrency on etcd's
// mod revision (resourceVersion), consistent paged lists and revision-resumable watches.
// Only the API server uses this module; nothing else in Slipway talks to etcd.

import { Etcd3, type IOptions } from 'etcd3';
import type { KubeObject } from '../api/types.js';
import { StoreError } from './errors.js';
import { EventLeases } from './event-leases.js';

/** What the store reports about each etcd call, so the API server can export latency metrics. */
export type StoreObserver = (operation: string, seconds: number) => void;

/**
 * Rewrites the values under one key prefix on their way to and from etcd (encryption at rest):
 * every write goes through `encrypt`, every read, list and watch through `decrypt`. `decrypt`
 * throws (with a message for users) for a value it cannot read.
 */
export interface ValueTransformer {
  prefix: string;
  encrypt(plaintext: Buffer, key: string): Buffer;
  decrypt(stored: Buffer, key: string): Buffer;
}

export interface StoreOptions {
  endpoints: string[];
  /** Per-call deadline in milliseconds. Defaults to 10 s. */
  callTimeoutMs?: number;
  observe?: StoreObserver;
  transformers?: ValueTransformer[];
  /** Told about each value `list()` leaves out because it cannot be read (see `list`). */
  onUnreadable?: (key: string, err: StoreError) => void;
}

export interface ListOptions {
  /** Read at this revision (for the pages after the first one). Defaults to the newest. */
  revision?: number;
  /** Maximum number of keys to read; 0 means all. */
  limit?: number;
  /** First key to read (inclusive); defaults to the prefix itself. */
  startKey?: string;
}

/** One stored value as etcd returned it (decrypted where a transformer applies), undecoded. */
export interface RawEntry {
  key: string;
  value: Buffer;
  modRevision: string;
}

export interface RawListResult {
  entries: RawEntry[];
  /** The revision the list was read at. */
  revision: number;
  /** Keys left after this page (only meaningful when `more`). */
  remaining: number;
  more: boolean;
}

export interface ListResult {
  items: KubeObject[];
  /** The etcd key of each item. */
  keys: string[];
  /** The revision the list was read at. */
  revision: number;
  /** Keys left after this page (only meaningful when `more`). */
  remaining: number;
  more: boolean;
  lastKey?: string;
}

export interface WatchEventRaw {
  type: 'put' | 'delete';
  key: string;
  revision: number;
  /** The object after the change (null for deletes). */
  object: KubeObject | null;
  /** The object before the change, if it existed. */
  previous: KubeObject | null;
}

export interface StoreWatch {
  cancel(): Promise<void>;
}

export interface WatchHandlers {
  event(e: WatchEventRaw): void;
  /** The watch ended for good: `compacted` means the start revision is no longer in etcd's history. */
  error(err: StoreError): void;
}

export interface WriteOptions {
  /** Attach the key to an etcd lease with roughly this TTL (seconds), e.g. Events. */
  ttlSeconds?: number;
}

/**
 * The stored form: the object without its resourceVersion (etcd's mod revision is the version),
 * always starting `{"apiVersion":…,"kind":…,"metadata":{`, so lists can splice the version in
 * without parsing (see `RawEntry`).
 */
const encoder = (obj: KubeObject): Buffer => {
  const { resourceVersion: _rv, ...metadata } = obj.metadata;
  const { apiVersion, kind, metadata: _m, ...rest } = obj;
  return Buffer.from(JSON.stringify({ apiVersion, kind, metadata, ...rest }));
};

/** What a write stored, as the caller sees it: the same object at its new version. */
const written = (obj: KubeObject, revision: string | number): KubeObject => ({
  ...obj,
  metadata: { ...obj.metadata, resourceVersion: String(revision) },
});

export function prefixEnd(prefix: string): Buffer {
  const buf = Buffer.from(prefix);
  for (let i = buf.length - 1; i >= 0; i--) {
    if (buf[i]! < 0xff) {
      const end = Buffer.from(buf.subarray(0, i + 1));
      end[i]!++;
      return end;
    }
  }
  return Buffer.from([0]);
}

export class EtcdStore {
  readonly client: Etcd3;
  private readonly leases: EventLeases;
  private readonly observe: StoreObserver;
  private readonly callTimeoutMs: number;
  private readonly transformers: ValueTransformer[];
  private readonly onUnreadable: (key: string, err: StoreError) => void;

  constructor(options: StoreOptions) {
    this.callTimeoutMs = options.callTimeoutMs ?? 10_000;
    this.transformers = options.transformers ?? [];
    this.onUnreadable = options.onUnreadable ?? (() => {});
    const etcdOptions: IOptions = {
      hosts: options.endpoints,
      dialTimeout: 3_000,
      // gRPC's default 4 MiB receive limit fails unpaged lists of a few thousand objects (kube-apiserver lifts it too).
      grpcOptions: { 'grpc.max_receive_message_length': -1 },
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + this.callTimeoutMs }),
    };
    this.client = new Etcd3(etcdOptions);
    this.observe = options.observe ?? (() => {});
    this.leases = new EventLeases(async (ttl) => {
      const res = await this.client.leaseClient.leaseGrant({ TTL: ttl });
      return res.ID;
    });
  }

  private async timed<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    const start = process.hrtime.bigint();
    try {
      return await fn();
    } catch (err) {
      throw StoreError.from(err);
    } finally {
      this.observe(operation, Number(process.hrtime.bigint() - start) / 1e9);
    }
  }

  private transformerFor(key: string): ValueTransformer | undefined {
    for (const t of this.transformers) if (key.startsWith(t.prefix)) return t;
    return undefined;
  }

  /** True if some key under `prefix` may be transformed. */
  private transforms(prefix: string): boolean {
    return this.transformers.some((t) => prefix.startsWith(t.prefix) || t.prefix.startsWith(prefix));
  }

  /** The bytes to store for `key`. */
  private toStored(key: string, value: Buffer): Buffer {
    return this.transformerFor(key)?.encrypt(value, key) ?? value;
  }

  /** The plaintext of a stored value; `Unreadable` if its transformer cannot read it. */
  private fromStored(key: string, value: Buffer): Buffer {
    const t = this.transformerFor(key);
    if (!t) return value;
    try {
      return t.decrypt(value, key);
    } catch (err) {
      throw new StoreError('Unreadable', err instanceof Error ? err.message : String(err));
    }
  }

  private decodeStored(key: Buffer | string, value: Buffer, modRevision: string | number): KubeObject {
    return EtcdStore.decode(this.fromStored(typeof key === 'string' ? key : key.toString('utf8'), value), modRevision);
  }

  static decode(value: Buffer | Uint8Array, modRevision: string | number): KubeObject {
    const obj = JSON.parse(Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('utf8')) as KubeObject;
    obj.metadata.resourceVersion = String(modRevision);
    return obj;
  }

  /**
   * The JSON of a stored object with its resourceVersion, spliced into the stored bytes without
   * parsing them (lists of thousands of objects): the pieces to send, in order, without copying
   * the value. Null if the value does not start the way the encoder writes it for this
   * apiVersion and kind; decode it instead.
   */
  static presentRaw(entry: RawEntry, storedPrefix: Buffer): Buffer[] | null {
    const { value } = entry;
    const n = storedPrefix.length;
    if (value.length <= n || storedPrefix.compare(value, 0, n) !== 0) return null;
    const separator = value[n] === 0x7d /* } */ ? '' : ',';
    return [storedPrefix, Buffer.from(`"resourceVersion":"${entry.modRevision}"${separator}`), value.subarray(n)];
  }

  /** How the encoder starts every stored object of this apiVersion and kind (see presentRaw). */
  static storedPrefix(apiVersion: string, kind: string): Buffer {
    return Buffer.from(`{"apiVersion":${JSON.stringify(apiVersion)},"kind":${JSON.stringify(kind)},"metadata":{`);
  }

  async get(key: string): Promise<KubeObject | null> {
    const res = await this.timed('get', () => this.client.kv.range({ key: Buffer.from(key) }));
    const kv = res.kvs[0];
    return kv ? this.decodeStored(kv.key, kv.value, kv.mod_revision) : null;
  }

  /** The newest revision of the whole store. */
  async revision(): Promise<number> {
    const res = await this.timed('revision', () =>
      this.client.kv.range({ key: Buffer.from('\0'), count_only: true }),
    );
    return Number(res.header.revision);
  }

  /** Reads a page of stored values without decoding them (decrypted; `Unreadable` if one cannot be). */
  async listRaw(prefix: string, options: ListOptions = {}): Promise<RawListResult> {
    const page = await this.rangeStored(prefix, options);
    if (this.transforms(prefix)) {
      for (const e of page.entries) e.value = this.fromStored(e.key, e.value);
    }
    return page;
  }

  /** A page of values exactly as etcd stores them. */
  private async rangeStored(prefix: string, options: ListOptions): Promise<RawListResult> {
    const res = await this.timed('list', () =>
      this.client.kv.range({
        key: Buffer.from(options.startKey ?? prefix),
        range_end: prefixEnd(prefix),
        limit: options.limit ?? 0,
        revision: options.revision ?? 0,
      }),
    );
    return {
      entries: res.kvs.map((kv) => ({ key: kv.key.toString('utf8'), value: kv.value, modRevision: kv.mod_revision })),
      revision: Number(res.header.revision),
      more: res.more,
      remaining: Number(res.count) - res.kvs.length,
    };
  }

  /**
   * Decoded objects (the server's own views: object cache, garbage collector). A value that
   * cannot be read (e.g. fails to decrypt) is left out and reported to `onUnreadable`, so one
   * bad value does not blind the server to the rest; reads of it through `get` still fail.
   */
  async list(prefix: string, options: ListOptions = {}): Promise<ListResult> {
    const page = await this.rangeStored(prefix, options);
    const last = page.entries[page.entries.length - 1];
    const items: KubeObject[] = [];
    const keys: string[] = [];
    for (const e of page.entries) {
      try {
        items.push(this.decodeStored(e.key, e.value, e.modRevision));
        keys.push(e.key);
      } catch (err) {
        if (!(err instanceof StoreError && err.code === 'Unreadable')) throw err;
        this.onUnreadable(e.key, err);
      }
    }
    return {
      items,
      keys,
      revision: page.revision,
      more: page.more,
      remaining: page.remaining,
      ...(last ? { lastKey: last.key } : {}),
    };
  }

  /** Counts the keys under a prefix without reading values. */
  async count(prefix: string): Promise<number> {
    const res = await this.timed('count', () =>
      this.client.kv.range({ key: Buffer.from(prefix), range_end: prefixEnd(prefix), count_only: true }),
    );
    return Number(res.count);
  }

  /** Stores a new object; fails with `AlreadyExists` if the key is taken. */
  async create(key: string, obj: KubeObject, options: WriteOptions = {}): Promise<KubeObject> {
    const value = this.toStored(key, encoder(obj));
    const lease = options.ttlSeconds ? await this.leases.leaseFor(options.ttlSeconds) : undefined;
    const res = await this.timed('create', () =>
      this.client.kv.txn({
        compare: [{ key: Buffer.from(key), target: 'Create', result: 'Equal', create_revision: 0 }],
        success: [{ request_put: { key: Buffer.from(key), value, ...(lease ? { lease } : {}) } }],
        failure: [],
      }),
    );
    if (!res.succeeded) throw new StoreError('AlreadyExists', `key ${key} already exists`);
    return written(obj, res.header.revision);
  }

  /**
   * Replaces an object only if it is still at `expectedRevision`. Fails with `NotFound` if the
   * key is gone and `Conflict` (carrying the current object) if someone else wrote it first.
   */
  async update(key: string, obj: KubeObject, expectedRevision: number, options: WriteOptions = {}): Promise<KubeObject> {
    const value = this.toStored(key, encoder(obj));
    const lease = options.ttlSeconds ? await this.leases.leaseFor(options.ttlSeconds) : undefined;
    const res = await this.timed('update', () =>
      this.client.kv.txn({
        compare: [{ key: Buffer.from(key), target: 'Mod', result: 'Equal', mod_revision: expectedRevision }],
        success: [{ request_put: { key: Buffer.from(key), value, ...(lease ? { lease } : {}) } }],
        failure: [{ request_range: { key: Buffer.from(key) } }],
      }),
    );
    if (!res.succeeded) throw this.failedPrecondition(key, res.responses[0]?.response_range?.kvs ?? []);
    return written(obj, res.header.revision);
  }

  /**
   * Deletes an object, only if it is still at `expectedRevision` when given. Returns the deleted
   * object with the deletion's revision as its resourceVersion (what watchers see).
   */
  async delete(key: string, expectedRevision?: number): Promise<KubeObject> {
    const k = Buffer.from(key);
    const compare =
      expectedRevision === undefined
        ? [{ key: k, target: 'Create' as const, result: 'Greater' as const, create_revision: 0 }]
        : [{ key: k, target: 'Mod' as const, result: 'Equal' as const, mod_revision: expectedRevision }];
    const res = await this.timed('delete', () =>
      this.client.kv.txn({
        compare,
        success: [{ request_delete_range: { key: k, prev_kv: true } }],
        failure: [{ request_range: { key: k } }],
      }),
    );
    if (!res.succeeded) throw this.failedPrecondition(key, res.responses[0]?.response_range?.kvs ?? []);
    const prev = res.responses[0]?.response_delete_range?.prev_kvs?.[0];
    if (!prev) throw new StoreError('NotFound', `key ${key} not found`);
    return this.decodeStored(key, prev.value, res.header.revision);
  }

  private failedPrecondition(key: string, kvs: { value: Buffer; mod_revision: string }[]): StoreError {
    const current = kvs[0];
    if (!current) return new StoreError('NotFound', `key ${key} not found`);
    return new StoreError('Conflict', `key ${key} was modified`, this.decodeStored(key, current.value, current.mod_revision));
  }

  /**
   * Streams every change under `prefix` after `afterRevision`, in revision order. etcd replays
   * history first, then follows live changes; a compacted start revision ends the watch with
   * a `Compacted` error.
   */
  async watch(prefix: string, afterRevision: number, handlers: WatchHandlers): Promise<StoreWatch> {
    const watcher = await this.client
      .watch()
      .prefix(prefix)
      .withPreviousKV()
      .startRevision(String(afterRevision + 1))
      .create();
    let ended = false;
    // A value that cannot be read ends the watch (watchers relist) rather than being skipped.
    const unreadable = (err: unknown) => {
      ended = true;
      void watcher.cancel().catch(() => {});
      handlers.error(StoreError.from(err));
    };
    watcher.on('put', (kv, previous) => {
      if (ended) return;
      let event: WatchEventRaw;
      try {
        event = {
          type: 'put',
          key: kv.key.toString('utf8'),
          revision: Number(kv.mod_revision),
          object: this.decodeStored(kv.key, kv.value, kv.mod_revision),
          previous: previous ? this.decodeStored(previous.key, previous.value, previous.mod_revision) : null,
        };
      } catch (err) {
        return unreadable(err);
      }
      handlers.event(event);
    });
    watcher.on('delete', (kv, previous) => {
      if (ended) return;
      let event: WatchEventRaw;
      try {
        event = {
          type: 'delete',
          key: kv.key.toString('utf8'),
          revision: Number(kv.mod_revision),
          object: null,
          previous: previous ? this.decodeStored(previous.key, previous.value, kv.mod_revision) : null,
        };
      } catch (err) {
        return unreadable(err);
      }
      handlers.event(event);
    });
    watcher.on('error', (err) => {
      if (ended) return;
      ended = true;
      handlers.error(StoreError.from(err));
    });
    return {
      cancel: async () => {
        ended = true;
        await watcher.cancel().catch(() => {});
      },
    };
  }

  /**
   * Re-transforms every value under `prefix` whose stored bytes `stale` selects (e.g. encrypted
   * with a key that is no longer the active one): decrypt, encrypt again, write only if the key
   * is still at the revision read (re-read and retried on conflict). Values that cannot be read
   * are reported in `failed`, not rewritten.
   */
  async retransform(
    prefix: string,
    stale: (stored: Buffer) => boolean,
  ): Promise<{ rewritten: number; failed: { key: string; message: string }[] }> {
    let rewritten = 0;
    const failed: { key: string; message: string }[] = [];
    let startKey: string | undefined;
    for (;;) {
      const page = await this.rangeStored(prefix, { limit: 500, ...(startKey ? { startKey } : {}) });
      for (const entry of page.entries) {
        if (!stale(entry.value)) continue;
        try {
          if (await this.rewriteStale(entry, stale)) rewritten++;
        } catch (err) {
          if (!(err instanceof StoreError && (err.code === 'Unreadable' || err.code === 'Conflict'))) throw err;
          failed.push({ key: entry.key, message: err.message });
        }
      }
      const last = page.entries[page.entries.length - 1];
      if (!page.more || !last) break;
      startKey = `${last.key}\u0000`;
    }
    return { rewritten, failed };
  }

  /** Rewrites one stale value; false if it was deleted or rewritten by someone else meanwhile. */
  private async rewriteStale(entry: RawEntry, stale: (stored: Buffer) => boolean): Promise<boolean> {
    let current = { value: entry.value, modRevision: entry.modRevision };
    const k = Buffer.from(entry.key);
    for (let attempt = 0; attempt < 16; attempt++) {
      const value = this.toStored(entry.key, this.fromStored(entry.key, current.value));
      const res = await this.timed('update', () =>
        this.client.kv.txn({
          compare: [{ key: k, target: 'Mod', result: 'Equal', mod_revision: current.modRevision }],
          success: [{ request_put: { key: k, value, ignore_lease: true } }],
          failure: [{ request_range: { key: k } }],
        }),
      );
      if (res.succeeded) return true;
      const kv = res.responses[0]?.response_range?.kvs?.[0];
      if (!kv || !stale(kv.value)) return false;
      current = { value: kv.value, modRevision: kv.mod_revision };
    }
    throw new StoreError('Conflict', `key ${entry.key} kept changing while it was being re-encrypted`);
  }

  /** Discards history before `revision`: older watches and continue tokens become 410 Gone. */
  async compact(revision: number): Promise<void> {
    await this.timed('compact', () => this.client.kv.compact({ revision, physical: false }));
  }

  /** True when etcd answers a read; used by /readyz. */
  async healthy(timeoutMs = 2_000): Promise<boolean> {
    try {
      await this.client.kv.range({ key: Buffer.from('health') }, { deadline: Date.now() + timeoutMs });
      return true;
    } catch {
      return false;
    }
  }

  close(): void {
    this.client.close();
  }
}
