// Reading request bodies: a size limit (413), the supported media types (415), JSON or YAML
// parsing (400), and a guard against hostile shapes (deep nesting, prototype keys) before any
// recursive code sees the value.

import type { IncomingMessage } from 'node:http';
import { badRequest, tooLarge, unsupportedMediaType } from './errors.js';
import { parseYaml } from './yaml-body.js';

export const MAX_BODY_BYTES = 1.5 * 1024 * 1024;
export const MAX_DEPTH = 100;

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

/** Strict UTF-8 (invalid bytes are an error, not U+FFFD); a BOM is kept, so JSON rejects it and YAML skips it. */
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * JSON.parse keeps the last of duplicate keys silently; like the YAML path (and Kubernetes'
 * strict decoding) reject them. Runs on text JSON.parse accepted, so a small scanner suffices.
 */
export function checkJsonDuplicateKeys(text: string): void {
  const frames: (Set<string> | null)[] = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      let j = i + 1;
      let escaped = false;
      for (let d = text.charCodeAt(j); d !== 0x22; d = text.charCodeAt(++j)) {
        if (d === 0x5c) {
          escaped = true;
          j++;
        }
      }
      if (expectKey) {
        const key: string = escaped ? JSON.parse(text.slice(i, j + 1)) : text.slice(i + 1, j);
        const keys = frames[frames.length - 1]!;
        if (keys.has(key)) throw badRequest(`the request body is not valid JSON: duplicate key ${JSON.stringify(key.slice(0, 80))}`);
        keys.add(key);
        expectKey = false;
      }
      i = j;
    } else if (c === 0x7b) {
      frames.push(new Set());
      expectKey = true;
    } else if (c === 0x5b) frames.push(null);
    else if (c === 0x7d || c === 0x5d) {
      frames.pop();
      expectKey = false;
    } else if (c === 0x2c) expectKey = frames[frames.length - 1] != null;
  }
}

/** Parses a body by kind. YAML must be a single document; JSON must be valid UTF-8 JSON. */
export function parseBody(raw: Buffer, kind: BodyKind): unknown {
  if (raw.length === 0) throw badRequest('the request body is empty');
  let text: string;
  try {
    text = UTF8.decode(raw);
  } catch {
    throw badRequest('the request body is not valid UTF-8');
  }
  let value: unknown;
  if (kind === 'yaml') {
    value = parseYaml(text, MAX_DEPTH);
  } else {
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw badRequest(`the request body is not valid JSON: ${(err as Error).message}`);
    }
    checkJsonDuplicateKeys(text);
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

