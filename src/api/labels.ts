// Label selectors: the string syntax of `-l` / `?labelSelector=` (equality- and set-based)
// and the `matchLabels`/`matchExpressions` object form, both compiled to one matcher.

import { labelValueProblems, qualifiedNameProblems } from './names.js';

export type Operator = 'In' | 'NotIn' | 'Exists' | 'DoesNotExist' | 'Gt' | 'Lt';

export interface Requirement {
  key: string;
  operator: Operator;
  values: string[];
}

export interface LabelSelectorObject {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: Operator; values?: string[] }[];
}

export class SelectorSyntaxError extends Error {}

export type Selector = Requirement[];

/** Parses Kubernetes label selector syntax, e.g. `app=web,tier in (a,b),!legacy,env!=prod`. */
export function parseLabelSelector(input: string): Selector {
  const text = input.trim();
  if (text === '') return [];
  if (text.length > 10_000) throw new SelectorSyntaxError('label selector is too long');
  const requirements: Requirement[] = [];
  let i = 0;
  const skipSpace = () => {
    while (i < text.length && text[i] === ' ') i++;
  };
  const readIdentifier = (): string => {
    skipSpace();
    const start = i;
    while (i < text.length && !' ,=!()<>'.includes(text[i]!)) i++;
    return text.slice(start, i);
  };
  const expect = (ch: string) => {
    skipSpace();
    if (text[i] !== ch) throw new SelectorSyntaxError(`expected '${ch}' at position ${i} in label selector "${input}"`);
    i++;
  };
  while (i < text.length) {
    skipSpace();
    let requirement: Requirement;
    if (text[i] === '!') {
      i++;
      const key = readIdentifier();
      checkKey(key, input);
      requirement = { key, operator: 'DoesNotExist', values: [] };
    } else {
      const key = readIdentifier();
      checkKey(key, input);
      skipSpace();
      const rest = text.slice(i);
      if (i >= text.length || text[i] === ',') {
        requirement = { key, operator: 'Exists', values: [] };
      } else if (rest.startsWith('!=')) {
        i += 2;
        requirement = { key, operator: 'NotIn', values: [readValue(readIdentifier(), input)] };
      } else if (rest.startsWith('==')) {
        i += 2;
        requirement = { key, operator: 'In', values: [readValue(readIdentifier(), input)] };
      } else if (rest.startsWith('=')) {
        i += 1;
        requirement = { key, operator: 'In', values: [readValue(readIdentifier(), input)] };
      } else if (rest.startsWith('>') || rest.startsWith('<')) {
        i += 1;
        const value = readIdentifier();
        if (!/^-?\d+$/.test(value)) throw new SelectorSyntaxError(`"${value}" in label selector "${input}" must be an integer`);
        requirement = { key, operator: rest.startsWith('>') ? 'Gt' : 'Lt', values: [value] };
      } else {
        const word = readIdentifier();
        if (word !== 'in' && word !== 'notin') {
          throw new SelectorSyntaxError(`unexpected "${word || text[i]}" at position ${i} in label selector "${input}": expected =, ==, !=, in, notin`);
        }
        expect('(');
        const values: string[] = [];
        for (;;) {
          skipSpace();
          if (text[i] === ')') break;
          values.push(readValue(readIdentifier(), input));
          skipSpace();
          if (text[i] === ',') {
            i++;
            continue;
          }
          if (text[i] !== ')') throw new SelectorSyntaxError(`expected ',' or ')' at position ${i} in label selector "${input}"`);
        }
        expect(')');
        if (values.length === 0) throw new SelectorSyntaxError(`"${word}" needs at least one value in label selector "${input}"`);
        requirement = { key, operator: word === 'in' ? 'In' : 'NotIn', values };
      }
    }
    requirements.push(requirement);
    skipSpace();
    if (i < text.length) {
      if (text[i] !== ',') throw new SelectorSyntaxError(`expected ',' at position ${i} in label selector "${input}"`);
      i++;
      skipSpace();
      if (i >= text.length) throw new SelectorSyntaxError(`trailing ',' in label selector "${input}"`);
    }
  }
  return requirements;
}

function checkKey(key: string, input: string): void {
  if (key === '') throw new SelectorSyntaxError(`missing label key in label selector "${input}"`);
  const problems = qualifiedNameProblems(key);
  if (problems.length) throw new SelectorSyntaxError(`invalid label key "${key}": ${problems.join('; ')}`);
}

function readValue(value: string, _input: string): string {
  const problems = labelValueProblems(value);
  if (problems.length) throw new SelectorSyntaxError(`invalid label value "${value}": ${problems.join('; ')}`);
  return value;
}

/** Converts the object form used in specs (e.g. `nodeSelector`) into requirements. */
export function selectorFromObject(selector: LabelSelectorObject | Record<string, string>): Selector {
  const obj = selector as LabelSelectorObject;
  if (!('matchLabels' in obj) && !('matchExpressions' in obj)) {
    return Object.entries(selector as Record<string, string>).map(([key, value]) => ({ key, operator: 'In', values: [value] }));
  }
  const requirements: Requirement[] = Object.entries(obj.matchLabels ?? {}).map(([key, value]) => ({ key, operator: 'In', values: [value] }));
  for (const e of obj.matchExpressions ?? []) requirements.push({ key: e.key, operator: e.operator, values: e.values ?? [] });
  return requirements;
}

export function matchesLabels(selector: Selector, labels: Readonly<Record<string, string>> | undefined): boolean {
  for (const r of selector) {
    const has = labels !== undefined && Object.prototype.hasOwnProperty.call(labels, r.key);
    const value = has ? labels![r.key]! : undefined;
    switch (r.operator) {
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      case 'In':
        if (!has || !r.values.includes(value!)) return false;
        break;
      case 'NotIn':
        if (has && r.values.includes(value!)) return false;
        break;
      case 'Gt':
      case 'Lt': {
        if (!has || !/^-?\d+$/.test(value!)) return false;
        const n = Number(value);
        const bound = Number(r.values[0]);
        if (r.operator === 'Gt' ? !(n > bound) : !(n < bound)) return false;
        break;
      }
    }
  }
  return true;
}
