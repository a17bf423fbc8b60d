// Client-side apply as data: the configuration `apply` records in the last-applied annotation,
// and the JSON merge patch computed by a three-way merge of that record (original), the file
// (modified) and the live object (current). Pure functions, tested by exact comparison.

import { deepEqual } from '../src/api/deep-equal.js';
import { LAST_APPLIED_ANNOTATION, type KubeObject } from '../src/api/types.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Server-owned metadata that never belongs in an applied configuration. */
const SERVER_METADATA = ['uid', 'resourceVersion', 'generation', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'managedFields', 'selfLink'];

/**
 * The configuration to record: the manifest without status, server-set metadata and the
 * annotation itself (a record must not contain the previous record).
 */
export function appliedConfiguration(manifest: KubeObject): KubeObject {
  const config = structuredClone(manifest);
  delete config.status;
  const meta = (config.metadata ??= {});
  for (const f of SERVER_METADATA) delete (meta as Record<string, unknown>)[f];
  if (meta.annotations) {
    delete meta.annotations[LAST_APPLIED_ANNOTATION];
    if (Object.keys(meta.annotations).length === 0) delete meta.annotations;
  }
  return config;
}

/** The object apply sends: the applied configuration plus the annotation recording it. */
export function withLastApplied(manifest: KubeObject): KubeObject {
  const config = appliedConfiguration(manifest);
  const out = structuredClone(config);
  out.metadata.annotations = { ...(out.metadata.annotations ?? {}), [LAST_APPLIED_ANNOTATION]: JSON.stringify(config) };
  return out;
}

/** The previous applied configuration recorded on a live object, or undefined. */
export function lastApplied(live: KubeObject): KubeObject | undefined {
  const text = live.metadata?.annotations?.[LAST_APPLIED_ANNOTATION];
  if (!text) return undefined;
  try {
    const parsed = JSON.parse(text) as unknown;
    return isObject(parsed) ? (parsed as unknown as KubeObject) : undefined;
  } catch {
    return undefined; // a corrupted record: apply as if there were none rather than fail
  }
}

/**
 * A JSON merge patch taking `current` to `modified` while deleting what `original` had and
 * `modified` dropped: keys only in original become null (if still live), keys of modified that
 * differ from current are set, objects are merged recursively, arrays are replaced whole.
 * Returns `{}` when nothing needs to change.
 */
export function threeWayMergePatch(original: unknown, modified: unknown, current: unknown): Record<string, unknown> {
  return diffObjects(isObject(original) ? original : undefined, isObject(modified) ? modified : {}, isObject(current) ? current : {});
}

function diffObjects(original: JsonObject | undefined, modified: JsonObject, current: JsonObject): JsonObject {
  const patch: JsonObject = {};
  if (original) {
    for (const key of Object.keys(original)) {
      if (!(key in modified) && key in current && current[key] !== null) patch[key] = null;
    }
  }
  for (const [key, m] of Object.entries(modified)) {
    const c = current[key];
    if (m === null) {
      if (key in current && c !== null) patch[key] = null;
      continue;
    }
    if (isObject(m) && isObject(c)) {
      const o = original?.[key];
      const sub = diffObjects(isObject(o) ? o : undefined, m, c);
      if (Object.keys(sub).length) patch[key] = sub;
    } else if (!deepEqual(m, c)) {
      patch[key] = isObject(m) ? stripNulls(m) : m;
    }
  }
  return patch;
}

/** Nulls inside a newly set object mean "absent"; in a merge patch they would mean "delete". */
function stripNulls(value: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(value)) if (v !== null) out[k] = isObject(v) ? stripNulls(v) : v;
  return out;
}

/** Whether a write left the object as it was (the server skips no-op writes; resourceVersion aside). */
export function sameObject(a: KubeObject, b: KubeObject): boolean {
  const strip = (o: KubeObject) => ({ ...o, metadata: { ...o.metadata, resourceVersion: undefined } });
  return deepEqual(strip(a), strip(b));
}
