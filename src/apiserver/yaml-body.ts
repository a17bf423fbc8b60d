// YAML request bodies, parsed defensively: the yaml library's composer recurses per level and is
// quadratic in errors, anchors and keys, so the token tree is checked first (depth, anchor/tag/
// alias counts, the first syntax error) and duplicate keys are found in linear time.

import { Composer, CST, isMap, isScalar, isSeq, Parser, type Document } from 'yaml';
import { ApiError, badRequest } from './errors.js';

/** Anchors, tags and aliases in one YAML body; composing many of them is slow (quadratic). */
const MAX_YAML_PROPS = 1000;

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
function parseYamlTokens(text: string, maxDepth: number): CST.Token[] {
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
    if (depth > maxDepth) throw badRequest(`the request body is nested more than ${maxDepth} levels deep`);
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

/** One YAML document as a plain value, nested at most `maxDepth` levels. */
export function parseYaml(text: string, maxDepth: number): unknown {
  const tokens = parseYamlTokens(text, maxDepth);
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

