// Shared API types: the Kubernetes object model every Slipway component speaks.
// Kept free of behaviour so the API server, controllers and CLI can all import it.

export const GROUP = 'slipway.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const CRD_GROUP = 'apiextensions.k8s.io';
export const CRD_API_VERSION = `${CRD_GROUP}/v1`;

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: OwnerReference[];
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
  observedGeneration?: number;
}

/** Any API object. `spec`/`status` are optional because some kinds (Secret, Event) keep fields at the top level. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec?: any;
  status?: any;
  [field: string]: any;
}

export interface ListMeta {
  resourceVersion?: string;
  continue?: string;
  remainingItemCount?: number;
}

export interface KubeList<T extends KubeObject = KubeObject> {
  apiVersion: string;
  kind: string;
  metadata: ListMeta;
  items: T[];
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export interface WatchEvent<T = KubeObject> {
  type: WatchEventType;
  object: T;
}

/** A CRD's `additionalPrinterColumns` entry: one column of `slipctl get`. */
export interface PrinterColumn {
  name: string;
  type: string;
  jsonPath: string;
  description?: string;
  format?: string;
  priority?: number;
}

export interface StatusCause {
  reason?: string;
  message: string;
  field?: string;
}

/** Kubernetes `Status`: the body of every API error. */
export interface Status {
  apiVersion: 'v1';
  kind: 'Status';
  metadata: Record<string, never> | ListMeta;
  status: 'Success' | 'Failure';
  message: string;
  reason: string;
  code: number;
  details?: {
    name?: string;
    group?: string;
    kind?: string;
    uid?: string;
    causes?: StatusCause[];
    retryAfterSeconds?: number;
  };
}

export type DeletionPropagation = 'Background' | 'Foreground' | 'Orphan';

export interface DeleteOptions {
  apiVersion?: string;
  kind?: 'DeleteOptions';
  propagationPolicy?: DeletionPropagation;
  preconditions?: { uid?: string; resourceVersion?: string };
  dryRun?: string[];
}

/** Finalizers the API server itself manages. */
export const FINALIZER_FOREGROUND = 'foregroundDeletion';
export const FINALIZER_ORPHAN = 'orphan';
export const FINALIZER_NAMESPACE = 'slipway.dev/namespace-content';

/** Annotation `slipctl apply` keeps the last applied configuration in (kubectl's last-applied-configuration). */
export const LAST_APPLIED_ANNOTATION = 'slipway.dev/last-applied-configuration';
