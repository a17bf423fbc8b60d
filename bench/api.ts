// `make bench`: the API server against the physical limit of its etcd, in one run on one fresh
// single-member etcd. Raw etcd3 puts/s at concurrency 64, then through the API: creates/s and
// updates/s at concurrency 64 with latencies, GET latency, LIST of 10,000 objects, and watch
// delivery latency to 1,000 open watches. Prints each figure, its ratio to raw etcd, and
// PASS/MISS per target; exits non-zero only if the bench itself broke.
//
// The API server runs as its own process by default (`--in-process` to share this one): with
// 1,000 watch streams and 64 concurrent clients, the load generator would otherwise compete with
// the server for one event loop and the figures would measure both.

import { spawn, type ChildProcess } from 'node:child_process';
import { setMaxListeners } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Etcd3 } from 'etcd3';
import { Pool } from 'undici';
import { startEtcd, type EtcdCluster } from '../test/helpers/etcd.js';
import { freePort } from '../test/helpers/ports.js';
import { startApi, type TestApi } from '../test/helpers/apiserver.js';
import { issueToken } from '../src/apiserver/auth/tokens.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const CHECKOUT = resolve(HERE, '../..');
const CONCURRENCY = 64;
const RAW_PUTS = 6_000;
const CREATES = 10_000;
const UPDATES = 6_000;
const GETS = 2_000;
const LISTS = 12;
const WATCHERS = 1_000;
const WATCH_WRITES = 60;
const WATCH_SPACING_MS = 40;
const NS = 'bench';
const WATCH_NS = 'bench-watch';
const G = '/apis/slipway.dev/v1alpha1';

const args = new Set(process.argv.slice(2));
const inProcess = args.has('--in-process');

// ---- measuring ------------------------------------------------------------------------------

const now = () => performance.now();

function percentile(samples: number[], p: number): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** Runs `task(i)` for i in [0, total) with `concurrency` workers; returns per-call latencies and the wall time. */
async function load(total: number, concurrency: number, task: (i: number) => Promise<void>): Promise<{ latencies: number[]; seconds: number }> {
  const latencies: number[] = [];
  let next = 0;
  const start = now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const i = next++;
        const t = now();
        await task(i);
        latencies.push(now() - t);
      }
    }),
  );
  return { latencies, seconds: (now() - start) / 1000 };
}

const fmt = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');
const results: string[] = [];
const targets: { name: string; ok: boolean; detail: string }[] = [];
function report(line: string): void {
  results.push(line);
  console.log(line);
}
function target(name: string, ok: boolean, detail: string): void {
  targets.push({ name, ok, detail });
}

// ---- the object used throughout: a Service of about 1 KB -----------------------------------

function service(name: string, ns: string, extra: Record<string, unknown> = {}) {
  return {
    apiVersion: 'slipway.dev/v1alpha1',
    kind: 'Service',
    metadata: { name, namespace: ns, labels: { app: name, tier: 'web', bench: 'true' }, annotations: { 'bench.slipway.dev/note': 'x'.repeat(200) } },
    spec: {
      image: 'registry.example.com/shop/web:1.4.2',
      replicas: 2,
      env: Array.from({ length: 8 }, (_, i) => ({ name: `VAR_${i}`, value: `value-${i}-${'v'.repeat(40)}` })),
      ...extra,
    },
  };
}

// ---- the API server under test --------------------------------------------------------------

interface Server {
  url: string;
  /** An admin bearer token for this server. */
  token: string;
  /** The server's process id, when it runs as its own process. */
  pid?: number;
  stop(): Promise<void>;
}

/** CPU seconds used so far by a process (Linux /proc), or NaN where unavailable. */
function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in clock ticks of 1/100 s
  } catch {
    return NaN;
  }
}

/** Where the CPU went during a phase: milliseconds per operation in etcd, the server and this client. */
function cpuMeter(etcdPid: number | undefined, serverPid: number | undefined) {
  const client = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  };
  const start = { etcd: cpuSeconds(etcdPid), server: cpuSeconds(serverPid), client: client() };
  return (ops: number, seconds: number) => {
    const ms = (a: number, b: number) => fmt(((b - a) * 1000) / ops, 2);
    const busy = (cpuSeconds(etcdPid) - start.etcd + (serverPid ? cpuSeconds(serverPid) - start.server : 0) + client() - start.client) / seconds;
    return `CPU per op: etcd ${ms(start.etcd, cpuSeconds(etcdPid))} ms, ${serverPid ? `server ${ms(start.server, cpuSeconds(serverPid))} ms, ` : ''}bench client${serverPid ? '' : '+server'} ${ms(start.client, client())} ms; ${fmt(busy, 2)} of ${cpus().length} cores busy`;
  };
}

async function waitReady(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(`${url}/readyz`);
      if (res.ok) return;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline) throw new Error(`the API server at ${url} did not become ready in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function startServer(etcd: EtcdCluster): Promise<Server> {
  if (inProcess) {
    const api: TestApi = await startApi({ etcd, logLevel: 'silent' });
    return { url: api.url, token: api.adminToken, stop: () => api.stop() };
  }
  const port = await freePort();
  // An admin token for the bench, in a 0600 token file only this server reads.
  const { token } = issueToken();
  const tokenDir = mkdtempSync(resolve(tmpdir(), 'slipway-bench-api-'));
  const tokenFile = resolve(tokenDir, 'tokens.csv');
  writeFileSync(tokenFile, `${token},bench,admin\n`, { mode: 0o600 });
  const child: ChildProcess = spawn(
    process.execPath,
    [
      ...(process.env.BENCH_SERVER_NODE_OPTIONS ?? '').split(' ').filter(Boolean),
      resolve(HERE, '../src/apiserver/main.js'),
      '--etcd-servers', etcd.endpoints.join(','),
      '--port', String(port),
      '--crds-dir', resolve(CHECKOUT, 'crds'),
      '--token-auth-file', tokenFile,
      '--log-level', 'silent',
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const url = `http://127.0.0.1:${port}`;
  await waitReady(url, 30_000);
  return {
    url,
    token,
    ...(child.pid !== undefined ? { pid: child.pid } : {}),
    stop: () =>
      new Promise<void>((done) => {
        rmSync(tokenDir, { recursive: true, force: true });
        if (child.exitCode !== null) return done();
        child.once('exit', () => done());
        child.kill('SIGTERM');
      }),
  };
}

// ---- phases ---------------------------------------------------------------------------------

async function rawEtcdPuts(etcd: EtcdCluster): Promise<{ perSecond: number; p50: number; p99: number; cpu: string }> {
  const client = new Etcd3({ hosts: etcd.endpoints });
  const value = Buffer.from(JSON.stringify(service('raw', 'raw')));
  await client.put('/bench/warmup').value(value);
  const meter = cpuMeter(etcd.members[0]!.process.pid, undefined);
  const { latencies, seconds } = await load(RAW_PUTS, CONCURRENCY, async (i) => {
    await client.put(`/bench/raw/${i}`).value(value);
  });
  const cpu = meter(RAW_PUTS, seconds);
  await client.delete().prefix('/bench/');
  client.close();
  return { perSecond: RAW_PUTS / seconds, p50: percentile(latencies, 50), p99: percentile(latencies, 99), cpu };
}

/** The Authorization header every bench request carries (set once the server is up). */
let auth: Record<string, string> = {};

async function request(pool: Pool, method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<any> {
  const res = await pool.request({
    method: method as any,
    path,
    headers: body === undefined ? auth : { ...auth, 'content-type': contentType },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.body.text();
  if (res.statusCode >= 300) throw new Error(`${method} ${path}: ${res.statusCode} ${text.slice(0, 300)}`);
  return JSON.parse(text);
}

/** Opens a watch and calls `onLine` per event line; resolves once the stream is open. */
async function openWatch(pool: Pool, path: string, onLine: (line: string) => void, signal: AbortSignal): Promise<void> {
  const res = await pool.request({ method: 'GET', path, headers: auth, signal, bodyTimeout: 0, headersTimeout: 60_000 });
  if (res.statusCode !== 200) throw new Error(`watch ${path}: ${res.statusCode} ${await res.body.text()}`);
  let buffered = '';
  res.body.setEncoding('utf8');
  res.body.on('data', (chunk: string) => {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      onLine(buffered.slice(0, nl));
      buffered = buffered.slice(nl + 1);
    }
  });
  res.body.on('error', () => {});
}

async function main(): Promise<void> {
  const started = now();
  console.log(`bench/api: fresh single-member etcd, API server ${inProcess ? 'in this process' : 'as a separate process'}, concurrency ${CONCURRENCY}`);
  const etcd = await startEtcd();
  let server: Server | null = null;
  let api: Pool | null = null;
  let watchPool: Pool | null = null;
  const aborter = new AbortController();
  setMaxListeners(WATCHERS + 100, aborter.signal);
  try {
    // 1. The physical limit: etcd3 puts straight to etcd.
    const raw = await rawEtcdPuts(etcd);
    report(`raw etcd3 puts:        ${fmt(raw.perSecond, 0)}/s   (p50 ${fmt(raw.p50)} ms, p99 ${fmt(raw.p99)} ms; ${RAW_PUTS} puts of ~1 KB)`);
    report(`                       ${raw.cpu}`);

    server = await startServer(etcd);
    auth = { authorization: `Bearer ${server.token}` };
    api = new Pool(server.url, { connections: CONCURRENCY, pipelining: 1 });
    for (const ns of [NS, WATCH_NS]) await request(api, 'POST', `${G}/namespaces`, { apiVersion: 'slipway.dev/v1alpha1', kind: 'Namespace', metadata: { name: ns } });
    const svcPath = `${G}/namespaces/${NS}/services`;
    // Warm up the JIT and connections on both sides before measuring.
    await load(500, CONCURRENCY, async (i) => void (await request(api!, 'POST', `${G}/namespaces/${WATCH_NS}/services?dryRun=All`, service(`warm-${i}`, WATCH_NS))));

    // 2. Creates.
    const etcdPid = etcd.members[0]!.process.pid;
    const rvs: string[] = new Array(CREATES);
    let meter = cpuMeter(etcdPid, server.pid);
    const creates = await load(CREATES, CONCURRENCY, async (i) => {
      const created = await request(api!, 'POST', svcPath, service(`svc-${i}`, NS));
      rvs[i] = created.metadata.resourceVersion;
    });
    const createRate = CREATES / creates.seconds;
    report(`API creates:           ${fmt(createRate, 0)}/s   (${fmt((100 * createRate) / raw.perSecond, 0)}% of raw etcd; p50 ${fmt(percentile(creates.latencies, 50))} ms, p99 ${fmt(percentile(creates.latencies, 99))} ms)`);
    report(`                       ${meter(CREATES, creates.seconds)}`);
    meter = cpuMeter(etcdPid, server.pid);

    // 3. Updates: PUT with the resourceVersion from the create, each object once (no conflicts).
    const updates = await load(UPDATES, CONCURRENCY, async (i) => {
      const body = service(`svc-${i}`, NS, { replicas: 3 });
      (body.metadata as any).resourceVersion = rvs[i];
      await request(api!, 'PUT', `${svcPath}/svc-${i}`, body);
    });
    const updateRate = UPDATES / updates.seconds;
    report(`API updates (PUT+rv):  ${fmt(updateRate, 0)}/s   (${fmt((100 * updateRate) / raw.perSecond, 0)}% of raw etcd; p50 ${fmt(percentile(updates.latencies, 50))} ms, p99 ${fmt(percentile(updates.latencies, 99))} ms)`);
    report(`                       ${meter(UPDATES, updates.seconds)}`);
    const mutatingP99 = Math.max(percentile(creates.latencies, 99), percentile(updates.latencies, 99));

    // 4. GET latency, one at a time (latency, not throughput).
    const gets = await load(GETS, 1, async (i) => void (await request(api!, 'GET', `${svcPath}/svc-${i % CREATES}`)));
    report(`API get (sequential):  p50 ${fmt(percentile(gets.latencies, 50), 2)} ms, p99 ${fmt(percentile(gets.latencies, 99), 2)} ms   (${fmt(GETS / gets.seconds, 0)}/s)`);
    const getsLoaded = await load(GETS * 2, CONCURRENCY, async (i) => void (await request(api!, 'GET', `${svcPath}/svc-${i % CREATES}`)));
    report(`API get (conc. ${CONCURRENCY}):    p50 ${fmt(percentile(getsLoaded.latencies, 50), 2)} ms, p99 ${fmt(percentile(getsLoaded.latencies, 99), 2)} ms   (${fmt((GETS * 2) / getsLoaded.seconds, 0)}/s, ${fmt((100 * ((GETS * 2) / getsLoaded.seconds)) / raw.perSecond, 0)}% of raw etcd puts/s)`);

    // 5. LIST of 10,000 objects.
    meter = cpuMeter(etcdPid, server.pid);
    // Timed to the last byte received; checking the 10,000 items (a client-side parse) is not timed.
    const listLatencies: number[] = [];
    const listStart = now();
    for (let i = 0; i < LISTS; i++) {
      const t = now();
      const res = await api.request({ method: 'GET', path: svcPath, headers: auth });
      const text = await res.body.text();
      listLatencies.push(now() - t);
      if (res.statusCode !== 200) throw new Error(`list: ${res.statusCode} ${text.slice(0, 300)}`);
      const count = JSON.parse(text).items.length;
      if (count !== CREATES) throw new Error(`list returned ${count} items, expected ${CREATES}`);
    }
    const lists = { latencies: listLatencies, seconds: (now() - listStart) / 1000 };
    const listP50 = percentile(lists.latencies, 50);
    report(`API list of ${CREATES}:    p50 ${fmt(listP50, 0)} ms, max ${fmt(Math.max(...lists.latencies), 0)} ms   (${LISTS} lists)`);
    report(`                       ${meter(LISTS, lists.seconds)}`);

    // 6. Watch delivery to 1,000 open watches on one resource.
    watchPool = new Pool(server.url, { connections: WATCHERS + 8, pipelining: 1 });
    const watchPath = `${G}/namespaces/${WATCH_NS}/services`;
    const seed = await request(api, 'POST', watchPath, service('watched-0', WATCH_NS));
    const fromRv = seed.metadata.resourceVersion as string;
    const writeStart = new Map<string, number>();
    const delivery: number[] = [];
    let received = 0;
    const onLine = (line: string) => {
      const at = now();
      // Cheap: the object's name is the first "name" after "metadata"; no full JSON.parse per line.
      const m = /"metadata":\{"name":"(w-\d+)"/.exec(line);
      if (!m) return;
      const t = writeStart.get(m[1]!);
      if (t !== undefined) {
        delivery.push(at - t);
        received++;
      }
    };
    const openStart = now();
    await Promise.all(Array.from({ length: WATCHERS }, () => openWatch(watchPool!, `${watchPath}?watch=true&resourceVersion=${fromRv}`, onLine, aborter.signal)));
    report(`watch: opened ${WATCHERS} watches in ${fmt(now() - openStart, 0)} ms`);
    await new Promise((r) => setTimeout(r, 200));
    for (let i = 0; i < WATCH_WRITES; i++) {
      const name = `w-${i}`;
      writeStart.set(name, now());
      await request(api, 'POST', watchPath, service(name, WATCH_NS));
      await new Promise((r) => setTimeout(r, WATCH_SPACING_MS));
    }
    const expected = WATCHERS * WATCH_WRITES;
    const deadline = Date.now() + 10_000;
    while (received < expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const watchP50 = percentile(delivery, 50);
    const watchP99 = received < expected ? Infinity : percentile(delivery, 99);
    report(`watch delivery:        p50 ${fmt(watchP50)} ms, p99 ${fmt(watchP99)} ms, max ${fmt(Math.max(...delivery))} ms   (${received}/${expected} events: ${WATCH_WRITES} writes ${WATCH_SPACING_MS} ms apart to ${WATCHERS} watches)`);

    target('creates >= 50% of raw etcd puts/s', createRate >= 0.5 * raw.perSecond, `${fmt(createRate, 0)}/s vs ${fmt(0.5 * raw.perSecond, 0)}/s`);
    target('mutating p99 <= 50 ms at concurrency 64', mutatingP99 <= 50, `${fmt(mutatingP99)} ms`);
    target('watch p99 <= 50 ms with 1,000 watches', watchP99 <= 50, `${fmt(watchP99)} ms`);
    target('10,000-object list p50 <= 200 ms', listP50 <= 200, `${fmt(listP50, 0)} ms`);
  } finally {
    aborter.abort();
    await watchPool?.destroy().catch(() => {});
    await api?.close().catch(() => {});
    await server?.stop().catch(() => {});
    await etcd.stop();
  }
  console.log('targets:');
  for (const t of targets) console.log(`  ${t.ok ? 'PASS' : 'MISS'}  ${t.name}: ${t.detail}`);
  console.log(`bench/api: done in ${fmt((now() - started) / 1000)} s`);
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(`bench/api broke: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
