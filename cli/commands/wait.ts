// `slipctl wait`: blocks until objects meet a condition (`--for=condition=Ready[=True|False]`),
// a JSONPath value (`--for=jsonpath='{.status.phase}'=Ready`) or are deleted (`--for=delete`),
// using a watch; exits 1 with a clear message when --timeout passes first.

import { resourcePath } from '../../src/client/discovery.js';
import { evaluate, formatValue, JsonPathError, parseJsonPath } from '../../src/api/jsonpath.js';
import type { KubeObject } from '../../src/api/types.js';
import { parseDuration } from '../args.js';
import { TIMEOUT, type Command } from '../command.js';
import { CliError, formatError, isNotFound } from '../errors.js';
import { parseResourceArgs, type ObjectRef } from '../object-args.js';
import { pluralName, typeName } from '../session.js';
import { waitForObject, WaitTimeout } from '../wait-for.js';

export type WaitCondition =
  | { kind: 'delete' }
  | { kind: 'condition'; type: string; status: string }
  | { kind: 'jsonpath'; expression: string; steps: ReturnType<typeof parseJsonPath>; value?: string };

/** Index of the `=` that ends a JSONPath expression: outside brackets, braces and quotes, not part of `==`. */
function expressionEnd(text: string): number {
  let depth = 0;
  let quote: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote) {
      if (c === '\\') i++;
      else if (c === quote) quote = null;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '[' || c === '{' || c === '(') depth++;
    else if (c === ']' || c === '}' || c === ')') depth--;
    else if (c === '=' && depth === 0) {
      if (text[i + 1] === '=' || text[i - 1] === '=' || text[i - 1] === '!') continue;
      return i;
    }
  }
  return -1;
}

export function parseFor(text: string | undefined): WaitCondition {
  if (!text) throw new CliError('--for is required: --for=condition=Ready[=True|False], --for=delete or --for=jsonpath=\'{.status.phase}\'=Ready');
  if (text === 'delete') return { kind: 'delete' };
  if (text.startsWith('condition=')) {
    const [type, status = 'True', ...rest] = text.slice('condition='.length).split('=');
    if (!type || rest.length) throw new CliError(`invalid --for condition ${JSON.stringify(text)}: expected condition=TYPE or condition=TYPE=STATUS`);
    return { kind: 'condition', type, status };
  }
  if (text.startsWith('jsonpath=')) {
    const spec = text.slice('jsonpath='.length);
    const end = expressionEnd(spec);
    const expression = end < 0 ? spec : spec.slice(0, end);
    try {
      const steps = parseJsonPath(expression);
      return { kind: 'jsonpath', expression, steps, ...(end >= 0 ? { value: spec.slice(end + 1) } : {}) };
    } catch (err) {
      if (err instanceof JsonPathError) throw new CliError(`invalid --for jsonpath ${JSON.stringify(spec)}: ${err.message}`);
      throw err;
    }
  }
  throw new CliError(`unrecognized --for ${JSON.stringify(text)}: use condition=TYPE[=STATUS], delete, or jsonpath=EXPRESSION[=VALUE]`);
}

/** Whether `obj` meets `cond`; a condition reported for an older generation does not count. */
export function conditionMet(cond: WaitCondition, obj: KubeObject | null, uid?: string): boolean {
  if (cond.kind === 'delete') return obj === null || (uid !== undefined && obj.metadata.uid !== uid);
  if (obj === null) return false;
  if (cond.kind === 'condition') {
    const conditions = Array.isArray(obj.status?.conditions) ? (obj.status.conditions as Record<string, unknown>[]) : [];
    const c = conditions.find((x) => String(x.type).toLowerCase() === cond.type.toLowerCase());
    if (!c || String(c.status).toLowerCase() !== cond.status.toLowerCase()) return false;
    const observed = typeof c.observedGeneration === 'number' ? c.observedGeneration : undefined;
    return observed === undefined || obj.metadata.generation === undefined || observed >= obj.metadata.generation;
  }
  const values = evaluate(cond.steps, obj);
  if (cond.value === undefined) return values.length > 0 && values.some((v) => v !== null && v !== undefined);
  return values.some((v) => formatValue(v) === cond.value);
}

async function waitOne(ctx: Parameters<Command['run']>[0], ref: ObjectRef, cond: WaitCondition, timeoutMs: number): Promise<void> {
  const namespace = ref.resource.namespaced ? ctx.session.namespace : undefined;
  let uid: string | undefined;
  try {
    uid = (await ctx.session.client.get(resourcePath(ref.resource, namespace, ref.name))).metadata.uid;
  } catch (err) {
    if (!(cond.kind === 'delete' && isNotFound(err))) throw err;
  }
  await waitForObject(ctx.session.client, resourcePath(ref.resource, namespace), ref.name, (o) => conditionMet(cond, o, uid), timeoutMs);
  ctx.stdout(`${typeName(ref.resource)}/${ref.name} condition met\n`);
}

export const command: Command = {
  name: 'wait',
  summary: 'Wait for objects to meet a condition, reach a JSONPath value, or be deleted.',
  usage: 'wait KIND/NAME... | KIND NAME... --for=condition=TYPE[=STATUS] | --for=delete | --for=jsonpath=EXPR[=VALUE] [--timeout=30s] [-n NS]',
  examples: [
    'slipctl wait svc/web -n shop-prod --for=condition=Available',
    "slipctl wait domain acme-shop -n shop-prod --for=jsonpath='{.status.phase}'=Ready --timeout=2m",
    'slipctl wait svc/old --for=delete',
  ],
  flags: [{ name: 'for', type: 'string', value: 'CONDITION', description: 'condition=TYPE[=STATUS] (STATUS defaults to True), delete, or jsonpath=EXPR[=VALUE].' }, TIMEOUT('30s')],
  async run(ctx, flags) {
    const cond = parseFor(flags.string('for'));
    const timeoutMs = parseDuration(flags.string('timeout')!, 'timeout');
    const { refs } = await parseResourceArgs(ctx.session, flags.positional);
    if (refs.length === 0) throw new CliError('wait needs objects: KIND/NAME... or KIND NAME...');
    const results = await Promise.allSettled(refs.map((ref) => waitOne(ctx, ref, cond, timeoutMs)));
    let failures = 0;
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') return;
      failures++;
      const ref = refs[i]!;
      ctx.stderr(r.reason instanceof WaitTimeout ? `error: timed out waiting for the condition on ${pluralName(ref.resource)}/${ref.name}\n` : `${formatError(r.reason)}\n`);
    });
    return failures ? 1 : 0;
  },
};
