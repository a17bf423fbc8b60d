// Tools for hostile-input tests: a seeded PRNG, raw-socket HTTP for requests no well-behaved
// client can send, and checks that an answer is a proper Kubernetes Status without leaks.

import { connect } from 'node:net';

/** A small seeded PRNG (mulberry32), so a failing run can be replayed from its seed. */
export class Rng {
  private state: number;

  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  /** A string of `length` characters drawn from `alphabet`. */
  string(length: number, alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789'): string {
    let s = '';
    for (let i = 0; i < length; i++) s += alphabet[Math.floor(this.next() * alphabet.length)];
    return s;
  }
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Decodes a chunked HTTP/1.1 body; returns null if it is incomplete. */
function dechunk(data: Buffer): Buffer | null {
  const parts: Buffer[] = [];
  let pos = 0;
  for (;;) {
    const eol = data.indexOf('\r\n', pos);
    if (eol < 0) return null;
    const size = parseInt(data.subarray(pos, eol).toString('latin1'), 16);
    if (!Number.isFinite(size)) return null;
    if (size === 0) return Buffer.concat(parts);
    if (data.length < eol + 2 + size + 2) return null;
    parts.push(data.subarray(eol + 2, eol + 2 + size));
    pos = eol + 2 + size + 2;
  }
}

/** Parses one HTTP/1.1 response; null while it is incomplete. */
export function parseResponse(data: Buffer, complete: boolean): RawResponse | null {
  const end = data.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const lines = data.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0]!)?.[1]);
  if (!status) return null;
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  if (status === 100) return parseResponse(data.subarray(end + 4), complete);
  const rest = data.subarray(end + 4);
  let body: Buffer | null;
  if (/chunked/i.test(headers['transfer-encoding'] ?? '')) body = dechunk(rest);
  else if (headers['content-length'] !== undefined) {
    const length = Number(headers['content-length']);
    body = rest.length >= length ? rest.subarray(0, length) : null;
  } else body = complete ? rest : null;
  return body ? { status, headers, body: body.toString('utf8') } : null;
}

/**
 * Sends raw bytes to host:port and reads one response. Resolves with `null` as the response if the
 * server closed the connection without answering; rejects if nothing arrives in `timeoutMs`.
 */
export function rawRequest(host: string, port: number, data: Buffer | string, timeoutMs = 10_000): Promise<RawResponse | null> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, host);
    const chunks: Buffer[] = [];
    let settled = false;
    const finish = (complete: boolean) => {
      if (settled) return;
      const res = parseResponse(Buffer.concat(chunks), complete);
      if (res || complete) {
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        resolve(res);
      }
    };
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      socket.destroy();
      reject(new Error(`no complete response within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      finish(false);
    });
    socket.on('error', () => finish(true));
    socket.on('close', () => finish(true));
    socket.write(data);
  });
}

/** Text that suggests a stack trace or a server file path leaked into a response. */
const LEAK = [
  /\n\s+at \S/,
  /\bat (?:async )?[\w.<>$]+ \((?:file:|node:|\/)[^)]*:\d+:\d+\)/,
  /(?:file:\/\/|node:internal|node_modules\/|\/work\/|\/src\/apiserver\/|\/dist\/|\.build-)/,
  /\b(?:TypeError|ReferenceError|RangeError)\b|Cannot read propert|is not a function|is not iterable|Maximum call stack|Invalid string length|out of memory/,
];

/** Problems with an error answer: a Kubernetes Status of the same code, with a message and reason, and no leaks. */
export function statusProblems(status: number, body: string): string[] {
  const problems: string[] = [];
  for (const pattern of LEAK) if (pattern.test(body)) problems.push(`body leaks internals (${pattern})`);
  let parsed: any;
  try {
    parsed = JSON.parse(body);
  } catch {
    return [...problems, 'body is not JSON'];
  }
  if (parsed?.kind !== 'Status') problems.push(`kind is ${JSON.stringify(parsed?.kind)}, not Status`);
  if (parsed?.status !== 'Failure') problems.push(`status is ${JSON.stringify(parsed?.status)}, not Failure`);
  if (parsed?.code !== status) problems.push(`code ${JSON.stringify(parsed?.code)} differs from HTTP ${status}`);
  if (typeof parsed?.message !== 'string' || parsed.message.trim() === '') problems.push('message is missing or empty');
  if (typeof parsed?.reason !== 'string' || parsed.reason === '') problems.push('reason is missing');
  return problems;
}
