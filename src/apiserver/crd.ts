// The CustomResourceDefinition kind (apiextensions.k8s.io/v1, exactly Kubernetes' format):
// its own built-in resource, validation of submitted CRDs, and conversion into served resources.

import { CRD_GROUP, type KubeObject, type PrinterColumn, type StatusCause } from '../api/types.js';
import { dns1123LabelProblems, dns1123SubdomainProblems } from '../api/names.js';
import { parseJsonPath } from '../api/jsonpath.js';
import type { Registry, Resource, ServedVersion } from './resources.js';
import type { JSONSchema, SchemaCompiler } from './schema.js';

export const CRD_PLURAL = 'customresourcedefinitions';
export const CRD_CLEANUP_FINALIZER = 'customresourcecleanup.apiextensions.k8s.io';

const PRINTER_TYPES = ['integer', 'number', 'string', 'boolean', 'date'];
const KIND_PATTERN = /^[A-Z][A-Za-z0-9]*$/;
const VERSION_PATTERN = /^v[1-9][0-9]*((alpha|beta)[1-9][0-9]*)?$/;
const MAX_SCHEMA_DEPTH = 32;

/** The CRD kind as a resource of the server (validation beyond its shape is in `validateCrd`). */
export function crdResource(compiler: SchemaCompiler): Resource {
  const openAPIV3Schema: JSONSchema = {
    type: 'object',
    required: ['spec'],
    properties: {
      spec: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
      status: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
    },
  };
  const version: ServedVersion = {
    name: 'v1',
    served: true,
    storage: true,
    schema: compiler.schema(openAPIV3Schema),
    openAPIV3Schema,
    printerColumns: [
      { name: 'Kind', type: 'string', jsonPath: '.spec.names.kind' },
      { name: 'Scope', type: 'string', jsonPath: '.spec.scope' },
      { name: 'Established', type: 'string', jsonPath: '.status.conditions[?(@.type=="Established")].status' },
      { name: 'Created At', type: 'date', jsonPath: '.metadata.creationTimestamp' },
    ],
    selectableFields: [],
    hasStatus: true,
  };
  return {
    group: CRD_GROUP,
    plural: CRD_PLURAL,
    singular: 'customresourcedefinition',
    kind: 'CustomResourceDefinition',
    listKind: 'CustomResourceDefinitionList',
    shortNames: ['crd', 'crds'],
    categories: ['api-extensions'],
    namespaced: false,
    versions: new Map([['v1', version]]),
    storageVersion: 'v1',
    crdName: `${CRD_PLURAL}.${CRD_GROUP}`,
    builtin: true,
  };
}

const isObject = (v: unknown): v is Record<string, any> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Checks that a schema is structural, as Kubernetes requires, and names each offending path. */
function structuralProblems(schema: unknown, field: string, depth: number, causes: StatusCause[]): void {
  if (!isObject(schema)) {
    causes.push({ reason: 'FieldValueInvalid', field, message: 'must be an object' });
    return;
  }
  if (depth > MAX_SCHEMA_DEPTH) {
    causes.push({ reason: 'FieldValueInvalid', field, message: `schema nesting deeper than ${MAX_SCHEMA_DEPTH}` });
    return;
  }
  if ('$ref' in schema) causes.push({ reason: 'FieldValueForbidden', field: `${field}.$ref`, message: 'Forbidden: $ref is not supported' });
  const untyped = schema['x-kubernetes-int-or-string'] === true || schema['x-kubernetes-preserve-unknown-fields'] === true;
  if (!schema.type && !untyped) {
    causes.push({ reason: 'FieldValueRequired', field: `${field}.type`, message: 'Required value: must not be empty for specified object fields' });
  }
  if (schema.type !== undefined && !['object', 'array', 'string', 'integer', 'number', 'boolean'].includes(schema.type)) {
    causes.push({ reason: 'FieldValueNotSupported', field: `${field}.type`, message: `Unsupported value: ${JSON.stringify(schema.type)}` });
  }
  if (schema.properties !== undefined && schema.additionalProperties !== undefined && schema.additionalProperties !== false) {
    causes.push({ reason: 'FieldValueForbidden', field: `${field}.additionalProperties`, message: 'Forbidden: additionalProperties and properties are mutual exclusive' });
  }
  if (schema.type === 'array' && schema.items === undefined) {
    causes.push({ reason: 'FieldValueRequired', field: `${field}.items`, message: 'Required value: must be specified for arrays' });
  }
  if (schema.properties !== undefined) {
    if (!isObject(schema.properties)) causes.push({ reason: 'FieldValueInvalid', field: `${field}.properties`, message: 'must be an object' });
    else for (const [k, v] of Object.entries(schema.properties)) structuralProblems(v, `${field}.properties[${k}]`, depth + 1, causes);
  }
  if (schema.items !== undefined) structuralProblems(schema.items, `${field}.items`, depth + 1, causes);
  if (isObject(schema.additionalProperties)) structuralProblems(schema.additionalProperties, `${field}.additionalProperties`, depth + 1, causes);
  for (const k of ['allOf', 'anyOf', 'oneOf'] as const) {
    if (schema[k] !== undefined && !Array.isArray(schema[k])) causes.push({ reason: 'FieldValueInvalid', field: `${field}.${k}`, message: 'must be an array' });
  }
  if (schema.pattern !== undefined) {
    try {
      new RegExp(String(schema.pattern), 'u');
    } catch (err) {
      causes.push({ reason: 'FieldValueInvalid', field: `${field}.pattern`, message: `Invalid value: ${JSON.stringify(schema.pattern)}: ${(err as Error).message}` });
    }
  }
}

const pushProblems = (causes: StatusCause[], field: string, value: unknown, problems: string[]) => {
  for (const p of problems) causes.push({ reason: 'FieldValueInvalid', field, message: `Invalid value: ${JSON.stringify(value)}: ${p}` });
};

/**
 * Validates a submitted CRD beyond its JSON shape: names, scope, versions, structural schemas
 * (compiled, so a broken pattern is reported here rather than at the first object), printer
 * columns, and clashes with kinds already served in the same group.
 */
export function validateCrd(crd: KubeObject, old: KubeObject | null, registry: Registry, compiler: SchemaCompiler): StatusCause[] {
  const causes: StatusCause[] = [];
  const spec = crd.spec;
  if (!isObject(spec)) return [{ reason: 'FieldValueRequired', field: 'spec', message: 'Required value' }];
  const names = isObject(spec.names) ? spec.names : {};
  if (typeof spec.group !== 'string' || spec.group === '') causes.push({ reason: 'FieldValueRequired', field: 'spec.group', message: 'Required value' });
  else {
    pushProblems(causes, 'spec.group', spec.group, dns1123SubdomainProblems(spec.group));
    if (!spec.group.includes('.')) causes.push({ reason: 'FieldValueInvalid', field: 'spec.group', message: `Invalid value: ${JSON.stringify(spec.group)}: should be a domain with at least one dot` });
  }
  for (const f of ['plural', 'singular'] as const) {
    if (names[f] === undefined && f === 'singular') continue;
    if (typeof names[f] !== 'string') causes.push({ reason: 'FieldValueRequired', field: `spec.names.${f}`, message: 'Required value' });
    else pushProblems(causes, `spec.names.${f}`, names[f], dns1123LabelProblems(names[f]));
  }
  if (typeof names.kind !== 'string' || !KIND_PATTERN.test(names.kind)) {
    causes.push({ reason: 'FieldValueInvalid', field: 'spec.names.kind', message: `Invalid value: ${JSON.stringify(names.kind)}: must be a CamelCase name starting with an upper-case letter` });
  }
  if (names.listKind !== undefined && (typeof names.listKind !== 'string' || !KIND_PATTERN.test(names.listKind))) {
    causes.push({ reason: 'FieldValueInvalid', field: 'spec.names.listKind', message: `Invalid value: ${JSON.stringify(names.listKind)}: must be a CamelCase name` });
  }
  if (names.shortNames !== undefined) {
    if (!Array.isArray(names.shortNames)) causes.push({ reason: 'FieldValueInvalid', field: 'spec.names.shortNames', message: 'must be a list of names' });
    else names.shortNames.forEach((s: unknown, i: number) => pushProblems(causes, `spec.names.shortNames[${i}]`, s, typeof s === 'string' ? dns1123LabelProblems(s) : ['must be a string']));
  }
  if (typeof spec.group === 'string' && typeof names.plural === 'string' && crd.metadata.name !== `${names.plural}.${spec.group}`) {
    causes.push({ reason: 'FieldValueInvalid', field: 'metadata.name', message: `Invalid value: ${JSON.stringify(crd.metadata.name)}: must be spec.names.plural+"."+spec.group` });
  }
  if (spec.scope !== 'Namespaced' && spec.scope !== 'Cluster') {
    causes.push({ reason: 'FieldValueNotSupported', field: 'spec.scope', message: `Unsupported value: ${JSON.stringify(spec.scope)}: supported values: "Cluster", "Namespaced"` });
  }
  if (!Array.isArray(spec.versions) || spec.versions.length === 0) {
    causes.push({ reason: 'FieldValueRequired', field: 'spec.versions', message: 'Required value: must have at least one version' });
  } else {
    const seen = new Set<string>();
    let storage = 0;
    spec.versions.forEach((v: any, i: number) => {
      const f = `spec.versions[${i}]`;
      if (!isObject(v)) return causes.push({ reason: 'FieldValueInvalid', field: f, message: 'must be an object' });
      if (typeof v.name !== 'string' || !VERSION_PATTERN.test(v.name)) {
        causes.push({ reason: 'FieldValueInvalid', field: `${f}.name`, message: `Invalid value: ${JSON.stringify(v.name)}: must be a version such as v1, v1alpha1 or v2beta3` });
      } else if (seen.has(v.name)) causes.push({ reason: 'FieldValueDuplicate', field: `${f}.name`, message: `Duplicate value: ${JSON.stringify(v.name)}` });
      else seen.add(v.name);
      if (typeof v.served !== 'boolean') causes.push({ reason: 'FieldValueRequired', field: `${f}.served`, message: 'Required value' });
      if (typeof v.storage !== 'boolean') causes.push({ reason: 'FieldValueRequired', field: `${f}.storage`, message: 'Required value' });
      if (v.storage === true) storage++;
      const schema = v.schema?.openAPIV3Schema;
      const sf = `${f}.schema.openAPIV3Schema`;
      if (!isObject(schema)) causes.push({ reason: 'FieldValueRequired', field: sf, message: 'Required value: schemas are required' });
      else {
        const before = causes.length;
        if (schema.type !== 'object') causes.push({ reason: 'FieldValueInvalid', field: `${sf}.type`, message: 'must be object at the root' });
        structuralProblems(schema, sf, 0, causes);
        if (causes.length === before) {
          try {
            compiler.schema(schema).compile();
          } catch (err) {
            causes.push({ reason: 'FieldValueInvalid', field: sf, message: `Invalid value: the schema does not compile: ${(err as Error).message}` });
          }
        }
      }
      (Array.isArray(v.additionalPrinterColumns) ? v.additionalPrinterColumns : []).forEach((c: any, j: number) => {
        const cf = `${f}.additionalPrinterColumns[${j}]`;
        if (!isObject(c) || typeof c.name !== 'string' || c.name === '') causes.push({ reason: 'FieldValueRequired', field: `${cf}.name`, message: 'Required value' });
        if (!PRINTER_TYPES.includes(c?.type)) causes.push({ reason: 'FieldValueNotSupported', field: `${cf}.type`, message: `Unsupported value: ${JSON.stringify(c?.type)}: supported values: ${PRINTER_TYPES.map((t) => `"${t}"`).join(', ')}` });
        try {
          parseJsonPath(String(c?.jsonPath ?? ''));
        } catch (err) {
          causes.push({ reason: 'FieldValueInvalid', field: `${cf}.jsonPath`, message: `Invalid value: ${JSON.stringify(c?.jsonPath)}: ${(err as Error).message}` });
        }
      });
      (Array.isArray(v.selectableFields) ? v.selectableFields : []).forEach((s: any, j: number) => {
        if (typeof s?.jsonPath !== 'string' || !/^(\.[A-Za-z_][A-Za-z0-9_]*)+$/.test(s.jsonPath)) {
          causes.push({ reason: 'FieldValueInvalid', field: `${f}.selectableFields[${j}].jsonPath`, message: `Invalid value: ${JSON.stringify(s?.jsonPath)}: must be a simple path such as .spec.color` });
        }
      });
      return undefined;
    });
    if (storage !== 1) causes.push({ reason: 'FieldValueInvalid', field: 'spec.versions', message: `Invalid value: must have exactly one version marked as storage version (found ${storage})` });
  }
  if (old) {
    if (old.spec?.scope !== spec.scope) causes.push({ reason: 'FieldValueInvalid', field: 'spec.scope', message: 'field is immutable' });
    if (old.spec?.names?.kind !== names.kind) causes.push({ reason: 'FieldValueInvalid', field: 'spec.names.kind', message: 'field is immutable' });
  }
  if (causes.length === 0 && typeof spec.group === 'string') {
    for (const r of registry.all()) {
      if (r.group !== spec.group || r.crdName === crd.metadata.name) continue;
      if (r.kind === names.kind) causes.push({ reason: 'FieldValueDuplicate', field: 'spec.names.kind', message: `Duplicate value: ${JSON.stringify(names.kind)}: already served by ${r.crdName}` });
      const taken = new Set([r.plural, r.singular, ...r.shortNames]);
      for (const s of [names.singular, ...(names.shortNames ?? [])]) {
        if (s && taken.has(s)) causes.push({ reason: 'FieldValueDuplicate', field: 'spec.names', message: `Duplicate value: ${JSON.stringify(s)}: already used by ${r.crdName}` });
      }
    }
  }
  return causes;
}

/** Builds the served resource from a valid CRD object. */
export function resourceFromCrd(crd: KubeObject, compiler: SchemaCompiler): Resource {
  const spec = crd.spec;
  const versions = new Map<string, ServedVersion>();
  let storageVersion = '';
  for (const v of spec.versions as any[]) {
    const printerColumns: PrinterColumn[] = (v.additionalPrinterColumns ?? []).map((c: any) => ({ ...c }));
    versions.set(v.name, {
      name: v.name,
      served: v.served,
      storage: v.storage,
      schema: compiler.schema(v.schema.openAPIV3Schema),
      openAPIV3Schema: v.schema.openAPIV3Schema,
      printerColumns,
      selectableFields: (v.selectableFields ?? []).map((s: any) => String(s.jsonPath).slice(1)),
      hasStatus: v.subresources?.status !== undefined,
    });
    if (v.storage) storageVersion = v.name;
  }
  const names = spec.names;
  return {
    group: spec.group,
    plural: names.plural,
    singular: names.singular ?? names.kind.toLowerCase(),
    kind: names.kind,
    listKind: names.listKind ?? `${names.kind}List`,
    shortNames: names.shortNames ?? [],
    categories: names.categories ?? [],
    namespaced: spec.scope === 'Namespaced',
    versions,
    storageVersion,
    crdName: crd.metadata.name!,
    builtin: false,
    terminating: crd.metadata.deletionTimestamp !== undefined,
  };
}

/** The status Kubernetes reports for an accepted CRD. */
export function crdStatus(crd: KubeObject, now: string): Record<string, unknown> {
  // Runs before validation (prepareForCreate/Update), so it must not trust the shape of anything.
  const names: Record<string, any> = isObject(crd.spec?.names) ? crd.spec.names : {};
  const kind = typeof names.kind === 'string' ? names.kind : '';
  const versions: any[] = Array.isArray(crd.spec?.versions) ? crd.spec.versions : [];
  const previous: any[] = Array.isArray(crd.status?.conditions) ? crd.status.conditions : [];
  const condition = (type: string, reason: string, message: string) => {
    const prev = previous.find((c) => c?.type === type);
    return { type, status: 'True', reason, message, lastTransitionTime: prev?.status === 'True' ? prev.lastTransitionTime : now };
  };
  return {
    conditions: [
      condition('NamesAccepted', 'NoConflicts', 'no conflicts found'),
      condition('Established', 'InitialNamesAccepted', 'the initial names have been accepted'),
    ],
    acceptedNames: {
      plural: names.plural,
      singular: names.singular ?? kind.toLowerCase(),
      kind: names.kind,
      listKind: names.listKind ?? `${kind}List`,
      ...(names.shortNames ? { shortNames: names.shortNames } : {}),
      ...(names.categories ? { categories: names.categories } : {}),
    },
    storedVersions: [...new Set([...(Array.isArray(crd.status?.storedVersions) ? crd.status.storedVersions : []), ...versions.filter((v) => v?.storage).map((v) => v.name)])],
  };
}
