// Turns a CRD's structural `openAPIV3Schema` into validators (Ajv): server-side defaults,
// unknown-field detection or pruning, Kubernetes list-type rules, and errors reported as one
// cause per field path (`spec.env[2].name`).

import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { StatusCause } from '../api/types.js';

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

export type JSONSchema = Record<string, any>;

export type FieldValidation = 'Strict' | 'Warn' | 'Ignore';

export interface ValidationResult {
  causes: StatusCause[];
  /** Unknown fields found (and pruned) in Warn/Ignore mode. */
  unknownFields: string[];
}

function makeAjv(removeAdditional: boolean): Ajv {
  const ajv = new Ajv({
    strict: false,
    allErrors: true,
    useDefaults: true,
    removeAdditional,
    validateFormats: true,
    // Errors carry their schema, so oneOf/anyOf/not failures can be explained in words.
    verbose: true,
    // Patterns come from CRDs (admin-provided); unicode mode matches Go's RE2 better.
    unicodeRegExp: true,
  });
  addFormats(ajv);
  ajv.addFormat('int32', { type: 'number', validate: (n: number) => Number.isInteger(n) && n >= -2147483648 && n <= 2147483647 });
  ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isInteger(n) });
  ajv.addFormat('float', { type: 'number', validate: () => true });
  ajv.addFormat('double', { type: 'number', validate: () => true });
  ajv.addFormat('byte', /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/);
  ajv.addKeyword({ keyword: 'x-kubernetes-list-type', type: 'array', errors: true, validate: validateListType });
  return ajv;
}

/** `x-kubernetes-list-type: set|map`: items (or their map keys) must be unique. */
const validateListType: any = function validateListTypeFn(this: unknown, listType: string, data: unknown[], parentSchema?: JSONSchema) {
  if (listType !== 'set' && listType !== 'map') return true;
  const keys: string[] = (parentSchema?.['x-kubernetes-list-map-keys'] as string[]) ?? [];
  const identity = (item: unknown): unknown => {
    if (listType === 'set') return item;
    const obj = item && typeof item === 'object' ? (item as Record<string, unknown>) : {};
    return keys.length === 1 ? obj[keys[0]!] : Object.fromEntries(keys.map((k) => [k, obj[k]]));
  };
  const seen = new Set<string>();
  for (let i = 0; i < data.length; i++) {
    const id = identity(data[i]);
    // Scalars (the usual single map key) need no serialisation to compare.
    const text = typeof id === 'string' ? `s${id}` : `j${JSON.stringify(id)}`;
    if (seen.has(text)) {
      const shown = listType === 'map' ? Object.fromEntries(keys.map((k) => [k, (data[i] as any)?.[k]])) : id;
      validateListType.errors = [{ keyword: 'x-kubernetes-list-type', message: `Duplicate value: ${JSON.stringify(shown)}`, params: { index: i } }];
      return false;
    }
    seen.add(text);
  }
  return true;
};

const SKIP_KEYS = new Set(['x-kubernetes-validations', 'x-kubernetes-embedded-resource', 'x-kubernetes-map-type', 'example', 'externalDocs']);

/**
 * Rewrites a structural schema for Ajv: unknown fields become errors (except under
 * `x-kubernetes-preserve-unknown-fields` and in `metadata`), int-or-string becomes anyOf.
 */
export function toAjvSchema(schema: JSONSchema, path: string[] = []): JSONSchema {
  const out: JSONSchema = {};
  for (const [k, v] of Object.entries(schema)) {
    if (SKIP_KEYS.has(k)) continue;
    if (k === 'properties' && v && typeof v === 'object') {
      out.properties = {};
      for (const [name, sub] of Object.entries(v as JSONSchema)) out.properties[name] = toAjvSchema(sub as JSONSchema, [...path, name]);
    } else if ((k === 'items' || k === 'additionalProperties' || k === 'not') && v && typeof v === 'object') {
      out[k] = toAjvSchema(v as JSONSchema, [...path, k === 'items' ? '[]' : '*']);
    } else if ((k === 'allOf' || k === 'anyOf' || k === 'oneOf') && Array.isArray(v)) {
      out[k] = v.map((s) => toAjvSchema(s, path));
    } else {
      out[k] = v;
    }
  }
  if (schema['x-kubernetes-int-or-string']) {
    delete out.type;
    out.anyOf = [...(out.anyOf ?? []), { type: 'integer' }, { type: 'string' }];
  }
  const isMetadata = path.length === 1 && path[0] === 'metadata';
  if (
    out.type === 'object' &&
    !schema['x-kubernetes-preserve-unknown-fields'] &&
    out.additionalProperties === undefined &&
    !isMetadata
  ) {
    out.additionalProperties = false;
  }
  if (path.length === 0) {
    // Every object has these, whatever its schema says.
    out.properties = { apiVersion: { type: 'string' }, kind: { type: 'string' }, metadata: { type: 'object' }, ...(out.properties ?? {}) };
  }
  return out;
}

/** `/spec/env/2/name` → `spec.env[2].name` */
export function fieldPath(instancePath: string, extra?: string): string {
  const parts = instancePath.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (extra !== undefined) parts.push(extra);
  let out = '';
  for (const p of parts) {
    if (/^\d+$/.test(p)) out += `[${p}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(p)) out += out ? `.${p}` : p;
    else out += `[${JSON.stringify(p)}]`;
  }
  return out;
}

function describeValue(value: unknown): string {
  if (value === undefined) return 'undefined';
  const text = JSON.stringify(value);
  if (text === undefined) return String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function valueAt(root: unknown, instancePath: string): unknown {
  let cur: any = root;
  for (const p of instancePath.split('/').slice(1)) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = cur[p.replace(/~1/g, '/').replace(/~0/g, '~')];
  }
  return cur;
}

/** Words for a failed oneOf/anyOf: "exactly one of image, build", or int-or-string. */
function describeAlternatives(e: ErrorObject, value: unknown): { reason: string; message: string } {
  const branches: JSONSchema[] = Array.isArray(e.schema) ? (e.schema as JSONSchema[]) : [];
  const fields = branches.map((b) => (Array.isArray(b.required) && b.required.length === 1 && Object.keys(b).length === 1 ? String(b.required[0]) : null));
  if (branches.length > 0 && fields.every((f) => f !== null)) {
    const list = fields.join(', ');
    if (e.keyword === 'oneOf' && Array.isArray((e.params as any).passingSchemas)) {
      return { reason: 'FieldValueForbidden', message: `Forbidden: only one of ${list} may be set` };
    }
    return { reason: 'FieldValueRequired', message: `Required value: ${e.keyword === 'oneOf' ? 'exactly' : 'at least'} one of ${list} must be set` };
  }
  const types = branches.map((b) => (Object.keys(b).length === 1 && typeof b.type === 'string' ? b.type : null));
  if (branches.length > 0 && types.every((t) => t !== null)) {
    return { reason: 'FieldValueTypeInvalid', message: `Invalid value: ${describeValue(value)}: must be of type ${[...new Set(types)].join(' or ')}` };
  }
  return { reason: 'FieldValueInvalid', message: `Invalid value: ${describeValue(value)}: must match ${e.keyword === 'oneOf' ? 'exactly one' : 'at least one'} of the allowed forms` };
}

/** Maps Ajv's errors to Kubernetes causes, one per failing field, most specific first. */
export function causesFromAjv(errors: ErrorObject[], root: unknown): { causes: StatusCause[]; unknownFields: string[] } {
  const causes: StatusCause[] = [];
  const unknownFields: string[] = [];
  const seen = new Set<string>();
  // A failed oneOf/anyOf/not also reports every failing branch; keep only the summary.
  const combinators = errors.filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf' || e.keyword === 'not').map((e) => `${e.schemaPath}/`);
  for (const e of errors) {
    if (combinators.some((prefix) => e.schemaPath.startsWith(prefix))) continue;
    let field = fieldPath(e.instancePath);
    let reason = 'FieldValueInvalid';
    let message: string;
    const value = valueAt(root, e.instancePath);
    switch (e.keyword) {
      case 'required':
        field = fieldPath(e.instancePath, (e.params as any).missingProperty);
        reason = 'FieldValueRequired';
        message = 'Required value';
        break;
      case 'additionalProperties':
        field = fieldPath(e.instancePath, (e.params as any).additionalProperty);
        unknownFields.push(field);
        reason = 'FieldValueUnknown';
        message = 'field not declared in schema';
        break;
      case 'type':
        reason = 'FieldValueTypeInvalid';
        message = `Invalid value: ${describeValue(value)}: must be of type ${(e.params as any).type}`;
        break;
      case 'enum':
        reason = 'FieldValueNotSupported';
        message = `Unsupported value: ${describeValue(value)}: supported values: ${((e.params as any).allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
        break;
      case 'anyOf':
      case 'oneOf':
        ({ reason, message } = describeAlternatives(e, value));
        break;
      case 'not': {
        const forbidden: string[] = (e.schema as JSONSchema)?.required ?? [];
        reason = 'FieldValueForbidden';
        message = forbidden.length ? `Forbidden: may not set all of ${forbidden.join(', ')} together` : `Invalid value: ${describeValue(value)}: matches a forbidden form`;
        break;
      }
      case 'maxLength':
      case 'maxItems':
      case 'maxProperties':
        reason = 'FieldValueTooLong';
        message = `Too long: ${e.message ?? ''}`;
        break;
      case 'x-kubernetes-list-type':
        field = fieldPath(e.instancePath, String((e.params as any).index));
        reason = 'FieldValueDuplicate';
        message = e.message ?? 'Duplicate value';
        break;
      default:
        message = `Invalid value: ${describeValue(value)}: ${e.message ?? e.keyword}`;
    }
    const id = `${field}\u0000${message}`;
    if (seen.has(id)) continue;
    seen.add(id);
    causes.push({ reason, message, field });
  }
  return { causes, unknownFields };
}

/** Validators for one version of one kind. Compiled lazily, then cached. */
export class ObjectSchema {
  private strictValidator: ValidateFunction | null = null;
  private pruningValidator: ValidateFunction | null = null;
  private readonly ajvSchema: JSONSchema;

  constructor(
    readonly openAPIV3Schema: JSONSchema,
    private readonly ajvStrict: Ajv,
    private readonly ajvPrune: Ajv,
  ) {
    this.ajvSchema = toAjvSchema(openAPIV3Schema);
  }

  /** Throws if the schema cannot be compiled (used when a CRD is submitted). */
  compile(): void {
    this.strictValidator ??= this.ajvStrict.compile(this.ajvSchema);
  }

  /**
   * Validates `obj` in place: fills defaults, and in Warn/Ignore mode prunes unknown fields.
   * Returns the causes of failure (empty when valid).
   */
  validate(obj: unknown, mode: FieldValidation): ValidationResult {
    this.compile();
    const strict = this.strictValidator!;
    if (strict(obj)) return { causes: [], unknownFields: [] };
    const first = causesFromAjv(strict.errors ?? [], obj);
    if (mode === 'Strict') return { causes: first.causes, unknownFields: first.unknownFields };
    this.pruningValidator ??= this.ajvPrune.compile(this.ajvSchema);
    const prune = this.pruningValidator;
    if (prune(obj)) return { causes: [], unknownFields: first.unknownFields };
    return { causes: causesFromAjv(prune.errors ?? [], obj).causes, unknownFields: first.unknownFields };
  }
}

/** One pair of Ajv instances shared by every schema the server compiles. */
export class SchemaCompiler {
  private readonly strict = makeAjv(false);
  private readonly prune = makeAjv(true);

  schema(openAPIV3Schema: JSONSchema): ObjectSchema {
    return new ObjectSchema(openAPIV3Schema, this.strict, this.prune);
  }
}
