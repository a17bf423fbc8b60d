// Streams the Docker events of Slipway's containers (type=container, label
// slipway.dev/managed-by=slipway) from one engine, reconnecting with backoff until aborted.
// After a reconnect the engine replays what happened while disconnected (Docker keeps recent
// events), so delivery is at least once; callers should still resync in onConnect.

import type Docker from 'dockerode';

export const MANAGED_BY_LABEL = 'slipway.dev/managed-by=slipway';

export interface ContainerEvent {
  /** Docker's action, e.g. `create`, `start`, `die`, `destroy`, `health_status: healthy`, `exec_start: sh -c ...`. */
  action: string;
  /** Container id. */
  id: string;
  /** The container's labels (Docker's event attributes without name, image, exitCode, signal, execID). */
  labels: Record<string, string>;
  /** Container name without the leading slash. */
  name?: string;
  /** Exit code, on `die`. */
  exitCode?: number;
  /** Engine time of the event, in nanoseconds since the epoch. */
  timeNano: bigint;
}

export interface WatchOptions {
  /** Called each time the event stream is (re)established. */
  onConnect?: () => void;
  /** Called when the stream breaks or cannot be opened; a reconnect follows. */
  onDisconnect?: (error: Error) => void;
  /** Extra filters (Docker syntax), merged with the container and managed-by filters. */
  filters?: Record<string, string[]>;
  /** Default 250 ms, doubling per failure up to maxBackoffMs (default 10 s). */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

/** Attributes Docker adds to container events that are not labels. */
const NON_LABEL_ATTRIBUTES = new Set(['name', 'image', 'exitCode', 'signal', 'execID']);

interface RawEvent {
  Type?: string;
  Action?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
  time?: number;
}

/** timeNano read from the text: a JSON number would lose its last digits. */
function exactTimeNano(line: string): bigint | undefined {
  const match = /"timeNano":\s*(\d+)/.exec(line);
  return match ? BigInt(match[1]!) : undefined;
}

/** Parses one NDJSON line of /events; undefined for anything that is not a container event. */
export function parseContainerEvent(line: string): ContainerEvent | undefined {
  let raw: RawEvent;
  try {
    raw = JSON.parse(line) as RawEvent;
  } catch {
    return undefined;
  }
  if (raw.Type !== 'container' || !raw.Action || !raw.Actor?.ID) return undefined;
  const attributes = raw.Actor.Attributes ?? {};
  const labels: Record<string, string> = {};
  for (const [key, value] of Object.entries(attributes)) {
    if (!NON_LABEL_ATTRIBUTES.has(key)) labels[key] = value;
  }
  const event: ContainerEvent = {
    action: raw.Action,
    id: raw.Actor.ID,
    labels,
    timeNano: exactTimeNano(line) ?? BigInt(Math.trunc((raw.time ?? 0) * 1e9)),
  };
  if (attributes.name !== undefined) event.name = attributes.name.replace(/^\//, '');
  if (attributes.exitCode !== undefined) event.exitCode = Number(attributes.exitCode);
  return event;
}

/** Docker's `since` format: seconds with a nanosecond fraction. */
function sinceParam(timeNano: bigint): string {
  const seconds = timeNano / 1_000_000_000n;
  const nanos = (timeNano % 1_000_000_000n).toString().padStart(9, '0');
  return `${seconds}.${nanos}`;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}

/**
 * Calls onEvent for each event of a Slipway container until `signal` aborts; resolves then.
 * Never rejects: stream failures are reported to onDisconnect and followed by a reconnect.
 * onEvent runs inside the stream's data handler and must not throw.
 */
export async function watchContainerEvents(
  docker: Docker,
  onEvent: (event: ContainerEvent) => void,
  signal: AbortSignal,
  options: WatchOptions = {},
): Promise<void> {
  const minBackoff = options.minBackoffMs ?? 250;
  const maxBackoff = options.maxBackoffMs ?? 10_000;
  const extraLabels = options.filters?.label ?? [];
  const filters = { ...options.filters, type: ['container'], label: [MANAGED_BY_LABEL, ...extraLabels] };
  let failures = 0;
  let lastTimeNano: bigint | undefined;
  // Events already delivered at lastTimeNano, so a replay from `since` does not repeat them.
  let seenAtLast = new Set<string>();

  const deliver = (event: ContainerEvent) => {
    const key = `${event.id} ${event.action}`;
    if (lastTimeNano !== undefined) {
      if (event.timeNano < lastTimeNano) return;
      if (event.timeNano === lastTimeNano && seenAtLast.has(key)) return;
    }
    if (event.timeNano !== lastTimeNano) seenAtLast = new Set();
    lastTimeNano = event.timeNano;
    seenAtLast.add(key);
    onEvent(event);
  };

  while (!signal.aborted) {
    let connected = false;
    try {
      const query: Record<string, unknown> = { filters: JSON.stringify(filters), abortSignal: signal };
      if (lastTimeNano !== undefined) query.since = sinceParam(lastTimeNano);
      const stream = (await docker.getEvents(query as Docker.GetEventsOptions)) as NodeJS.ReadableStream;
      connected = true;
      failures = 0;
      options.onConnect?.();
      await readLines(stream, signal, (line) => {
        const event = parseContainerEvent(line);
        if (event) deliver(event);
      });
      if (signal.aborted) break;
      options.onDisconnect?.(new Error('Docker event stream ended'));
    } catch (err) {
      if (signal.aborted) break;
      options.onDisconnect?.(err as Error);
    }
    if (!connected) failures += 1;
    await sleep(Math.min(maxBackoff, minBackoff * 2 ** Math.max(0, failures - 1)), signal);
  }
}

/** Feeds complete lines of an NDJSON stream to onLine; resolves when the stream ends, rejects on error. */
function readLines(stream: NodeJS.ReadableStream, signal: AbortSignal, onLine: (line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const abort = () => (stream as unknown as { destroy(): void }).destroy();
    signal.addEventListener('abort', abort, { once: true });
    const finish = (err?: Error) => {
      signal.removeEventListener('abort', abort);
      stream.removeAllListeners('data');
      if (err && !signal.aborted) reject(err);
      else resolve();
    };
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      buffered += chunk;
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (line) onLine(line);
      }
    });
    stream.on('error', (err: Error) => finish(err));
    stream.once('end', () => finish());
    stream.once('close', () => finish());
  });
}
