// The object service: Kubernetes semantics for every kind, independent of HTTP. Create, get,
// list, update, patch and delete with server-set fields, schema defaults and validation,
// generation, the status subresource, finalizers, preconditions and dry runs.
// The HTTP handlers and the garbage collector both go through here.

import { randomUUID } from 'node:crypto';
import fastJsonPatch from 'fast-json-patch';
import type { DeleteOptions, DeletionPropagation, KubeList, KubeObject, StatusCause } from '../api/types.js';
import { FINALIZER_FOREGROUND, FINALIZER_ORPHAN } from '../api/types.js';
import { deepEqual } from '../api/deep-equal.js';
import { applyMergePatch } from '../api/merge-patch.js';
import { matchesLabels, type Selector } from '../api/labels.js';
import { EtcdStore, type RawEntry } from '../store/etcd-store.js';
import { StoreError } from '../store/errors.js';
import {
  ApiError,
  alreadyExists,
  badRequest,
  conflict,
  expired,
  forbidden,
  internal,
  invalid,
  methodNotAllowed,
  notFound,
  staleConflict,
  tooLarge,
  unavailable,
  type Subject,
} from './errors.js';
import { matchesFields, type FieldRequirement } from './field-selectors.js';
import { MAX_BODY_BYTES } from './body.js';
import { decodeContinue, encodeContinue } from './continue-token.js';
import { KeyedMutex } from '../util/keyed-mutex.js';
import { validateMetadata } from './metadata.js';
import { apiVersionOf, resourceKey, resourcePrefix, type Resource, type ServedVersion } from './resources.js';
import type { FieldValidation } from './schema.js';
import type { Strategy } from './strategies.js';

export interface Scope {
  resource: Resource;
  version: ServedVersion;
  /** The namespace of the request path (namespaced kinds); undefined for all namespaces. */
  namespace?: string;
}

export interface WriteOptions {
  dryRun?: boolean;
  fieldValidation?: FieldValidation;
}

export interface Outcome {
  object: KubeObject;
  /** HTTP status: 200, 201 (created) or 202 (deletion started, finalizers pending). */
  code: number;
  warnings: string[];
}

export interface ListQuery {
  labelSelector?: Selector;
  fieldSelector?: FieldRequirement[];
  limit?: number;
  continueToken?: string;
  /** Read at exactly this revision (`resourceVersionMatch=Exact`). */
  exactRevision?: number;
}

export type PatchType = 'merge' | 'json';

interface CollectedItem {
  entry: RawEntry;
  /** Decoded when a selector had to look at it. */
  obj?: KubeObject;
}

interface Collected {
  items: CollectedItem[];
  metadata: KubeList['metadata'];
}

/** What the service needs to know about namespaces to admit objects into them. */
export interface NamespaceLookup {
  phase(name: string): Promise<'Active' | 'Terminating' | null>;
}

export type ObjectListener = (resource: Resource, obj: KubeObject, deleted: boolean) => void;

/** A read-only, possibly slightly stale view of stored objects (the server's object cache). */
export type CachedObject = (resource: Resource, key: string) => KubeObject | undefined;

const MAX_RETRIES = 16;

const METADATA_FIELDS = new Set([
  'name', 'generateName', 'namespace', 'selfLink', 'uid', 'resourceVersion', 'generation', 'creationTimestamp',
  'deletionTimestamp', 'deletionGracePeriodSeconds', 'labels', 'annotations', 'ownerReferences', 'finalizers', 'managedFields',
]);

export const nowTimestamp = (): string => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');

const clone = <T>(v: T): T => structuredClone(v);

export function subjectOf(r: Resource, name?: string): Subject {
  return { group: r.group, resource: r.plural, kind: r.kind, ...(name !== undefined ? { name } : {}) };
}

/** Everything but metadata and status: what `generation` counts changes of. */
function specOf(obj: KubeObject): Record<string, unknown> {
  const { metadata: _m, status: _s, apiVersion: _a, kind: _k, ...rest } = obj;
  return rest;
}

export class ObjectService {
  private readonly afterWriteHooks = new Set<ObjectListener>();
  /** Patches of one object from this server queue up rather than conflict with each other. */
  private readonly patchLock = new KeyedMutex();
  /** Objects `current()` took from the cache, which may lag etcd. */
  private readonly servedFromCache = new WeakSet<KubeObject>();

  constructor(
    private readonly store: EtcdStore,
    private readonly strategies: Map<string, Strategy>,
    private readonly namespaces: NamespaceLookup,
    private readonly cached: CachedObject = () => undefined,
  ) {}

  /** Called after every successful (non-dry-run) write made through this service. */
  onWrite(listener: ObjectListener): void {
    this.afterWriteHooks.add(listener);
  }

  private strategy(r: Resource): Strategy {
    return this.strategies.get(`${r.group}/${r.kind}`) ?? {};
  }

  private notify(r: Resource, obj: KubeObject, deleted: boolean): void {
    for (const hook of this.afterWriteHooks) hook(r, obj, deleted);
  }

  /** Maps storage failures to API errors about this object. */
  private storeError(err: unknown, subject: Subject): never {
    if (err instanceof ApiError) throw err;
    if (err instanceof StoreError) {
      switch (err.code) {
        case 'NotFound':
          throw notFound(subject);
        case 'AlreadyExists':
          throw alreadyExists(subject);
        case 'Conflict':
          throw staleConflict(subject);
        case 'Compacted':
          throw expired(`The resourceVersion for the provided request is too old: ${err.message}`);
        case 'FutureRevision':
          throw badRequest(`the resourceVersion (or continue token) is newer than the newest stored revision: ${err.message}`);
        case 'TooLarge':
          throw tooLarge(MAX_BODY_BYTES, 'the stored object would be');
        case 'Unavailable':
          throw unavailable(`storage is unavailable, please retry: ${err.message}`);
      }
    }
    throw internal(`unexpected storage failure: ${err instanceof Error ? err.message : String(err)}`);
  }

  /** Presents a stored object in the requested API version. */
  private present(obj: KubeObject, scope: Scope): KubeObject {
    obj.apiVersion = apiVersionOf(scope.resource, scope.version.name);
    obj.kind = scope.resource.kind;
    return obj;
  }

  /**
   * The stored object for a read-modify-write. A cached copy is used when it is at `version`
   * (an object version never changes, so that is exact) or when `preferCache` is set (the write's
   * precondition catches a stale copy); otherwise etcd is read. Never mutate the result.
   */
  private async current(scope: Scope, name: string, version?: string, preferCache = false): Promise<KubeObject> {
    const hit = this.cached(scope.resource, resourceKey(scope.resource, scope.namespace, name));
    if (hit && (preferCache || (version !== undefined && hit.metadata.resourceVersion === version))) {
      this.servedFromCache.add(hit);
      return hit;
    }
    return this.read(scope, name);
  }

  /** Whether `current()` answered with the cache's copy (rather than a fresh etcd read). */
  private isCached(obj: KubeObject): boolean {
    return this.servedFromCache.has(obj);
  }

  /** Throws 409 if etcd holds a newer version than `obj` (404 if it is gone). */
  private async confirmNewest(scope: Scope, obj: KubeObject): Promise<void> {
    const latest = await this.read(scope, obj.metadata.name!);
    if (latest.metadata.resourceVersion !== obj.metadata.resourceVersion) throw staleConflict(subjectOf(scope.resource, obj.metadata.name));
  }

  /** The stored object, read from etcd (a consistent read). */
  private async read(scope: Scope, name: string): Promise<KubeObject> {
    const subject = subjectOf(scope.resource, name);
    let obj: KubeObject | null;
    try {
      obj = await this.store.get(resourceKey(scope.resource, scope.namespace, name));
    } catch (err) {
      this.storeError(err, subject);
    }
    if (!obj) throw notFound(subject);
    return obj;
  }

  async get(scope: Scope, name: string): Promise<KubeObject> {
    return this.present(await this.read(scope, name), scope);
  }

  /**
   * The paging walk behind every list: reads pages at one revision until `limit` items match,
   * decoding values only where a selector needs the object.
   */
  private async collect(scope: Scope, query: ListQuery): Promise<Collected> {
    const { resource } = scope;
    const prefix = resourcePrefix(resource, scope.namespace);
    let revision = query.exactRevision;
    let startKey: string | undefined;
    if (query.continueToken) {
      const state = decodeContinue(query.continueToken, prefix);
      revision = state.revision;
      startKey = state.startKey;
    }
    const labels = query.labelSelector ?? [];
    const fields = query.fieldSelector ?? [];
    const filtered = labels.length > 0 || fields.length > 0;
    const limit = query.limit && query.limit > 0 ? query.limit : 0;
    const items: CollectedItem[] = [];
    let continueKey: string | undefined;
    let remaining: number | undefined;
    try {
      for (;;) {
        const page = await this.store.listRaw(prefix, {
          ...(revision ? { revision } : {}),
          ...(startKey ? { startKey } : {}),
          limit: limit ? Math.max(limit - items.length, filtered ? 100 : 0) : 0,
        });
        revision ??= page.revision;
        let stoppedAt = -1;
        for (let i = 0; i < page.entries.length; i++) {
          const entry = page.entries[i]!;
          if (filtered) {
            const obj = EtcdStore.decode(entry.value, entry.modRevision);
            if (!(matchesLabels(labels, obj.metadata.labels) && matchesFields(fields, obj))) continue;
            items.push({ entry, obj });
          } else items.push({ entry });
          if (limit && items.length >= limit) {
            stoppedAt = i;
            break;
          }
        }
        const lastExamined = stoppedAt >= 0 ? stoppedAt : page.entries.length - 1;
        const moreKeys = page.more || (stoppedAt >= 0 && stoppedAt < page.entries.length - 1);
        if (!moreKeys || lastExamined < 0) break;
        const nextKey = `${page.entries[lastExamined]!.key}\u0000`;
        if (limit && items.length >= limit) {
          continueKey = nextKey;
          if (!filtered) remaining = page.remaining + (page.entries.length - 1 - lastExamined);
          break;
        }
        startKey = nextKey;
      }
    } catch (err) {
      if (err instanceof StoreError && err.code === 'Compacted') {
        throw expired(
          'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.',
        );
      }
      this.storeError(err, subjectOf(resource));
    }
    return {
      items,
      metadata: {
        resourceVersion: String(revision),
        ...(continueKey ? { continue: encodeContinue({ revision: revision!, startKey: continueKey }) } : {}),
        ...(remaining !== undefined && remaining > 0 ? { remainingItemCount: remaining } : {}),
      },
    };
  }

  async list(scope: Scope, query: ListQuery = {}): Promise<KubeList> {
    const { items, metadata } = await this.collect(scope, query);
    return {
      apiVersion: apiVersionOf(scope.resource, scope.version.name),
      kind: scope.resource.listKind,
      metadata,
      items: items.map((i) => this.present(i.obj ?? EtcdStore.decode(i.entry.value, i.entry.modRevision), scope)),
    };
  }

  /**
   * The same list as `list`, serialised: items are spliced from the stored bytes where possible,
   * so a list of 10,000 objects is not parsed and re-serialised.
   */
  async listJson(scope: Scope, query: ListQuery = {}): Promise<Buffer> {
    const { items, metadata } = await this.collect(scope, query);
    const apiVersion = apiVersionOf(scope.resource, scope.version.name);
    const stored = apiVersion === apiVersionOf(scope.resource);
    const parts: Buffer[] = [
      Buffer.from(`{"apiVersion":${JSON.stringify(apiVersion)},"kind":${JSON.stringify(scope.resource.listKind)},"metadata":${JSON.stringify(metadata)},"items":[`),
    ];
    const comma = Buffer.from(',');
    const prefix = EtcdStore.storedPrefix(apiVersion, scope.resource.kind);
    items.forEach((item, i) => {
      if (i > 0) parts.push(comma);
      const raw = stored && !item.obj ? EtcdStore.presentRaw(item.entry, prefix) : null;
      if (raw) parts.push(...raw);
      else parts.push(Buffer.from(JSON.stringify(this.present(item.obj ?? EtcdStore.decode(item.entry.value, item.entry.modRevision), scope))));
    });
    parts.push(Buffer.from(']}'));
    return Buffer.concat(parts);
  }

  /** Checks the body's apiVersion/kind against the path, and name/namespace where given. */
  private checkIdentity(scope: Scope, body: KubeObject, name?: string): void {
    const expected = apiVersionOf(scope.resource, scope.version.name);
    if (body.apiVersion !== undefined && body.apiVersion !== expected) {
      throw badRequest(`the API version in the data (${body.apiVersion}) does not match the expected API version (${expected})`);
    }
    if (body.kind !== undefined && body.kind !== scope.resource.kind) {
      throw badRequest(`the kind in the data (${String(body.kind)}) does not match the expected kind (${scope.resource.kind})`);
    }
    if (body.metadata !== undefined && (typeof body.metadata !== 'object' || body.metadata === null || Array.isArray(body.metadata))) {
      throw invalid(subjectOf(scope.resource, name), [{ reason: 'FieldValueInvalid', field: 'metadata', message: 'must be an object' }]);
    }
    body.metadata ??= {};
    if (name !== undefined && body.metadata.name !== undefined && body.metadata.name !== name) {
      throw badRequest(`the name of the object (${String(body.metadata.name)}) does not match the name on the URL (${name})`);
    }
    if (scope.resource.namespaced) {
      if (body.metadata.namespace !== undefined && body.metadata.namespace !== scope.namespace) {
        throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
      }
      body.metadata.namespace = scope.namespace!;
    } else {
      delete body.metadata.namespace;
    }
  }

  /** Schema defaults + validation + the kind's own checks; throws 422 with one cause per field. */
  private validate(scope: Scope, obj: KubeObject, old: KubeObject | null, mode: FieldValidation, warnings: string[]): void {
    const causes: StatusCause[] = validateMetadata(obj.metadata, false, scope.resource.namespaced);
    // ObjectMeta has a fixed shape: unknown keys are errors (Strict) or pruned, like unknown spec fields.
    for (const key of Object.keys(obj.metadata)) {
      if (METADATA_FIELDS.has(key)) continue;
      const field = /^[A-Za-z_][A-Za-z0-9_-]*$/.test(key) ? `metadata.${key}` : `metadata[${JSON.stringify(key)}]`;
      if (mode === 'Strict') causes.push({ reason: 'FieldValueUnknown', field, message: 'field not declared in schema' });
      else {
        delete (obj.metadata as Record<string, unknown>)[key];
        if (mode === 'Warn') warnings.push(`unknown field "${field}"`);
      }
    }
    const result = scope.version.schema.validate(obj, mode);
    causes.push(...result.causes);
    if (mode === 'Warn') for (const f of result.unknownFields) warnings.push(`unknown field "${f}"`);
    if (causes.length === 0) causes.push(...(this.strategy(scope.resource).validate?.(obj, old) ?? []));
    if (causes.length) throw invalid(subjectOf(scope.resource, obj.metadata.name ?? obj.metadata.generateName), causes);
  }

  private async admitNamespace(scope: Scope, name: string | undefined): Promise<void> {
    if (!scope.resource.namespaced) return;
    const ns = scope.namespace!;
    let phase: 'Active' | 'Terminating' | null;
    try {
      phase = await this.namespaces.phase(ns);
    } catch (err) {
      this.storeError(err, subjectOf(scope.resource, name));
    }
    if (phase === null) throw notFound({ group: 'slipway.dev', resource: 'namespaces', kind: 'Namespace', name: ns });
    if (phase === 'Terminating') {
      throw forbidden(subjectOf(scope.resource, name), `unable to create new content in namespace ${ns} because it is being terminated`);
    }
  }

  /** Creates an object. `body` is consumed (defaults are filled in place): pass a fresh object. */
  async create(scope: Scope, body: KubeObject, options: WriteOptions = {}): Promise<Outcome> {
    const { resource, version } = scope;
    if (resource.terminating) throw methodNotAllowed('POST', `${resource.plural}.${resource.group}: create not allowed while the custom resource definition is terminating`);
    this.checkIdentity(scope, body);
    const warnings: string[] = [];
    const now = nowTimestamp();
    const meta = body.metadata;
    const generated = meta.name === undefined && typeof meta.generateName === 'string';
    if (generated) meta.name = `${meta.generateName}${randomSuffix()}`;
    for (const field of ['uid', 'resourceVersion', 'deletionTimestamp', 'deletionGracePeriodSeconds'] as const) delete meta[field];
    meta.uid = randomUUID();
    meta.creationTimestamp = now;
    meta.generation = 1;
    body.apiVersion = apiVersionOf(resource, version.name);
    body.kind = resource.kind;
    if (version.hasStatus) delete body.status;
    this.strategy(resource).prepareForCreate?.(body, now);
    this.validate(scope, body, null, options.fieldValidation ?? 'Strict', warnings);
    await this.admitNamespace(scope, meta.name);
    const stored = { ...body, apiVersion: apiVersionOf(resource) };
    if (options.dryRun) return { object: this.present(stored, scope), code: 201, warnings };
    const ttl = this.strategy(resource).ttlSeconds;
    for (let attempt = 0; ; attempt++) {
      try {
        const created = await this.store.create(resourceKey(resource, scope.namespace, meta.name!), stored, ttl ? { ttlSeconds: ttl } : {});
        this.notify(resource, created, false);
        return { object: this.present(created, scope), code: 201, warnings };
      } catch (err) {
        if (generated && err instanceof StoreError && err.code === 'AlreadyExists' && attempt < 3) {
          meta.name = `${meta.generateName}${randomSuffix()}`;
          continue;
        }
        this.storeError(err, subjectOf(resource, meta.name));
      }
    }
  }

  /** PUT of the main resource or `/status`. Requires `metadata.resourceVersion`; `body` is consumed. */
  async update(scope: Scope, name: string, body: KubeObject, subresource: 'status' | undefined, options: WriteOptions = {}): Promise<Outcome> {
    this.checkIdentity(scope, body, name);
    const rv = body.metadata.resourceVersion;
    if (rv === undefined || rv === '') {
      throw invalid(subjectOf(scope.resource, name), [
        { reason: 'FieldValueInvalid', field: 'metadata.resourceVersion', message: 'Invalid value: 0x0: must be specified for an update' },
      ]);
    }
    const current = await this.current(scope, name, String(rv));
    if (String(rv) !== current.metadata.resourceVersion) throw staleConflict(subjectOf(scope.resource, name));
    if (body.metadata.uid !== undefined && body.metadata.uid !== current.metadata.uid) {
      throw conflict(subjectOf(scope.resource, name), `Precondition failed: UID in precondition: ${current.metadata.uid}, UID in object meta: ${String(body.metadata.uid)}`);
    }
    return this.commitUpdate(scope, current, body, subresource, options);
  }

  /** PATCH (JSON merge patch or JSON patch), retried on conflicts unless the patch pins a resourceVersion. */
  async patch(scope: Scope, name: string, type: PatchType, patch: unknown, subresource: 'status' | undefined, options: WriteOptions = {}): Promise<Outcome> {
    return this.patchLock.run(resourceKey(scope.resource, scope.namespace, name), () => this.patchNow(scope, name, type, patch, subresource, options));
  }

  private async patchNow(scope: Scope, name: string, type: PatchType, patch: unknown, subresource: 'status' | undefined, options: WriteOptions): Promise<Outcome> {
    const subject = subjectOf(scope.resource, name);
    if (type === 'merge' && (typeof patch !== 'object' || patch === null || Array.isArray(patch))) {
      throw badRequest('a JSON merge patch must be a JSON object');
    }
    if (type === 'json' && !Array.isArray(patch)) throw badRequest('a JSON patch must be a JSON array of operations');
    const pinned = patchPinsVersion(type, patch);
    for (let attempt = 0; ; attempt++) {
      // First try the cached version; after a conflict, read etcd.
      const current = await this.current(scope, name, undefined, attempt === 0 && !pinned);
      let candidate: KubeObject;
      try {
        candidate =
          type === 'merge'
            ? (applyMergePatch(clone(current), patch) as KubeObject)
            : (applyJsonPatch(clone(current), clone(patch) as fastJsonPatch.Operation[]) as KubeObject);
      } catch (err) {
        if (err instanceof ApiError) throw err;
        throw invalid(subject, [{ reason: 'FieldValueInvalid', message: `the patch could not be applied: ${(err as Error).message.split('\n')[0]}` }]);
      }
      if (typeof candidate !== 'object' || candidate === null || Array.isArray(candidate)) {
        throw invalid(subject, [{ reason: 'FieldValueInvalid', message: 'the patched document must be an object' }]);
      }
      this.checkIdentity(scope, candidate, name);
      candidate.metadata.resourceVersion ??= current.metadata.resourceVersion!;
      if (String(candidate.metadata.resourceVersion) !== current.metadata.resourceVersion) throw staleConflict(subject);
      if (candidate.metadata.uid !== current.metadata.uid) {
        throw conflict(subject, `Precondition failed: UID in precondition: ${current.metadata.uid}, UID in object meta: ${String(candidate.metadata.uid)}`);
      }
      try {
        return await this.commitUpdate(scope, current, candidate, subresource, options);
      } catch (err) {
        const retryable = err instanceof ApiError && err.reason === 'Conflict' && !pinned && attempt < MAX_RETRIES;
        if (!retryable) throw err;
      }
    }
  }

  /**
   * Shared tail of update and patch: carries over what the client may not change, validates,
   * bumps generation on spec changes, skips no-op writes, and completes deletion when the last
   * finalizer of a terminating object is removed.
   */
  private async commitUpdate(scope: Scope, current: KubeObject, body: KubeObject, subresource: 'status' | undefined, options: WriteOptions): Promise<Outcome> {
    const { resource, version } = scope;
    const name = current.metadata.name!;
    const subject = subjectOf(resource, name);
    const warnings: string[] = [];
    let next: KubeObject;
    if (subresource === 'status') {
      next = clone(current);
      if (body.status === undefined) delete next.status;
      else next.status = body.status;
    } else {
      next = body;
      if (version.hasStatus) {
        if (current.status === undefined) delete next.status;
        else next.status = clone(current.status);
      }
      const cm = current.metadata;
      const causes: StatusCause[] = [];
      if (cm.deletionTimestamp) {
        const added = (next.metadata.finalizers ?? []).filter((f) => !(cm.finalizers ?? []).includes(f));
        if (added.length) causes.push({ reason: 'FieldValueForbidden', field: 'metadata.finalizers', message: `Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers ${JSON.stringify(added)}` });
      }
      if (causes.length) throw invalid(subject, causes);
    }
    const m = next.metadata;
    const cm = current.metadata;
    m.name = cm.name!;
    if (cm.namespace !== undefined) m.namespace = cm.namespace;
    m.uid = cm.uid!;
    m.creationTimestamp = cm.creationTimestamp!;
    m.generation = cm.generation ?? 1;
    m.resourceVersion = cm.resourceVersion!;
    if (cm.deletionTimestamp) m.deletionTimestamp = cm.deletionTimestamp;
    else delete m.deletionTimestamp;
    if (cm.deletionGracePeriodSeconds !== undefined) m.deletionGracePeriodSeconds = cm.deletionGracePeriodSeconds;
    else delete m.deletionGracePeriodSeconds;
    delete (m as any).generateName;
    if (cm.generateName !== undefined) m.generateName = cm.generateName;
    next.apiVersion = apiVersionOf(resource, version.name);
    next.kind = resource.kind;
    const now = nowTimestamp();
    this.strategy(resource).prepareForUpdate?.(next, current, now);
    this.validate(scope, next, current, options.fieldValidation ?? 'Strict', warnings);
    if (subresource !== 'status' && !deepEqual(specOf(next), specOf(current))) m.generation = (cm.generation ?? 1) + 1;
    if (deepEqual(next, current)) {
      // Nothing to write, judged against a cached copy: it must still be the newest version.
      if (this.isCached(current)) await this.confirmNewest(scope, current);
      return { object: this.present({ ...current }, scope), code: 200, warnings };
    }
    const key = resourceKey(resource, scope.namespace, name);
    const expected = Number(cm.resourceVersion);
    const stored = { ...next, apiVersion: apiVersionOf(resource) };
    if (m.deletionTimestamp && (m.finalizers ?? []).length === 0) {
      if (options.dryRun) return { object: this.present(stored, scope), code: 200, warnings };
      try {
        const deleted = await this.store.delete(key, expected);
        this.notify(resource, deleted, true);
        return { object: this.present({ ...stored, metadata: { ...stored.metadata, resourceVersion: deleted.metadata.resourceVersion! } }, scope), code: 200, warnings };
      } catch (err) {
        this.storeError(err, subject);
      }
    }
    if (options.dryRun) return { object: this.present(stored, scope), code: 200, warnings };
    try {
      const ttl = this.strategy(resource).ttlSeconds;
      const updated = await this.store.update(key, stored, expected, ttl ? { ttlSeconds: ttl } : {});
      this.notify(resource, updated, false);
      return { object: this.present(updated, scope), code: 200, warnings };
    } catch (err) {
      this.storeError(err, subject);
    }
  }

  /**
   * DELETE: removes the object at once, or (with finalizers, or Foreground/Orphan propagation)
   * marks it with deletionTimestamp and returns 202; it disappears when its finalizers are gone.
   */
  async delete(scope: Scope, name: string, opts: DeleteOptions = {}, options: WriteOptions = {}): Promise<Outcome> {
    const { resource } = scope;
    const subject = subjectOf(resource, name);
    const policy: DeletionPropagation = opts.propagationPolicy ?? 'Background';
    if (!['Background', 'Foreground', 'Orphan'].includes(policy)) {
      throw badRequest(`propagationPolicy must be one of Background, Foreground, Orphan (got ${JSON.stringify(policy)})`);
    }
    const pre = opts.preconditions ?? {};
    for (let attempt = 0; ; attempt++) {
      const current = await this.current(scope, name, pre.resourceVersion, attempt === 0 && pre.uid === undefined && pre.resourceVersion === undefined);
      if (pre.uid !== undefined && pre.uid !== current.metadata.uid) {
        throw conflict(subject, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${current.metadata.uid}`);
      }
      if (pre.resourceVersion !== undefined && pre.resourceVersion !== current.metadata.resourceVersion) {
        throw conflict(subject, `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${current.metadata.resourceVersion}`);
      }
      const key = resourceKey(resource, scope.namespace, name);
      const finalizers = [...(current.metadata.finalizers ?? [])];
      if (policy === 'Foreground' && !finalizers.includes(FINALIZER_FOREGROUND)) finalizers.push(FINALIZER_FOREGROUND);
      if (policy === 'Orphan' && !finalizers.includes(FINALIZER_ORPHAN)) finalizers.push(FINALIZER_ORPHAN);
      try {
        if (finalizers.length === 0) {
          if (options.dryRun) return { object: this.present({ ...current }, scope), code: 200, warnings: [] };
          const deleted = await this.store.delete(key, Number(current.metadata.resourceVersion));
          this.notify(resource, deleted, true);
          return { object: this.present(deleted, scope), code: 200, warnings: [] };
        }
        const next = clone(current);
        next.metadata.finalizers = finalizers;
        if (!next.metadata.deletionTimestamp) {
          next.metadata.deletionTimestamp = nowTimestamp();
          next.metadata.deletionGracePeriodSeconds = 0;
          next.metadata.generation = (next.metadata.generation ?? 1) + 1;
          this.strategy(resource).prepareForDelete?.(next);
        }
        if (deepEqual(next, current)) {
          // Already terminating as asked, per a cached copy: it must still be the newest version.
          if (this.isCached(current)) await this.confirmNewest(scope, current);
          return { object: this.present({ ...current }, scope), code: 202, warnings: [] };
        }
        if (options.dryRun) return { object: next, code: 202, warnings: [] };
        const updated = await this.store.update(key, { ...next, apiVersion: apiVersionOf(resource) }, Number(current.metadata.resourceVersion));
        this.notify(resource, updated, false);
        return { object: this.present(updated, scope), code: 202, warnings: [] };
      } catch (err) {
        const stale = (err instanceof StoreError && err.code === 'Conflict') || (err instanceof ApiError && err.reason === 'Conflict');
        const retry = stale && pre.resourceVersion === undefined && attempt < MAX_RETRIES;
        if (!retry) this.storeError(err, subject);
      }
    }
  }

  /** DELETE on a collection: deletes every object the query selects (the `deletecollection` verb). */
  async deleteCollection(scope: Scope, query: ListQuery, opts: DeleteOptions, options: WriteOptions): Promise<KubeList> {
    const list = await this.list(scope, { ...query, limit: 0 });
    const deleted: KubeObject[] = [];
    for (const item of list.items) {
      const itemScope = { ...scope, ...(item.metadata.namespace ? { namespace: item.metadata.namespace } : {}) };
      try {
        deleted.push((await this.delete(itemScope, item.metadata.name!, opts, options)).object);
      } catch (err) {
        if (!(err instanceof ApiError && err.code === 404)) throw err;
      }
    }
    return { ...list, items: deleted };
  }
}

/** Kubernetes' limits on JSON patches: the number of operations, and how much `copy` may duplicate. */
const MAX_JSON_PATCH_OPERATIONS = 10_000;

/** Applies a JSON patch (validated, prototype changes banned) without letting `copy` blow up memory. */
function applyJsonPatch(doc: unknown, ops: fastJsonPatch.Operation[]): unknown {
  if (ops.length > MAX_JSON_PATCH_OPERATIONS) {
    throw new ApiError(413, 'RequestEntityTooLarge', `the allowed maximum operations in a JSON patch is ${MAX_JSON_PATCH_OPERATIONS}, got ${ops.length}`);
  }
  let copied = 0;
  for (const op of ops) {
    if (op?.op === 'copy' && typeof op.from === 'string') {
      let value: unknown;
      try {
        value = fastJsonPatch.getValueByPointer(doc, op.from);
      } catch {
        value = undefined; // applyPatch reports the bad pointer
      }
      copied += JSON.stringify(value)?.length ?? 0;
      if (copied > MAX_BODY_BYTES) {
        throw new ApiError(413, 'RequestEntityTooLarge', `the copy operations of the JSON patch duplicate more than ${MAX_BODY_BYTES} bytes`);
      }
    }
    doc = fastJsonPatch.applyPatch(doc, [op], true, true).newDocument;
  }
  return doc;
}

function patchPinsVersion(type: PatchType, patch: unknown): boolean {
  if (type === 'merge') return (patch as any)?.metadata?.resourceVersion !== undefined;
  return (patch as any[]).some((op) => typeof op?.path === 'string' && op.path.startsWith('/metadata/resourceVersion'));
}

const SUFFIX_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';
function randomSuffix(): string {
  let s = '';
  for (let i = 0; i < 5; i++) s += SUFFIX_ALPHABET[Math.floor(Math.random() * SUFFIX_ALPHABET.length)];
  return s;
}
