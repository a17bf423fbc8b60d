// Verifies a stored backup artifact by reading it back from its store: it must exist, be
// non-empty, have the size that was written and the same SHA-256. The artifact is streamed, never
// buffered whole. Problems are returned as a reason (for status and events), not thrown.

import { digestStream, type BackupStore } from './location.js';

export type VerifyResult = { ok: true } | { ok: false; reason: string };

export async function verifyArtifact(
  store: BackupStore,
  path: string,
  expected: { size: number; sha256: string },
): Promise<VerifyResult> {
  let stat: { size: number } | undefined;
  try {
    stat = await store.stat(path);
  } catch (err) {
    return { ok: false, reason: `cannot stat artifact ${path} in ${store.describe()}: ${(err as Error).message}` };
  }
  if (!stat) return { ok: false, reason: `artifact is missing: ${path} not found in ${store.describe()}` };
  if (stat.size === 0) return { ok: false, reason: `artifact is empty: ${path} has 0 bytes` };
  if (expected.size === 0) return { ok: false, reason: `artifact is empty: 0 bytes were written for ${path}` };
  if (stat.size !== expected.size) {
    return { ok: false, reason: `size ${stat.size} differs from the ${expected.size} bytes written` };
  }
  let actual: { size: number; sha256: string };
  try {
    actual = await digestStream(await store.get(path));
  } catch (err) {
    return { ok: false, reason: `cannot read artifact ${path} back from ${store.describe()}: ${(err as Error).message}` };
  }
  if (actual.size !== expected.size) {
    return { ok: false, reason: `size ${actual.size} differs from the ${expected.size} bytes written (read back)` };
  }
  if (actual.sha256 !== expected.sha256.toLowerCase()) {
    return { ok: false, reason: `checksum mismatch: sha256 ${actual.sha256} read back, ${expected.sha256} written` };
  }
  return { ok: true };
}
