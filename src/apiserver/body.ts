// Reading request bodies: a size limit (413), the supported media types (415), JSON or YAML
// parsing (400), and a guard against hostile shapes (deep nesting, prototype keys) before any
// recursive code sees the value.

import type { IncomingMessage } from 'node:http';
import { Composer, CST, isMap, isScalar, isSeq, Parser, type Document } from 'yaml';
import { ApiError, badRequest, tooLarge, unsupportedMediaType } from './errors.js';

export const MAX_BODY_BYTES = 1.5 * 1024 * 1024;
const MAX_DEPTH = 100;
/** Anchors, tags and aliases in one YAML body; composing many of them is slow (quadratic). */
const MAX_YAML_PROPS = 1000;

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

/** `line L, column C` of an offset in the body, for YAML error messages. */
function position(text: string, offset: number): string {
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i >= 0 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return `line ${line}, column ${offset - lineStart + 1}`;
}

/**
 * Parses YAML into the parser's token tree (built without recursion) and checks it before the
 * composer, which recurses per level and is quadratic in errors, props and keys: nesting depth,
 * anchor/tag/alias counts, and syntax errors (the first one is reported).
 */
export function parseYamlTokens(text: string): CST.Token[] {
  const tokens = Array.from(new Parser().parse(text));
  const stack: [CST.Token | null | undefined, number][] = tokens.map((t) => [t, 0]);
  let props = 0;
  const scan = (list: readonly CST.Token[] | undefined) => {
    for (const t of list ?? []) {
      if (t.type === 'anchor' || t.type === 'tag') props++;
      else if (t.type === 'error') throw badRequest(`the request body is not valid YAML: ${t.message} at ${position(text, t.offset)}`);
    }
  };
  while (stack.length) {
    const [token, depth] = stack.pop()!;
    if (!token) continue;
    if (depth > MAX_DEPTH) throw badRequest(`the request body is nested more than ${MAX_DEPTH} levels deep`);
    switch (token.type) {
      case 'error':
        throw badRequest(`the request body is not valid YAML: ${token.message} at ${position(text, token.offset)}`);
      case 'document':
        scan(token.start);
        scan(token.end);
        stack.push([token.value, depth]);
        break;
      case 'doc-end':
        scan(token.end);
        break;
      case 'block-map':
      case 'block-seq':
      case 'flow-collection':
        for (const item of token.items) {
          scan(item.start);
          scan(item.sep);
          stack.push([item.key, depth + 1], [item.value, depth + 1]);
        }
        if (token.type === 'flow-collection') scan(token.end);
        break;
      case 'block-scalar':
        scan(token.props);
        break;
      case 'alias':
        props++;
        break;
      case 'scalar':
      case 'single-quoted-scalar':
      case 'double-quoted-scalar':
        scan(token.end);
        break;
    }
    if (props > MAX_YAML_PROPS) throw badRequest(`the request body has more than ${MAX_YAML_PROPS} YAML anchors, tags and aliases`);
  }
  return tokens;
}

/** Rejects duplicate keys (as JSON would name them) in linear time; the library's own check is quadratic. */
function checkUniqueKeys(root: unknown): void {
  const stack: unknown[] = [root];
  while (stack.length) {
    const node = stack.pop();
    if (isMap(node)) {
      const seen = new Set<string>();
      for (const pair of node.items) {
        if (isScalar(pair.key)) {
          const key = String(pair.key.value);
          if (seen.has(key)) throw badRequest(`the request body is not valid YAML: duplicate key ${JSON.stringify(key.slice(0, 80))}`);
          seen.add(key);
        }
        stack.push(pair.key, pair.value);
      }
    } else if (isSeq(node)) {
      for (const item of node.items) stack.push(item);
    }
  }
}

const NOT_YAML = 'the request body is not valid YAML';

/** One YAML document as a plain value. */
function parseYaml(text: string): unknown {
  const tokens = parseYamlTokens(text);
  const composer = new Composer({ uniqueKeys: false });
  // Stop at the first error instead of collecting thousands (each captures a stack trace).
  const collect = (composer as any).onError;
  if (typeof collect === 'function') {
    (composer as any).onError = (source: unknown, code: string, message: string, warning?: boolean) => {
      // The composer reports some thrown errors again through onError: don't prefix twice.
      if (!warning) throw badRequest(message.startsWith(NOT_YAML) ? message : `${NOT_YAML}: ${message}`);
      collect(source, code, message, warning);
    };
  }
  let docs: Document.Parsed[];
  try {
    docs = Array.from(composer.compose(tokens));
  } catch (err) {
    if (err instanceof ApiError) throw err;
    throw badRequest(`the request body is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (docs.length !== 1) throw badRequest(`the request body must hold exactly one YAML document (found ${docs.length})`);
  const doc = docs[0]!;
  if (doc.errors.length) throw badRequest(`the request body is not valid YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
  checkUniqueKeys(doc.contents);
  try {
    return doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw badRequest(`the request body is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
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
    value = parseYaml(text);
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

