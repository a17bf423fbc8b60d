// JSON merge patch (RFC 7386): objects merge key by key, null deletes, anything else replaces.
// Written here rather than taken from json-merge-patch, which calls `target.hasOwnProperty()`
// (broken by a label named "hasOwnProperty") and skips keys such as "constructor".

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Returns the patched value; `target` is not modified (unpatched subtrees are shared). */
export function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (!isPlainObject(patch)) return patch;
  const result: Record<string, unknown> = isPlainObject(target) ? { ...target } : {};
  for (const key of Object.keys(patch)) {
    const value = patch[key];
    if (value === null) {
      delete result[key];
      continue;
    }
    const current = Object.prototype.hasOwnProperty.call(result, key) ? result[key] : undefined;
    // defineProperty: even a key such as "__proto__" stays an ordinary own property.
    Object.defineProperty(result, key, { value: applyMergePatch(current, value), enumerable: true, writable: true, configurable: true });
  }
  return result;
}
