// Reading request bodies: a size limit (413), the supported media types (415), JSON or YAML
// parsing (400), and a guard against hostile shapes (deep nesting, prototype keys) before any
// recursive code sees the value.

import type { IncomingMessage } from 'node:http';
import { parseAllDocuments } from 'yaml';
import { badRequest, tooLarge, unsupportedMediaType } from './errors.js';

export const MAX_BODY_BYTES = 1.5 * 1024 * 1024;
const MAX_DEPTH = 100;

export type BodyKind = 'json' | 'yaml' | 'merge-patch' | 'json-patch';

const MEDIA_TYPES: Record<string, BodyKind> = {
  'application/json': 'json',
  'application/yaml': 'yaml',
  'application/x-yaml': 'yaml',
  'text/yaml': 'yaml',
  'application/merge-patch+json': 'merge-patch',
  'application/json-patch+json': 'json-patch',
};

export function mediaType(header: string | undefined): string {
  return (header ?? '').split(';')[0]!.trim().toLowerCase();
}

/** Classifies the Content-Type against what this endpoint accepts. */
export function bodyKind(contentType: string | undefined, accepted: BodyKind[]): BodyKind {
  const type = mediaType(contentType) || 'application/json';
  const kind = MEDIA_TYPES[type];
  if (!kind || !accepted.includes(kind)) {
    const supported = Object.entries(MEDIA_TYPES)
      .filter(([, k]) => accepted.includes(k))
      .map(([t]) => t);
    throw unsupportedMediaType(type, supported);
  }
  return kind;
}

export async function readRaw(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume();
    throw tooLarge(limit);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  return new Promise<Buffer>((resolve, reject) => {
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.resume();
        reject(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', (err) => reject(badRequest(`could not read the request body: ${err.message}`)));
    req.on('aborted', () => reject(badRequest('the request body was aborted')));
  });
}

/** Rejects nesting deeper than MAX_DEPTH and `__proto__` keys, without recursion. */
export function checkShape(value: unknown): void {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth >= MAX_DEPTH) throw badRequest(`the request body is nested more than ${MAX_DEPTH} levels deep`);
    if (Array.isArray(v)) {
      for (const item of v) stack.push([item, depth + 1]);
    } else {
      for (const key of Object.keys(v)) {
        if (key === '__proto__') throw badRequest('the request body contains the forbidden key "__proto__"');
        stack.push([(v as Record<string, unknown>)[key], depth + 1]);
      }
    }
  }
}

/** Parses a body by kind. YAML must be a single document; JSON must be valid UTF-8 JSON. */
export function parseBody(raw: Buffer, kind: BodyKind): unknown {
  if (raw.length === 0) throw badRequest('the request body is empty');
  const text = raw.toString('utf8');
  let value: unknown;
  if (kind === 'yaml') {
    let docs;
    try {
      docs = parseAllDocuments(text, { uniqueKeys: true });
    } catch (err) {
      throw badRequest(`the request body is not valid YAML: ${(err as Error).message}`);
    }
    if (!Array.isArray(docs)) throw badRequest('the request body is not valid YAML');
    if (docs.length !== 1) throw badRequest(`the request body must hold exactly one YAML document (found ${docs.length})`);
    const doc = docs[0]!;
    if (doc.errors.length) throw badRequest(`the request body is not valid YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      throw badRequest(`the request body is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
    }
  } else {
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw badRequest(`the request body is not valid JSON: ${(err as Error).message}`);
    }
  }
  checkShape(value);
  return value;
}

/** Reads and parses a body that must be a JSON object (an API object or DeleteOptions). */
export async function readObject(req: IncomingMessage, accepted: BodyKind[]): Promise<{ kind: BodyKind; value: unknown }> {
  const kind = bodyKind(req.headers['content-type'], accepted);
  const raw = await readRaw(req);
  const value = parseBody(raw, kind);
  if (kind !== 'json-patch' && (typeof value !== 'object' || value === null || Array.isArray(value))) {
    throw badRequest('the request body must be a JSON object');
  }
  return { kind, value };
}

