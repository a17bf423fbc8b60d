// Kind-specific behaviour of the API server (Kubernetes' "registry strategies"): what the server
// does to a Namespace, Secret, Event or CRD beyond the generic object rules.

import { CRD_GROUP, FINALIZER_NAMESPACE, GROUP, type KubeObject, type StatusCause } from '../api/types.js';
import { scheduleError } from '../api/cron.js';
import { CRD_CLEANUP_FINALIZER, crdStatus, validateCrd } from './crd.js';
import type { Registry } from './resources.js';
import type { SchemaCompiler } from './schema.js';

export interface Strategy {
  /** Adjusts a new object after the generic server fields are set. */
  prepareForCreate?(obj: KubeObject, now: string): void;
  /** Adjusts an updated object (main resource or status) before validation. */
  prepareForUpdate?(obj: KubeObject, old: KubeObject, now: string): void;
  /** Changes made when deletion starts (the object stays while finalizers remain). */
  prepareForDelete?(obj: KubeObject): void;
  /** Semantic checks beyond the schema. */
  validate?(obj: KubeObject, old: KubeObject | null): StatusCause[];
  /** Objects expire this many seconds after their last write (etcd lease). */
  ttlSeconds?: number;
}

const addFinalizer = (obj: KubeObject, finalizer: string) => {
  const finalizers = obj.metadata.finalizers ?? [];
  if (!finalizers.includes(finalizer)) obj.metadata.finalizers = [...finalizers, finalizer];
};

const namespaceStrategy: Strategy = {
  prepareForCreate(obj) {
    addFinalizer(obj, FINALIZER_NAMESPACE);
    obj.status = { phase: 'Active' };
  },
  prepareForDelete(obj) {
    obj.status = { ...(obj.status ?? {}), phase: 'Terminating' };
  },
};

/** Kubernetes' write-only `stringData`: merged into base64 `data` and never stored. */
function foldStringData(obj: KubeObject): void {
  if (obj.stringData && typeof obj.stringData === 'object') {
    const data: Record<string, string> = { ...(obj.data ?? {}) };
    for (const [k, v] of Object.entries(obj.stringData)) {
      if (typeof v === 'string') data[k] = Buffer.from(v, 'utf8').toString('base64');
    }
    obj.data = data;
  }
  delete obj.stringData;
}

const secretStrategy: Strategy = {
  prepareForCreate: foldStringData,
  prepareForUpdate: foldStringData,
  validate(obj, old) {
    const causes: StatusCause[] = [];
    for (const k of Object.keys(obj.data ?? {})) {
      if (!/^[-._a-zA-Z0-9]+$/.test(k) || k.length > 253) {
        causes.push({ reason: 'FieldValueInvalid', field: `data[${JSON.stringify(k)}]`, message: `Invalid value: ${JSON.stringify(k)}: a valid key must consist of alphanumeric characters, '-', '_' or '.'` });
      }
    }
    if (old?.immutable === true) {
      if (JSON.stringify(old.data ?? {}) !== JSON.stringify(obj.data ?? {})) causes.push({ reason: 'FieldValueForbidden', field: 'data', message: 'Forbidden: field is immutable when `immutable` is set' });
      if (obj.immutable !== true) causes.push({ reason: 'FieldValueForbidden', field: 'immutable', message: 'Forbidden: field is immutable when `immutable` is set' });
    }
    return causes;
  },
};

const eventStrategy: Strategy = {
  ttlSeconds: 3600,
  prepareForCreate(obj, now) {
    obj.firstTimestamp ??= now;
    obj.lastTimestamp ??= obj.firstTimestamp;
    obj.count ??= 1;
  },
};

/** A Service's cron schedule must parse, in a time zone that exists. */
const serviceStrategy: Strategy = {
  validate(obj) {
    const schedule = obj.spec?.schedule;
    if (!schedule || typeof schedule.cron !== 'string') return [];
    const error = scheduleError(schedule);
    return error ? [{ reason: 'FieldValueInvalid', field: `spec.schedule.${error.field}`, message: `Invalid value: ${error.message}` }] : [];
  },
};

function crdStrategy(registry: Registry, compiler: SchemaCompiler): Strategy {
  return {
    prepareForCreate(obj, now) {
      addFinalizer(obj, CRD_CLEANUP_FINALIZER);
      obj.status = crdStatus(obj, now);
    },
    prepareForUpdate(obj, _old, now) {
      if (obj.spec) obj.status = crdStatus(obj, now);
    },
    validate: (obj, old) => validateCrd(obj, old, registry, compiler),
  };
}

export function strategies(registry: Registry, compiler: SchemaCompiler): Map<string, Strategy> {
  return new Map<string, Strategy>([
    [`${GROUP}/Namespace`, namespaceStrategy],
    [`${GROUP}/Secret`, secretStrategy],
    [`${GROUP}/Event`, eventStrategy],
    [`${GROUP}/Service`, serviceStrategy],
    [`${CRD_GROUP}/CustomResourceDefinition`, crdStrategy(registry, compiler)],
  ]);
}
