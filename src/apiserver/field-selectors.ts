// Field selectors (`?fieldSelector=metadata.name=web,spec.x!=y`): metadata.name and
// metadata.namespace on every kind, plus the fields a CRD declares in `selectableFields`.

import { badRequest } from './errors.js';

export interface FieldRequirement {
  field: string;
  path: string[];
  equal: boolean;
  value: string;
}

/** Splits on an unescaped separator; `\,` and `\=` keep their literal meaning. */
function splitUnescaped(text: string, sep: string): string[] {
  const parts: string[] = [];
  let cur = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '\\' && i + 1 < text.length) {
      cur += c + text[i + 1];
      i++;
    } else if (c === sep) {
      parts.push(cur);
      cur = '';
    } else cur += c;
  }
  parts.push(cur);
  return parts;
}

const unescape = (s: string) => s.replace(/\\(.)/g, '$1');

export function parseFieldSelector(input: string, selectable: readonly string[]): FieldRequirement[] {
  if (input.trim() === '') return [];
  if (input.length > 10_000) throw badRequest('field selector is too long');
  const allowed = new Set(['metadata.name', 'metadata.namespace', ...selectable]);
  return splitUnescaped(input, ',').map((term) => {
    const m = /^([^!=]+?)\s*(==|!=|=)\s*(.*)$/s.exec(term.trim());
    if (!m) throw badRequest(`invalid field selector: "${term}": expected field=value, field==value or field!=value`);
    const field = m[1]!.trim();
    if (!allowed.has(field)) {
      throw badRequest(`field label not supported: ${field} (supported: ${[...allowed].join(', ')})`);
    }
    return { field, path: field.split('.'), equal: m[2] !== '!=', value: unescape(m[3]!.trim()) };
  });
}

export function matchesFields(requirements: readonly FieldRequirement[], obj: unknown): boolean {
  for (const r of requirements) {
    let cur: any = obj;
    for (const p of r.path) cur = cur !== null && typeof cur === 'object' ? cur[p] : undefined;
    const value = cur === undefined || cur === null ? '' : typeof cur === 'object' ? JSON.stringify(cur) : String(cur);
    if ((value === r.value) !== r.equal) return false;
  }
  return true;
}
