// Validation of `metadata` (names, labels, annotations, finalizers, ownerReferences), the same
// for every kind; kind-specific schema rules come from the CRD.

import type { StatusCause } from '../api/types.js';
import { dns1123LabelProblems, dns1123SubdomainProblems, labelValueProblems, qualifiedNameProblems } from '../api/names.js';

const MAX_ANNOTATIONS_BYTES = 256 * 1024;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

const invalid = (field: string, value: unknown, message: string): StatusCause => ({
  reason: 'FieldValueInvalid',
  field,
  message: `Invalid value: ${JSON.stringify(value)?.slice(0, 100)}: ${message}`,
});

export function validateName(name: unknown, field: string, label: boolean): StatusCause[] {
  if (typeof name !== 'string' || name === '') return [{ reason: 'FieldValueRequired', field, message: 'Required value: name or generateName is required' }];
  const problems = label ? dns1123LabelProblems(name) : dns1123SubdomainProblems(name);
  return problems.map((p) => invalid(field, name, p));
}

/** Checks the user-settable parts of metadata. `nameIsLabel` for kinds whose names must be DNS-1123 labels. */
export function validateMetadata(meta: unknown, nameIsLabel: boolean, namespaced: boolean): StatusCause[] {
  if (!isObject(meta)) return [{ reason: 'FieldValueRequired', field: 'metadata', message: 'Required value' }];
  const causes: StatusCause[] = [];
  if (meta.name !== undefined || meta.generateName === undefined) causes.push(...validateName(meta.name, 'metadata.name', nameIsLabel));
  if (meta.generateName !== undefined && (typeof meta.generateName !== 'string' || !/^[a-z0-9]([-a-z0-9.]*)?$/.test(meta.generateName) || meta.generateName.length > 58)) {
    causes.push(invalid('metadata.generateName', meta.generateName, 'must be a lowercase prefix of at most 58 characters'));
  }
  if (namespaced && meta.namespace !== undefined) {
    if (typeof meta.namespace !== 'string') causes.push(invalid('metadata.namespace', meta.namespace, 'must be a string'));
    else causes.push(...dns1123LabelProblems(meta.namespace).map((p) => invalid('metadata.namespace', meta.namespace, p)));
  }
  for (const [field, isLabels] of [['labels', true], ['annotations', false]] as const) {
    const map = meta[field];
    if (map === undefined || map === null) continue;
    if (!isObject(map)) {
      causes.push(invalid(`metadata.${field}`, map, 'must be a map of string keys to string values'));
      continue;
    }
    let bytes = 0;
    for (const [k, v] of Object.entries(map)) {
      const f = `metadata.${field}[${JSON.stringify(k)}]`;
      for (const p of qualifiedNameProblems(k)) causes.push(invalid(f, k, p));
      if (typeof v !== 'string') causes.push(invalid(f, v, 'must be a string'));
      else if (isLabels) for (const p of labelValueProblems(v)) causes.push(invalid(f, v, p));
      bytes += k.length + (typeof v === 'string' ? v.length : 0);
    }
    if (!isLabels && bytes > MAX_ANNOTATIONS_BYTES) {
      causes.push({ reason: 'FieldValueTooLong', field: 'metadata.annotations', message: `Too long: may not be more than ${MAX_ANNOTATIONS_BYTES} bytes` });
    }
  }
  if (meta.finalizers !== undefined && meta.finalizers !== null) {
    if (!Array.isArray(meta.finalizers)) causes.push(invalid('metadata.finalizers', meta.finalizers, 'must be a list of strings'));
    else {
      const seen = new Set<string>();
      meta.finalizers.forEach((f, i) => {
        if (typeof f !== 'string') return causes.push(invalid(`metadata.finalizers[${i}]`, f, 'must be a string'));
        for (const p of qualifiedNameProblems(f)) causes.push(invalid(`metadata.finalizers[${i}]`, f, p));
        if (seen.has(f)) causes.push({ reason: 'FieldValueDuplicate', field: `metadata.finalizers[${i}]`, message: `Duplicate value: ${JSON.stringify(f)}` });
        seen.add(f);
        return undefined;
      });
    }
  }
  if (meta.ownerReferences !== undefined && meta.ownerReferences !== null) {
    if (!Array.isArray(meta.ownerReferences)) causes.push(invalid('metadata.ownerReferences', meta.ownerReferences, 'must be a list'));
    else {
      let controllers = 0;
      meta.ownerReferences.forEach((ref, i) => {
        const f = `metadata.ownerReferences[${i}]`;
        if (!isObject(ref)) return causes.push(invalid(f, ref, 'must be an object'));
        for (const key of ['apiVersion', 'kind', 'name', 'uid']) {
          if (typeof ref[key] !== 'string' || ref[key] === '') causes.push({ reason: 'FieldValueRequired', field: `${f}.${key}`, message: 'Required value' });
        }
        for (const key of ['controller', 'blockOwnerDeletion']) {
          if (ref[key] !== undefined && typeof ref[key] !== 'boolean') causes.push(invalid(`${f}.${key}`, ref[key], 'must be a boolean'));
        }
        if (ref.controller === true) controllers++;
        return undefined;
      });
      if (controllers > 1) causes.push(invalid('metadata.ownerReferences', '', 'Only one reference can have Controller set to true'));
    }
  }
  return causes;
}
