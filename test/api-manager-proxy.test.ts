// The API server's forwarding of services/{name}/log and /exec to the controller manager named by
// the Lease: a real API server, and a small real HTTP server standing in for the manager, to check
// what is forwarded, that answers stream through unbuffered, and the 404/503/422 answers.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { ApiRequestError } from '../src/client/api-client.js';
import { createNamespace, NS_PATH, service, startApi, svcPath, type TestApi } from './helpers/apiserver.js';
import { freePort } from './helpers/ports.js';

const NS = 'proxy';
const LEASE_PATH = `${NS_PATH}/slipway-system/leases`;

interface Seen {
  method: string;
  url: string;
  body: string;
  contentType: string | undefined;
}

/** The stand-in controller manager: records requests, answers by the handler the test sets. */
let manager: Server;
let managerUrl: string;
let seen: Seen[] = [];
let handle: (req: IncomingMessage, res: ServerResponse, body: string) => void = (_req, res) => res.end();
let api: TestApi;

before(async () => {
  manager = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (d: string) => (body += d));
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, body, contentType: req.headers['content-type'] });
      handle(req, res, body);
    });
  });
  await new Promise<void>((resolve) => manager.listen(0, '127.0.0.1', resolve));
  managerUrl = `http://127.0.0.1:${(manager.address() as AddressInfo).port}`;
  api = await startApi();
  await createNamespace(api.client, NS);
  // The API server may create slipway-system itself at start.
  await createNamespace(api.client, 'slipway-system').catch((err) => {
    if (!(err instanceof ApiRequestError && err.code === 409)) throw err;
  });
  await api.client.create(svcPath(NS), service('web'));
  await setLease(managerUrl);
});
after(async () => {
  manager?.closeAllConnections();
  await new Promise((r) => manager?.close(r));
  await api?.stop();
});

/** Creates, replaces or (with null) deletes the controller manager's Lease. */
async function setLease(address: string | null, holder = 'manager-1'): Promise<void> {
  const path = `${LEASE_PATH}/slipway-controller-manager`;
  await api.client.delete(path).catch((err) => {
    if (!(err instanceof ApiRequestError && err.code === 404)) throw err;
  });
  if (address === null) return;
  await api.client.create(LEASE_PATH, {
    apiVersion: 'slipway.dev/v1alpha1',
    kind: 'Lease',
    metadata: { name: 'slipway-controller-manager' },
    spec: { holderIdentity: holder, leaseDurationSeconds: 15, ...(address ? { holderAddress: address } : {}) },
  });
}

const sub = (name: string, what: 'log' | 'exec') => `${svcPath(NS, name)}/${what}`;

async function expectStatus(fn: () => Promise<unknown>, code: number) {
  try {
    await fn();
  } catch (err) {
    assert.ok(err instanceof ApiRequestError, `expected an API error, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.equal(err.status?.kind, 'Status', 'errors are Status objects');
    return err.status!;
  }
  assert.fail(`expected HTTP ${code}`);
}

test('log: forwards path and known query parameters, and streams chunks as the manager writes them', async () => {
  seen = [];
  let next!: () => void;
  handle = async (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
    for (let i = 1; i <= 3; i++) {
      res.write(`[proxy.web-1-0] line ${i}\n`);
      // The next chunk only goes out after the client has received this one: a buffering proxy deadlocks.
      if (i < 3) await new Promise<void>((r) => (next = r));
      await new Promise((r) => setTimeout(r, 50));
    }
    res.end();
  };
  const res = await request(`${api.url}${sub('web', 'log')}?follow=false&tailLines=5&timestamps=true&release=web-1&ignored=x`, { headers: { authorization: `Bearer ${api.adminToken}` } });
  assert.equal(res.statusCode, 200);
  assert.equal(res.headers['content-type'], 'text/plain; charset=utf-8');
  const chunks: string[] = [];
  for await (const chunk of res.body) {
    chunks.push(chunk.toString());
    next?.();
  }
  assert.equal(chunks.join(''), '[proxy.web-1-0] line 1\n[proxy.web-1-0] line 2\n[proxy.web-1-0] line 3\n');
  assert.ok(chunks.length >= 3, `expected the lines in separate chunks, got ${JSON.stringify(chunks)}`);
  assert.deepEqual(
    seen.map((s) => [s.method, s.url]),
    [['GET', '/v1/namespaces/proxy/services/web/log?follow=false&tailLines=5&timestamps=true&release=web-1']],
  );
});

test('log: a client that hangs up ends the request to the manager', async () => {
  let closed!: () => void;
  const managerSawClose = new Promise<void>((r) => (closed = r));
  handle = (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
    res.write('[proxy.web-1-0] first\n');
    res.on('close', () => closed());
  };
  const abort = new AbortController();
  const res = await request(`${api.url}${sub('web', 'log')}?follow=true`, { signal: abort.signal, headers: { authorization: `Bearer ${api.adminToken}` } });
  for await (const chunk of res.body) {
    assert.match(chunk.toString(), /first/);
    break; // leaving the loop destroys the body: the connection to the API server closes
  }
  abort.abort();
  await Promise.race([managerSawClose, new Promise((_, reject) => setTimeout(() => reject(new Error('the manager request stayed open')), 5000))]);
});

test('log: the manager\'s own error answers pass through with their status and content type', async () => {
  handle = (_req, res) => {
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ apiVersion: 'v1', kind: 'Status', status: 'Failure', code: 404, reason: 'NotFound', message: 'release "web-9" not found' }));
  };
  const status = await expectStatus(() => api.client.request('GET', sub('web', 'log'), { query: { release: 'web-9' } }), 404);
  assert.equal(status.message, 'release "web-9" not found');
});

test('exec: forwards the validated body and streams the NDJSON answer', async () => {
  seen = [];
  handle = (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    res.write(`${JSON.stringify({ stream: 'stdout', data: Buffer.from('hi\n').toString('base64') })}\n`);
    setTimeout(() => res.end(`${JSON.stringify({ exitCode: 3 })}\n`), 50);
  };
  const res = await api.client.request('POST', sub('web', 'exec'), { body: { command: ['sh', '-c', 'echo hi; exit 3'], replica: 1 } });
  assert.equal(res.status, 200);
  assert.equal(res.headers['content-type'], 'application/x-ndjson');
  const lines = String(res.body).trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines, [{ stream: 'stdout', data: Buffer.from('hi\n').toString('base64') }, { exitCode: 3 }]);
  assert.equal(seen.length, 1);
  assert.equal(seen[0]!.method, 'POST');
  assert.equal(seen[0]!.url, '/v1/namespaces/proxy/services/web/exec');
  assert.equal(seen[0]!.contentType, 'application/json');
  assert.deepEqual(JSON.parse(seen[0]!.body), { command: ['sh', '-c', 'echo hi; exit 3'], replica: 1 });
});

test('a Service that does not exist is a 404 like a GET, and nothing is forwarded', async () => {
  seen = [];
  const get = await expectStatus(() => api.client.get(svcPath(NS, 'nope')), 404);
  const log = await expectStatus(() => api.client.request('GET', sub('nope', 'log')), 404);
  const exec = await expectStatus(() => api.client.request('POST', sub('nope', 'exec'), { body: { command: ['true'] } }), 404);
  assert.equal(get.message, 'services.slipway.dev "nope" not found');
  assert.equal(log.message, get.message);
  assert.equal(exec.message, get.message);
  assert.equal(seen.length, 0);
});

test('exec bodies are validated: 422 naming the field, 413 over 64 KiB, 415 for other media types', async () => {
  seen = [];
  const cases: [unknown, string][] = [
    [{}, 'command'],
    [{ command: [] }, 'command'],
    [{ command: 'ls' }, 'command'],
    [{ command: Array.from({ length: 257 }, () => 'x') }, 'command'],
    [{ command: ['ls', 3] }, 'command[1]'],
    [{ command: [''] }, 'command[0]'],
    [{ command: ['ls'], replica: -1 }, 'replica'],
    [{ command: ['ls'], replica: 1.5 }, 'replica'],
    [{ command: ['ls'], replica: '0' }, 'replica'],
    [{ command: ['ls'], tty: true }, 'tty'],
  ];
  for (const [body, field] of cases) {
    const status = await expectStatus(() => api.client.request('POST', sub('web', 'exec'), { body }), 422);
    assert.equal(status.reason, 'Invalid');
    assert.equal(status.details?.causes?.[0]?.field, field, `${JSON.stringify(body).slice(0, 60)} names ${field}`);
    assert.match(status.message, new RegExp(`^exec request for services.slipway.dev "web" is invalid: ${field.replace(/[[\]]/g, '\\$&')}: `));
  }
  await expectStatus(() => api.client.request('POST', sub('web', 'exec'), { body: { command: ['echo', 'x'.repeat(70 * 1024)] } }), 413);
  await expectStatus(() => api.client.request('POST', sub('web', 'exec'), { body: 'ls', contentType: 'text/plain' }), 415);
  await expectStatus(() => api.client.request('POST', sub('web', 'exec'), { body: '{"command": [' }), 400);
  await expectStatus(() => api.client.request('GET', sub('web', 'log'), { query: { tailLines: 'ten' } }), 400);
  await expectStatus(() => api.client.request('DELETE', sub('web', 'log')), 405);
  assert.equal(seen.length, 0, 'nothing invalid reaches the manager');
});

test('503 when no controller manager is running or it cannot be reached', async () => {
  try {
    await setLease(null);
    let status = await expectStatus(() => api.client.request('GET', sub('web', 'log')), 503);
    assert.equal(status.reason, 'ServiceUnavailable');
    assert.match(status.message, /^no controller manager is running: Lease slipway-system\/slipway-controller-manager does not exist$/);

    await setLease('');
    status = await expectStatus(() => api.client.request('POST', sub('web', 'exec'), { body: { command: ['ls'] } }), 503);
    assert.match(status.message, /^no controller manager is running: .*no holder address/);

    const closedPort = await freePort();
    await setLease(`http://127.0.0.1:${closedPort}`);
    status = await expectStatus(() => api.client.request('GET', sub('web', 'log')), 503);
    assert.match(status.message, new RegExp(`^the controller manager at http://127.0.0.1:${closedPort} is not reachable: ECONNREFUSED`));
  } finally {
    await setLease(managerUrl);
  }
});
