// Records Events about objects, for controllers: one Event per (object, type, reason, message),
// repeated occurrences increment `count` and `lastTimestamp` instead of adding objects.
// Recording never throws: a lost Event must not fail a reconcile.

import { createHash } from 'node:crypto';
import { API_VERSION, type KubeObject } from '../api/types.js';
import { ApiRequestError, type ApiClient } from './api-client.js';

export type EventType = 'Normal' | 'Warning';

export interface EventSource {
  component: string;
  host?: string;
}

const EVENTS = (ns: string) => `/apis/slipway.dev/v1alpha1/namespaces/${encodeURIComponent(ns)}/events`;

const now = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');

/** Events about cluster-scoped objects live in this namespace, as in Kubernetes. */
export const CLUSTER_EVENTS_NAMESPACE = 'default';

export class EventRecorder {
  /** Last written version per Event name, so a repeat is one PUT instead of GET + PUT. */
  private readonly cache = new Map<string, KubeObject>();

  constructor(
    private readonly client: ApiClient,
    private readonly source: EventSource,
    private readonly onError: (err: unknown) => void = () => {},
  ) {}

  /** The deterministic Event name for one kind of occurrence on one object. */
  static eventName(obj: KubeObject, type: EventType, reason: string, message: string, component: string): string {
    const hash = createHash('sha256')
      .update([obj.kind, obj.metadata.namespace ?? '', obj.metadata.name, obj.metadata.uid ?? '', type, reason, message, component].join('\u0000'))
      .digest('hex')
      .slice(0, 12);
    return `${obj.metadata.name}.${hash}`.slice(0, 253);
  }

  async record(obj: KubeObject, type: EventType, reason: string, message: string): Promise<void> {
    try {
      await this.write(obj, type, reason, message);
    } catch (err) {
      this.onError(err);
    }
  }

  private async write(obj: KubeObject, type: EventType, reason: string, message: string): Promise<void> {
    const namespace = obj.metadata.namespace ?? CLUSTER_EVENTS_NAMESPACE;
    const name = EventRecorder.eventName(obj, type, reason, message, this.source.component);
    const key = `${namespace}/${name}`;
    const timestamp = now();
    for (let attempt = 0; ; attempt++) {
      let current = this.cache.get(key);
      if (!current) {
        try {
          current = await this.client.get(`${EVENTS(namespace)}/${name}`);
        } catch (err) {
          if (!(err instanceof ApiRequestError && err.code === 404)) throw err;
        }
      }
      try {
        let written: KubeObject;
        if (!current) {
          written = await this.client.create(EVENTS(namespace), {
            apiVersion: API_VERSION,
            kind: 'Event',
            metadata: { name, namespace },
            involvedObject: {
              apiVersion: obj.apiVersion,
              kind: obj.kind,
              name: obj.metadata.name,
              ...(obj.metadata.namespace ? { namespace: obj.metadata.namespace } : {}),
              ...(obj.metadata.uid ? { uid: obj.metadata.uid } : {}),
              ...(obj.metadata.resourceVersion ? { resourceVersion: obj.metadata.resourceVersion } : {}),
            },
            type,
            reason,
            message: message.slice(0, 1024),
            count: 1,
            firstTimestamp: timestamp,
            lastTimestamp: timestamp,
            source: this.source,
            reportingComponent: this.source.component,
          });
        } else {
          written = await this.client.replace(`${EVENTS(namespace)}/${name}`, { ...current, count: (current.count ?? 1) + 1, lastTimestamp: timestamp });
        }
        this.cache.set(key, written);
        if (this.cache.size > 4096) this.cache.delete(this.cache.keys().next().value as string);
        return;
      } catch (err) {
        this.cache.delete(key);
        // 409: someone else wrote it first; 404 on an update: it expired meanwhile. Both: start over.
        const retry = err instanceof ApiRequestError && (err.code === 409 || (err.code === 404 && current !== undefined));
        if (!retry || attempt >= 3) throw err;
      }
    }
  }
}
