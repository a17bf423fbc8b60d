// Kubernetes-flavoured JSONPath: single expressions (printer columns, `wait --for=jsonpath`)
// and templates (`-o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}'`).

type Literal = string | number | boolean | null;

type Step =
  | { kind: 'field'; name: string }
  | { kind: 'recursive'; name: string | null }
  | { kind: 'wildcard' }
  | { kind: 'index'; indexes: number[] }
  | { kind: 'slice'; start?: number; end?: number; step?: number }
  | { kind: 'filter'; path: Step[]; op?: string; value?: Literal };

export class JsonPathError extends Error {}

const IDENT = /^[A-Za-z0-9_$-]+/;

/** Parses one expression such as `.status.conditions[?(@.type=="Ready")].status`. */
export function parseJsonPath(expr: string): Step[] {
  let s = expr.trim();
  if (s.startsWith('{') && s.endsWith('}')) s = s.slice(1, -1).trim();
  if (s.startsWith('$')) s = s.slice(1);
  if (s === '') throw new JsonPathError('empty JSONPath expression');
  const steps: Step[] = [];
  let i = 0;
  while (i < s.length) {
    const rest = s.slice(i);
    if (rest.startsWith('..')) {
      i += 2;
      const m = IDENT.exec(s.slice(i));
      if (s[i] === '*') {
        i++;
        steps.push({ kind: 'recursive', name: null });
      } else if (m) {
        i += m[0].length;
        steps.push({ kind: 'recursive', name: m[0] });
      } else throw new JsonPathError(`expected a field name after '..' at position ${i} in ${JSON.stringify(expr)}`);
    } else if (rest.startsWith('.')) {
      i++;
      if (s[i] === '*') {
        i++;
        steps.push({ kind: 'wildcard' });
        continue;
      }
      if (i >= s.length || s[i] === '[') continue; // `.` alone or `.[0]`
      const m = IDENT.exec(s.slice(i));
      if (!m) throw new JsonPathError(`unexpected ${JSON.stringify(s[i])} at position ${i} in ${JSON.stringify(expr)}`);
      i += m[0].length;
      steps.push({ kind: 'field', name: m[0] });
    } else if (rest.startsWith('[')) {
      const close = findClosingBracket(s, i);
      const inner = s.slice(i + 1, close).trim();
      i = close + 1;
      steps.push(parseBracket(inner, expr));
    } else {
      const m = IDENT.exec(rest);
      if (!m || steps.length > 0) throw new JsonPathError(`unexpected ${JSON.stringify(s[i])} at position ${i} in ${JSON.stringify(expr)}`);
      i += m[0].length;
      steps.push({ kind: 'field', name: m[0] });
    }
  }
  return steps;
}

function findClosingBracket(s: string, open: number): number {
  let depth = 0;
  let quote: string | null = null;
  for (let i = open; i < s.length; i++) {
    const c = s[i]!;
    if (quote) {
      if (c === '\\') i++;
      else if (c === quote) quote = null;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '[') depth++;
    else if (c === ']' && --depth === 0) return i;
  }
  throw new JsonPathError(`unclosed '[' in ${JSON.stringify(s)}`);
}

function parseLiteral(text: string, expr: string): Literal {
  const t = text.trim();
  if ((t.startsWith('"') && t.endsWith('"')) || (t.startsWith("'") && t.endsWith("'"))) return t.slice(1, -1);
  if (t === 'true' || t === 'false') return t === 'true';
  if (t === 'null') return null;
  if (/^-?\d+(\.\d+)?$/.test(t)) return Number(t);
  throw new JsonPathError(`invalid literal ${JSON.stringify(t)} in ${JSON.stringify(expr)}`);
}

function parseBracket(inner: string, expr: string): Step {
  if (inner === '*') return { kind: 'wildcard' };
  if (inner.startsWith('?(') && inner.endsWith(')')) {
    const body = inner.slice(2, -1).trim();
    const m = /^@((?:\.[A-Za-z0-9_$-]+|\[[^\]]*\])*)\s*(==|!=|<=|>=|<|>|=~)?\s*(.*)$/.exec(body);
    if (!m) throw new JsonPathError(`invalid filter ${JSON.stringify(inner)} in ${JSON.stringify(expr)}`);
    const path = m[1] ? parseJsonPath(m[1]) : [];
    if (!m[2]) return { kind: 'filter', path };
    return { kind: 'filter', path, op: m[2], value: parseLiteral(m[3]!, expr) };
  }
  if ((inner.startsWith("'") && inner.endsWith("'")) || (inner.startsWith('"') && inner.endsWith('"'))) {
    return { kind: 'field', name: inner.slice(1, -1) };
  }
  if (inner.includes(':')) {
    const parts = inner.split(':').map((p) => p.trim());
    if (parts.length > 3 || parts.some((p) => p !== '' && !/^-?\d+$/.test(p))) throw new JsonPathError(`invalid slice [${inner}] in ${JSON.stringify(expr)}`);
    const [start, end, step] = parts.map((p) => (p === '' ? undefined : Number(p)));
    return { kind: 'slice', ...(start !== undefined ? { start } : {}), ...(end !== undefined ? { end } : {}), ...(step !== undefined ? { step } : {}) };
  }
  const indexes = inner.split(',').map((p) => p.trim());
  if (indexes.length === 0 || indexes.some((p) => !/^-?\d+$/.test(p))) throw new JsonPathError(`invalid index [${inner}] in ${JSON.stringify(expr)}`);
  return { kind: 'index', indexes: indexes.map(Number) };
}

function children(node: unknown): unknown[] {
  if (Array.isArray(node)) return node;
  if (node !== null && typeof node === 'object') return Object.values(node);
  return [];
}

function descendants(node: unknown, out: unknown[]): void {
  const stack = [node];
  while (stack.length) {
    const n = stack.pop();
    out.push(n);
    const c = children(n);
    for (let i = c.length - 1; i >= 0; i--) stack.push(c[i]);
  }
}

function compare(a: unknown, op: string, b: Literal): boolean {
  switch (op) {
    case '==':
      return a === b || (typeof a === 'number' && typeof b === 'string' && String(a) === b);
    case '!=':
      return !(a === b);
    case '<':
      return typeof a === typeof b && (a as any) < (b as any);
    case '>':
      return typeof a === typeof b && (a as any) > (b as any);
    case '<=':
      return typeof a === typeof b && (a as any) <= (b as any);
    case '>=':
      return typeof a === typeof b && (a as any) >= (b as any);
    case '=~':
      try {
        return typeof a === 'string' && new RegExp(String(b)).test(a);
      } catch {
        return false;
      }
    default:
      return false;
  }
}

/** Evaluates an expression; returns every matching value (empty when nothing matches). */
export function evaluate(steps: Step[], root: unknown): unknown[] {
  let nodes: unknown[] = [root];
  for (const step of steps) {
    const next: unknown[] = [];
    for (const node of nodes) {
      switch (step.kind) {
        case 'field':
          if (node !== null && typeof node === 'object' && !Array.isArray(node) && Object.prototype.hasOwnProperty.call(node, step.name)) {
            next.push((node as Record<string, unknown>)[step.name]);
          }
          break;
        case 'wildcard':
          next.push(...children(node));
          break;
        case 'recursive': {
          const all: unknown[] = [];
          descendants(node, all);
          for (const d of all) {
            if (step.name === null) next.push(...children(d));
            else if (d !== null && typeof d === 'object' && !Array.isArray(d) && Object.prototype.hasOwnProperty.call(d, step.name)) {
              next.push((d as Record<string, unknown>)[step.name]);
            }
          }
          break;
        }
        case 'index':
          if (Array.isArray(node)) {
            for (const i of step.indexes) {
              const idx = i < 0 ? node.length + i : i;
              if (idx >= 0 && idx < node.length) next.push(node[idx]);
            }
          }
          break;
        case 'slice':
          if (Array.isArray(node)) {
            const len = node.length;
            const norm = (v: number) => (v < 0 ? Math.max(len + v, 0) : Math.min(v, len));
            const start = norm(step.start ?? 0);
            const end = norm(step.end ?? len);
            const by = step.step && step.step > 0 ? step.step : 1;
            for (let i = start; i < end; i += by) next.push(node[i]);
          }
          break;
        case 'filter':
          for (const item of children(node)) {
            const values = evaluate(step.path, item);
            if (step.op === undefined ? values.length > 0 && values[0] !== false && values[0] !== null : values.some((v) => compare(v, step.op!, step.value!))) {
              next.push(item);
            }
          }
          break;
      }
    }
    nodes = next;
  }
  return nodes;
}

/** Renders one value the way kubectl prints JSONPath results: scalars bare, objects as JSON. */
export function formatValue(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

type TemplatePart = { kind: 'text'; text: string } | { kind: 'expr'; steps: Step[] } | { kind: 'range'; steps: Step[]; body: TemplatePart[] };

/** Parses a template like `{range .items[*]}{.metadata.name}{"\n"}{end}`. */
export function parseTemplate(template: string): TemplatePart[] {
  const root: TemplatePart[] = [];
  const stack: TemplatePart[][] = [root];
  let i = 0;
  while (i < template.length) {
    const open = template.indexOf('{', i);
    if (open === -1) {
      stack[stack.length - 1]!.push({ kind: 'text', text: template.slice(i) });
      break;
    }
    if (open > i) stack[stack.length - 1]!.push({ kind: 'text', text: template.slice(i, open) });
    let close = open + 1;
    let quote: string | null = null;
    for (; close < template.length; close++) {
      const c = template[close]!;
      if (quote) {
        if (c === '\\') close++;
        else if (c === quote) quote = null;
      } else if (c === '"' || c === "'") quote = c;
      else if (c === '}') break;
    }
    if (close >= template.length) throw new JsonPathError(`unclosed '{' in template ${JSON.stringify(template)}`);
    const inner = template.slice(open + 1, close).trim();
    i = close + 1;
    const top = stack[stack.length - 1]!;
    if (inner.startsWith('"') && inner.endsWith('"') && inner.length >= 2) {
      try {
        top.push({ kind: 'text', text: JSON.parse(inner) as string });
      } catch {
        throw new JsonPathError(`invalid string literal ${inner}`);
      }
    } else if (inner.startsWith('range ')) {
      const part: TemplatePart = { kind: 'range', steps: parseJsonPath(inner.slice(6)), body: [] };
      top.push(part);
      stack.push(part.body);
    } else if (inner === 'end') {
      if (stack.length === 1) throw new JsonPathError('{end} without {range}');
      stack.pop();
    } else {
      top.push({ kind: 'expr', steps: parseJsonPath(inner) });
    }
  }
  if (stack.length !== 1) throw new JsonPathError('{range} without {end}');
  return root;
}

/** Executes a parsed template against `data`. */
export function renderTemplate(parts: TemplatePart[], data: unknown): string {
  let out = '';
  for (const part of parts) {
    if (part.kind === 'text') out += part.text;
    else if (part.kind === 'expr') out += evaluate(part.steps, data).map(formatValue).join(' ');
    else for (const item of evaluate(part.steps, data)) out += renderTemplate(part.body, item);
  }
  return out;
}
